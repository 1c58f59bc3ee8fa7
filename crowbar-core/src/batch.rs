//! What the cluster hands to a store: batches of changes, and what a store hands back: snapshots.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    Cause, Deployment, DeploymentRole, HistoryLog, Node, NodeId, NodeRole, NodeRoleId,
    NodeRoleState, Role, Timestamp,
};

/// One state change of one noderole, with its cause and time.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The noderole.
    pub noderole: NodeRoleId,
    /// The state before; `None` when the noderole was created.
    pub from: Option<NodeRoleState>,
    /// The state after.
    pub to: NodeRoleState,
    /// Why.
    pub cause: Cause,
    /// When, by the cluster's clock.
    pub at: Timestamp,
}

/// The light-weight change of a noderole: state and counters only, no data.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StateUpdate {
    /// The noderole.
    pub id: NodeRoleId,
    /// Its new state.
    pub state: NodeRoleState,
    /// Its run count.
    pub run_count: u32,
    /// Its cohort.
    pub cohort: u32,
}

/// A parent-child link between two noderoles.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct Edge {
    /// The parent.
    pub parent: NodeRoleId,
    /// The child.
    pub child: NodeRoleId,
}

/// A keyed JSON record in a named table, for data that layers above the core own (networks and
/// address allocations, leases...). Stores keep them without interpreting them.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The table, e.g. `network.allocation`.
    pub table: String,
    /// The key, unique within the table.
    pub key: String,
    /// The value.
    pub value: Value,
}

/// A change to a [`Record`].
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub enum RecordChange {
    /// Insert or replace.
    Put(Record),
    /// Remove, if present.
    Delete {
        /// The table.
        table: String,
        /// The key.
        key: String,
    },
}

/// Everything one or more cluster operations changed, to be persisted whole or not at all.
///
/// A store applies, in this order: roles, deployments, nodes, deployment roles, noderoles,
/// state updates, edges, deletions of noderoles (and their edges), deletions of nodes, records,
/// history.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct Batch {
    /// When set, the store refuses the batch unless its revision is exactly this one (for
    /// several writers sharing one store).
    pub base_revision: Option<u64>,
    /// Nodes created or changed (whole rows).
    pub nodes: Vec<Node>,
    /// Roles created or changed.
    pub roles: Vec<Role>,
    /// Deployments created or changed.
    pub deployments: Vec<Deployment>,
    /// Deployment roles created or changed.
    pub deployment_roles: Vec<DeploymentRole>,
    /// Noderoles created or whose data changed (whole rows).
    pub noderoles: Vec<NodeRole>,
    /// Noderoles whose state, run count or cohort alone changed.
    pub states: Vec<StateUpdate>,
    /// New edges.
    pub edges: Vec<Edge>,
    /// Noderoles deleted, with their edges.
    pub deleted_noderoles: Vec<NodeRoleId>,
    /// Nodes deleted.
    pub deleted_nodes: Vec<NodeId>,
    /// Extension records written or deleted, in order.
    pub records: Vec<RecordChange>,
    /// The history of every state change in the batch, kept compact (24 bytes an entry).
    pub history: HistoryLog,
}

impl Batch {
    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many changes it holds, history entries included.
    pub fn len(&self) -> usize {
        self.nodes.len()
            + self.roles.len()
            + self.deployments.len()
            + self.deployment_roles.len()
            + self.noderoles.len()
            + self.states.len()
            + self.edges.len()
            + self.deleted_noderoles.len()
            + self.deleted_nodes.len()
            + self.records.len()
            + self.history.len()
    }

    /// Appends `other` after this batch's changes (later changes win).
    pub fn extend(&mut self, other: Batch) {
        self.nodes.extend(other.nodes);
        self.roles.extend(other.roles);
        self.deployments.extend(other.deployments);
        self.deployment_roles.extend(other.deployment_roles);
        self.noderoles.extend(other.noderoles);
        self.states.extend(other.states);
        self.edges.extend(other.edges);
        self.deleted_noderoles.extend(other.deleted_noderoles);
        self.deleted_nodes.extend(other.deleted_nodes);
        self.records.extend(other.records);
        self.history.extend(other.history);
    }
}

/// Everything a store holds except the history: enough to rebuild a
/// [`Cluster`](crate::Cluster).
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The store's revision: the number of batches applied.
    pub revision: u64,
    /// Nodes, by id.
    pub nodes: Vec<Node>,
    /// Roles, by id.
    pub roles: Vec<Role>,
    /// Deployments, by id.
    pub deployments: Vec<Deployment>,
    /// Deployment roles.
    pub deployment_roles: Vec<DeploymentRole>,
    /// Noderoles, by id.
    pub noderoles: Vec<NodeRole>,
    /// Edges.
    pub edges: Vec<Edge>,
    /// Extension records, by table and key.
    pub records: Vec<Record>,
}
