//! The in-memory model: every entity, the noderole graph and its indices, the transaction
//! machinery (undo log, pending batch, hook queue) that the operations in `machine` and
//! `binding` are built from.

use std::any::{Any, TypeId};
use std::collections::VecDeque;

/// The model's hash maps: keys are our own ids and names, so a fast hasher is safe enough; the
/// seed is still random per map.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use serde_json::Value;
use smallvec::SmallVec;

use crate::batch::{Batch, Edge, Record, RecordChange, Snapshot, StateUpdate};
use crate::history::{HistoryLog, HistoryMark};
use crate::hooks::{HookError, RoleHooks};
use crate::{
    Cause, Clock, CoreError, Deployment, DeploymentId, DeploymentPhase, DeploymentRole,
    DeploymentState, Node, NodeId, NodeRole, NodeRoleId, NodeRoleState, Role, RoleId,
    SYSTEM_DEPLOYMENT, SystemClock,
};

/// The graph links of one noderole, kept beside it: its parents, then its children, in one
/// list held inline up to three ids (nearly every noderole has one or two parents and one or
/// two children), so that following a link reads this 40-byte entry and no other memory, and
/// building the graph makes no heap allocation per noderole. A hub's long list of children
/// spills to the heap.
#[derive(Clone, Debug, Default)]
pub(crate) struct Links {
    ids: SmallVec<[NodeRoleId; 3]>,
    parents: u32,
}

// As small as `Hot`: keep an eye on it when changing the inline capacity.
const _: () = assert!(std::mem::size_of::<Links>() == 40);

impl Links {
    #[inline]
    pub(crate) fn parents(&self) -> &[NodeRoleId] {
        &self.ids.as_slice()[..self.parents as usize]
    }

    #[inline]
    pub(crate) fn children(&self) -> &[NodeRoleId] {
        &self.ids.as_slice()[self.parents as usize..]
    }

    /// The `i`th child (`i` below `children().len()`).
    #[inline]
    pub(crate) fn child(&self, i: usize) -> NodeRoleId {
        self.ids.as_slice()[self.parents as usize + i]
    }

    fn add_parent(&mut self, parent: NodeRoleId) {
        self.ids.insert(self.parents as usize, parent);
        self.parents += 1;
    }

    fn add_child(&mut self, child: NodeRoleId) {
        self.ids.push(child);
    }

    /// Removes the last link to `parent`; whether there was one.
    fn remove_parent(&mut self, parent: NodeRoleId) -> bool {
        match self.parents().iter().rposition(|p| *p == parent) {
            Some(pos) => {
                self.ids.remove(pos);
                self.parents -= 1;
                true
            }
            None => false,
        }
    }

    /// Removes the last link to `child`; whether there was one.
    fn remove_child(&mut self, child: NodeRoleId) -> bool {
        match self.children().iter().rposition(|c| *c == child) {
            Some(pos) => {
                self.ids.remove(self.parents as usize + pos);
                true
            }
            None => false,
        }
    }
}

/// The facts of a noderole, in a dense table of 40-byte entries: the only place its state, run
/// count and cohort live (its data is in [`Cold`]), so that the state machine, the ripples and
/// the scheduler above touch nothing else. `inactive_parents` and `has_runlog` are derived
/// (from the parents' states and from the runlog), kept by the primitives below and checked by
/// [`Cluster::check_consistency`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hot {
    pub(crate) node: NodeId,
    pub(crate) deployment: DeploymentId,
    pub(crate) role: RoleId,
    pub(crate) run_count: u32,
    pub(crate) cohort: u32,
    /// How many parents are not ACTIVE: the noderole is activatable when this is 0.
    pub(crate) inactive_parents: u32,
    pub(crate) state: NodeRoleState,
    /// Whether the noderole exists (deleted ids keep their slot).
    pub(crate) present: bool,
    /// Whether its runlog (in [`Cold`]) is not empty.
    pub(crate) has_runlog: bool,
    /// Bookkeeping bits: [`DIRTY_STATE`] and [`DIRTY_FULL`] (changed since the last batch:
    /// listed in `Pending::nr_list`), [`LISTED`] (in the change journal). Kept here rather
    /// than in tables of their own, so that a state change touches one entry.
    pub(crate) marks: u8,
}

// Hot entries stay 40 bytes (8 to a 5-line block): keep an eye on it when adding fields.
const _: () = assert!(std::mem::size_of::<Hot>() == 40);

impl Default for Hot {
    fn default() -> Self {
        Hot {
            node: NodeId(0),
            deployment: SYSTEM_DEPLOYMENT,
            role: RoleId(0),
            run_count: 0,
            cohort: 0,
            inactive_parents: 0,
            state: NodeRoleState::Proposed,
            present: false,
            has_runlog: false,
            marks: 0,
        }
    }
}

impl Hot {
    fn of(nr: &NodeRole) -> Hot {
        Hot {
            node: nr.node,
            deployment: nr.deployment,
            role: nr.role,
            run_count: nr.run_count,
            cohort: nr.cohort,
            inactive_parents: 0,
            state: nr.state,
            present: true,
            has_runlog: !nr.runlog.is_empty(),
            marks: 0,
        }
    }

    /// TODO or ERROR under a parent that is not ACTIVE: what [`Cluster::block_children`]
    /// blocks. Counted in [`Cluster::strays`].
    #[inline]
    pub(crate) fn stray(&self) -> bool {
        self.present
            && self.inactive_parents > 0
            && matches!(self.state, NodeRoleState::Todo | NodeRoleState::Error)
    }

    fn brief(&self) -> NodeRoleBrief {
        NodeRoleBrief {
            node: self.node,
            role: self.role,
            deployment: self.deployment,
            state: self.state,
            cohort: self.cohort,
            run_count: self.run_count,
        }
    }
}

/// The data of a noderole, kept apart from its [`Hot`] fields: touched only when data or a
/// runlog is read or written, never by a plain state change.
#[derive(Clone, Debug)]
pub(crate) struct Cold {
    pub(crate) proposed_data: Value,
    pub(crate) committed_data: Option<Value>,
    pub(crate) sysdata: Value,
    pub(crate) wall: Value,
    pub(crate) runlog: String,
}

impl Cold {
    /// What a deleted id's slot keeps: allocates nothing.
    const VACANT: Cold = Cold {
        proposed_data: Value::Null,
        committed_data: None,
        sysdata: Value::Null,
        wall: Value::Null,
        runlog: String::new(),
    };
}

/// A noderole as the cluster holds it: its facts, and references to its data. Cheap to make
/// and to copy; [`NodeRoleRef::to_row`] gives the owned [`NodeRole`] that batches and stores
/// carry.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct NodeRoleRef<'a> {
    /// Its id.
    pub id: NodeRoleId,
    /// The node.
    pub node: NodeId,
    /// The role.
    pub role: RoleId,
    /// The deployment.
    pub deployment: DeploymentId,
    /// Its state.
    pub state: NodeRoleState,
    /// One more than its largest parent cohort; the annealer runs lower cohorts first.
    pub cohort: u32,
    /// How many runs completed.
    pub run_count: u32,
    /// User data, editable while PROPOSED.
    pub proposed_data: &'a Value,
    /// User data as last committed; `None` until the first commit.
    pub committed_data: Option<&'a Value>,
    /// Framework-written data.
    pub sysdata: &'a Value,
    /// What the jig reported back.
    pub wall: &'a Value,
    /// The log of the last run.
    pub runlog: &'a str,
}

impl<'a> NodeRoleRef<'a> {
    #[inline]
    fn of(id: NodeRoleId, h: &Hot, c: &'a Cold) -> NodeRoleRef<'a> {
        NodeRoleRef {
            id,
            node: h.node,
            role: h.role,
            deployment: h.deployment,
            state: h.state,
            cohort: h.cohort,
            run_count: h.run_count,
            proposed_data: &c.proposed_data,
            committed_data: c.committed_data.as_ref(),
            sysdata: &c.sysdata,
            wall: &c.wall,
            runlog: &c.runlog,
        }
    }

    /// The user data in force: proposed while PROPOSED, else committed.
    pub fn data(&self) -> &'a Value {
        crate::entity::data_in_force(self.state, self.proposed_data, self.committed_data)
    }

    /// The owned row, as a batch or a store carries it.
    pub fn to_row(&self) -> NodeRole {
        NodeRole {
            id: self.id,
            node: self.node,
            role: self.role,
            deployment: self.deployment,
            state: self.state,
            cohort: self.cohort,
            run_count: self.run_count,
            proposed_data: self.proposed_data.clone(),
            committed_data: self.committed_data.cloned(),
            sysdata: self.sysdata.clone(),
            wall: self.wall.clone(),
            runlog: self.runlog.to_owned(),
        }
    }
}

/// The often-read facts of a noderole, copied out of a small dense table without touching its
/// data (see [`Cluster::brief`]): what a scheduler reads on every transition.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NodeRoleBrief {
    /// The node.
    pub node: NodeId,
    /// The role.
    pub role: RoleId,
    /// The deployment.
    pub deployment: DeploymentId,
    /// Its state.
    pub state: NodeRoleState,
    /// Its cohort.
    pub cohort: u32,
    /// How many runs completed.
    pub run_count: u32,
}

/// Derived facts about roles, rebuilt whenever a role is created or changed (roles are few):
/// what binding asks for every noderole, answered without string lookups.
#[derive(Clone, Debug, Default)]
pub(crate) struct RoleIndex {
    /// Resolved parent roles, by role id.
    pub(crate) parents: Vec<Vec<RoleId>>,
    /// Required names that do not resolve, transitively, by role id.
    pub(crate) missing: Vec<Vec<String>>,
    /// Roles that cannot share a node with this one, by role id.
    pub(crate) clashes: Vec<Vec<RoleId>>,
    /// Roles providing each name.
    pub(crate) providers: HashMap<String, Vec<RoleId>>,
}

/// Per-node index: its noderoles and how many are in TRANSITION or ERROR.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeIndex {
    pub(crate) noderoles: Vec<NodeRoleId>,
    pub(crate) busy: u32,
    /// The node is alive (a copy of the row's flag, kept by `sync_node`).
    pub(crate) alive: bool,
    /// The node is alive and available (likewise).
    pub(crate) up: bool,
}

