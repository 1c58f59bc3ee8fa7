//! A dynamic address pool with O(log n) allocation.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Addresses `start..=end`. Never-used addresses are handed out by a cursor; addresses that
/// came back (released, expired, reclaimed) sit in an ordered free set. Whether an address is
/// taken is always checked against the caller's lease table, so the pool can never hand out
/// an address twice even if it is told about an address more than once.
#[derive(Debug)]
pub(crate) struct Pool {
    start: u32,
    end: u32,
    next_fresh: u64,
    free: BTreeSet<u32>,
}

impl Pool {
    pub(crate) fn new(start: Ipv4Addr, end: Ipv4Addr) -> Self {
        Pool {
            start: start.into(),
            end: end.into(),
            next_fresh: u64::from(u32::from(start)),
            free: BTreeSet::new(),
        }
    }

    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.start..=self.end).contains(&u32::from(ip))
    }

    /// Whether `ip` is available as far as the pool knows (the caller checks its leases).
    pub(crate) fn is_unused(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        self.contains(ip) && (u64::from(n) >= self.next_fresh || self.free.contains(&n))
    }

    /// Marks `ip` as assigned by some other way (a requested address, a loaded lease).
    pub(crate) fn take(&mut self, ip: Ipv4Addr) {
        self.free.remove(&u32::from(ip));
    }

    /// Returns `ip` to the pool.
    pub(crate) fn give_back(&mut self, ip: Ipv4Addr) {
        let n = u32::from(ip);
        if self.contains(ip) && u64::from(n) < self.next_fresh {
            self.free.insert(n);
        }
    }

    /// The lowest free address not `taken`, recycled addresses first.
    pub(crate) fn allocate(&mut self, taken: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
        while let Some(n) = self.free.pop_first() {
            let ip = Ipv4Addr::from(n);
            if !taken(ip) {
                return Some(ip);
            }
        }
        while self.next_fresh <= u64::from(self.end) {
            let ip = Ipv4Addr::from(self.next_fresh as u32);
            self.next_fresh += 1;
            if !taken(ip) {
                return Some(ip);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_fresh_then_recycled_addresses_and_skips_taken_ones() {
        let mut p = Pool::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 4));
        let taken = |ip: Ipv4Addr| ip == Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(p.allocate(taken), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(p.allocate(taken), Some(Ipv4Addr::new(10, 0, 0, 3)));
        p.give_back(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.allocate(taken), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(p.allocate(taken), Some(Ipv4Addr::new(10, 0, 0, 4)));
        assert_eq!(p.allocate(taken), None);
        assert!(!p.contains(Ipv4Addr::new(10, 0, 0, 5)));
    }
}
