//! The per-range allocator: an in-memory index of who holds which address in one range.
//!
//! Free addresses are kept as a set of disjoint intervals (`start → end`, inclusive) in a
//! `BTreeMap`, so the lowest free address is the first interval's start, a hint is checked with
//! one ordered lookup, and taking or giving back an address splits or merges at most two
//! intervals: every operation is O(log n) in the number of allocations, however full the range.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::addr::{to_int, with_prefix};
use crate::error::NetError;
use crowbar_core::NodeId;

use crate::model::{Network, NetworkAllocation, NetworkId, NetworkRange, RangeKind};

/// Who holds which address in one range of one network; at most one address per node.
///
/// The store persists the [`NetworkAllocation`]s; this is the index rebuilt from them with
/// [`from_allocations`](Self::from_allocations). If the network has a router whose address lies
/// in the range, that address is reserved and never handed out.
///
/// ```
/// use crowbar_core::{DeploymentId, NodeId};
/// use crowbar_net::{Network, NetworkId, NetworkSpec, RangeAllocator, RangeKind, UlaConfig};
///
/// let spec = NetworkSpec::new("storage", DeploymentId(1), "1g1")
///     .range(RangeKind::Host, "10.0.0.10/24".parse().unwrap(), "10.0.0.12/24".parse().unwrap());
/// let network = Network::new(NetworkId(2), spec, UlaConfig::default()).unwrap();
/// let mut host = RangeAllocator::new(&network, &RangeKind::Host).unwrap();
///
/// let a = host.allocate(NodeId(1), None).unwrap();
/// assert_eq!(a.address.to_string(), "10.0.0.10/24");
/// // A free hint inside the range wins; the same node asking again gets the same address.
/// let b = host.allocate(NodeId(2), Some("10.0.0.12".parse().unwrap())).unwrap();
/// assert_eq!(b.address.to_string(), "10.0.0.12/24");
/// assert_eq!(host.allocate(NodeId(2), None).unwrap(), b);
/// host.allocate(NodeId(3), None).unwrap();
/// assert!(host.allocate(NodeId(4), None).is_err()); // full
/// assert_eq!(host.release(NodeId(1)), Some(a));
/// assert_eq!(host.allocate(NodeId(4), None).unwrap().address.to_string(), "10.0.0.10/24");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeAllocator {
    network: NetworkId,
    network_name: String,
    range: NetworkRange,
    /// Free intervals, start → end inclusive, disjoint and never adjacent.
    free: BTreeMap<u128, u128>,
    /// Held addresses → node; the router's reserved address is in neither map.
    owners: BTreeMap<u128, NodeId>,
    by_node: HashMap<NodeId, u128>,
    reserved: Option<u128>,
}

impl RangeAllocator {
    /// An empty allocator for the range `kind` of `network`.
    pub fn new(network: &Network, kind: &RangeKind) -> Result<Self, NetError> {
        let range = network
            .range(kind)
            .ok_or_else(|| NetError::MissingRange {
                network: network.name().to_owned(),
                range: kind.clone(),
            })?
            .clone();
        let mut free = BTreeMap::new();
        free.insert(range.first_int(), range.last_int());
        let mut alloc = RangeAllocator {
            network: network.id(),
            network_name: network.name().to_owned(),
            range,
            free,
            owners: BTreeMap::new(),
            by_node: HashMap::new(),
            reserved: None,
        };
        if let Some(router) = network.router() {
            let addr = router.address().addr();
            if alloc.range.contains(addr) {
                let value = to_int(addr);
                alloc.take(value);
                alloc.reserved = Some(value);
            }
        }
        Ok(alloc)
    }

    /// The allocator for range `kind` of `network` holding `allocations`, checked: each must be
    /// of this network and range, inside the range, and no address or node may appear twice.
    pub fn from_allocations(
        network: &Network,
        kind: &RangeKind,
        allocations: impl IntoIterator<Item = NetworkAllocation>,
    ) -> Result<Self, NetError> {
        let mut alloc = RangeAllocator::new(network, kind)?;
        for allocation in allocations {
            alloc.insert(&allocation)?;
        }
        Ok(alloc)
    }