/// What changed in the model since the last [`Cluster::take_changes`], for a scheduler that
/// follows the model without rescanning it (see [`Cluster::track_changes`]).
///
/// It names what to look at again, not what happened: an entry may turn out unchanged (an
/// operation that was rolled back still leaves its entries), and reading the model's current
/// state for each entry is always right. The one thing left out is what the follower asks to
/// keep out: the lean starts and successes of [`Cluster::start_run_quietly`] and
/// [`Cluster::finish_run_quietly`], which it accounts for itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Noderoles created, deleted or changed (state, cohort, data), and those whose parents
    /// became all ACTIVE or stopped being so; each once.
    pub noderoles: Vec<NodeRoleId>,
    /// Nodes created, changed or deleted; may repeat.
    pub nodes: Vec<NodeId>,
    /// Deployments created or changed; may repeat.
    pub deployments: Vec<DeploymentId>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.noderoles.is_empty() && self.nodes.is_empty() && self.deployments.is_empty()
    }

    /// Empties the lists, keeping their memory.
    pub fn clear(&mut self) {
        self.noderoles.clear();
        self.nodes.clear();
        self.deployments.clear();
    }
}

/// The change journal behind [`Cluster::take_changes`].
#[derive(Default)]
struct Journal {
    on: bool,
    /// A noderole in `changes.noderoles` has [`LISTED`] in its marks.
    changes: Changes,
}

impl Journal {
    /// Lists noderole `id`, whose entry is `h`, unless it is listed or the journal is off.
    #[inline(always)]
    fn list(&mut self, id: NodeRoleId, h: &mut Hot) {
        if self.on && h.marks & LISTED == 0 {
            h.marks |= LISTED;
            self.changes.noderoles.push(id);
        }
    }
}

/// Whether a noderole in state `s` keeps its node from starting anything else.
#[inline(always)]
fn busy(s: NodeRoleState) -> bool {
    matches!(s, NodeRoleState::Transition | NodeRoleState::Error)
}

/// Whether a noderole in state `s` would be a stray (see `Cluster::strays`) were one of its
/// parents not ACTIVE.
#[inline(always)]
fn straying(s: NodeRoleState) -> bool {
    matches!(s, NodeRoleState::Todo | NodeRoleState::Error)
}

/// In [`Hot::marks`]: the noderole's state or counters changed since the last batch.
const DIRTY_STATE: u8 = 1;
/// In [`Hot::marks`]: its data changed since the last batch (the batch carries the row).
const DIRTY_FULL: u8 = 2;
const DIRTY: u8 = DIRTY_STATE | DIRTY_FULL;
/// In [`Hot::marks`]: it is listed in the change journal.
const LISTED: u8 = 4;

/// Which data slot of a noderole.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot {
    Proposed,
    Sysdata,
    Wall,
}

/// A compensating action registered by a layer above (see [`Cluster::on_rollback`]).
type Compensation = Box<dyn FnOnce(&mut Cluster) + Send>;

/// One step to take back if the operation fails.
enum Undo {
    Custom(Compensation),
    NodeCreated(NodeId),
    Node(Box<Node>),
    RoleCreated(RoleId),
    Role(Box<Role>),
    DeploymentCreated(DeploymentId),
    Deployment(Box<Deployment>),
    DeploymentRoleCreated(DeploymentId, RoleId),
    DeploymentRole(Box<DeploymentRole>),
    NodeRoleCreated(NodeRoleId),
    State(NodeRoleId, NodeRoleState, u32),
    Cohort(NodeRoleId, u32),
    Data(NodeRoleId, Slot, Box<Value>),
    Committed(NodeRoleId, Option<Box<Value>>),
    Runlog(NodeRoleId, Box<str>),
    Edge(Edge),
}

/// Something a hook must hear about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HookEvent {
    Proposed(NodeRoleId),
    State(NodeRoleId, NodeRoleState),
    NodeCreate(NodeId),
    NodeChange(NodeId),
    DeploymentCreate(DeploymentId, RoleId),
}

#[derive(Default)]
struct Pending {
    nodes: Vec<NodeId>,
    roles: Vec<RoleId>,
    deployments: Vec<DeploymentId>,
    deployment_roles: Vec<(DeploymentId, RoleId)>,
    /// The noderoles marked [`DIRTY`] since the last batch.
    nr_list: Vec<NodeRoleId>,
    edges: Vec<Edge>,
    deleted_noderoles: Vec<NodeRoleId>,
    deleted_nodes: Vec<NodeId>,
    records: Vec<RecordChange>,
    history: HistoryLog,
    /// The length of the history list the last batch took.
    last_history_len: usize,
}

#[derive(Clone, Copy)]
struct Mark {
    undo: usize,
    nodes: usize,
    roles: usize,
    deployments: usize,
    deployment_roles: usize,
    noderoles: usize,
    edges: usize,
    records: usize,
    history: HistoryMark,
    events: usize,
}

/// Typed extension state that layers above the core keep inside the cluster (the network
/// registry, for instance), so their hooks can reach it through `&mut Cluster`.
#[derive(Default)]
pub struct Extensions(std::collections::HashMap<TypeId, Box<dyn Any + Send>>);

impl Extensions {
    /// The value of type `T`, if one was inserted.
    pub fn get<T: Any + Send>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The value of type `T`, mutably.
    pub fn get_mut<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.0.get_mut(&TypeId::of::<T>())?.downcast_mut()
    }

    /// Inserts `value`, returning the previous value of that type.
    pub fn insert<T: Any + Send>(&mut self, value: T) -> Option<T> {
        self.0
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|b| b.downcast().ok().map(|b| *b))
    }
}

