//! The annealer: drives the noderole graph to stability.
//!
//! Two layers. [`Annealer`] is the scheduling core: pure and synchronous, no I/O, no clock, no
//! tokio. It owns the [`Cluster`](crowbar_core::Cluster), takes facts (a run finished, time
//! passed, a node died, the model changed) and hands back a [`Ready`]: a batch of state changes
//! to persist, runs to start, runs to abandon, and when to wake it next. [`Driver`] runs that
//! loop on tokio with real jigs and a [`Store`](crowbar_core::Store).
//!
//! # The core, by hand
//!
//! ```
//! use crowbar_core::{Cluster, NodeRoleState, NodeSpec, RoleSpec, Timestamp};
//! use crowbar_anneal::{Annealer, AnnealerConfig, AnnealStatus};
//! use crowbar_jig::JigOutput;
//!
//! let mut cluster = Cluster::new();
//! cluster.create_role(RoleSpec::new("database"))?;
//! cluster.create_role(RoleSpec::new("webapp").requires(["database"]))?;
//! let n = cluster.create_node(NodeSpec::new("db1.example.com").alive(true))?;
//! let db = cluster.bind_by_name("database", "db1", None)?;
//! let web = cluster.bind_by_name("webapp", "db1", None)?;
//! cluster.commit_node(n)?;
//!
//! let mut annealer = Annealer::new(cluster, AnnealerConfig::default())?;
//! let now = Timestamp(0);
//! // 1. Ask what to do: persist `ready.batch`, then start `ready.runs`, then advance.
//! let ready = annealer.ready(now);
//! assert_eq!(ready.runs.len(), 1);
//! assert_eq!(ready.runs[0].noderole, db);
//! annealer.advance();
//! assert_eq!(annealer.status(), AnnealStatus::Working);
//! // 2. Report the jig's result: the database is ACTIVE, so the webapp becomes runnable.
//! annealer.handle_run_finished(ready.runs[0].run, Ok(JigOutput::empty()), now);
//! let ready = annealer.ready(now);
//! assert_eq!(ready.runs[0].noderole, web);
//! annealer.advance();
//! annealer.handle_run_finished(ready.runs[0].run, Ok(JigOutput::empty()), now);
//! assert!(annealer.is_idle());
//! assert_eq!(annealer.status(), AnnealStatus::Finished);
//! assert_eq!(annealer.cluster().noderole(web).unwrap().state, NodeRoleState::Active);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Asking questions
//!
//! [`Annealer::plan`] says what a commit would run, wave by wave, and what would stay stuck;
//! [`Annealer::explain`] says why a noderole is not running now:
//!
//! ```
//! # use crowbar_core::*;
//! # use crowbar_anneal::*;
//! let mut cluster = Cluster::new();
//! cluster.create_role(RoleSpec::new("os-install"))?;
//! cluster.create_role(RoleSpec::new("ntp").requires(["os-install"]))?;
//! let a = cluster.create_node(NodeSpec::new("a.example.com").alive(true))?;
//! let b = cluster.create_node(NodeSpec::new("b.example.com"))?; // not alive yet
//! for node in ["a", "b"] {
//!     cluster.bind_by_name("ntp", node, None)?;
//! }
//! let mut annealer = Annealer::new(cluster, AnnealerConfig::default())?;
//! let plan = annealer.plan(PlanScope::Everything);
//! assert_eq!(plan.runs.len(), 2); // os-install then ntp, on a
//! assert_eq!(plan.waves, 2);
//! assert!(plan.stuck.iter().any(|s| s.reason == StuckReason::NodeNotAlive(b)));
//!
//! annealer.update(|c| c.commit_node(a))?;
//! let ntp_a = annealer.cluster().find_role("ntp")
//!     .and_then(|r| annealer.cluster().noderole_for(r, a)).unwrap();
//! let why = annealer.explain(ntp_a)?;
//! assert!(matches!(why.reasons[0], Reason::Parent { state: NodeRoleState::Todo, .. }));
//! println!("{why}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The driver
//!
//! [`Driver`] loads the model from a store (recovering runs a crash interrupted), runs jigs
//! concurrently under the caps, persists each batch before acting on it, publishes
//! [`AnnealEvent`]s, and stops cleanly:
//!
//! ```
//! # use std::sync::Arc;
//! # use crowbar_core::*;
//! # use crowbar_anneal::*;
//! # use crowbar_jig::JigRegistry;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut cluster = Cluster::with_clock(Arc::new(TokioClock::new()));
//! cluster.create_role(RoleSpec::new("hello").jig("test"))?;
//! let n = cluster.create_node(NodeSpec::new("n1.example.com").alive(true))?;
//! let nr = cluster.bind_by_name("hello", "n1", None)?;
//! cluster.commit_node(n)?;
//!
//! let store = Arc::new(MemStore::new());
//! let annealer = Annealer::new(cluster, AnnealerConfig::default())?;
//! let handle = Driver::spawn(annealer, store.clone(), JigRegistry::with_builtins(), DriverConfig::default());
//! assert_eq!(handle.wait_idle().await?, AnnealStatus::Finished);
//! handle.stop().await?;
//!
//! let history = store.history(nr).await?;
//! let states: Vec<_> = history.iter().map(|h| h.to.name()).collect();
//! assert_eq!(states, ["PROPOSED", "TODO", "TRANSITION", "ACTIVE"]);
//! # Ok(()) }
//! ```
//!
//! # Simulation
//!
//! [`Simulation`] runs the same core under simulated time with jig durations, failures, hangs
//! and node deaths drawn from a seed: the same seed gives the same history.
#![deny(missing_docs)]

mod core;
mod driver;
mod error;
mod explain;
mod plan;
mod queue;
mod runs;
mod sim;

pub use crate::core::{
    AnnealStatus, Annealer, AnnealerConfig, Cancel, DEFAULT_MAX_RUNNING, Finished, Ready, Recovery,
    RunId, RunRequest,
};
pub use driver::{AnnealEvent, AnnealHandle, Driver, DriverConfig, Events, Stats, TokioClock};
pub use error::AnnealError;
pub use explain::{Explanation, Reason};
pub use plan::{Plan, PlanScope, PlannedRun, Stuck, StuckReason};
pub use sim::{SimConfig, SimEvent, SimReport, Simulation};
