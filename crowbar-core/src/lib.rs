//! The Crowbar domain model, the noderole state machine, role binding and the stores.
//!
//! Crowbar models a data centre as **nodes** (machines, by FQDN), **roles** (units of work with
//! required parent roles), **deployments** (a tree under the system deployment) and
//! **noderoles** (a role bound to a node in a deployment), linked parent to child in a
//! dependency graph across nodes. This crate holds that model in a [`Cluster`], enforces
//! Crowbar's state machine on it, and persists it through a [`Store`].
//!
//! # A walk through
//!
//! Define roles, create nodes, bind a role (its parents come along), commit:
//!
//! ```
//! use crowbar_core::{Cluster, NodeRoleState, NodeSpec, RoleFlag, RoleSpec, RunResult, Cause};
//!
//! let mut cluster = Cluster::new();
//! cluster.create_role(RoleSpec::new("database"))?;
//! cluster.create_role(RoleSpec::new("chef-client").flag(RoleFlag::Implicit))?;
//! cluster.create_role(RoleSpec::new("webapp").requires(["database", "chef-client"]))?;
//!
//! let db = cluster.create_node(NodeSpec::new("db1.example.com").alive(true))?;
//! let web = cluster.create_node(NodeSpec::new("web1.example.com").alive(true))?;
//! let database = cluster.bind_by_name("database", "db1", None)?;
//! // webapp finds database on db1 and creates the implicit chef-client on web1.
//! let webapp = cluster.bind_by_name("webapp", "web1", None)?;
//! assert_eq!(cluster.parents(webapp).len(), 2);
//!
//! cluster.commit_node(db)?;
//! cluster.commit_node(web)?;
//! assert_eq!(cluster.noderole(database).unwrap().state, NodeRoleState::Todo);
//! assert_eq!(cluster.noderole(webapp).unwrap().state, NodeRoleState::Blocked);
//! assert!(cluster.is_runnable(database));
//! # Ok::<(), crowbar_core::CoreError>(())
//! ```
//!
//! The annealer (in `crowbar-anneal`) runs jigs; by hand, a run looks like this, and success
//! ripples down the graph:
//!
//! ```
//! # use crowbar_core::*;
//! # let mut cluster = Cluster::new();
//! # cluster.create_role(RoleSpec::new("database"))?;
//! # cluster.create_role(RoleSpec::new("webapp").requires(["database"]))?;
//! # let db = cluster.create_node(NodeSpec::new("db1.example.com").alive(true))?;
//! # let database = cluster.bind_by_name("database", "db1", None)?;
//! # let webapp = cluster.bind_by_name("webapp", "db1", None)?;
//! # cluster.commit_node(db)?;
//! cluster.start_run(database)?;
//! cluster.finish_run(database, RunResult::Succeeded {
//!     wall: Some(serde_json::json!({"db": {"port": 5432}})),
//!     runlog: String::new(),
//! })?;
//! assert_eq!(cluster.noderole(webapp).unwrap().state, NodeRoleState::Todo);
//! // The webapp's run sees the database's wall data.
//! assert_eq!(cluster.run_data(webapp)?["db"]["port"], 5432);
//! # Ok::<(), crowbar_core::CoreError>(())
//! ```
//!
//! Every change is collected in a [`Batch`] that a [`Store`] applies whole or not at all:
//!
//! ```
//! # use crowbar_core::*;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(dir.path().join("crowbar.sqlite"))?;
//! let mut cluster = Cluster::new();
//! cluster.create_role(RoleSpec::new("ntp-client"))?;
//! let n = cluster.create_node(NodeSpec::new("n1.example.com"))?;
//! let nr = cluster.bind_by_name("ntp-client", "n1", None)?;
//! cluster.commit_node(n)?;
//! store.apply(cluster.take_batch()).await?;
//!
//! // Later, or in another process: reload the whole model.
//! let reloaded = Cluster::from_snapshot(store.load().await?, cluster.clock().clone())?;
//! assert_eq!(reloaded.noderole(nr).unwrap().state, NodeRoleState::Todo);
//! // And the history says why.
//! let history = store.history(nr).await?;
//! assert_eq!(history.last().unwrap().cause, Cause::Commit);
//! # Ok(()) }
//! ```
//!
//! Roles can register [`RoleHooks`] to react to the model (allocate addresses when a network
//! role is proposed, rebuild the DHCP database when a node changes); what a hook changes lands
//! in the same batch.
#![deny(missing_docs)]

/// The README's example, checked as a doc test so that crates.io shows code that runs.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod batch;
mod binding;
mod clock;
mod cluster;
pub mod conformance;
mod data;
mod entity;
mod error;
mod fqdn;
pub mod hints;
pub mod history;
mod hooks;
mod ids;
mod machine;
mod query;
mod store;
mod types;

pub use batch::{Batch, Edge, HistoryEntry, Record, RecordChange, Snapshot, StateUpdate};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cluster::{Changes, Cluster, Extensions, NodeRoleBrief, NodeRoleRef};
pub use data::deep_merge;
pub use entity::{
    Deployment, DeploymentPhase, DeploymentRole, Node, NodeRole, NodeSpec, RetryPolicy, Role,
    RoleSpec,
};
pub use error::{CoreError, StoreError};
pub use fqdn::Fqdn;
pub use hints::{Hints, NodeHints};
pub use history::HistoryLog;
pub use hooks::{HookError, RoleHooks};
pub use ids::{DeploymentId, NodeId, NodeRoleId, RoleId, SYSTEM_DEPLOYMENT};
pub use machine::RunResult;
pub use store::{MemStore, SqliteStore, Store};
pub use types::{Bootenv, Cause, DeploymentState, NodeRoleState, RoleFlag, RoleFlags, Timestamp};