/// The whole model in memory: nodes, roles, deployments and the noderole graph.
///
/// Every public operation is a transaction: it either succeeds, with its changes (and those of
/// the hooks it fired) appended to the pending batch, or fails with a [`CoreError`] and leaves the
/// cluster exactly as it was. [`Cluster::take_batch`] hands the pending changes to a
/// [`Store`](crate::Store).
///
/// Costs: every lookup is by index or hash; a state change costs O(children) for the
/// activatable counters, an ERROR ripple O(descendants); nothing rescans the graph.
pub struct Cluster {
    pub(crate) nodes: Vec<Option<Node>>,
    pub(crate) node_index: Vec<NodeIndex>,
    node_by_name: HashMap<String, NodeId>,
    node_by_alias: HashMap<String, NodeId>,
    pub(crate) roles: Vec<Option<Role>>,
    role_by_name: HashMap<String, RoleId>,
    pub(crate) deployments: Vec<Option<Deployment>>,
    deployment_by_name: HashMap<String, DeploymentId>,
    deployment_counts: Vec<[u32; 6]>,
    pub(crate) deployment_roles: HashMap<(DeploymentId, RoleId), DeploymentRole>,
    /// The noderoles' data, by id (their facts are in `hot`); a deleted id keeps a vacant
    /// entry (`hot[i].present` says which).
    pub(crate) cold: Vec<Cold>,
    pub(crate) links: Vec<Links>,
    pub(crate) hot: Vec<Hot>,
    pub(crate) by_role_node: HashMap<(RoleId, NodeId), NodeRoleId>,
    pub(crate) by_deployment_role: HashMap<(DeploymentId, RoleId), Vec<NodeRoleId>>,
    pub(crate) role_index: RoleIndex,
    hooks_by_name: HashMap<String, Arc<dyn RoleHooks>>,
    hooks_by_role: Vec<Option<Arc<dyn RoleHooks>>>,
    clock: Arc<dyn Clock>,
    extensions: Extensions,
    depth: u32,
    /// The time of the outermost operation running, read once per operation.
    now: Option<crate::Timestamp>,
    /// Set by [`Cluster::set_time`]: the time stamped on every change until cleared.
    pinned: Option<crate::Timestamp>,
    journal: Journal,
    /// A reusable stack for graph walks.
    pub(crate) scratch: Vec<NodeRoleId>,
    /// How many noderoles are TODO or ERROR with a parent not ACTIVE ([`Hot::stray`]): none in
    /// a graph kept by the ripples, a few after a node's death (which puts noderoles back
    /// without ripple). While there are none, blocking below a noderole that is not ACTIVE
    /// has nothing to find and skips its walk.
    pub(crate) strays: u32,
    undo: Vec<Undo>,
    /// Whether changes go to `undo`: false while [`Cluster::txn_checked`] applies a change that
    /// nothing can refuse any more.
    pub(crate) undo_on: bool,
    events: VecDeque<HookEvent>,
    pending: Pending,
    noderole_count: usize,
    loaded_records: Vec<Record>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.node_by_name.len())
            .field("roles", &self.role_by_name.len())
            .field("deployments", &self.deployment_by_name.len())
            .field("noderoles", &self.noderole_count)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// An empty cluster holding only the committed system deployment, with the system clock.
    pub fn new() -> Cluster {
        Cluster::with_clock(Arc::new(SystemClock))
    }

    /// An empty cluster with the given clock.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Cluster {
        let mut cluster = Cluster::empty(clock);
        let system = Deployment {
            id: SYSTEM_DEPLOYMENT,
            name: "system".to_owned(),
            description: "The system deployment".to_owned(),
            parent: None,
            system: true,
            phase: DeploymentPhase::Committed,
        };
        cluster.insert_deployment_raw(system);
        cluster.pending.deployments.push(SYSTEM_DEPLOYMENT);
        cluster
    }

    fn empty(clock: Arc<dyn Clock>) -> Cluster {
        Cluster {
            nodes: vec![None],
            node_index: vec![NodeIndex::default()],
            node_by_name: HashMap::default(),
            node_by_alias: HashMap::default(),
            roles: vec![None],
            role_by_name: HashMap::default(),
            deployments: vec![None],
            deployment_by_name: HashMap::default(),
            deployment_counts: vec![[0; 6]],
            deployment_roles: HashMap::default(),
            cold: vec![Cold::VACANT],
            links: vec![Links::default()],
            hot: vec![Hot::default()],
            by_role_node: HashMap::default(),
            by_deployment_role: HashMap::default(),
            role_index: RoleIndex::default(),
            hooks_by_name: HashMap::default(),
            hooks_by_role: vec![None],
            clock,
            extensions: Extensions::default(),
            depth: 0,
            now: None,
            pinned: None,
            journal: Journal::default(),
            scratch: Vec::new(),
            strays: 0,
            undo: Vec::new(),
            undo_on: true,
            events: VecDeque::new(),
            pending: Pending::default(),
            noderole_count: 0,
            loaded_records: Vec::new(),
        }
    }

    /// Rebuilds a cluster from what a store loaded. Nothing is pending afterwards.
    ///
    /// The snapshot is checked first, so that a damaged or hand-edited store gives an error
    /// rather than a broken model: every id is named once, every noderole's node, role and
    /// deployment and every deployment role's role and deployment are in the snapshot, and the
    /// tables indexed by id (sized by the largest id of each kind) can be allocated
    /// ([`CoreError::InconsistentSnapshot`]); the system deployment must be there
    /// ([`CoreError::Unknown`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use crowbar_core::{Cluster, CoreError, NodeId, NodeSpec, RoleSpec, Snapshot, SystemClock};
    ///
    /// let mut c = Cluster::new();
    /// let role = c.create_role(RoleSpec::new("base"))?;
    /// let node = c.create_node(NodeSpec::new("n1.example.com"))?;
    /// c.bind(role, node, None)?;
    /// let batch = c.take_batch();
    /// let snapshot = Snapshot {
    ///     nodes: batch.nodes,
    ///     roles: batch.roles,
    ///     deployments: batch.deployments,
    ///     deployment_roles: batch.deployment_roles,
    ///     noderoles: batch.noderoles,
    ///     edges: batch.edges,
    ///     ..Snapshot::default()
    /// };
    /// let rebuilt = Cluster::from_snapshot(snapshot.clone(), Arc::new(SystemClock))?;
    /// assert_eq!(rebuilt.noderole_count(), 1);
    ///
    /// // A noderole on a node the store does not hold is refused, and says which.
    /// let mut damaged = snapshot;
    /// damaged.noderoles[0].node = NodeId(77);
    /// let err = Cluster::from_snapshot(damaged, Arc::new(SystemClock)).unwrap_err();
    /// assert!(matches!(err, CoreError::InconsistentSnapshot { .. }));
    /// assert!(err.to_string().contains("node#77"), "{err}");
    /// # Ok::<(), CoreError>(())
    /// ```
    pub fn from_snapshot(snapshot: Snapshot, clock: Arc<dyn Clock>) -> Result<Cluster, CoreError> {
        let Snapshot {
            mut deployments,
            mut roles,
            mut nodes,
            deployment_roles,
            mut noderoles,
            edges,
            records,
            ..
        } = snapshot;
        deployments.sort_by_key(|d| d.id);
        roles.sort_by_key(|r| r.id);
        nodes.sort_by_key(|n| n.id);
        noderoles.sort_by_key(|n| n.id);
        // Sorted by id, each list answers whether it holds an id by binary search.
        distinct_ids(&deployments, |d| d.id.get(), "deployment")?;
        distinct_ids(&roles, |r| r.id.get(), "role")?;
        distinct_ids(&nodes, |n| n.id.get(), "node")?;
        distinct_ids(&noderoles, |n| n.id.get(), "noderole")?;
        let has_deployment =
            |id: DeploymentId| deployments.binary_search_by_key(&id, |d| d.id).is_ok();
        let has_role = |id: RoleId| roles.binary_search_by_key(&id, |r| r.id).is_ok();
        let has_node = |id: NodeId| nodes.binary_search_by_key(&id, |n| n.id).is_ok();
        let missing = |what: String| CoreError::InconsistentSnapshot {
            message: format!("{what}, which the snapshot does not hold"),
        };
        for nr in &noderoles {
            if !has_node(nr.node) {
                return Err(missing(format!("{} is on {}", nr.id, nr.node)));
            }
            if !has_role(nr.role) {
                return Err(missing(format!("{} binds {}", nr.id, nr.role)));
            }
            if !has_deployment(nr.deployment) {
                return Err(missing(format!("{} is in {}", nr.id, nr.deployment)));
            }
        }
        for dr in &deployment_roles {
            if !has_role(dr.role) || !has_deployment(dr.deployment) {
                return Err(missing(format!(
                    "a deployment role names {} in {}",
                    dr.role, dr.deployment
                )));
            }
        }
        let mut c = Cluster::empty(clock);
        // The tables are dense, indexed by id: sized once, up front, so that an id too large
        // to index them is an error here rather than an allocation failure that aborts.
        if let Some(d) = deployments.last() {
            reserve_ids(&mut c.deployments, d.id.get(), "deployment")?;
            reserve_ids(&mut c.deployment_counts, d.id.get(), "deployment")?;
        }
        if let Some(r) = roles.last() {
            reserve_ids(&mut c.roles, r.id.get(), "role")?;
            reserve_ids(&mut c.hooks_by_role, r.id.get(), "role")?;
        }
        if let Some(n) = nodes.last() {
            reserve_ids(&mut c.nodes, n.id.get(), "node")?;
            reserve_ids(&mut c.node_index, n.id.get(), "node")?;
        }
        if let Some(nr) = noderoles.last() {
            reserve_ids(&mut c.hot, nr.id.get(), "noderole")?;
            reserve_ids(&mut c.links, nr.id.get(), "noderole")?;
            reserve_ids(&mut c.cold, nr.id.get(), "noderole")?;
        }
        for d in deployments {
            c.insert_deployment_raw(d);
        }
        if c.deployment(SYSTEM_DEPLOYMENT).is_none() {
            return Err(CoreError::Unknown {
                what: "deployment",
                name: "system".to_owned(),
            });
        }
        for r in roles {
            c.insert_role_raw(r);
        }
        for n in nodes {
            c.insert_node_raw(n);
        }
        for dr in deployment_roles {
            c.deployment_roles.insert((dr.deployment, dr.role), dr);
        }
        for nr in noderoles {
            c.insert_noderole_raw(nr);
        }
        for e in edges {
            if c.noderole(e.parent).is_some() && c.noderole(e.child).is_some() {
                c.link_raw(e.parent, e.child);
            }
        }
        c.refresh_role_index();
        c.loaded_records = records;
        c.pending = Pending::default();
        Ok(c)
    }
}

/// Refuses `rows` (sorted by id) if an id is named twice.
fn distinct_ids<T>(rows: &[T], id: impl Fn(&T) -> u64, what: &str) -> Result<(), CoreError> {
    match rows.windows(2).find(|w| id(&w[0]) == id(&w[1])) {
        Some(w) => Err(CoreError::InconsistentSnapshot {
            message: format!("{what} id {} is held twice", id(&w[0])),
        }),
        None => Ok(()),
    }
}

/// Makes room in a table indexed by id for ids up to `max`.
fn reserve_ids<T>(table: &mut Vec<T>, max: u64, what: &str) -> Result<(), CoreError> {
    let len = usize::try_from(max).ok().and_then(|m| m.checked_add(1));
    let room = len.map(|l| l.saturating_sub(table.len()));
    match room.map(|r| table.try_reserve_exact(r)) {
        Some(Ok(())) => Ok(()),
        _ => Err(CoreError::InconsistentSnapshot {
            message: format!(
                "{what} id {max} is too large: the model's tables are indexed by id, and this \
                 one cannot be allocated"
            ),
        }),
    }
}