    /// Adds one persisted allocation, with the checks of [`from_allocations`](Self::from_allocations).
    pub(crate) fn insert(&mut self, allocation: &NetworkAllocation) -> Result<(), NetError> {
        if allocation.network != self.network {
            return Err(NetError::UnknownNetwork {
                id: allocation.network,
            });
        }
        if &allocation.range != self.range.kind() {
            return Err(NetError::MissingRange {
                network: self.network_name.clone(),
                range: allocation.range.clone(),
            });
        }
        let addr = allocation.address.addr();
        if !self.range.contains(addr) {
            return Err(NetError::AddressOutOfRange {
                network: self.network_name.clone(),
                range: self.range.kind().clone(),
                address: addr,
            });
        }
        if let Some(&held) = self.by_node.get(&allocation.node) {
            return Err(NetError::NodeAlreadyAllocated {
                network: self.network_name.clone(),
                range: self.range.kind().clone(),
                node: allocation.node,
                address: self.range.addr_at(held),
            });
        }
        let value = to_int(addr);
        if !self.take(value) {
            return Err(NetError::AddressInUse {
                network: self.network_name.clone(),
                range: self.range.kind().clone(),
                address: addr,
                holder: self.owners.get(&value).copied(),
            });
        }
        self.owners.insert(value, allocation.node);
        self.by_node.insert(allocation.node, value);
        Ok(())
    }

    /// Gives `node` an address: the one it already holds here; else `hint` if it lies in the
    /// range and is free; else the lowest free address. A full range is
    /// [`NetError::RangeFull`].
    pub fn allocate(
        &mut self,
        node: NodeId,
        hint: Option<IpAddr>,
    ) -> Result<NetworkAllocation, NetError> {
        if let Some(held) = self.get(node) {
            return Ok(held);
        }
        let value = match hint {
            Some(addr) if self.is_free(addr) => to_int(addr),
            _ => match self.free.first_key_value() {
                Some((&start, _)) => start,
                None => {
                    return Err(NetError::RangeFull {
                        network: self.network_name.clone(),
                        range: self.range.kind().clone(),
                    });
                }
            },
        };
        let taken = self.take(value);
        debug_assert!(taken, "the chosen address was free");
        self.owners.insert(value, node);
        self.by_node.insert(node, value);
        Ok(self.record(node, value))
    }

    /// Releases `node`'s address, returning the allocation it held.
    pub fn release(&mut self, node: NodeId) -> Option<NetworkAllocation> {
        let value = self.by_node.remove(&node)?;
        self.owners.remove(&value);
        self.give_back(value);
        Some(self.record(node, value))
    }

    /// `node`'s allocation in this range.
    pub fn get(&self, node: NodeId) -> Option<NetworkAllocation> {
        self.by_node.get(&node).map(|&v| self.record(node, v))
    }

    /// The node holding `addr`.
    pub fn holder(&self, addr: IpAddr) -> Option<NodeId> {
        if !self.range.contains(addr) {
            return None;
        }
        self.owners.get(&to_int(addr)).copied()
    }

    /// Whether `addr` lies in the range and is neither held nor reserved for the router.
    pub fn is_free(&self, addr: IpAddr) -> bool {
        self.range.contains(addr) && self.free_interval_of(to_int(addr)).is_some()
    }

    /// The lowest free address, if any.
    pub fn lowest_free(&self) -> Option<IpAddr> {
        self.free
            .first_key_value()
            .map(|(&start, _)| self.range.addr_at(start))
    }

    /// The range this allocator hands out.
    pub fn range(&self) -> &NetworkRange {
        &self.range
    }

    /// The network.
    pub fn network(&self) -> NetworkId {
        self.network
    }

