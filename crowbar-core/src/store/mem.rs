//! `MemStore`: a real, in-memory [`Store`], for tests, benches and embedding.
//!
//! Rows live in tables indexed by their dense ids, a noderole's state, run count and cohort in a
//! compact table of their own beside its row, and the history in one append-only list of
//! chunks, one per batch, of 24-byte entries (the batch's [`HistoryLog`]) where each entry points
//! back at the previous entry of the same noderole, links made by the first history query
//! after the entries came: applying a state change or a history entry is O(1) and touches a
//! few bytes, and a history nobody reads costs no index.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{
    Batch, Deployment, DeploymentId, DeploymentRole, Edge, HistoryEntry, HistoryLog, Node, NodeId,
    NodeRole, NodeRoleId, NodeRoleState, RecordChange, Role, RoleId, Snapshot, StateUpdate, Store,
    StoreError,
};

/// A [`Store`] that keeps everything in memory, behind a mutex.
///
/// It applies the same consistency checks as the durable stores and keeps the history. It does
/// not survive the process, and `load` copies everything, so it suits tests, benches and
/// embedding rather than very large long-lived clusters. Rows are kept in vectors indexed by
/// id, which suits the dense ids a [`Cluster`](crate::Cluster) hands out; an id far beyond
/// every id seen so far is kept aside in an ordered map instead, so a stray id costs no memory.
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<Data>,
}

#[derive(Default)]
struct Data {
    revision: u64,
    nodes: Table<Node>,
    roles: Table<Role>,
    deployments: Table<Deployment>,
    deployment_roles: BTreeMap<(DeploymentId, RoleId), DeploymentRole>,
    /// The rows; their `state`, `run_count` and `cohort` are those of `states`, not their own.
    noderoles: Table<NodeRole>,
    /// Per stored noderole (exactly those of `noderoles`), what a [`StateUpdate`] changes.
    ///
    /// [`StateUpdate`]: crate::StateUpdate
    states: Table<NodeRoleCounters>,
    edges: BTreeSet<Edge>,
    records: BTreeMap<(String, String), serde_json::Value>,
    history: History,
}

/// The columns of a noderole that change on every transition, kept apart from its row so that
/// the hot path touches 12 bytes per noderole rather than a whole row.
#[derive(Clone, Copy)]
struct NodeRoleCounters {
    state: NodeRoleState,
    run_count: u32,
    cohort: u32,
}

impl NodeRoleCounters {
    fn of(nr: &NodeRole) -> NodeRoleCounters {
        NodeRoleCounters {
            state: nr.state,
            run_count: nr.run_count,
            cohort: nr.cohort,
        }
    }
}

/// Rows by id: ids below `rows.len()` in `rows`, larger ones in `spill`.
///
/// Invariant: every key of `spill` is at least `rows.len()`, so `rows` then `spill` is id
/// order.
struct Table<T> {
    rows: Vec<Option<T>>,
    spill: BTreeMap<u64, T>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: Vec::new(),
            spill: BTreeMap::new(),
        }
    }
}

/// How far past the end of `rows` an id may be and still grow the vector to reach it.
const DENSE_SLACK: usize = 4096;

impl<T> Table<T> {
    fn slot(&self, id: u64) -> Option<usize> {
        usize::try_from(id).ok().filter(|&i| i < self.rows.len())
    }

    fn get(&self, id: u64) -> Option<&T> {
        match self.slot(id) {
            Some(i) => self.rows[i].as_ref(),
            None => self.spill.get(&id),
        }
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        match self.slot(id) {
            Some(i) => self.rows[i].as_mut(),
            None => self.spill.get_mut(&id),
        }
    }

    fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    fn insert(&mut self, id: u64, row: T) {
        if let Some(i) = self.slot(id) {
            self.rows[i] = Some(row);
            return;
        }
        let limit = self
            .rows
            .len()
            .saturating_mul(2)
            .saturating_add(DENSE_SLACK);
        match usize::try_from(id).ok().filter(|&i| i < limit) {
            Some(i) => {
                self.rows.resize_with(i + 1, || None);
                if !self.spill.is_empty() {
                    // Keep the invariant: what the vector now covers moves into it.
                    let rest = self.spill.split_off(&(i as u64 + 1));
                    for (k, v) in std::mem::replace(&mut self.spill, rest) {
                        self.rows[k as usize] = Some(v);
                    }
                }
                self.rows[i] = Some(row);
            }
            None => {
                self.spill.insert(id, row);
            }
        }
    }

    fn remove(&mut self, id: u64) -> Option<T> {
        match self.slot(id) {
            Some(i) => self.rows[i].take(),
            None => self.spill.remove(&id),
        }
    }

    /// The rows in id order.
    fn values(&self) -> impl Iterator<Item = &T> {
        self.rows.iter().flatten().chain(self.spill.values())
    }
}

/// Every history entry in the order applied, in chunks (one per batch: its [`HistoryLog`] as
/// it came, 24 bytes an entry), with beside each entry the position of the same noderole's
/// entry before it; `last` holds the position of each noderole's latest entry, so one
/// noderole's history is a walk back from there. A position is the entry's index in the whole
/// history plus one.
///
/// The links are an index made lazily: a query first links the chunks appended since the
/// last one (`indexed` counts the chunks linked), so each entry is linked once, and only
/// when some history is read.
#[derive(Default)]
struct History {
    chunks: Vec<Chunk>,
    len: usize,
    last: Table<NonZeroUsize>,
    indexed: usize,
}

/// One batch's entries; `start` is the position of its first entry in the whole history;
/// `prev` is empty until the chunk is linked.
struct Chunk {
    start: usize,
    log: HistoryLog,
    prev: Vec<Option<NonZeroUsize>>,
}

impl History {
    /// Appends a batch's entries.
    fn extend(&mut self, mut log: HistoryLog) {
        if log.is_empty() {
            return;
        }
        let start = self.len;
        self.len += log.len();
        // The store keeps the log for as long as it lives: not the room the cluster reserved
        // for a wave bigger than this one (given back in place, nothing copied).
        log.shrink_to_fit();
        self.chunks.push(Chunk {
            start,
            log,
            prev: Vec::new(),
        });
    }

    /// Links the chunks appended since the last query.
    fn index(&mut self) {
        for chunk in &mut self.chunks[self.indexed..] {
            chunk.prev.reserve_exact(chunk.log.len());
            for k in 0..chunk.log.len() {
                let noderole = chunk.log.noderole_at(k).get();
                let position = NonZeroUsize::MIN.saturating_add(chunk.start + k);
                chunk.prev.push(match self.last.get_mut(noderole) {
                    Some(last) => Some(std::mem::replace(last, position)),
                    None => {
                        self.last.insert(noderole, position);
                        None
                    }
                });
            }
        }
        self.indexed = self.chunks.len();
    }

    fn of(&mut self, noderole: NodeRoleId) -> Vec<HistoryEntry> {
        self.index();
        let mut out = Vec::new();
        let mut at = self.last.get(noderole.get()).copied();
        while let Some(position) = at {
            let i = position.get() - 1;
            // The chunk holding position i: the last one starting at or before it.
            let c = &self.chunks[self.chunks.partition_point(|c| c.start <= i) - 1];
            out.extend(c.log.get(i - c.start));
            at = c.prev[i - c.start];
        }
        out.reverse();
        out
    }
}

#[derive(Default)]
struct BatchIds {
    ids: Option<Vec<u64>>,
}