// Queries.
impl Cluster {
    /// The node with this id.
    #[inline]
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.index())?.as_ref()
    }

    /// The node with this FQDN (any case) or alias.
    pub fn find_node(&self, name: &str) -> Option<NodeId> {
        let lower = name.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower);
        self.node_by_name
            .get(lower)
            .or_else(|| self.node_by_alias.get(lower))
            .copied()
    }

    /// Every node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    /// The role with this id.
    #[inline]
    pub fn role(&self, id: RoleId) -> Option<&Role> {
        self.roles.get(id.index())?.as_ref()
    }

    /// The role with this name.
    pub fn find_role(&self, name: &str) -> Option<RoleId> {
        self.role_by_name.get(name).copied()
    }

    /// Every role, by id.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.iter().flatten()
    }

    /// The deployment with this id.
    #[inline]
    pub fn deployment(&self, id: DeploymentId) -> Option<&Deployment> {
        self.deployments.get(id.index())?.as_ref()
    }

    /// The deployment with this name.
    pub fn find_deployment(&self, name: &str) -> Option<DeploymentId> {
        self.deployment_by_name.get(name).copied()
    }

    /// Every deployment, by id.
    pub fn deployments(&self) -> impl Iterator<Item = &Deployment> {
        self.deployments.iter().flatten()
    }

    /// The role's data in a deployment, if the role has been added there.
    pub fn deployment_role(
        &self,
        deployment: DeploymentId,
        role: RoleId,
    ) -> Option<&DeploymentRole> {
        self.deployment_roles.get(&(deployment, role))
    }

    /// The noderole with this id.
    #[inline]
    pub fn noderole(&self, id: NodeRoleId) -> Option<NodeRoleRef<'_>> {
        let h = self.hot.get(id.index())?;
        h.present.then(|| self.view(id, h))
    }

    /// Every noderole, by id.
    pub fn noderoles(&self) -> impl Iterator<Item = NodeRoleRef<'_>> {
        self.hot
            .iter()
            .enumerate()
            .filter(|(_, h)| h.present)
            .map(|(i, h)| self.view(NodeRoleId(i as u64), h))
    }

    #[inline]
    fn view(&self, id: NodeRoleId, h: &Hot) -> NodeRoleRef<'_> {
        NodeRoleRef::of(id, h, &self.cold[id.index()])
    }

    /// How many noderoles exist.
    pub fn noderole_count(&self) -> usize {
        self.noderole_count
    }

    /// One more than the largest noderole id ever used: a bound for dense per-noderole tables.
    #[inline]
    pub fn noderole_id_bound(&self) -> usize {
        self.hot.len()
    }

    /// One more than the largest node id ever used.
    #[inline]
    pub fn node_id_bound(&self) -> usize {
        self.nodes.len()
    }

    /// The noderole binding `role` to `node`, in any deployment.
    pub fn noderole_for(&self, role: RoleId, node: NodeId) -> Option<NodeRoleId> {
        self.by_role_node.get(&(role, node)).copied()
    }

    /// The noderoles of `role` in `deployment`, in creation order.
    pub fn noderoles_of(&self, deployment: DeploymentId, role: RoleId) -> &[NodeRoleId] {
        self.by_deployment_role
            .get(&(deployment, role))
            .map_or(&[], Vec::as_slice)
    }

    /// The noderoles on a node, in creation order.
    pub fn noderoles_on(&self, node: NodeId) -> &[NodeRoleId] {
        self.node_index
            .get(node.index())
            .map_or(&[], |i| i.noderoles.as_slice())
    }

    /// The direct parents of a noderole.
    #[inline]
    pub fn parents(&self, id: NodeRoleId) -> &[NodeRoleId] {
        self.links.get(id.index()).map_or(&[], Links::parents)
    }

    /// The direct children of a noderole.
    #[inline]
    pub fn children(&self, id: NodeRoleId) -> &[NodeRoleId] {
        self.links.get(id.index()).map_or(&[], Links::children)
    }

    /// Whether every direct parent is ACTIVE (or there are none). O(1).
    #[inline]
    pub fn is_activatable(&self, id: NodeRoleId) -> bool {
        self.hot
            .get(id.index())
            .is_some_and(|h| h.present && h.inactive_parents == 0)
    }

    /// The often-read facts of a noderole (state, node, role, deployment, cohort, run count),
    /// from a dense table of 40 bytes per noderole, without touching its data. O(1).
    #[inline]
    pub fn brief(&self, id: NodeRoleId) -> Option<NodeRoleBrief> {
        let h = self.hot.get(id.index())?;
        h.present.then(|| h.brief())
    }

    /// Whether the node has a noderole in TRANSITION or ERROR, which stops the annealer from
    /// starting anything else there. O(1).
    #[inline]
    pub fn node_is_busy(&self, node: NodeId) -> bool {
        self.node_index
            .get(node.index())
            .is_some_and(|i| i.busy > 0)
    }

    /// Whether a run may start on the node now: alive, available, and nothing in TRANSITION or
    /// ERROR there. O(1), from a small per-node index entry rather than the node's row.
    #[inline]
    pub fn node_can_start(&self, node: NodeId) -> bool {
        self.node_index
            .get(node.index())
            .is_some_and(|i| i.up && i.busy == 0)
    }

    /// Crowbar's runnable predicate: TODO, in a committed deployment, on an alive and available
    /// node that has no noderole in TRANSITION or ERROR; and, beyond Crowbar, every parent
    /// ACTIVE (a parent on a node that died is deactivated without ripple, so its TODO children
    /// must wait for it). O(1).
    #[inline]
    pub fn is_runnable(&self, id: NodeRoleId) -> bool {
        let Some(h) = self.hot.get(id.index()).filter(|h| h.present) else {
            return false;
        };
        h.state == NodeRoleState::Todo
            && h.inactive_parents == 0
            && self.deployment_committed(h.deployment)
            && self.node_can_start(h.node)
    }

    #[inline]
    pub(crate) fn deployment_committed(&self, id: DeploymentId) -> bool {
        self.deployment(id)
            .is_some_and(|d| d.phase == DeploymentPhase::Committed)
    }

    /// How many noderoles of a deployment are in `state`. O(1).
    #[inline]
    pub fn count_in_state(&self, deployment: DeploymentId, state: NodeRoleState) -> u32 {
        self.deployment_counts
            .get(deployment.index())
            .map_or(0, |c| c[state.slot()])
    }

    /// The derived deployment state: PROPOSED while proposed; else ACTIVE if every noderole is
    /// ACTIVE (or there are none); else ERROR if any is in ERROR; else COMMITTED.
    pub fn deployment_state(&self, id: DeploymentId) -> Option<DeploymentState> {
        let d = self.deployment(id)?;
        if d.phase == DeploymentPhase::Proposed {
            return Some(DeploymentState::Proposed);
        }
        let counts = self.deployment_counts[id.index()];
        let total: u32 = counts.iter().sum();
        Some(if counts[NodeRoleState::Active.slot()] == total {
            DeploymentState::Active
        } else if counts[NodeRoleState::Error.slot()] > 0 {
            DeploymentState::Error
        } else {
            DeploymentState::Committed
        })
    }

    /// The derived node state: the state of its first noderole in TRANSITION, ERROR or PROPOSED;
    /// else TODO if any is BLOCKED or TODO; else ACTIVE.
    pub fn node_state(&self, id: NodeId) -> Option<NodeRoleState> {
        self.node(id)?;
        let states = || {
            self.noderoles_on(id)
                .iter()
                .filter_map(|nr| self.noderole(*nr).map(|n| n.state))
        };
        if let Some(s) = states().find(|s| {
            matches!(
                s,
                NodeRoleState::Transition | NodeRoleState::Error | NodeRoleState::Proposed
            )
        }) {
            return Some(s);
        }
        if states().any(|s| matches!(s, NodeRoleState::Blocked | NodeRoleState::Todo)) {
            return Some(NodeRoleState::Todo);
        }
        Some(NodeRoleState::Active)
    }

    /// A short human label, `role@alias`.
    pub fn label(&self, id: NodeRoleId) -> String {
        match self.noderole(id) {
            Some(nr) => format!(
                "{}@{}",
                self.role(nr.role).map_or("?", |r| r.name.as_str()),
                self.node(nr.node).map_or("?", |n| n.alias.as_str())
            ),
            None => id.to_string(),
        }
    }

    /// The clock the cluster stamps its history with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Extension state of the layers above (networks...).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Extension state, mutably.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The extension records the snapshot held, for layers that rebuild their state from them.
    pub fn loaded_records(&self) -> &[Record] {
        &self.loaded_records
    }

    /// The extension records the snapshot held, handed over once to whoever rebuilds extension
    /// state from them.
    pub fn take_loaded_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.loaded_records)
    }
}

// Hooks, batches and transactions.
impl Cluster {
    /// Registers the hooks of the role named `role` (the role may be created later). Replaces
    /// hooks registered before under that name.
    pub fn register_hooks(&mut self, role: &str, hooks: Arc<dyn RoleHooks>) {
        self.hooks_by_name.insert(role.to_owned(), hooks.clone());
        if let Some(id) = self.find_role(role) {
            self.hooks_by_role[id.index()] = Some(hooks);
        }
    }

    /// Takes the changes made since the last call, to hand to a store.
    pub fn take_batch(&mut self) -> Batch {
        let p = &mut self.pending;
        let mut batch = Batch {
            base_revision: None,
            nodes: Vec::with_capacity(p.nodes.len()),
            ..Batch::default()
        };
        fn unique<T: Ord>(mut v: Vec<T>) -> Vec<T> {
            v.sort();
            v.dedup();
            v
        }
        for id in unique(std::mem::take(&mut p.nodes)) {
            if let Some(Some(n)) = self.nodes.get(id.index()) {
                batch.nodes.push(n.clone());
            }
        }
        for id in unique(std::mem::take(&mut p.roles)) {
            if let Some(Some(r)) = self.roles.get(id.index()) {
                batch.roles.push(r.clone());
            }
        }
        for id in unique(std::mem::take(&mut p.deployments)) {
            if let Some(Some(d)) = self.deployments.get(id.index()) {
                batch.deployments.push(d.clone());
            }
        }
        for key in unique(std::mem::take(&mut p.deployment_roles)) {
            if let Some(dr) = self.deployment_roles.get(&key) {
                batch.deployment_roles.push(dr.clone());
            }
        }
        // Waves of changes are alike: size this batch's and the next one's lists from this
        // one, instead of growing them from nothing by doubling every time.
        batch.states.reserve(p.nr_list.len());
        for id in p.nr_list.drain(..) {
            let Some(h) = self.hot.get_mut(id.index()) else {
                continue;
            };
            let flags = h.marks & DIRTY;
            h.marks &= !DIRTY;
            if !h.present {
                continue;
            }
            let h = &*h;
            if flags & DIRTY_FULL != 0 {
                batch
                    .noderoles
                    .push(NodeRoleRef::of(id, h, &self.cold[id.index()]).to_row());
            } else if flags & DIRTY_STATE != 0 {
                batch.states.push(StateUpdate {
                    id,
                    state: h.state,
                    run_count: h.run_count,
                    cohort: h.cohort,
                });
            }
        }
        batch.edges = std::mem::take(&mut p.edges);
        batch.deleted_noderoles = std::mem::take(&mut p.deleted_noderoles);
        batch.deleted_nodes = std::mem::take(&mut p.deleted_nodes);
        batch.records = std::mem::take(&mut p.records);
        // Waves alternate between starts and finishes (a finish also unblocks children):
        // room for the larger of the last two, so that neither kind grows its list.
        let len = p.history.len();
        let next = HistoryLog::with_capacity(len.max(p.last_history_len));
        p.last_history_len = len;
        batch.history = std::mem::replace(&mut p.history, next);
        batch
    }

    /// Starts (or stops) keeping the change journal that [`Cluster::take_changes`] hands out.
    /// Off by default, so that a cluster nobody follows pays nothing for it; turning it on
    /// starts from an empty journal.
    pub fn track_changes(&mut self, on: bool) {
        self.journal.on = on;
        self.take_changes(&mut Changes::default());
    }

    /// Whether the change journal has entries.
    #[inline]
    pub fn has_changes(&self) -> bool {
        !self.journal.changes.is_empty()
    }

    /// Hands out what changed since the last call (see [`Changes`]), into `into`, whose
    /// previous content is dropped and whose memory is reused: O(entries), no allocation once
    /// warm. Empty unless [`Cluster::track_changes`] is on.
    pub fn take_changes(&mut self, into: &mut Changes) {
        into.clear();
        std::mem::swap(into, &mut self.journal.changes);
        for id in &into.noderoles {
            if let Some(h) = self.hot.get_mut(id.index()) {
                h.marks &= !LISTED;
            }
        }
    }

