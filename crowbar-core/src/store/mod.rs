//! The `Store` trait: where batches of changes are persisted and from where a cluster is
//! reloaded, with its in-memory and SQLite implementations.

mod mem;
mod sqlite;

use async_trait::async_trait;

use crate::{Batch, HistoryEntry, NodeRoleId, Snapshot, StoreError};

pub use mem::MemStore;
pub use sqlite::SqliteStore;

/// Durable storage for a [`Cluster`](crate::Cluster).
///
/// A store applies [`Batch`]es atomically: a batch lands whole or not at all, and a failed
/// batch leaves the store exactly as it was. Each applied batch raises the store's revision by
/// one. A batch with [`Batch::base_revision`] set is refused with [`StoreError::Conflict`]
/// unless the store is at exactly that revision: that is how several writers (several agents on
/// one PostgreSQL database) detect that someone else got in first.
///
/// A batch must be consistent with what the store holds: noderoles refer to existing nodes,
/// roles and deployments (in the store or the same batch), state updates and edges to existing
/// noderoles. A store refuses an inconsistent batch rather than storing half of it.
///
/// **Cancel safety.** Dropping an `apply` future does not cancel the write: it lands whole or
/// not at all, and [`Store::revision`] tells which. `load`, `history` and `revision` only read.
///
/// Every implementation should pass [`conformance::run_all`](crate::conformance::run_all).
#[async_trait]
pub trait Store: Send + Sync {
    /// Applies `batch` atomically and returns the new revision.
    async fn apply(&self, batch: Batch) -> Result<u64, StoreError>;

    /// Everything the store holds except the history.
    async fn load(&self) -> Result<Snapshot, StoreError>;

    /// The state changes of one noderole, oldest first.
    async fn history(&self, noderole: NodeRoleId) -> Result<Vec<HistoryEntry>, StoreError>;

    /// The number of batches applied so far.
    async fn revision(&self) -> Result<u64, StoreError>;
}
