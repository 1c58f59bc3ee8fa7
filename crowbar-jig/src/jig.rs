//! The [`Jig`] trait and the [`JigRegistry`] the annealer finds jigs in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crowbar_core::NodeRoleId;

use crate::{Outcome, RunContext, RunView};

/// Why the annealer gave up on a run before it ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CancelReason {
    /// The run exceeded its role's timeout.
    Timeout,
    /// The node stopped being alive, or the noderole was moved out of TRANSITION.
    NodeLost,
    /// The annealer is shutting down.
    Shutdown,
}

/// Does the work of a noderole on its node.
///
/// One method is required, [`Jig::run`]; the rest are hooks with defaults. A jig is shared as
/// `Arc<dyn Jig>` and may run for many noderoles at once (never two on the same node).
///
/// **Cancel safety.** The annealer may drop the future returned by `run` at any `.await`
/// point: when the run times out, when its node dies, when the annealer stops. A jig must leave
/// nothing behind that matters when that happens: spawn child processes with
/// `kill_on_drop(true)`, keep temporary files in guards that delete them on drop, and put any
/// other clean-up in [`Jig::cancelled`], which the annealer calls afterwards. A run that was
/// dropped is never reported as finished; the noderole's fate is decided by the annealer
/// (ERROR with a timeout runlog, back to TODO on node death, re-run after a restart).
///
/// ```
/// use async_trait::async_trait;
/// use crowbar_jig::{Jig, JigError, JigOutput, Outcome, RunContext};
///
/// /// Succeeds on even attempts only.
/// struct Flaky;
///
/// #[async_trait]
/// impl Jig for Flaky {
///     async fn run(&self, cx: RunContext) -> Outcome {
///         if cx.attempt % 2 == 1 {
///             return Err(JigError::failed("odd attempt", true));
///         }
///         Ok(JigOutput::with_wall(serde_json::json!({"flaky": {"attempt": cx.attempt}})))
///     }
/// }
/// ```
#[async_trait]
pub trait Jig: Send + Sync {
    /// Runs the noderole described by `cx`. See the trait's notes on cancel safety.
    async fn run(&self, cx: RunContext) -> Outcome;

    /// Whether the run needs the layered data in [`RunContext::data`]. Jigs that ignore it say
    /// `false` and spare the annealer the merge.
    fn needs_data(&self) -> bool {
        true
    }

    /// A synchronous fast path, asked first: a jig that can finish at once, from the run's
    /// facts alone, returns `Some(outcome)` and the annealer applies it without building a
    /// [`RunContext`] or spawning a task. `None` (the default) sends the run to [`Jig::run`].
    fn run_now(&self, cx: RunView<'_>) -> Option<Outcome> {
        let _ = cx;
        None
    }

    /// A time limit for runs of this jig, used when the role sets none.
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// Called after the annealer dropped a run of `noderole` (see cancel safety), to clean up
    /// what dropping could not. The default does nothing.
    async fn cancelled(&self, noderole: NodeRoleId, reason: CancelReason) {
        let _ = (noderole, reason);
    }
}

/// The jigs the annealer can use, by name (a role names its jig).
///
/// ```
/// use std::sync::Arc;
/// use crowbar_jig::{JigRegistry, NoopJig};
/// let mut jigs = JigRegistry::with_builtins();
/// assert!(jigs.get("noop").is_some() && jigs.get("test").is_some());
/// jigs.register("chef-solo", Arc::new(NoopJig));
/// assert_eq!(jigs.names().collect::<Vec<_>>(), ["chef-solo", "noop", "test"]);
/// ```
#[derive(Clone, Default)]
pub struct JigRegistry {
    jigs: BTreeMap<String, Arc<dyn Jig>>,
}

impl fmt::Debug for JigRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.jigs.keys()).finish()
    }
}

impl JigRegistry {
    /// An empty registry.
    pub fn new() -> JigRegistry {
        JigRegistry::default()
    }

    /// A registry with the jigs that need no configuration: `noop` and `test`. The `script`
    /// jig needs a scripts directory; register it with [`ScriptJig::new`](crate::ScriptJig::new).
    pub fn with_builtins() -> JigRegistry {
        let mut r = JigRegistry::new();
        r.register("noop", Arc::new(crate::NoopJig));
        r.register("test", Arc::new(crate::TestJig));
        r
    }

    /// Registers `jig` under `name`, returning the jig it replaces.
    pub fn register(&mut self, name: impl Into<String>, jig: Arc<dyn Jig>) -> Option<Arc<dyn Jig>> {
        self.jigs.insert(name.into(), jig)
    }

    /// The jig named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Jig>> {
        self.jigs.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.jigs.keys().map(String::as_str)
    }
}