    #[inline(always)]
    fn journal_noderole(&mut self, id: NodeRoleId) {
        if self.journal.on {
            self.journal.list(id, &mut self.hot[id.index()]);
        }
    }

    #[inline]
    fn journal_node(&mut self, id: NodeId) {
        if self.journal.on {
            self.journal.changes.nodes.push(id);
        }
    }

    #[inline]
    fn journal_deployment(&mut self, id: DeploymentId) {
        if self.journal.on {
            self.journal.changes.deployments.push(id);
        }
    }

    /// Recomputes every derived index from the source facts (parents not ACTIVE, whether a
    /// runlog is set, node busy counts and flag copies, per-deployment state counts, the count
    /// of strays) and says which one disagrees: O(graph), for tests and debugging.
    pub fn check_consistency(&self) -> Result<(), String> {
        let mut busy = vec![0u32; self.node_index.len()];
        let mut counts = vec![[0u32; 6]; self.deployment_counts.len()];
        if (self.hot.len(), self.links.len()) != (self.cold.len(), self.cold.len()) {
            return Err("the noderole tables differ in length".to_owned());
        }
        let mut strays = 0;
        for nr in self.noderoles() {
            let (l, h) = (&self.links[nr.id.index()], self.hot[nr.id.index()]);
            strays += u32::from(h.stray());
            if h.has_runlog == nr.runlog.is_empty() {
                return Err(format!("{}: has_runlog {}", nr.id, h.has_runlog));
            }
            let inactive = l
                .parents()
                .iter()
                .filter(|p| self.noderole(**p).map(|p| p.state) != Some(NodeRoleState::Active))
                .count() as u32;
            if inactive != h.inactive_parents {
                return Err(format!(
                    "{}: {inactive} parents not ACTIVE, counter says {}",
                    nr.id, h.inactive_parents
                ));
            }
            if matches!(nr.state, NodeRoleState::Transition | NodeRoleState::Error) {
                busy[nr.node.index()] += 1;
            }
            counts[nr.deployment.index()][nr.state.slot()] += 1;
        }
        for (i, idx) in self.node_index.iter().enumerate() {
            if idx.busy != busy[i] {
                return Err(format!("node {i}: busy {}, counted {}", idx.busy, busy[i]));
            }
            let flags = self.nodes[i]
                .as_ref()
                .map_or((false, false), |n| (n.alive, n.alive && n.available));
            if (idx.alive, idx.up) != flags {
                return Err(format!(
                    "node {i}: (alive, alive and available) {flags:?}, index says {:?}",
                    (idx.alive, idx.up)
                ));
            }
        }
        if counts != self.deployment_counts {
            return Err("per-deployment state counts disagree with the rows".to_owned());
        }
        if strays != self.strays {
            return Err(format!(
                "{strays} noderoles TODO or ERROR under a parent not ACTIVE, counter says {}",
                self.strays
            ));
        }
        Ok(())
    }

    /// Stamps every change of the following operations with `at` instead of reading the
    /// clock, until called with `None`: for a caller that already knows when a whole wave of
    /// changes happens (the annealer reads its clock once per wave, not once per transition).
    pub fn set_time(&mut self, at: Option<crate::Timestamp>) {
        self.pinned = at;
    }

    /// Whether changes are waiting for [`Cluster::take_batch`].
    #[inline]
    pub fn has_pending(&self) -> bool {
        let p = &self.pending;
        !(p.nodes.is_empty()
            && p.roles.is_empty()
            && p.deployments.is_empty()
            && p.deployment_roles.is_empty()
            && p.nr_list.is_empty()
            && p.edges.is_empty()
            && p.deleted_noderoles.is_empty()
            && p.deleted_nodes.is_empty()
            && p.records.is_empty()
            && p.history.is_empty())
    }

    /// Registers what to do if the operation now running is refused and rolled back: layers
    /// above call this after changing their own state (in [`Extensions`]) from a hook, so that
    /// state rolls back with the model. Outside an operation it does nothing.
    pub fn on_rollback(&mut self, compensate: impl FnOnce(&mut Cluster) + Send + 'static) {
        if self.depth > 0 {
            self.log_undo(|| Undo::Custom(Box::new(compensate)));
        }
    }

    /// Writes an extension record in the pending batch.
    pub fn put_record(&mut self, table: &str, key: &str, value: Value) {
        self.pending.records.push(RecordChange::Put(Record {
            table: table.to_owned(),
            key: key.to_owned(),
            value,
        }));
    }

    /// Deletes an extension record in the pending batch.
    pub fn delete_record(&mut self, table: &str, key: &str) {
        self.pending.records.push(RecordChange::Delete {
            table: table.to_owned(),
            key: key.to_owned(),
        });
    }

    fn mark(&self) -> Mark {
        Mark {
            undo: self.undo.len(),
            nodes: self.pending.nodes.len(),
            roles: self.pending.roles.len(),
            deployments: self.pending.deployments.len(),
            deployment_roles: self.pending.deployment_roles.len(),
            noderoles: self.pending.nr_list.len(),
            edges: self.pending.edges.len(),
            records: self.pending.records.len(),
            history: self.pending.history.mark(),
            events: self.events.len(),
        }
    }

    /// Runs `f` as a transaction: on error everything it did is undone. At the outermost level,
    /// queued hooks run before the transaction ends, and can still abort it.
    pub(crate) fn txn<T>(
        &mut self,
        f: impl FnOnce(&mut Cluster) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        self.transaction(f)
    }

    /// Runs `f` as one operation: if it returns an error (or a hook it caused refuses), every
    /// change it made is undone — the model, the pending batch, and what layers above put in
    /// [`Extensions`] and registered with [`Cluster::on_rollback`]. Operations nest; hooks run
    /// when the outermost one ends.
    ///
    /// ```
    /// use crowbar_core::{Cluster, CoreError, NodeSpec};
    ///
    /// let mut c = Cluster::new();
    /// c.take_batch(); // the system deployment
    /// let r: Result<(), CoreError> = c.transaction(|c| {
    ///     c.create_node(NodeSpec::new("a.cr0wbar.com"))?;
    ///     c.create_node(NodeSpec::new("a.cr0wbar.com"))?; // a duplicate: refused
    ///     Ok(())
    /// });
    /// assert!(matches!(r, Err(CoreError::Duplicate { .. })));
    /// assert_eq!(c.nodes().count(), 0); // the first creation was undone too
    /// assert!(!c.has_pending());
    /// ```
    pub fn transaction<T, E: From<CoreError>>(
        &mut self,
        f: impl FnOnce(&mut Cluster) -> Result<T, E>,
    ) -> Result<T, E> {
        let mark = self.mark();
        self.depth += 1;
        let mut result = f(self);
        if result.is_ok()
            && self.depth == 1
            && let Err(e) = self.drain_hooks()
        {
            result = Err(e.into());
        }
        self.depth -= 1;
        if self.depth == 0 {
            self.now = None;
        }
        match result {
            Ok(v) => {
                if self.depth == 0 {
                    self.undo.clear();
                }
                Ok(v)
            }
            Err(e) => {
                self.rollback(mark);
                Err(e)
            }
        }
    }

    /// Runs `check`, which may refuse and changes nothing, then `apply`, which cannot fail:
    /// as [`Cluster::txn`] with `check` then `apply` in it. When this is the outermost
    /// operation and no hook is registered, nothing can refuse the operation once `check`
    /// passed (hooks are what could), so `apply` skips the undo log: the annealer's starts and
    /// finishes, the hot path, write no undo step they would only clear.
    pub(crate) fn txn_checked<V>(
        &mut self,
        check: impl FnOnce(&Cluster) -> Result<V, CoreError>,
        apply: impl FnOnce(&mut Cluster, V),
    ) -> Result<(), CoreError> {
        // Not through `txn` when it may be lean: its savepoint (ten list lengths, for a
        // rollback that cannot happen here) cost 3 % of an anneal.
        if !self.begin_lean() {
            return self.txn(|c| {
                let v = check(c)?;
                apply(c, v);
                Ok(())
            });
        }
        let result = check(self).map(|v| apply(self, v));
        self.end_lean();
        result
    }

    /// Records how to undo a change, while the operation running can still be refused.
    #[inline]
    fn log_undo(&mut self, step: impl FnOnce() -> Undo) {
        if self.undo_on {
            self.undo.push(step());
        }
    }

    fn rollback(&mut self, mark: Mark) {
        let mut roles_changed = false;
        while self.undo.len() > mark.undo {
            let step = self.undo.pop().expect("length checked");
            roles_changed |= matches!(step, Undo::RoleCreated(_) | Undo::Role(_));
            self.apply_undo(step);
        }
        if roles_changed {
            self.refresh_role_index();
        }
        let p = &mut self.pending;
        p.nodes.truncate(mark.nodes);
        p.roles.truncate(mark.roles);
        p.deployments.truncate(mark.deployments);
        p.deployment_roles.truncate(mark.deployment_roles);
        for id in p.nr_list.drain(mark.noderoles..) {
            if let Some(h) = self.hot.get_mut(id.index()) {
                h.marks &= !DIRTY;
            }
        }
        self.pending.edges.truncate(mark.edges);
        self.pending.records.truncate(mark.records);
        self.pending.history.truncate_to(mark.history);
        if self.depth == 0 {
            self.events.clear();
        } else {
            self.events.truncate(mark.events);
        }
    }

