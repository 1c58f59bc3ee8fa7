//! `MemStore`: a real, in-memory [`Store`], for tests, benches and embedding.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{
    Batch, Deployment, DeploymentId, DeploymentRole, Edge, HistoryEntry, Node, NodeId, NodeRole,
    NodeRoleId, RecordChange, Role, RoleId, Snapshot, Store, StoreError,
};

#[derive(Default, Clone)]
struct Data {
    revision: u64,
    nodes: BTreeMap<NodeId, Node>,
    roles: BTreeMap<RoleId, Role>,
    deployments: BTreeMap<DeploymentId, Deployment>,
    deployment_roles: BTreeMap<(DeploymentId, RoleId), DeploymentRole>,
    noderoles: BTreeMap<NodeRoleId, NodeRole>,
    edges: BTreeSet<Edge>,
    records: BTreeMap<(String, String), serde_json::Value>,
}

/// A [`Store`] that keeps everything in memory, behind a mutex.
///
/// It applies the same consistency checks as the durable stores and keeps the history. It does
/// not survive the process, and `load` copies everything, so it suits tests, benches and
/// embedding rather than very large long-lived clusters.
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<(Data, HashMap<NodeRoleId, Vec<HistoryEntry>>)>,
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
        let nodes: BTreeSet<NodeId> = batch.nodes.iter().map(|n| n.id).collect();
        let roles: BTreeSet<RoleId> = batch.roles.iter().map(|r| r.id).collect();
        let deps: BTreeSet<DeploymentId> = batch.deployments.iter().map(|d| d.id).collect();
        let nrs: BTreeSet<NodeRoleId> = batch.noderoles.iter().map(|n| n.id).collect();
        let node_ok = |id: &NodeId| nodes.contains(id) || data.nodes.contains_key(id);
        let role_ok = |id: &RoleId| roles.contains(id) || data.roles.contains_key(id);
        let dep_ok = |id: &DeploymentId| deps.contains(id) || data.deployments.contains_key(id);
        let nr_ok = |id: &NodeRoleId| nrs.contains(id) || data.noderoles.contains_key(id);
        for nr in &batch.noderoles {
            if !node_ok(&nr.node) || !role_ok(&nr.role) || !dep_ok(&nr.deployment) {
                return Err(bad(format!(
                    "noderole {} refers to a missing node, role or deployment",
                    nr.id
                )));
            }
        }
        for dr in &batch.deployment_roles {
            if !role_ok(&dr.role) || !dep_ok(&dr.deployment) {
                return Err(bad(
                    "deployment role refers to a missing role or deployment".into(),
                ));
            }
        }
        for s in &batch.states {
            if !nr_ok(&s.id) {
                return Err(bad(format!("state update for missing noderole {}", s.id)));
            }
        }
        for e in &batch.edges {
            if !nr_ok(&e.parent) || !nr_ok(&e.child) {
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
        let mut guard = self.inner.lock().expect("MemStore mutex poisoned");
        let (data, history) = &mut *guard;
        MemStore::check(data, &batch)?;
        for r in batch.roles {
            data.roles.insert(r.id, r);
        }
        for d in batch.deployments {
            data.deployments.insert(d.id, d);
        }
        for n in batch.nodes {
            data.nodes.insert(n.id, n);
        }
        for dr in batch.deployment_roles {
            data.deployment_roles.insert((dr.deployment, dr.role), dr);
        }
        for nr in batch.noderoles {
            data.noderoles.insert(nr.id, nr);
        }
        for s in batch.states {
            if let Some(nr) = data.noderoles.get_mut(&s.id) {
                nr.state = s.state;
                nr.run_count = s.run_count;
                nr.cohort = s.cohort;
            }
        }
        data.edges.extend(batch.edges);
        if !batch.deleted_noderoles.is_empty() {
            let gone: BTreeSet<NodeRoleId> = batch.deleted_noderoles.iter().copied().collect();
            data.edges
                .retain(|e| !gone.contains(&e.parent) && !gone.contains(&e.child));
            for id in gone {
                data.noderoles.remove(&id);
            }
        }
        for id in batch.deleted_nodes {
            data.nodes.remove(&id);
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
        for h in batch.history {
            history.entry(h.noderole).or_default().push(h);
        }
        data.revision += 1;
        Ok(data.revision)
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        let guard = self.inner.lock().expect("MemStore mutex poisoned");
        let data = &guard.0;
        Ok(Snapshot {
            revision: data.revision,
            nodes: data.nodes.values().cloned().collect(),
            roles: data.roles.values().cloned().collect(),
            deployments: data.deployments.values().cloned().collect(),
            deployment_roles: data.deployment_roles.values().cloned().collect(),
            noderoles: data.noderoles.values().cloned().collect(),
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
        let guard = self.inner.lock().expect("MemStore mutex poisoned");
        Ok(guard.1.get(&noderole).cloned().unwrap_or_default())
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .lock()
            .expect("MemStore mutex poisoned")
            .0
            .revision)
    }
}