    /// How many addresses are held.
    pub fn len(&self) -> usize {
        self.by_node.len()
    }

    /// Whether no address is held.
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    /// How many addresses are free.
    pub fn free_count(&self) -> u128 {
        self.free.iter().map(|(s, e)| e - s + 1).sum()
    }

    /// Every allocation, in address order.
    pub fn allocations(&self) -> impl Iterator<Item = NetworkAllocation> + '_ {
        self.owners.iter().map(|(&v, &node)| self.record(node, v))
    }

    fn record(&self, node: NodeId, value: u128) -> NetworkAllocation {
        NetworkAllocation {
            node,
            network: self.network,
            range: self.range.kind().clone(),
            address: with_prefix(self.range.addr_at(value), &self.range.first()),
        }
    }

    /// The free interval holding `value`.
    fn free_interval_of(&self, value: u128) -> Option<(u128, u128)> {
        let (&start, &end) = self.free.range(..=value).next_back()?;
        (value <= end).then_some((start, end))
    }

    /// Marks `value` used; false if it was not free.
    fn take(&mut self, value: u128) -> bool {
        let Some((start, end)) = self.free_interval_of(value) else {
            return false;
        };
        self.free.remove(&start);
        if start < value {
            self.free.insert(start, value - 1);
        }
        if value < end {
            self.free.insert(value + 1, end);
        }
        true
    }

    /// Marks `value` (held until now) free again, merging with its neighbours.
    fn give_back(&mut self, value: u128) {
        let mut start = value;
        let mut end = value;
        if value > 0
            && let Some((&s, &e)) = self.free.range(..value).next_back()
            && e == value - 1
        {
            start = s;
        }
        if let Some(next) = value.checked_add(1)
            && let Some(e) = self.free.remove(&next)
        {
            end = e;
        }
        self.free.insert(start, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NetworkSpec, UlaConfig};
    use crowbar_core::DeploymentId;

    fn allocator(first: &str, last: &str) -> RangeAllocator {
        let spec = NetworkSpec::new("n", DeploymentId(1), "1g0").range(
            RangeKind::Host,
            first.parse().unwrap(),
            last.parse().unwrap(),
        );
        let net = Network::new(NetworkId(1), spec, UlaConfig::default()).unwrap();
        RangeAllocator::new(&net, &RangeKind::Host).unwrap()
    }

    #[test]
    fn intervals_split_and_merge() {
        let mut a = allocator("10.0.0.1/24", "10.0.0.5/24");
        for n in 1..=5 {
            a.allocate(NodeId(n), None).unwrap();
        }
        assert!(a.free.is_empty());
        a.release(NodeId(2));
        a.release(NodeId(4));
        assert_eq!(a.free.len(), 2);
        a.release(NodeId(3));
        assert_eq!(a.free.len(), 1);
        assert_eq!(a.free_count(), 3);
        a.release(NodeId(1));
        a.release(NodeId(5));
        assert_eq!(a.free.len(), 1);
        assert_eq!(a.free_count(), 5);
    }

    #[test]
    fn hint_outside_or_taken_falls_back_to_lowest() {
        let mut a = allocator("10.0.0.10/24", "10.0.0.20/24");
        let x = a
            .allocate(NodeId(1), Some("10.0.0.15".parse().unwrap()))
            .unwrap();
        assert_eq!(x.address.to_string(), "10.0.0.15/24");
        let y = a
            .allocate(NodeId(2), Some("10.0.0.15".parse().unwrap()))
            .unwrap();
        assert_eq!(y.address.to_string(), "10.0.0.10/24");
        let z = a
            .allocate(NodeId(3), Some("10.0.0.9".parse().unwrap()))
            .unwrap();
        assert_eq!(z.address.to_string(), "10.0.0.11/24");
        let w = a
            .allocate(NodeId(4), Some("fd00::1".parse().unwrap()))
            .unwrap();
        assert_eq!(w.address.to_string(), "10.0.0.12/24");
    }
}
