//! The typed errors of the model and of the stores.

use crate::{NodeRoleId, NodeRoleState};

/// An error from the model: bad input, a refused binding, an invalid transition, a failed hook.
///
/// Every operation that returns one leaves the cluster exactly as it was.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// A node name is not a valid FQDN.
    #[error("invalid FQDN {name:?}: {reason}")]
    InvalidFqdn {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A node alias is not letters, digits and hyphens ending with a letter or digit.
    #[error("invalid alias {alias:?}: letters, digits and '-', ending with a letter or digit")]
    InvalidAlias {
        /// The alias as given.
        alias: String,
    },
    /// A role or deployment name is malformed.
    #[error("invalid {what} name {name:?}: a letter, then letters, digits, '-' or '_'")]
    InvalidName {
        /// `role` or `deployment`.
        what: &'static str,
        /// The name as given.
        name: String,
    },
    /// A bootenv string is not `sledgehammer`, `local` or `<os>-install`.
    #[error("invalid bootenv {value:?}: expected sledgehammer, local or <os>-install")]
    InvalidBootenv {
        /// The value as given.
        value: String,
    },
    /// A role flag name is unknown.
    #[error("unknown role flag {flag:?}")]
    UnknownRoleFlag {
        /// The flag as given.
        flag: String,
    },
    /// An entity with this name exists already.
    #[error("{what} {name:?} exists already")]
    Duplicate {
        /// `node`, `alias`, `role` or `deployment`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// No entity has this name or id.
    #[error("unknown {what} {name:?}")]
    Unknown {
        /// `node`, `role`, `deployment` or `noderole`.
        what: &'static str,
        /// The name or id as given.
        name: String,
    },
    /// Adding a requirement would make the role graph cyclic.
    #[error("requirement makes the role graph cyclic: {}", cycle.join(" -> "))]
    RoleCycle {
        /// The cycle, as role names, starting and ending with the same role.
        cycle: Vec<String>,
    },
    /// The role is abstract and cannot be bound.
    #[error("role {role:?} is abstract and cannot be bound to a node")]
    AbstractRole {
        /// The role.
        role: String,
    },
    /// The role (or one of its ancestors) requires roles that do not exist.
    #[error("role {role:?} has missing prerequisites: {}", missing.join(", "))]
    UnresolvedRequirements {
        /// The role being bound.
        role: String,
        /// The required role names that do not exist.
        missing: Vec<String>,
    },
    /// The role conflicts with a role already on the node: one of the two names the other in
    /// its `conflicts`.
    #[error("role {role:?} conflicts with role {existing:?} already on node {node}")]
    Conflict {
        /// The role being bound.
        role: String,
        /// The node.
        node: String,
        /// The role already bound there.
        existing: String,
    },
    /// What the role stands for is provided on the node already: the role already there
    /// provides the new role's name, the new role provides the existing one's name, or both
    /// provide the same name.
    #[error(
        "role {role:?} cannot join role {existing:?} on node {node}: both stand for {provided:?}"
    )]
    AlreadyProvided {
        /// The role being bound.
        role: String,
        /// The node.
        node: String,
        /// The role already bound there.
        existing: String,
        /// The role name both stand for (a role stands for its own name and what it provides).
        provided: String,
    },
    /// The state machine does not allow this operation from the current state.
    #[error("{noderole}: cannot {operation} from {from}: {reason}")]
    InvalidTransition {
        /// The noderole.
        noderole: NodeRoleId,
        /// The operation refused (`commit`, `retry`, `active`...).
        operation: &'static str,
        /// Its current state.
        from: NodeRoleState,
        /// Why.
        reason: &'static str,
    },
    /// User data can only be edited while a noderole is PROPOSED.
    #[error("{noderole}: data can only be edited while PROPOSED, it is {state}")]
    NotProposed {
        /// The noderole.
        noderole: NodeRoleId,
        /// Its current state.
        state: NodeRoleState,
    },
    /// Data given for a data slot is not a JSON object.
    #[error("{what} must be a JSON object")]
    NotAnObject {
        /// Which data.
        what: &'static str,
    },
    /// What a store loaded cannot be a cluster: an id named twice, a reference to a row the
    /// store does not hold, an id too large for the model's dense tables.
    #[error("inconsistent snapshot: {message}")]
    InconsistentSnapshot {
        /// What is wrong, naming the rows.
        message: String,
    },
    /// The system deployment cannot be proposed or deleted.
    #[error("the system deployment cannot be {operation}")]
    SystemDeployment {
        /// `proposed` or `deleted`.
        operation: &'static str,
    },
    /// The node still has noderoles that other nodes depend on.
    #[error("node {node} cannot be deleted: noderoles on other nodes depend on it ({})", dependents.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))]
    NodeInUse {
        /// The node.
        node: String,
        /// The dependent noderoles on other nodes.
        dependents: Vec<NodeRoleId>,
    },
    /// A role hook refused the operation.
    #[error("hook {hook} of role {role:?} failed: {message}")]
    Hook {
        /// The role whose hook failed.
        role: String,
        /// The hook (`on_proposed`...).
        hook: &'static str,
        /// The hook's message.
        message: String,
    },
}

/// An error from a [`Store`](crate::Store).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The batch was built on a revision that is no longer the store's: another writer got in
    /// first. Reload and retry.
    #[error("store revision is {actual}, the batch expected {expected}")]
    Conflict {
        /// The revision the batch was built on.
        expected: u64,
        /// The store's revision.
        actual: u64,
    },
    /// The database failed (I/O, locking, a constraint).
    #[error("database error in {operation}: {message}")]
    Database {
        /// What the store was doing.
        operation: &'static str,
        /// The database's message.
        message: String,
        /// Whether trying again can help (busy, locked, I/O hiccup).
        retryable: bool,
    },
    /// Stored data could not be decoded.
    #[error("corrupt {what} in the store: {message}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The file is missing, or is not a crowbar store (see
    /// [`SqliteStore::open_existing`](crate::SqliteStore::open_existing)).
    #[error("{path} is not a crowbar store: {reason}")]
    NotAStore {
        /// The file.
        path: String,
        /// What is missing.
        reason: String,
    },
    /// The file's schema is newer than this build understands.
    #[error("schema version {found} is newer than the newest this build knows ({known})")]
    SchemaTooNew {
        /// The file's schema version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
}

impl StoreError {
    /// Whether the same call may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Conflict { .. } => true,
            StoreError::Database { retryable, .. } => *retryable,
            StoreError::Corrupt { .. }
            | StoreError::SchemaTooNew { .. }
            | StoreError::NotAStore { .. } => false,
        }
    }
}