impl BatchIds {
    fn contains<T>(&mut self, rows: &[T], id_of: impl Fn(&T) -> u64, id: u64) -> bool {
        let ids = self.ids.get_or_insert_with(|| {
            let mut ids: Vec<u64> = rows.iter().map(id_of).collect();
            ids.sort_unstable();
            ids
        });
        ids.binary_search(&id).is_ok()
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn check(data: &Data, batch: &Batch) -> Result<(), StoreError> {
        let bad = |message: String| StoreError::Database {
            operation: "apply",
            message,
            retryable: false,
        };
        if let Some(base) = batch.base_revision
            && base != data.revision
        {
            return Err(StoreError::Conflict {
                expected: base,
                actual: data.revision,
            });
        }
        let (mut nodes, mut roles, mut deps, mut nrs) = Default::default();
        let mut node_ok = |id: NodeId| {
            data.nodes.contains(id.get())
                || BatchIds::contains(&mut nodes, &batch.nodes, |n| n.id.get(), id.get())
        };
        let mut role_ok = |id: RoleId| {
            data.roles.contains(id.get())
                || BatchIds::contains(&mut roles, &batch.roles, |r| r.id.get(), id.get())
        };
        let mut dep_ok = |id: DeploymentId| {
            data.deployments.contains(id.get())
                || BatchIds::contains(&mut deps, &batch.deployments, |d| d.id.get(), id.get())
        };
        let mut nr_ok = |id: NodeRoleId| {
            data.states.contains(id.get())
                || BatchIds::contains(&mut nrs, &batch.noderoles, |n| n.id.get(), id.get())
        };
        for nr in &batch.noderoles {
            if !node_ok(nr.node) || !role_ok(nr.role) || !dep_ok(nr.deployment) {
                return Err(bad(format!(
                    "noderole {} refers to a missing node, role or deployment",
                    nr.id
                )));
            }
        }
        for dr in &batch.deployment_roles {
            if !role_ok(dr.role) || !dep_ok(dr.deployment) {
                return Err(bad(
                    "deployment role refers to a missing role or deployment".into(),
                ));
            }
        }
        // State updates are the bulk of an anneal's batches, and are for stored noderoles:
        // one table read each, the batch's own rows consulted only from the first miss on.
        let stored = |s: &StateUpdate| data.states.contains(s.id.get());
        if let Some(first) = batch.states.iter().position(|s| !stored(s)) {
            for s in &batch.states[first..] {
                if !nr_ok(s.id) {
                    return Err(bad(format!("state update for missing noderole {}", s.id)));
                }
            }
        }
        for e in &batch.edges {
            if !nr_ok(e.parent) || !nr_ok(e.child) {
                return Err(bad(format!(
                    "edge {} -> {} refers to a missing noderole",
                    e.parent, e.child
                )));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Store for MemStore {
    async fn apply(&self, batch: Batch) -> Result<u64, StoreError> {
        let mut data = self.inner.lock().expect("MemStore mutex poisoned");
        let data = &mut *data;
        // Everything that can refuse the batch is checked before the first change.
        MemStore::check(data, &batch)?;
        for r in batch.roles {
            data.roles.insert(r.id.get(), r);
        }
        for d in batch.deployments {
            data.deployments.insert(d.id.get(), d);
        }
        for n in batch.nodes {
            data.nodes.insert(n.id.get(), n);
        }
        for dr in batch.deployment_roles {
            data.deployment_roles.insert((dr.deployment, dr.role), dr);
        }
        for nr in batch.noderoles {
            data.states.insert(nr.id.get(), NodeRoleCounters::of(&nr));
            data.noderoles.insert(nr.id.get(), nr);
        }
        for s in batch.states {
            if let Some(c) = data.states.get_mut(s.id.get()) {
                *c = NodeRoleCounters {
                    state: s.state,
                    run_count: s.run_count,
                    cohort: s.cohort,
                };
            }
        }
        data.edges.extend(batch.edges);
        if !batch.deleted_noderoles.is_empty() {
            let mut gone = batch.deleted_noderoles;
            gone.sort_unstable();
            gone.dedup();
            let is_gone = |id: &NodeRoleId| gone.binary_search(id).is_ok();
            data.edges
                .retain(|e| !is_gone(&e.parent) && !is_gone(&e.child));
            for id in &gone {
                data.noderoles.remove(id.get());
                data.states.remove(id.get());
            }
        }
        for id in batch.deleted_nodes {
            data.nodes.remove(id.get());
        }
        for r in batch.records {
            match r {
                RecordChange::Put(r) => {
                    data.records.insert((r.table, r.key), r.value);
                }
                RecordChange::Delete { table, key } => {
                    data.records.remove(&(table, key));
                }
            }
        }
        data.history.extend(batch.history);
        data.revision += 1;
        Ok(data.revision)
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        let data = self.inner.lock().expect("MemStore mutex poisoned");
        Ok(Snapshot {
            revision: data.revision,
            nodes: data.nodes.values().cloned().collect(),
            roles: data.roles.values().cloned().collect(),
            deployments: data.deployments.values().cloned().collect(),
            deployment_roles: data.deployment_roles.values().cloned().collect(),
            noderoles: data
                .noderoles
                .values()
                .map(|nr| {
                    let c = data
                        .states
                        .get(nr.id.get())
                        .expect("counters of a stored row");
                    NodeRole {
                        state: c.state,
                        run_count: c.run_count,
                        cohort: c.cohort,
                        ..nr.clone()
                    }
                })
                .collect(),
            edges: data.edges.iter().copied().collect(),
            records: data
                .records
                .iter()
                .map(|((table, key), value)| crate::Record {
                    table: table.clone(),
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        })
    }

    async fn history(&self, noderole: NodeRoleId) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut data = self.inner.lock().expect("MemStore mutex poisoned");
        Ok(data.history.of(noderole))
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.inner.lock().expect("MemStore mutex poisoned").revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{describe, sample_cluster};
    use crate::{Cause, NodeRoleState, NodeSpec, StateUpdate, Timestamp};

    fn entry(noderole: NodeRoleId, at: u64) -> HistoryEntry {
        HistoryEntry {
            noderole,
            from: Some(NodeRoleState::Todo),
            to: NodeRoleState::Transition,
            cause: Cause::JigStarted,
            at: Timestamp(at),
        }
    }

    #[tokio::test]
    async fn every_cause_state_and_time_comes_back_as_it_went_in() {
        let store = MemStore::new();
        let mut c = sample_cluster();
        let first = c.take_batch();
        let created = first.history.clone();
        store.apply(first).await.unwrap();
        let nr = created.get(0).expect("the sample binds noderoles").noderole;
        // Every kind of cause, and a second failure in the same batch.
        let mut causes = crate::history::every_cause(0);
        causes.push(Cause::JigFailed {
            message: "second failure, same batch".into(),
        });
        let states = NodeRoleState::ALL;
        let mut batch = Batch::default();
        for (k, cause) in causes.iter().enumerate() {
            batch.history.push(HistoryEntry {
                noderole: nr,
                from: (k % 7 != 0).then(|| states[k % states.len()]),
                to: states[(k + 1) % states.len()],
                cause: cause.clone(),
                // Runs of equal times, and times going back.
                at: Timestamp([5, 5, 5, 9, 9, 1, 5, u64::MAX][k % 8]),
            });
        }
        let sent = batch.history.clone();
        store.apply(batch).await.unwrap();
        let mut expected: Vec<HistoryEntry> =
            created.into_iter().filter(|e| e.noderole == nr).collect();
        expected.extend(sent);
        assert_eq!(store.history(nr).await.unwrap(), expected);
    }

    #[tokio::test]
    async fn history_of_interleaved_noderoles_across_batches_comes_back_in_order() {
        let store = MemStore::new();
        let mut c = sample_cluster();
        let first = c.take_batch();
        let mut all: Vec<HistoryEntry> = first.history.iter().collect();
        store.apply(first).await.unwrap();
        let ids: Vec<NodeRoleId> = c.noderoles().map(|n| n.id).collect();
        assert!(ids.len() >= 4, "the sample has several noderoles");
        for b in 0..50u64 {
            let mut batch = Batch::default();
            for k in 0..7u64 {
                let nr = ids[((b * 3 + k * 5) % ids.len() as u64) as usize];
                batch.history.push(entry(nr, 10_000 + b * 100 + k));
            }
            all.extend(batch.history.iter());
            store.apply(batch).await.unwrap();
            if b % 7 == 0 {
                // A query between batches links what came so far; later batches link on.
                let nr = ids[b as usize % ids.len()];
                let expected: Vec<HistoryEntry> =
                    all.iter().filter(|h| h.noderole == nr).cloned().collect();
                assert_eq!(store.history(nr).await.unwrap(), expected, "{nr} after {b}");
            }
        }
        for &nr in &ids {
            let expected: Vec<HistoryEntry> =
                all.iter().filter(|h| h.noderole == nr).cloned().collect();
            assert!(expected.len() > 7, "{nr} appears in many batches");
            assert_eq!(
                store.history(nr).await.unwrap(),
                expected,
                "history of {nr}"
            );
        }
        assert_eq!(store.history(NodeRoleId(999_999)).await.unwrap(), vec![]);
        assert_eq!(store.revision().await.unwrap(), 51);
    }

    #[tokio::test]
    async fn history_over_batches_of_every_size_keeps_every_entry_in_order() {
        let store = MemStore::new();
        let total = 40_000;
        let mut batch = Batch::default();
        // Batches of 1, 2, 3... 299 entries, then again, with an empty one between each.
        let mut size = 1;
        for i in 0..total as u64 {
            // Noderole 1 every third entry, 2 and 3 the others: chains cross every batch end.
            let nr = NodeRoleId(if i % 3 == 0 { 1 } else { 2 + i % 2 });
            batch.history.push(entry(nr, i));
            if batch.history.len() == size {
                store.apply(std::mem::take(&mut batch)).await.unwrap();
                store.apply(Batch::default()).await.unwrap();
                size = size % 299 + 1;
            }
        }
        store.apply(batch).await.unwrap();
        let mut seen = 0;
        for nr in 1..=3 {
            let times: Vec<u64> = store
                .history(NodeRoleId(nr))
                .await
                .unwrap()
                .iter()
                .map(|h| h.at.0)
                .collect();
            let expected: Vec<u64> = (0..total as u64)
                .filter(|i| (if i % 3 == 0 { 1 } else { 2 + i % 2 }) == nr)
                .collect();
            assert_eq!(times, expected, "history of noderole {nr}");
            seen += times.len();
        }
        assert_eq!(seen, total);
    }

    #[tokio::test]
    async fn refused_batch_leaves_rows_history_and_revision_untouched() {
        let store = MemStore::new();
        let mut c = sample_cluster();
        store.apply(c.take_batch()).await.unwrap();
        let some = c.noderoles().next().unwrap().to_row();
        let before = store.load().await.unwrap();
        let history_before = store.history(some.id).await.unwrap();

        // Every change a batch can carry, then one row naming a node that does not exist.
        let mut bad = Batch::default();
        let mut node = c.nodes().next().unwrap().clone();
        node.id = NodeId(500);
        bad.nodes.push(node);
        bad.states.push(StateUpdate {
            id: some.id,
            state: NodeRoleState::Error,
            run_count: 7,
            cohort: 3,
        });
        bad.history.push(entry(some.id, 77));
        bad.deleted_nodes.push(c.nodes().next().unwrap().id);
        bad.records.push(RecordChange::Delete {
            table: "network.allocation".into(),
            key: "admin/n0".into(),
        });
        let mut orphan = some.clone();
        orphan.id = NodeRoleId(600);
        orphan.node = NodeId(501);
        bad.noderoles.push(orphan);
        let err = store.apply(bad).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Database { retryable: false, ref message, .. }
                if message.contains("noderole#600")),
            "{err}"
        );
        let after = store.load().await.unwrap();
        assert_eq!(after.revision, before.revision);
        assert_eq!(describe(&after), describe(&before));
        assert_eq!(store.history(some.id).await.unwrap(), history_before);
    }

    #[tokio::test]
    async fn rows_may_refer_to_rows_of_the_same_batch_but_not_to_missing_ones() {
        let store = MemStore::new();
        let mut c = sample_cluster();
        store.apply(c.take_batch()).await.unwrap();
        let some = c.noderoles().next().unwrap().to_row();
        let mut node = c.nodes().next().unwrap().clone();

        // A node and two noderoles created together, linked by an edge, with a state update.
        let mut batch = Batch::default();
        node.id = NodeId(40);
        batch.nodes.push(node);
        for id in [41, 42] {
            let mut nr = some.clone();
            nr.id = NodeRoleId(id);
            nr.node = NodeId(40);
            batch.noderoles.push(nr);
        }
        batch.edges.push(Edge {
            parent: NodeRoleId(41),
            child: NodeRoleId(42),
        });
        batch.states.push(StateUpdate {
            id: NodeRoleId(42),
            state: NodeRoleState::Blocked,
            run_count: 0,
            cohort: 1,
        });
        store.apply(batch).await.unwrap();
        let loaded = store.load().await.unwrap();
        let nr42 = loaded.noderoles.iter().find(|n| n.id == NodeRoleId(42));
        assert_eq!(nr42.map(|n| n.state), Some(NodeRoleState::Blocked));
        assert!(loaded.edges.contains(&Edge {
            parent: NodeRoleId(41),
            child: NodeRoleId(42)
        }));

        // An edge to a noderole neither stored nor in the batch is refused.
        let mut batch = Batch::default();
        batch.edges.push(Edge {
            parent: NodeRoleId(41),
            child: NodeRoleId(43),
        });
        let err = store.apply(batch).await.unwrap_err();
        assert!(err.to_string().contains("noderole#43"), "{err}");
        // So is a state update for a deleted noderole.
        let mut batch = Batch::default();
        batch.deleted_noderoles.push(NodeRoleId(42));
        store.apply(batch).await.unwrap();
        let mut batch = Batch::default();
        batch.states.push(StateUpdate {
            id: NodeRoleId(42),
            state: NodeRoleState::Todo,
            run_count: 0,
            cohort: 1,
        });
        assert!(store.apply(batch).await.is_err());
        let loaded = store.load().await.unwrap();
        assert!(loaded.noderoles.iter().all(|n| n.id != NodeRoleId(42)));
        assert!(loaded.edges.iter().all(|e| e.child != NodeRoleId(42)));
    }

    #[tokio::test]
    async fn far_away_ids_are_kept_aside_and_loaded_in_id_order() {
        let store = MemStore::new();
        let mut c = crate::Cluster::new();
        c.create_node(NodeSpec::new("a.example.com")).unwrap();
        let mut batch = c.take_batch();
        let mut far = batch.nodes[0].clone();
        far.id = NodeId(u64::MAX - 1);
        batch.nodes.push(far);
        store.apply(batch).await.unwrap();
        let ids: Vec<u64> = store
            .load()
            .await
            .unwrap()
            .nodes
            .iter()
            .map(|n| n.id.get())
            .collect();
        assert_eq!(ids.last(), Some(&(u64::MAX - 1)));
        assert!(ids.is_sorted());
        let data = store.inner.lock().unwrap();
        assert!(data.nodes.rows.len() < 2 * DENSE_SLACK, "no huge vector");
    }

    #[test]
    fn table_moves_kept_aside_rows_into_the_vector_as_it_grows() {
        let mut t = Table::default();
        t.insert(1_000_000, "far");
        t.insert(3, "three");
        assert_eq!(t.spill.len(), 1);
        let mut next = 0;
        while next < 1_000_000 {
            next = t.rows.len() * 2 + DENSE_SLACK - 1;
            t.insert(next as u64, "step");
        }
        assert!(t.spill.keys().all(|&k| k as usize >= t.rows.len()));
        assert_eq!(t.get(1_000_000), Some(&"far"));
        assert_eq!(t.get(3), Some(&"three"));
        assert_eq!(t.remove(1_000_000), Some("far"));
        assert_eq!(t.get(1_000_000), None);
        let values: Vec<&str> = t.values().copied().collect();
        assert_eq!(values.first(), Some(&"three"));
        assert!(values.iter().skip(1).all(|v| *v == "step"));
    }
}
