//! Leases and where they are persisted.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use rusqlite::{Connection, params};

use crate::{MacAddr, PxeError};

/// The state of one address in the lease table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LeaseState {
    /// Offered to a client that has not requested it yet; held until `expires`.
    Offered,
    /// Acknowledged to the client until `expires`.
    Bound,
    /// Declined by a client (someone else uses it); not handed out until `expires`.
    Probation,
}

impl LeaseState {
    fn as_str(self) -> &'static str {
        match self {
            LeaseState::Offered => "offered",
            LeaseState::Bound => "bound",
            LeaseState::Probation => "probation",
        }
    }

    fn from_column(s: &str) -> Option<Self> {
        match s {
            "offered" => Some(LeaseState::Offered),
            "bound" => Some(LeaseState::Bound),
            "probation" => Some(LeaseState::Probation),
            _ => None,
        }
    }
}

/// One address held by a client (or on probation).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// The client holding it; `None` for an address on probation.
    pub mac: Option<MacAddr>,
    /// Offered, bound or on probation.
    pub state: LeaseState,
    /// When it ends, in seconds since the Unix epoch.
    pub expires: u64,
}

/// A change to persist, produced by the server core in the order it happened.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LeaseChange {
    /// Insert or replace the lease of `ip`.
    Upsert(Lease),
    /// The address is free again (released, expired or reclaimed).
    Remove(Ipv4Addr),
}

/// Durable storage for leases: the in-memory table of the server core is the truth while it
/// runs; the store lets it start again where it stopped.
///
/// Calls block; the daemon runs them on a thread of their own ([`LeaseWriter`]), never on the
/// packet path.
pub trait LeaseStore: Send {
    /// Every stored lease, expired ones included (the core drops those at load).
    fn load(&mut self) -> Result<Vec<Lease>, PxeError>;
    /// Applies a batch of changes, all or nothing.
    fn apply(&mut self, changes: &[LeaseChange]) -> Result<(), PxeError>;
}

/// Leases in a map in memory: for tests, benches and embedding. Nothing survives the process.
#[derive(Debug, Default, Clone)]
pub struct MemLeaseStore {
    leases: BTreeMap<Ipv4Addr, Lease>,
}

impl MemLeaseStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lease currently stored for `ip`.
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.leases.get(&ip)
    }
}

impl LeaseStore for MemLeaseStore {
    fn load(&mut self) -> Result<Vec<Lease>, PxeError> {
        Ok(self.leases.values().cloned().collect())
    }

    fn apply(&mut self, changes: &[LeaseChange]) -> Result<(), PxeError> {
        for change in changes {
            match change {
                LeaseChange::Upsert(lease) => {
                    self.leases.insert(lease.ip, lease.clone());
                }
                LeaseChange::Remove(ip) => {
                    self.leases.remove(ip);
                }
            }
        }
        Ok(())
    }
}

/// Leases in their own SQLite table (`dhcp_leases`), WAL mode, one transaction per batch.
#[derive(Debug)]
pub struct SqliteLeaseStore {
    conn: Connection,
}

impl SqliteLeaseStore {
    /// Opens (and creates if needed) the database file.
    pub fn open(path: &Path) -> Result<Self, PxeError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS dhcp_leases (
                 ip INTEGER PRIMARY KEY,
                 mac TEXT,
                 state TEXT NOT NULL,
                 expires INTEGER NOT NULL
             );",
        )?;
        Ok(SqliteLeaseStore { conn })
    }
}