    fn apply_undo(&mut self, step: Undo) {
        match step {
            Undo::NodeCreated(id) => {
                self.journal_node(id);
                if let Some(n) = self.nodes[id.index()].take() {
                    self.node_by_name.remove(n.name.as_str());
                    self.node_by_alias.remove(&n.alias);
                }
                self.sync_node(id.index());
                if id.index() + 1 == self.nodes.len() {
                    self.nodes.pop();
                    self.node_index.pop();
                }
            }
            Undo::Node(old) => {
                let i = old.id.index();
                self.journal_node(old.id);
                self.nodes[i] = Some(*old);
                self.sync_node(i);
            }
            Undo::RoleCreated(id) => {
                if let Some(r) = self.roles[id.index()].take() {
                    self.role_by_name.remove(&r.name);
                }
                if id.index() + 1 == self.roles.len() {
                    self.roles.pop();
                    self.hooks_by_role.pop();
                }
            }
            Undo::Role(old) => {
                let i = old.id.index();
                self.roles[i] = Some(*old);
            }
            Undo::DeploymentCreated(id) => {
                if let Some(d) = self.deployments[id.index()].take() {
                    self.deployment_by_name.remove(&d.name);
                }
                if id.index() + 1 == self.deployments.len() {
                    self.deployments.pop();
                    self.deployment_counts.pop();
                }
            }
            Undo::Deployment(old) => {
                let i = old.id.index();
                self.journal_deployment(old.id);
                self.deployments[i] = Some(*old);
            }
            Undo::DeploymentRoleCreated(d, r) => {
                self.deployment_roles.remove(&(d, r));
            }
            Undo::DeploymentRole(old) => {
                self.deployment_roles
                    .insert((old.deployment, old.role), *old);
            }
            Undo::NodeRoleCreated(id) => self.remove_noderole_raw(id, false),
            Undo::State(id, state, run_count) => {
                self.journal_noderole(id);
                self.set_state_raw(id, state);
                self.hot[id.index()].run_count = run_count;
            }
            Undo::Cohort(id, cohort) => {
                self.journal_noderole(id);
                self.hot[id.index()].cohort = cohort;
            }
            Undo::Data(id, slot, value) => *self.slot_mut(id, slot) = *value,
            Undo::Committed(id, value) => self.nr_mut(id).committed_data = value.map(|v| *v),
            Undo::Runlog(id, value) => {
                self.hot[id.index()].has_runlog = !value.is_empty();
                self.nr_mut(id).runlog = value.into_string();
            }
            Undo::Edge(e) => self.unlink_raw(e.parent, e.child),
            Undo::Custom(f) => f(self),
        }
    }

    #[inline]
    fn drain_hooks(&mut self) -> Result<(), CoreError> {
        if self.events.is_empty() {
            return Ok(());
        }
        self.drain_hooks_slow()
    }

    fn drain_hooks_slow(&mut self) -> Result<(), CoreError> {
        while let Some(event) = self.events.pop_front() {
            self.dispatch(event)?;
        }
        Ok(())
    }

    fn dispatch(&mut self, event: HookEvent) -> Result<(), CoreError> {
        let hook_err =
            |c: &Cluster, role: RoleId, hook: &'static str, e: HookError| CoreError::Hook {
                role: c.role(role).map_or_else(String::new, |r| r.name.clone()),
                hook,
                message: e.0,
            };
        match event {
            HookEvent::Proposed(nr) | HookEvent::State(nr, _) => {
                let Some(role) = self.noderole(nr).map(|n| n.role) else {
                    return Ok(());
                };
                let Some(hooks) = self.hooks_by_role[role.index()].clone() else {
                    return Ok(());
                };
                let (name, result) = match event {
                    HookEvent::Proposed(_) => ("on_proposed", hooks.on_proposed(self, nr)),
                    HookEvent::State(_, state) => match state {
                        NodeRoleState::Todo => ("on_todo", hooks.on_todo(self, nr)),
                        NodeRoleState::Transition => {
                            ("on_transition", hooks.on_transition(self, nr))
                        }
                        NodeRoleState::Active => ("on_active", hooks.on_active(self, nr)),
                        NodeRoleState::Error => ("on_error", hooks.on_error(self, nr)),
                        NodeRoleState::Blocked => ("on_blocked", hooks.on_blocked(self, nr)),
                        NodeRoleState::Proposed => ("on_proposed", hooks.on_proposed(self, nr)),
                    },
                    _ => unreachable!("matched above"),
                };
                result.map_err(|e| hook_err(self, role, name, e))
            }
            HookEvent::NodeCreate(node) | HookEvent::NodeChange(node) => {
                for (role, hooks) in self.fan_out(false) {
                    let (name, result) = match event {
                        HookEvent::NodeCreate(_) => {
                            ("on_node_create", hooks.on_node_create(self, node))
                        }
                        _ => ("on_node_change", hooks.on_node_change(self, node)),
                    };
                    result.map_err(|e| hook_err(self, role, name, e))?;
                }
                Ok(())
            }
            HookEvent::DeploymentCreate(deployment, role) => {
                let Some(hooks) = self.hooks_by_role[role.index()].clone() else {
                    return Ok(());
                };
                hooks
                    .on_deployment_create(self, deployment, role)
                    .map_err(|e| hook_err(self, role, "on_deployment_create", e))
            }
        }
    }

    /// Roles with hooks, ascending (cohort, name), or descending cohort when `reverse`.
    pub(crate) fn fan_out(&self, reverse: bool) -> Vec<(RoleId, Arc<dyn RoleHooks>)> {
        let mut list: Vec<(RoleId, Arc<dyn RoleHooks>)> = self
            .hooks_by_role
            .iter()
            .enumerate()
            .filter_map(|(i, h)| Some((RoleId(i as u64), h.clone()?)))
            .collect();
        list.sort_by(|a, b| {
            let (ra, rb) = (self.role(a.0), self.role(b.0));
            let key = |r: Option<&Role>| r.map(|r| (r.cohort, r.name.clone()));
            let (ka, kb) = (key(ra), key(rb));
            match (reverse, ka, kb) {
                (false, ka, kb) => ka.cmp(&kb),
                (true, Some(a), Some(b)) => b.0.cmp(&a.0).then(a.1.cmp(&b.1)),
                (true, ka, kb) => kb.cmp(&ka),
            }
        });
        list
    }

    #[inline]
    pub(crate) fn queue(&mut self, event: HookEvent) {
        // No hooks registered (the common case for a bare annealer): nothing to look up.
        if !self.hooks_by_name.is_empty() {
            self.queue_slow(event);
        }
    }

    fn queue_slow(&mut self, event: HookEvent) {
        let wanted = match event {
            HookEvent::Proposed(nr) => self
                .brief(nr)
                .is_some_and(|n| self.hooks_by_role[n.role.index()].is_some()),
            // State hooks fire only in committed deployments.
            HookEvent::State(nr, _) => self.brief(nr).is_some_and(|n| {
                self.hooks_by_role[n.role.index()].is_some()
                    && self.deployment_committed(n.deployment)
            }),
            HookEvent::DeploymentCreate(_, role) => self.hooks_by_role[role.index()].is_some(),
            HookEvent::NodeCreate(_) | HookEvent::NodeChange(_) => {
                self.hooks_by_role.iter().any(Option::is_some)
            }
        };
        if wanted {
            self.events.push_back(event);
        }
    }
}

