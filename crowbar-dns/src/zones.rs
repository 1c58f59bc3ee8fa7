//! The live handle: the current snapshot behind an atomic pointer, and the change API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::{Change, DnsError, DnsName, Host, Snapshot, ZoneConfig};

/// The zones being served, changed in batches.
///
/// Each successful [`apply`](Self::apply) or [`replace`](Self::replace) builds a complete new
/// [`Snapshot`] (forward records, reverse records and SOA serial together) and swaps it in
/// with one atomic pointer store: a query sees either the old zones or the new ones, never a
/// mix, and every query that starts after the call returns sees the change. The serial rises
/// by one per batch (RFC 1982 arithmetic, wrapping).
///
/// Writers are serialised by a mutex held only while the new snapshot is built; readers never
/// take it.
///
/// ```
/// use crowbar_dns::{Change, Host, ZoneConfig, Zones};
/// let cfg = ZoneConfig::from_admin_fqdn("admin.lab.test".parse()?)?;
/// let zones = Zones::new(cfg, vec![], 41)?;
/// let serial = zones.apply([Change::Upsert(
///     Host::new("node1.lab.test".parse()?).with_v4("198.18.1.1".parse()?),
/// )])?;
/// assert_eq!(serial, 42);
/// assert_eq!(zones.snapshot().serial(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Zones {
    current: ArcSwap<Snapshot>,
    writer: Mutex<State>,
    serial_tx: watch::Sender<u32>,
}

#[derive(Debug)]
struct State {
    config: Arc<ZoneConfig>,
    hosts: BTreeMap<DnsName, Host>,
}

impl Zones {
    /// Builds the first snapshot with serial `serial`.
    pub fn new(config: ZoneConfig, hosts: Vec<Host>, serial: u32) -> Result<Zones, DnsError> {
        let config = Arc::new(config);
        let mut map = BTreeMap::new();
        for h in hosts {
            if map.contains_key(&h.fqdn) {
                return Err(DnsError::DuplicateName {
                    name: h.fqdn.to_string(),
                });
            }
            map.insert(h.fqdn.clone(), h);
        }
        let list: Vec<&Host> = map.values().collect();
        let snap = crate::build::build(config.clone(), &list, serial)?;
        drop(list);
        Ok(Zones {
            current: ArcSwap::from_pointee(snap),
            writer: Mutex::new(State { config, hosts: map }),
            serial_tx: watch::Sender::new(serial),
        })
    }

    /// The snapshot queries are answered from right now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A cheap borrow of the current snapshot for one query (no reference-count traffic).
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current SOA serial.
    pub fn serial(&self) -> u32 {
        self.current.load().serial()
    }

    /// A receiver that sees every new serial (used to send NOTIFY).
    pub fn subscribe(&self) -> watch::Receiver<u32> {
        self.serial_tx.subscribe()
    }

    /// The hosts currently served, in name order.
    pub fn hosts(&self) -> Vec<Host> {
        self.lock().hosts.values().cloned().collect()
    }

    /// Applies a batch of changes as one new snapshot; returns the new serial. On error
    /// nothing changes.
    pub fn apply(&self, changes: impl IntoIterator<Item = Change>) -> Result<u32, DnsError> {
        let mut state = self.lock();
        let mut hosts = state.hosts.clone();
        for c in changes {
            match c {
                Change::Upsert(h) => {
                    hosts.insert(h.fqdn.clone(), h);
                }
                Change::Remove(name) => {
                    hosts.remove(&name);
                }
            }
        }
        self.publish(&mut state, hosts)
    }

    /// Replaces every host (e.g. after re-reading a hosts file); returns the new serial.
    pub fn replace(&self, hosts: Vec<Host>) -> Result<u32, DnsError> {
        let mut state = self.lock();
        let mut map = BTreeMap::new();
        for h in hosts {
            if map.contains_key(&h.fqdn) {
                return Err(DnsError::DuplicateName {
                    name: h.fqdn.to_string(),
                });
            }
            map.insert(h.fqdn.clone(), h);
        }
        self.publish(&mut state, map)
    }

    fn publish(&self, state: &mut State, hosts: BTreeMap<DnsName, Host>) -> Result<u32, DnsError> {
        let serial = self.current.load().serial().wrapping_add(1);
        let list: Vec<&Host> = hosts.values().collect();
        let snap = crate::build::build(state.config.clone(), &list, serial)?;
        drop(list);
        // Free the old hosts before the old snapshot goes, keeping the peak low.
        let count = hosts.len();
        state.hosts = hosts;
        self.current.store(Arc::new(snap));
        self.serial_tx.send_replace(serial);
        tracing::info!(serial, hosts = count, "zones updated");
        Ok(serial)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while building leaves the old state intact, so a poisoned lock is usable.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}