impl LeaseStore for SqliteLeaseStore {
    fn load(&mut self) -> Result<Vec<Lease>, PxeError> {
        let mut stmt = self
            .conn
            .prepare("SELECT ip, mac, state, expires FROM dhcp_leases")?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, u32>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (ip, mac, state, expires) = row?;
            let (Some(state), mac) = (LeaseState::from_column(&state), mac.map(|m| m.parse()))
            else {
                tracing::warn!(ip = %Ipv4Addr::from(ip), "skipping lease row with unknown state");
                continue;
            };
            let mac = match mac {
                None => None,
                Some(Ok(m)) => Some(m),
                Some(Err(_)) => {
                    tracing::warn!(ip = %Ipv4Addr::from(ip), "skipping lease row with bad MAC");
                    continue;
                }
            };
            out.push(Lease {
                ip: ip.into(),
                mac,
                state,
                expires: expires.max(0) as u64,
            });
        }
        Ok(out)
    }

    fn apply(&mut self, changes: &[LeaseChange]) -> Result<(), PxeError> {
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(
                "INSERT OR REPLACE INTO dhcp_leases (ip, mac, state, expires) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut del = tx.prepare_cached("DELETE FROM dhcp_leases WHERE ip = ?1")?;
            for change in changes {
                match change {
                    LeaseChange::Upsert(l) => {
                        up.execute(params![
                            u32::from(l.ip),
                            l.mac.map(|m| m.to_string()),
                            l.state.as_str(),
                            l.expires as i64
                        ])?;
                    }
                    LeaseChange::Remove(ip) => {
                        del.execute(params![u32::from(*ip)])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Writes lease changes on a thread of its own, batching everything that queued up while the
/// previous batch was being committed, so persistence does not slow the packet path down.
#[derive(Debug)]
pub struct LeaseWriter {
    tx: Option<mpsc::Sender<Vec<LeaseChange>>>,
    handle: Option<thread::JoinHandle<Box<dyn LeaseStore>>>,
}

/// Keeps only the last change per address (an OFFER's upsert followed by the ACK's is one
/// write), in the order of those last changes.
fn coalesce(batch: Vec<LeaseChange>) -> Vec<LeaseChange> {
    let key = |c: &LeaseChange| match c {
        LeaseChange::Upsert(l) => l.ip,
        LeaseChange::Remove(ip) => *ip,
    };
    let mut last = std::collections::HashMap::with_capacity(batch.len());
    for (i, c) in batch.iter().enumerate() {
        last.insert(key(c), i);
    }
    batch
        .into_iter()
        .enumerate()
        .filter(|(i, c)| last.get(&key(c)) == Some(i))
        .map(|(_, c)| c)
        .collect()
}

impl std::fmt::Debug for dyn LeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseStore")
    }
}

impl LeaseWriter {
    /// Starts the writer thread over `store`.
    pub fn spawn(mut store: Box<dyn LeaseStore>) -> Self {
        let (tx, rx) = mpsc::channel::<Vec<LeaseChange>>();
        let handle = thread::Builder::new()
            .name("lease-writer".into())
            .spawn(move || {
                while let Ok(mut batch) = rx.recv() {
                    while let Ok(more) = rx.try_recv() {
                        batch.extend(more);
                    }
                    let batch = coalesce(batch);
                    if let Err(e) = store.apply(&batch) {
                        tracing::error!(error = %e, changes = batch.len(), "persisting leases failed");
                    }
                }
                store
            })
            .ok();
        LeaseWriter {
            tx: Some(tx),
            handle,
        }
    }

    /// Queues changes; never blocks.
    pub fn submit(&self, changes: Vec<LeaseChange>) {
        if changes.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            // The thread only stops when we drop the sender, so this cannot fail in practice.
            let _ = tx.send(changes);
        }
    }

    /// Flushes everything queued and hands the store back.
    pub fn finish(mut self) -> Option<Box<dyn LeaseStore>> {
        self.tx = None;
        self.handle.take().and_then(|h| h.join().ok())
    }
}

impl Drop for LeaseWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ip: [u8; 4], state: LeaseState) -> Lease {
        Lease {
            ip: ip.into(),
            mac: Some(MacAddr([2, 0, 0, 0, 0, ip[3]])),
            state,
            expires: 1_000 + u64::from(ip[3]),
        }
    }

    #[test]
    fn sqlite_store_round_trips_upserts_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.sqlite");
        let mut store = SqliteLeaseStore::open(&path).unwrap();
        store
            .apply(&[
                LeaseChange::Upsert(lease([10, 0, 0, 5], LeaseState::Offered)),
                LeaseChange::Upsert(lease([10, 0, 0, 6], LeaseState::Bound)),
                LeaseChange::Upsert(lease([10, 0, 0, 5], LeaseState::Bound)),
                LeaseChange::Upsert(Lease {
                    mac: None,
                    ..lease([10, 0, 0, 7], LeaseState::Probation)
                }),
                LeaseChange::Remove([10, 0, 0, 6].into()),
            ])
            .unwrap();
        drop(store);
        let mut again = SqliteLeaseStore::open(&path).unwrap();
        let mut rows = again.load().unwrap();
        rows.sort_by_key(|l| l.ip);
        assert_eq!(
            rows,
            vec![
                lease([10, 0, 0, 5], LeaseState::Bound),
                Lease {
                    mac: None,
                    ..lease([10, 0, 0, 7], LeaseState::Probation)
                }
            ]
        );
    }

    #[test]
    fn coalescing_keeps_the_last_change_per_address() {
        let a = lease([10, 0, 0, 1], LeaseState::Offered);
        let b = lease([10, 0, 0, 1], LeaseState::Bound);
        let c = lease([10, 0, 0, 2], LeaseState::Offered);
        let out = coalesce(vec![
            LeaseChange::Upsert(a),
            LeaseChange::Upsert(c.clone()),
            LeaseChange::Upsert(b.clone()),
            LeaseChange::Remove([10, 0, 0, 3].into()),
        ]);
        assert_eq!(
            out,
            vec![
                LeaseChange::Upsert(c),
                LeaseChange::Upsert(b),
                LeaseChange::Remove([10, 0, 0, 3].into())
            ]
        );
    }

    #[test]
    fn writer_persists_every_submitted_batch() {
        let writer = LeaseWriter::spawn(Box::new(MemLeaseStore::new()));
        for i in 1..=50u8 {
            writer.submit(vec![LeaseChange::Upsert(lease(
                [10, 0, 1, i],
                LeaseState::Bound,
            ))]);
        }
        writer.submit(vec![LeaseChange::Remove([10, 0, 1, 1].into())]);
        let mut store = writer.finish().unwrap();
        let rows = store.load().unwrap();
        assert_eq!(rows.len(), 49);
        assert!(rows.iter().all(|l| l.ip != Ipv4Addr::new(10, 0, 1, 1)));
    }
}