// Primitives: every mutation goes through these, which keep the indices, the undo log and the
// pending batch in step.
impl Cluster {
    #[inline]
    pub(crate) fn nr(&self, id: NodeRoleId) -> NodeRoleRef<'_> {
        let h = &self.hot[id.index()];
        debug_assert!(h.present, "noderole id checked by caller");
        self.view(id, h)
    }

    /// A noderole's state from the hot table (the id must exist).
    #[inline]
    pub(crate) fn state_of(&self, id: NodeRoleId) -> NodeRoleState {
        self.hot[id.index()].state
    }

    /// A noderole's hot fields, or the error for an unknown id.
    #[inline]
    pub(crate) fn get_hot(&self, id: NodeRoleId) -> Result<&Hot, CoreError> {
        self.hot
            .get(id.index())
            .filter(|h| h.present)
            .ok_or_else(|| CoreError::Unknown {
                what: "noderole",
                name: id.to_string(),
            })
    }

    #[inline]
    pub(crate) fn nr_mut(&mut self, id: NodeRoleId) -> &mut Cold {
        debug_assert!(
            self.hot[id.index()].present,
            "noderole id checked by caller"
        );
        &mut self.cold[id.index()]
    }

    fn slot_mut(&mut self, id: NodeRoleId, slot: Slot) -> &mut Value {
        let nr = self.nr_mut(id);
        match slot {
            Slot::Proposed => &mut nr.proposed_data,
            Slot::Sysdata => &mut nr.sysdata,
            Slot::Wall => &mut nr.wall,
        }
    }

    pub(crate) fn get_noderole(&self, id: NodeRoleId) -> Result<NodeRoleRef<'_>, CoreError> {
        self.noderole(id).ok_or_else(|| CoreError::Unknown {
            what: "noderole",
            name: id.to_string(),
        })
    }

    pub(crate) fn get_node(&self, id: NodeId) -> Result<&Node, CoreError> {
        self.node(id).ok_or_else(|| CoreError::Unknown {
            what: "node",
            name: id.to_string(),
        })
    }

    pub(crate) fn get_role(&self, id: RoleId) -> Result<&Role, CoreError> {
        self.role(id).ok_or_else(|| CoreError::Unknown {
            what: "role",
            name: id.to_string(),
        })
    }

    pub(crate) fn get_deployment(&self, id: DeploymentId) -> Result<&Deployment, CoreError> {
        self.deployment(id).ok_or_else(|| CoreError::Unknown {
            what: "deployment",
            name: id.to_string(),
        })
    }

    #[inline(always)]
    fn mark_nr(&mut self, id: NodeRoleId, flag: u8) {
        self.journal_noderole(id);
        self.mark_dirty(id, flag);
    }

    /// Marks the noderole for the next batch (listed once in `Pending::nr_list`), without
    /// journaling it.
    #[inline(always)]
    fn mark_dirty(&mut self, id: NodeRoleId, flag: u8) {
        let h = &mut self.hot[id.index()];
        if h.marks & DIRTY == 0 {
            self.pending.nr_list.push(id);
        }
        h.marks |= flag;
    }

    #[inline(always)]
    pub(crate) fn history(
        &mut self,
        id: NodeRoleId,
        from: Option<NodeRoleState>,
        to: NodeRoleState,
        cause: Cause,
    ) {
        let at = match self.pinned.or(self.now) {
            Some(t) => t,
            None => {
                let t = self.clock.now();
                self.now = Some(t);
                t
            }
        };
        self.pending.history.record(id, from, to, cause, at);
    }

    fn insert_node_raw(&mut self, node: Node) {
        let i = node.id.index();
        while self.nodes.len() <= i {
            self.nodes.push(None);
            self.node_index.push(NodeIndex::default());
        }
        self.node_by_name
            .insert(node.name.as_str().to_owned(), node.id);
        self.node_by_alias.insert(node.alias.clone(), node.id);
        self.nodes[i] = Some(node);
        self.sync_node(i);
    }

    /// Copies a node row's flags into its index entry.
    fn sync_node(&mut self, i: usize) {
        let (alive, up) = self.nodes[i]
            .as_ref()
            .map_or((false, false), |n| (n.alive, n.alive && n.available));
        if let Some(idx) = self.node_index.get_mut(i) {
            idx.alive = alive;
            idx.up = up;
        }
    }

    pub(crate) fn insert_node(&mut self, node: Node) {
        let id = node.id;
        self.insert_node_raw(node);
        self.log_undo(|| Undo::NodeCreated(id));
        self.pending.nodes.push(id);
        self.journal_node(id);
    }

    pub(crate) fn next_node_id(&self) -> NodeId {
        NodeId(self.nodes.len() as u64)
    }

    /// Replaces a node's row (not its name or alias).
    pub(crate) fn replace_node(&mut self, node: Node) {
        let id = node.id;
        let old = self.nodes[id.index()].replace(node).expect("node exists");
        self.sync_node(id.index());
        self.log_undo(|| Undo::Node(Box::new(old)));
        self.pending.nodes.push(id);
        self.journal_node(id);
    }

    pub(crate) fn remove_node_final(&mut self, id: NodeId) {
        if let Some(n) = self.nodes[id.index()].take() {
            self.node_by_name.remove(n.name.as_str());
            self.node_by_alias.remove(&n.alias);
        }
        self.node_index[id.index()] = NodeIndex::default();
        self.pending.nodes.retain(|n| *n != id);
        self.pending.deleted_nodes.push(id);
        self.journal_node(id);
    }

    fn insert_role_raw(&mut self, role: Role) {
        let i = role.id.index();
        while self.roles.len() <= i {
            self.roles.push(None);
            self.hooks_by_role.push(None);
        }
        self.role_by_name.insert(role.name.clone(), role.id);
        self.hooks_by_role[i] = self.hooks_by_name.get(&role.name).cloned();
        self.roles[i] = Some(role);
    }

    pub(crate) fn insert_role(&mut self, role: Role) {
        let id = role.id;
        self.insert_role_raw(role);
        self.log_undo(|| Undo::RoleCreated(id));
        self.pending.roles.push(id);
    }

    pub(crate) fn next_role_id(&self) -> RoleId {
        RoleId(self.roles.len() as u64)
    }

    pub(crate) fn replace_role(&mut self, role: Role) {
        let id = role.id;
        let old = self.roles[id.index()].replace(role).expect("role exists");
        self.log_undo(|| Undo::Role(Box::new(old)));
        self.pending.roles.push(id);
    }

    fn insert_deployment_raw(&mut self, d: Deployment) {
        let i = d.id.index();
        while self.deployments.len() <= i {
            self.deployments.push(None);
            self.deployment_counts.push([0; 6]);
        }
        self.deployment_by_name.insert(d.name.clone(), d.id);
        self.deployments[i] = Some(d);
    }

    pub(crate) fn insert_deployment(&mut self, d: Deployment) {
        let id = d.id;
        self.insert_deployment_raw(d);
        self.log_undo(|| Undo::DeploymentCreated(id));
        self.pending.deployments.push(id);
        self.journal_deployment(id);
    }

    pub(crate) fn next_deployment_id(&self) -> DeploymentId {
        DeploymentId(self.deployments.len() as u64)
    }

    pub(crate) fn replace_deployment(&mut self, d: Deployment) {
        let id = d.id;
        let old = self.deployments[id.index()]
            .replace(d)
            .expect("deployment exists");
        self.log_undo(|| Undo::Deployment(Box::new(old)));
        self.pending.deployments.push(id);
        self.journal_deployment(id);
    }

    /// Ensures the role has a deployment role in `deployment`; fires `on_deployment_create` when
    /// it is new.
    pub(crate) fn ensure_deployment_role(&mut self, deployment: DeploymentId, role: RoleId) {
        if self.deployment_roles.contains_key(&(deployment, role)) {
            return;
        }
        let empty = Value::Object(Default::default());
        self.deployment_roles.insert(
            (deployment, role),
            DeploymentRole {
                deployment,
                role,
                data: empty.clone(),
                wall: empty,
            },
        );
        self.log_undo(|| Undo::DeploymentRoleCreated(deployment, role));
        self.pending.deployment_roles.push((deployment, role));
        self.queue(HookEvent::DeploymentCreate(deployment, role));
    }

    pub(crate) fn replace_deployment_role(&mut self, dr: DeploymentRole) {
        let key = (dr.deployment, dr.role);
        if let Some(old) = self.deployment_roles.insert(key, dr) {
            self.log_undo(|| Undo::DeploymentRole(Box::new(old)));
        } else {
            self.log_undo(|| Undo::DeploymentRoleCreated(key.0, key.1));
        }
        self.pending.deployment_roles.push(key);
    }

    fn insert_noderole_raw(&mut self, nr: NodeRole) {
        let i = nr.id.index();
        while self.cold.len() <= i {
            self.cold.push(Cold::VACANT);
            self.links.push(Links::default());
            self.hot.push(Hot::default());
        }
        let (id, node, role, deployment, state) =
            (nr.id, nr.node, nr.role, nr.deployment, nr.state);
        self.by_role_node.insert((role, node), id);
        self.by_deployment_role
            .entry((deployment, role))
            .or_default()
            .push(id);
        self.node_index[node.index()].noderoles.push(id);
        if matches!(state, NodeRoleState::Transition | NodeRoleState::Error) {
            self.node_index[node.index()].busy += 1;
        }
        self.deployment_counts[deployment.index()][state.slot()] += 1;
        let Hot {
            inactive_parents,
            marks,
            ..
        } = self.hot[i];
        self.hot_mut(i, |h| {
            *h = Hot {
                inactive_parents,
                marks,
                ..Hot::of(&nr)
            }
        });
        self.cold[i] = Cold {
            proposed_data: nr.proposed_data,
            committed_data: nr.committed_data,
            sysdata: nr.sysdata,
            wall: nr.wall,
            runlog: nr.runlog,
        };
        self.noderole_count += 1;
    }

    pub(crate) fn next_noderole_id(&self) -> NodeRoleId {
        NodeRoleId(self.hot.len() as u64)
    }

    pub(crate) fn insert_noderole(&mut self, nr: NodeRole) {
        let (id, state) = (nr.id, nr.state);
        self.insert_noderole_raw(nr);
        self.log_undo(|| Undo::NodeRoleCreated(id));
        self.mark_nr(id, DIRTY_FULL);
        self.history(id, None, state, Cause::Bind);
    }

    /// Changes a noderole's hot fields through `f`, keeping [`Cluster::strays`] in step.
    #[inline]
    fn hot_mut<R>(&mut self, i: usize, f: impl FnOnce(&mut Hot) -> R) -> R {
        let h = &mut self.hot[i];
        let before = h.stray();
        let r = f(h);
        self.strays = self.strays + h.stray() as u32 - before as u32;
        r
    }

    /// Removes a noderole that has no edges left (used by undo and by node deletion).
    fn remove_noderole_raw(&mut self, id: NodeRoleId, keep_slot: bool) {
        let nr = self.hot[id.index()];
        if !nr.present {
            return;
        }
        self.cold[id.index()] = Cold::VACANT;
        self.journal_noderole(id);
        self.by_role_node.remove(&(nr.role, nr.node));
        if let Some(list) = self.by_deployment_role.get_mut(&(nr.deployment, nr.role)) {
            list.retain(|x| *x != id);
            if list.is_empty() {
                self.by_deployment_role.remove(&(nr.deployment, nr.role));
            }
        }
        let idx = &mut self.node_index[nr.node.index()];
        idx.noderoles.retain(|x| *x != id);
        if matches!(nr.state, NodeRoleState::Transition | NodeRoleState::Error) {
            idx.busy -= 1;
        }
        self.deployment_counts[nr.deployment.index()][nr.state.slot()] -= 1;
        self.noderole_count -= 1;
        let Hot {
            inactive_parents,
            marks,
            ..
        } = self.hot[id.index()];
        self.hot_mut(id.index(), |h| {
            *h = Hot {
                inactive_parents,
                marks,
                ..Hot::default()
            }
        });
        if !keep_slot && id.index() + 1 == self.hot.len() {
            if marks & LISTED != 0 {
                // The slot goes away (its creation is undone): so does its journal entry, as
                // a slot made again for that id starts with no marks.
                self.journal.changes.noderoles.retain(|x| *x != id);
            }
            self.cold.pop();
            self.links.pop();
            self.hot.pop();
        }
    }

    /// Deletes a noderole and its edges, for good (no undo).
    pub(crate) fn delete_noderole_final(&mut self, id: NodeRoleId) {
        let links = std::mem::take(&mut self.links[id.index()]);
        for &p in links.parents() {
            while self.links[p.index()].remove_child(id) {}
        }
        let active = self.state_of(id) == NodeRoleState::Active;
        for &c in links.children() {
            while self.links[c.index()].remove_parent(id) {}
            if !active {
                self.hot_mut(c.index(), |h| h.inactive_parents -= 1);
            }
            self.journal_noderole(c);
        }
        self.hot_mut(id.index(), |h| h.inactive_parents = 0);
        // Keep the slot so that ids are never reused once persisted.
        self.remove_noderole_raw(id, true);
        self.pending.deleted_noderoles.push(id);
    }

    /// Sets a noderole's state, keeping every counter in step. Returns the old state.
    #[inline]
    fn set_state_raw(&mut self, id: NodeRoleId, to: NodeRoleState) -> NodeRoleState {
        let from = self.hot[id.index()].state;
        if from != to {
            self.move_state(id, from, to);
        }
        from
    }

    /// Moves a noderole from `from` (its state) to `to` (another), keeping every counter in
    /// step: the node's busy count, the deployment's counts per state, the strays, and, when
    /// it enters or leaves ACTIVE, its children's counts of parents not ACTIVE (a child whose
    /// activatability flips is journaled). The noderole itself is journaled by its callers'
    /// dirty mark. Always inlined, so that a caller with constant states (the annealer's
    /// start and finish) keeps only the branches its states take.
    #[inline(always)]
    fn move_state(&mut self, id: NodeRoleId, from: NodeRoleState, to: NodeRoleState) {
        self.move_state_own(id, from, to);
        let is_active = to == NodeRoleState::Active;
        if (from == NodeRoleState::Active) != is_active {
            let links = &self.links[id.index()];
            for &c in links.children() {
                let h = &mut self.hot[c.index()];
                let before = h.inactive_parents;
                let after = if is_active { before - 1 } else { before + 1 };
                h.inactive_parents = after;
                if before == 0 || after == 0 {
                    // Its activatability changed, and with it whether it is a stray.
                    if h.present && straying(h.state) {
                        self.strays = self.strays + (after > 0) as u32 - (before > 0) as u32;
                    }
                    // (As `journal_noderole`, with the entry in hand while the links are
                    // borrowed.)
                    self.journal.list(c, h);
                }
            }
        }
    }

    /// [`Cluster::move_state`] without its children's counts of parents not ACTIVE: for a
    /// caller that keeps those itself (see [`Cluster::activate_lean`]).
    #[inline(always)]
    fn move_state_own(&mut self, id: NodeRoleId, from: NodeRoleState, to: NodeRoleState) {
        debug_assert_ne!(from, to);
        let h = &mut self.hot[id.index()];
        debug_assert_eq!(h.state, from);
        h.state = to;
        let (node, deployment) = (h.node, h.deployment);
        if straying(from) != straying(to) && h.inactive_parents > 0 && h.present {
            self.strays = self.strays + straying(to) as u32 - straying(from) as u32;
        }
        if busy(from) != busy(to) {
            let idx = &mut self.node_index[node.index()];
            idx.busy = idx.busy + busy(to) as u32 - busy(from) as u32;
        }
        let counts = &mut self.deployment_counts[deployment.index()];
        counts[from.slot()] -= 1;
        counts[to.slot()] += 1;
    }

    /// Changes a noderole's state, and raises its run count when `ran`, with history and
    /// (when `hooks`) the state hook.
    pub(crate) fn set_state(
        &mut self,
        id: NodeRoleId,
        to: NodeRoleState,
        ran: bool,
        cause: Cause,
        hooks: bool,
    ) {
        let h = self.hot[id.index()];
        let from = h.state;
        if from == to && !ran {
            return;
        }
        if from != to {
            self.move_state(id, from, to);
        }
        if ran {
            self.hot[id.index()].run_count = h.run_count + 1;
        }
        self.log_undo(|| Undo::State(id, from, h.run_count));
        self.mark_nr(id, DIRTY_STATE);
        if from != to {
            self.history(id, Some(from), to, cause);
            if hooks {
                self.queue(HookEvent::State(id, to));
            }
        }
    }

    /// Starts a lean operation if one may be: when it would be the outermost one and no hook
    /// is registered, nothing can refuse it once checked (no undo step is needed) and no hook
    /// is to be told. Returns whether it started; the caller then makes its checked changes
    /// and calls [`Cluster::end_lean`] ([`Cluster::txn_checked`] is built on these).
    #[inline]
    pub(crate) fn begin_lean(&mut self) -> bool {
        if self.depth > 0 || !self.hooks_by_name.is_empty() {
            return false;
        }
        self.depth = 1;
        self.undo_on = false;
        true
    }

    /// [`Cluster::set_state`] for a checked change from `from` (the noderole's state) to `to`
    /// (another) in a lean operation ([`Cluster::begin_lean`]): no undo step, no hook. Always
    /// inlined, so that the annealer's starts and finishes, whose states are constants, keep
    /// only the work their states ask for.
    ///
    /// The noderole is journaled unless `quiet` (see [`Cluster::start_run_quietly`]).
    #[inline(always)]
    pub(crate) fn step_lean(
        &mut self,
        id: NodeRoleId,
        from: NodeRoleState,
        to: NodeRoleState,
        ran: bool,
        cause: Cause,
        quiet: bool,
    ) {
        debug_assert!(!self.undo_on && self.hooks_by_name.is_empty());
        self.move_state(id, from, to);
        if ran {
            self.hot[id.index()].run_count += 1;
        }
        if quiet {
            self.mark_dirty(id, DIRTY_STATE);
        } else {
            self.mark_nr(id, DIRTY_STATE);
        }
        self.history(id, Some(from), to, cause);
    }

    /// The end of a successful run in a lean operation: `id` goes from TRANSITION to ACTIVE
    /// with its run count raised, and every BLOCKED child whose parents are now all ACTIVE
    /// becomes TODO (cause `ParentActive`), as [`Cluster::step_lean`] and the unblocking of
    /// the general path would do, in one walk of the children instead of two: each child's
    /// count of parents not ACTIVE is lowered and, when it reaches 0, the child is journaled
    /// and unblocked right away. (Unblocking a child changes only its own subtree, never the
    /// other children's counts or this list, so the order of the walk changes nothing.)
    ///
    /// With `quiet` (see [`Cluster::finish_run_quietly`]), neither `id` nor its children are
    /// journaled: the children whose count reaches 0 are appended to `quiet` instead.
    #[inline(always)]
    pub(crate) fn activate_lean(
        &mut self,
        id: NodeRoleId,
        mut quiet: Option<&mut Vec<NodeRoleId>>,
    ) {
        debug_assert!(!self.undo_on && self.hooks_by_name.is_empty());
        self.move_state_own(id, NodeRoleState::Transition, NodeRoleState::Active);
        self.hot[id.index()].run_count += 1;
        self.mark_dirty(id, DIRTY_STATE);
        self.history(
            id,
            Some(NodeRoleState::Transition),
            NodeRoleState::Active,
            Cause::JigSucceeded,
        );
        let n = self.links[id.index()].children().len();
        for i in 0..n {
            let c = self.links[id.index()].child(i);
            let h = &mut self.hot[c.index()];
            h.inactive_parents -= 1;
            if h.inactive_parents != 0 {
                continue;
            }
            // Its activatability changed, and with it whether it is a stray.
            if h.present && straying(h.state) {
                self.strays -= 1;
            }
            let unblock = h.state == NodeRoleState::Blocked && h.present;
            match quiet.as_deref_mut() {
                Some(unblocked) => unblocked.push(c),
                None => self.journal.list(c, h),
            }
            if unblock {
                self.unblock_lean(c, id, quiet.is_some());
            }
        }
        if quiet.is_none() {
            self.journal_noderole(id);
        }
    }

    /// Ends a lean operation as [`Cluster::txn`] ends an outermost one: the time it read is
    /// let go.
    #[inline]
    pub(crate) fn end_lean(&mut self) {
        self.undo_on = true;
        self.depth = 0;
        self.now = None;
    }

    pub(crate) fn set_cohort(&mut self, id: NodeRoleId, cohort: u32) {
        let old = std::mem::replace(&mut self.hot[id.index()].cohort, cohort);
        if old != cohort {
            self.log_undo(|| Undo::Cohort(id, old));
            self.mark_nr(id, DIRTY_STATE);
        }
    }

    pub(crate) fn set_data(&mut self, id: NodeRoleId, slot: Slot, value: Value) {
        let old = std::mem::replace(self.slot_mut(id, slot), value);
        self.log_undo(|| Undo::Data(id, slot, Box::new(old)));
        self.mark_nr(id, DIRTY_FULL);
    }

    pub(crate) fn set_committed(&mut self, id: NodeRoleId, value: Option<Value>) {
        let old = std::mem::replace(&mut self.nr_mut(id).committed_data, value);
        self.log_undo(|| Undo::Committed(id, old.map(Box::new)));
        self.mark_nr(id, DIRTY_FULL);
    }

    pub(crate) fn set_runlog(&mut self, id: NodeRoleId, runlog: String) {
        let h = &mut self.hot[id.index()];
        if !h.has_runlog && runlog.is_empty() {
            // Empty to empty (a run of a jig that logs nothing): the row is not touched.
            return;
        }
        h.has_runlog = !runlog.is_empty();
        let old = std::mem::replace(&mut self.nr_mut(id).runlog, runlog);
        self.log_undo(|| Undo::Runlog(id, old.into_boxed_str()));
        self.mark_nr(id, DIRTY_FULL);
    }

    fn link_raw(&mut self, parent: NodeRoleId, child: NodeRoleId) {
        self.links[parent.index()].add_child(child);
        let active = self.state_of(parent) == NodeRoleState::Active;
        self.links[child.index()].add_parent(parent);
        if !active {
            self.hot_mut(child.index(), |h| h.inactive_parents += 1);
            self.journal_noderole(child);
        }
    }

    fn unlink_raw(&mut self, parent: NodeRoleId, child: NodeRoleId) {
        self.links[parent.index()].remove_child(child);
        let active = self
            .hot
            .get(parent.index())
            .is_some_and(|p| p.present && p.state == NodeRoleState::Active);
        if self.links[child.index()].remove_parent(parent) && !active {
            self.hot_mut(child.index(), |h| h.inactive_parents -= 1);
            self.journal_noderole(child);
        }
    }

    /// Links `parent` to `child` (once) and raises the child's cohort, and its descendants', to
    /// stay above the parent's.
    pub(crate) fn link(&mut self, parent: NodeRoleId, child: NodeRoleId) {
        if self.links[child.index()].parents().contains(&parent) {
            return;
        }
        self.link_raw(parent, child);
        let edge = Edge { parent, child };
        self.log_undo(|| Undo::Edge(edge));
        self.pending.edges.push(edge);
        let mut stack = vec![(child, self.hot[parent.index()].cohort + 1)];
        while let Some((id, min)) = stack.pop() {
            if self.hot[id.index()].cohort >= min {
                continue;
            }
            self.set_cohort(id, min);
            for c in self.links[id.index()].children().to_vec() {
                stack.push((c, min + 1));
            }
        }
    }
}
