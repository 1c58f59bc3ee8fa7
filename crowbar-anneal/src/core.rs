//! The scheduling core: pure and synchronous. It owns the [`Cluster`], takes facts (a jig
//! finished, time passed, the model changed) and hands back what to do in a [`Ready`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crowbar_core::{
    Batch, Cause, Changes, Cluster, CoreError, DeploymentId, DeploymentPhase, NodeId,
    NodeRoleBrief, NodeRoleId, NodeRoleState, RoleFlag, RoleId, RunResult, Timestamp,
};
use crowbar_jig::{CancelReason, Outcome};
use serde_json::Value;

use crate::AnnealError;
use crate::queue::{CohortQueue, NodeQueue};
use crate::runs::{Running, Runs};

/// Crowbar's global cap on concurrent runs.
pub const DEFAULT_MAX_RUNNING: usize = 10;

/// Identifies one run of one noderole, from its start to its end: the annealer numbers its
/// runs from 1 in the order it starts them, and a run knows its noderole.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RunId {
    seq: u64,
    noderole: NodeRoleId,
}

impl RunId {
    pub(crate) fn new(seq: u64, noderole: NodeRoleId) -> RunId {
        RunId { seq, noderole }
    }

    /// The run's number: 1 for the annealer's first run, 2 for the next...
    pub fn seq(self) -> u64 {
        self.seq
    }

    /// The noderole being run.
    pub fn noderole(self) -> NodeRoleId {
        self.noderole
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run#{}", self.seq)
    }
}

/// The annealer's settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AnnealerConfig {
    /// The most runs at once, over all nodes (Crowbar: 10). At least 1.
    pub max_running: usize,
    /// The TRANSITION time limit for roles that set none, by jig name (from
    /// [`Jig::timeout`](crowbar_jig::Jig::timeout)).
    pub jig_timeouts: BTreeMap<String, u64>,
    /// The TRANSITION time limit for roles and jigs that set none; `None` is no limit.
    pub default_timeout_ms: Option<u64>,
}

impl Default for AnnealerConfig {
    fn default() -> Self {
        AnnealerConfig {
            max_running: DEFAULT_MAX_RUNNING,
            jig_timeouts: BTreeMap::new(),
            default_timeout_ms: None,
        }
    }
}

impl AnnealerConfig {
    /// The default settings with a different cap.
    pub fn with_max_running(max_running: usize) -> AnnealerConfig {
        AnnealerConfig {
            max_running,
            ..AnnealerConfig::default()
        }
    }
}

/// A run the driver must start: call the role's jig for the noderole.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RunRequest {
    /// The run, to report its end with [`Annealer::handle_run_finished`].
    pub run: RunId,
    /// The noderole, now in TRANSITION.
    pub noderole: NodeRoleId,
    /// Its node.
    pub node: NodeId,
    /// Its role.
    pub role: RoleId,
    /// 1 for a first attempt, 2 for the first retry...
    pub attempt: u32,
    /// How many runs of the noderole completed before this one (its run count).
    pub run_count: u32,
    /// When the run times out, if it can.
    pub deadline: Option<Timestamp>,
}

/// A run the driver must abandon (drop its future, then call the jig's `cancelled` hook).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cancel {
    /// The run.
    pub run: RunId,
    /// Its noderole.
    pub noderole: NodeRoleId,
    /// Why.
    pub reason: CancelReason,
}

/// What the core wants done, in order: persist `batch`, then start `runs` and abandon
/// `cancels`, then call [`Annealer::advance`]. Wake the core with
/// [`Annealer::handle_tick`] at `next_deadline`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Ready {
    /// Every change since the last `Ready`, to persist before acting on the runs.
    pub batch: Batch,
    /// Runs to start.
    pub runs: Vec<RunRequest>,
    /// Runs to abandon.
    pub cancels: Vec<Cancel>,
    /// The next time-out or retry, if any.
    pub next_deadline: Option<Timestamp>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty() && self.runs.is_empty() && self.cancels.is_empty()
    }
}

/// The anneal status as Crowbar's `GET /api/v2/anneal` reported it, checked in OCB15's order
/// (quirk Q11): a failure shows first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AnnealStatus {
    /// A committed noderole is in ERROR with no retry pending (HTTP 409).
    Failed,
    /// A run is in progress or a retry is pending (HTTP 202).
    Working,
    /// A committed noderole is TODO (HTTP 202).
    Scheduled,
    /// Nothing left to do (HTTP 200); BLOCKED-only or PROPOSED-only counts as finished.
    Finished,
}

impl AnnealStatus {
    /// Crowbar's word for it: `failed`, `working`, `scheduled`, `finished`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnealStatus::Failed => "failed",
            AnnealStatus::Working => "working",
            AnnealStatus::Scheduled => "scheduled",
            AnnealStatus::Finished => "finished",
        }
    }
}

impl std::fmt::Display for AnnealStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Annealer::new`] did with a noderole it found in TRANSITION (left by a crash).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Recovery {
    /// Put back to TODO (or BLOCKED) to run again.
    Rerun(NodeRoleId),
    /// A destructive role: put in ERROR, with a runlog that says why.
    Failed(NodeRoleId),
}

/// What became of a reported run end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Finished {
    /// Applied: the noderole is ACTIVE (or TODO/BLOCKED on a dead node).
    Succeeded,
    /// Applied: the noderole is in ERROR; `retry_at` is when it will be retried.
    Failed {
        /// When the retry policy retries it.
        retry_at: Option<Timestamp>,
    },
    /// Ignored: the run had already been abandoned (timed out, node died).
    Stale,
}

const NOT_QUEUED: u32 = u32::MAX;

/// Whether a noderole belongs in its node's run queue: TODO, in a committed deployment
/// (`committed`, asked only of a TODO noderole), every parent ACTIVE. The node's flags decide
/// whether the queue's head may start, not what is queued.
#[inline(always)]
fn queueable(
    cluster: &Cluster,
    id: NodeRoleId,
    state: NodeRoleState,
    committed: impl FnOnce() -> bool,
) -> bool {
    state == NodeRoleState::Todo && committed() && cluster.is_activatable(id)
}

/// What the core keeps of a node: see `Annealer::nodes`.
#[derive(Clone, Debug, Default)]
struct NodeSlot {
    /// Its runnable noderoles.
    queue: NodeQueue,
    /// Its queue's head as listed in `heads` (none while the node cannot start anything).
    head: Option<(u32, u64)>,
    /// Listed in `dirty_nodes`, for its head to be refreshed.
    dirty: bool,
}

/// Where a noderole is queued: see `Annealer::queued`.
#[derive(Clone, Copy, Debug)]
struct Queued {
    cohort: u32,
    node: NodeId,
}

impl Queued {
    const NONE: Queued = Queued {
        cohort: NOT_QUEUED,
        node: NodeId(0),
    };
}

/// A hasher for the annealer's own maps, keyed by noderole ids (failures, retries): one
/// multiply, instead of SipHash, whose resistance to chosen keys ids do not need.
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// The scheduling core. See the crate docs for the loop that drives it.
///
/// It keeps, beside the cluster, a queue per node of the noderoles that may run there (TODO,
/// committed deployment, every parent ACTIVE), ordered by (cohort, id), and the queue heads of
/// the nodes that can start something (alive, available, nothing in TRANSITION or ERROR) in
/// the same order. Picking a run costs a few word operations; every change is learnt from the
/// cluster's change journal ([`Cluster::take_changes`]), so a transition costs O(edges it
/// touches), never a scan of the graph.
pub struct Annealer {
    cluster: Cluster,
    config: AnnealerConfig,
    changes: Changes,
    /// Per noderole id: the cohort it is queued under (`NOT_QUEUED` when it is in no queue)
    /// and the node whose queue that is, side by side (read and written together).
    queued: Vec<Queued>,
    /// Per node id: its queue, its head as listed in `heads`, and whether it is listed in
    /// `dirty_nodes`, side by side (a wave sweeps the nodes: one cache line each).
    nodes: Vec<NodeSlot>,
    dirty_nodes: Vec<NodeId>,
    heads: CohortQueue,
    phases: Vec<Option<DeploymentPhase>>,
    pub(crate) running: Runs,
    next_run: u64,
    failures: IdMap<NodeRoleId, u32>,
    pub(crate) retries: BTreeSet<(Timestamp, NodeRoleId)>,
    pub(crate) retry_at: IdMap<NodeRoleId, Timestamp>,
    deadlines: BTreeSet<(Timestamp, RunId)>,
    /// The last `now` handed in, and the cluster's clock read then: one clock read per wave.
    stamp: Option<(Timestamp, Timestamp)>,
    /// The wave being started (kept for its memory).
    picks: Vec<NodeRoleId>,
    /// The children a success made activatable (kept for its memory).
    unblocked: Vec<NodeRoleId>,
    cancels: Vec<Cancel>,
    awaiting_advance: bool,
    recovered: Vec<Recovery>,
    started: u64,
    paused: bool,
}

impl std::fmt::Debug for Annealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Annealer")
            .field("cluster", &self.cluster)
            .field("config", &self.config)
            .field("running", &self.running.len())
            .field("ready_nodes", &self.heads.len())
            .finish_non_exhaustive()
    }
}

impl Annealer {
    /// Takes over `cluster`. Noderoles found in TRANSITION (no run of this annealer can exist
    /// yet, so a crash left them there) are recovered: re-run, or put in ERROR when their role
    /// is destructive (see [`Annealer::recovered`]). Costs one pass over the model.
    pub fn new(cluster: Cluster, config: AnnealerConfig) -> Result<Annealer, AnnealError> {
        if config.max_running == 0 {
            return Err(AnnealError::Config {
                what: "max_running must be at least 1",
            });
        }
        let running = Runs::with_capacity(
            config.max_running.min(cluster.noderole_count()),
            cluster.noderole_id_bound(),
        );
        let mut a = Annealer {
            cluster,
            config,
            changes: Changes::default(),
            queued: Vec::new(),
            nodes: Vec::new(),
            dirty_nodes: Vec::new(),
            heads: CohortQueue::default(),
            phases: Vec::new(),
            running,
            next_run: 1,
            failures: IdMap::default(),
            retries: BTreeSet::new(),
            retry_at: IdMap::default(),
            deadlines: BTreeSet::new(),
            stamp: None,
            picks: Vec::new(),
            unblocked: Vec::new(),
            cancels: Vec::new(),
            awaiting_advance: false,
            recovered: Vec::new(),
            started: 0,
            paused: false,
        };
        // Whatever is pending in the cluster belongs to the caller's history: it goes out with
        // the first Ready. From here on the cluster journals what changes.
        a.cluster.track_changes(true);
        for d in a
            .cluster
            .deployments()
            .map(|d| (d.id, d.phase))
            .collect::<Vec<_>>()
        {
            a.set_phase(d.0, d.1);
        }
        let all: Vec<(NodeRoleId, NodeRoleState)> =
            a.cluster.noderoles().map(|nr| (nr.id, nr.state)).collect();
        for (id, _) in &all {
            a.reevaluate(*id);
        }
        for n in a.cluster.nodes().map(|n| n.id).collect::<Vec<_>>() {
            a.touch_node(n);
        }
        a.refresh_nodes();
        for (id, state) in all {
            if state != NodeRoleState::Transition {
                continue;
            }
            let destructive = a
                .role_of(id)
                .is_some_and(|r| a.role_has(r, RoleFlag::Destructive));
            if destructive {
                let log = "the annealer stopped while this destructive role's jig was running; \
                           it may have partly run, so it is not run again automatically: check \
                           the node, then retry it"
                    .to_owned();
                a.cluster.fail(id, Cause::Recovery, Some(log))?;
                a.recovered.push(Recovery::Failed(id));
            } else {
                a.cluster.deactivate(id, Cause::Recovery)?;
                a.recovered.push(Recovery::Rerun(id));
            }
            a.absorb();
        }
        Ok(a)
    }

    /// The model, to read.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The model, to change directly. The core learns what changed from the cluster's change
    /// journal ([`Cluster::take_changes`], turned on by [`Annealer::new`]) at its next call, and
    /// hands the cluster's pending batch out in the next [`Ready`]: don't take either here.
    /// Prefer [`Annealer::update`], which also gives the change's error.
    pub fn cluster_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// Gives the cluster back (pending changes and running runs are dropped).
    pub fn into_cluster(mut self) -> Cluster {
        self.cluster.track_changes(false);
        self.cluster
    }

    /// The settings.
    pub fn config(&self) -> &AnnealerConfig {
        &self.config
    }

    /// Applies an operation to the model (commit a node, set a node's flags, retry a
    /// noderole...) and takes its consequences into account.
    pub fn update<T>(
        &mut self,
        f: impl FnOnce(&mut Cluster) -> Result<T, CoreError>,
    ) -> Result<T, AnnealError> {
        let r = f(&mut self.cluster);
        self.absorb();
        Ok(r?)
    }

    /// Stops (or resumes) starting runs; runs in progress go on and their results apply.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Whether starting runs is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Sets the time limit of runs of `jig` for roles that set none.
    pub fn set_jig_timeout(&mut self, jig: &str, timeout_ms: u64) {
        self.config.jig_timeouts.insert(jig.to_owned(), timeout_ms);
    }

    /// What [`Annealer::new`] did with noderoles a crash had left in TRANSITION.
    pub fn recovered(&self) -> &[Recovery] {
        &self.recovered
    }

    /// How many runs are in progress.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// How many runs were started since this annealer was made (destructive roles that
    /// skipped their jig included).
    pub fn runs_started(&self) -> u64 {
        self.started
    }

    /// The noderole of a run in progress.
    pub fn run_noderole(&self, run: RunId) -> Option<NodeRoleId> {
        self.running.get(run).map(Running::noderole)
    }

    /// The run in progress for a noderole.
    pub fn run_for(&self, noderole: NodeRoleId) -> Option<RunId> {
        self.running.of(noderole).map(|r| r.run)
    }

    /// Stamps the cluster's changes until [`Annealer::unpin_time`] with its clock as read at
    /// the first call with this `now`: the clock is read once per wave, not per transition.
    fn pin_time(&mut self, now: Timestamp) {
        let at = match self.stamp {
            Some((n, at)) if n == now => at,
            _ => {
                let at = self.cluster.clock().now();
                self.stamp = Some((now, at));
                at
            }
        };
        self.cluster.set_time(Some(at));
    }

    fn unpin_time(&mut self) {
        self.cluster.set_time(None);
    }

    /// When a failed noderole will be retried.
    pub fn retry_pending(&self, noderole: NodeRoleId) -> Option<Timestamp> {
        self.retry_at.get(&noderole).copied()
    }

    /// Whether nothing is running, nothing can start and no retry is pending.
    pub fn is_idle(&mut self) -> bool {
        self.absorb();
        self.running.is_empty() && self.heads.is_empty() && self.retries.is_empty()
    }

    /// The anneal status over committed deployments, as Crowbar reported it.
    pub fn status(&self) -> AnnealStatus {
        let mut count = [0u32; 3];
        for d in self.cluster.deployments() {
            if d.phase != DeploymentPhase::Committed {
                continue;
            }
            count[0] += self.cluster.count_in_state(d.id, NodeRoleState::Error);
            count[1] += self.cluster.count_in_state(d.id, NodeRoleState::Transition);
            count[2] += self.cluster.count_in_state(d.id, NodeRoleState::Todo);
        }
        let pending = self.retries.len() as u32;
        if count[0] > pending {
            AnnealStatus::Failed
        } else if count[1] > 0 || pending > 0 {
            AnnealStatus::Working
        } else if count[2] > 0 {
            AnnealStatus::Scheduled
        } else {
            AnnealStatus::Finished
        }
    }

    /// The earliest time-out or retry.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let t = self.deadlines.first().map(|d| d.0);
        let r = self.retries.first().map(|d| d.0);
        match (t, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether [`Annealer::ready`] has something to hand out.
    pub fn has_ready(&mut self) -> bool {
        self.absorb();
        !self.awaiting_advance
            && (self.cluster.has_pending()
                || !self.cancels.is_empty()
                || (!self.paused
                    && !self.heads.is_empty()
                    && self.running.len() < self.config.max_running))
    }

    /// Starts what may start, under the caps, and hands out everything to do. Until
    /// [`Annealer::advance`] acknowledges it, further calls return an empty `Ready`: the
    /// batch must be persisted before the runs start.
    pub fn ready(&mut self, now: Timestamp) -> Ready {
        self.absorb();
        if self.awaiting_advance {
            return Ready::default();
        }
        // At most one run per node with a head, under the cap: sized once, not grown by
        // doubling through a wave of a thousand.
        let room = self.config.max_running.saturating_sub(self.running.len());
        let mut runs = Vec::with_capacity(if self.paused {
            0
        } else {
            room.min(self.heads.len())
        });
        self.pin_time(now);
        let mut picks = std::mem::take(&mut self.picks);
        while !self.paused && self.running.len() < self.config.max_running {
            // Pick the whole wave first (one per node: a picked node has no head until the
            // absorb below), in one descent of the heads' bitset; the starts, which need the
            // whole core, follow.
            picks.clear();
            let room = self.config.max_running - self.running.len();
            let (queued, nodes) = (&self.queued, &mut self.nodes);
            self.heads.drain_first(|_, id| {
                let id = NodeRoleId(id);
                nodes[queued[id.0 as usize].node.0 as usize].head = None;
                picks.push(id);
                picks.len() < room
            });
            if picks.is_empty() {
                break;
            }
            for &id in &picks {
                self.start(id, now, &mut runs);
            }
        }
        self.picks = picks;
        self.unpin_time();
        // What the starts changed (the nodes now busy, children a destructive role's instant
        // success unblocked) is learnt once for the whole wave.
        self.absorb();
        let ready = Ready {
            batch: self.cluster.take_batch(),
            runs,
            cancels: std::mem::take(&mut self.cancels),
            next_deadline: self.next_deadline(),
        };
        self.awaiting_advance = !ready.is_empty();
        ready
    }

    /// Starts a picked noderole's run (or its instant success, for a destructive role that
    /// ran once).
    fn start(&mut self, id: NodeRoleId, now: Timestamp, runs: &mut Vec<RunRequest>) {
        let node = self.queued[id.0 as usize].node;
        // Its node is not touched: the wave took the node's head out of `heads` already, and
        // once the run starts the node is busy, with no head to list. What else changes (a
        // start refused, a destructive role's instant success, a hook's doing) touches it.
        self.unqueue(id, node);
        debug_assert!(self.cluster.is_runnable(id), "{id} picked but not runnable");
        let nr = self.cluster.brief(id).expect("queued noderoles exist");
        let role = nr.role;
        let skip_jig = nr.run_count > 0 && self.role_has(role, RoleFlag::Destructive);
        // The core knows what a lean start changes (its noderole is TRANSITION, out of its
        // queue; its node, now busy, has no head to list): that start is not journaled. A
        // start through hooks is, as they may change more.
        if let Err(e) = self.cluster.start_run_quietly(id) {
            // A role hook refused the start: leave the noderole as it is.
            tracing::warn!(noderole = %id, error = %e, "could not start a run");
            self.touch_node(node);
            return;
        }
        self.started += 1;
        if skip_jig {
            let log = "destructive role already ran once: jig not run again".to_owned();
            let result = RunResult::Succeeded {
                wall: None,
                runlog: log,
            };
            if let Err(e) = self.cluster.finish_run(id, result) {
                tracing::warn!(noderole = %id, error = %e, "could not finish a run");
            }
            return;
        }
        let run = RunId::new(self.next_run, id);
        self.next_run += 1;
        let deadline = self
            .timeout_for(role)
            .map(|ms| Timestamp(now.0.saturating_add(ms)));
        if let Some(d) = deadline {
            self.deadlines.insert((d, run));
        }
        self.running.insert(Running {
            run,
            started: now,
            deadline,
        });
        // Failures are rare: do not hash for every run.
        let failures = if self.failures.is_empty() {
            0
        } else {
            self.failures.get(&id).copied().unwrap_or(0)
        };
        runs.push(RunRequest {
            run,
            noderole: id,
            node,
            role,
            attempt: failures + 1,
            run_count: nr.run_count,
            deadline,
        });
    }

    /// Acknowledges the last [`Ready`]: its batch is persisted and its runs are started.
    pub fn advance(&mut self) {
        self.awaiting_advance = false;
    }

    /// Applies the end of a run. Success stores the wall and makes the noderole ACTIVE (its
    /// children whose parents are all ACTIVE become TODO); failure puts it in ERROR (its
    /// descendants BLOCKED) and, when the failure is retryable and the role's retry policy
    /// allows, schedules a retry after the policy's backoff. A run that was abandoned (timed
    /// out, node died) is ignored.
    pub fn handle_run_finished(
        &mut self,
        run: RunId,
        outcome: Outcome,
        now: Timestamp,
    ) -> Finished {
        self.pin_time(now);
        let finished = self.finish_one(run, outcome, now);
        self.unpin_time();
        finished
    }

    /// [`Annealer::handle_run_finished`] for a wave of results, applied in order: what a
    /// driver that collects the results of instant jigs hands back at once. The time is
    /// pinned once for the wave and the per-run work runs in one loop.
    ///
    /// ```
    /// use crowbar_anneal::{Annealer, AnnealerConfig};
    /// use crowbar_core::{Cluster, NodeRoleState, NodeSpec, RoleSpec, Timestamp};
    /// use crowbar_jig::JigOutput;
    ///
    /// let mut cluster = Cluster::new();
    /// let role = cluster.create_role(RoleSpec::new("base"))?;
    /// let d = cluster.create_deployment("lab", None)?;
    /// cluster.commit_deployment(d)?;
    /// let mut ids = Vec::new();
    /// for name in ["a.lab.example", "b.lab.example"] {
    ///     let node = cluster.create_node(NodeSpec::new(name).alive(true))?;
    ///     ids.push(cluster.bind(role, node, Some(d))?);
    ///     cluster.commit_node(node)?;
    /// }
    /// let mut annealer = Annealer::new(cluster, AnnealerConfig::default())?;
    /// let now = Timestamp(0);
    /// let ready = annealer.ready(now);
    /// annealer.advance();
    /// assert_eq!(ready.runs.len(), 2);
    /// let results = ready.runs.iter().map(|r| (r.run, Ok(JigOutput::empty())));
    /// annealer.handle_runs_finished(results, now);
    /// for id in ids {
    ///     assert_eq!(annealer.cluster().noderole(id).unwrap().state, NodeRoleState::Active);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_runs_finished(
        &mut self,
        results: impl IntoIterator<Item = (RunId, Outcome)>,
        now: Timestamp,
    ) {
        self.pin_time(now);
        for (run, outcome) in results {
            self.finish_one(run, outcome, now);
        }
        self.unpin_time();
    }

    /// What [`Annealer::handle_runs_finished`] does for runs that all succeeded with nothing
    /// to report ([`JigOutput::is_empty`](crowbar_jig::JigOutput::is_empty)), as
    /// `Ok(JigOutput::empty())` each: the common result of instant jigs such as `noop`, handed
    /// back as bare run ids, with no outcome to move through the call.
    ///
    /// ```
    /// use crowbar_anneal::{Annealer, AnnealerConfig};
    /// use crowbar_core::{Cluster, NodeRoleState, NodeSpec, RoleSpec, Timestamp};
    ///
    /// let mut cluster = Cluster::new();
    /// let role = cluster.create_role(RoleSpec::new("base"))?;
    /// let d = cluster.create_deployment("lab", None)?;
    /// cluster.commit_deployment(d)?;
    /// let node = cluster.create_node(NodeSpec::new("a.lab.example").alive(true))?;
    /// let id = cluster.bind(role, node, Some(d))?;
    /// cluster.commit_node(node)?;
    /// let mut annealer = Annealer::new(cluster, AnnealerConfig::default())?;
    /// let ready = annealer.ready(Timestamp(0));
    /// annealer.advance();
    /// annealer.handle_runs_succeeded(ready.runs.iter().map(|r| r.run), Timestamp(0));
    /// assert_eq!(annealer.cluster().noderole(id).unwrap().state, NodeRoleState::Active);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_runs_succeeded(&mut self, runs: impl IntoIterator<Item = RunId>, now: Timestamp) {
        self.pin_time(now);
        for run in runs {
            if let Some((id, node)) = self.end_run(run) {
                self.succeeded(id, node, None, String::new());
            }
        }
        self.unpin_time();
    }

    /// The end of one run, with the time pinned.
    #[inline(always)]
    fn finish_one(&mut self, run: RunId, outcome: Outcome, now: Timestamp) -> Finished {
        match self.end_run(run) {
            Some((id, node)) => self.apply_outcome(id, node, outcome, now),
            None => Finished::Stale,
        }
    }

    /// Takes `run` out of the runs in progress and returns its noderole and node, if its
    /// result still applies: `None` when the run is unknown or its noderole moved out of TRANSITION since
    /// it started (its node died, an operator acted; the run needs no cancelling).
    #[inline(always)]
    fn end_run(&mut self, run: RunId) -> Option<(NodeRoleId, NodeId)> {
        // No `absorb` here: the changes of a whole wave of results are learnt at once, at the
        // next `ready`. What must be current is read from the cluster directly.
        let r = self.running.remove(run)?;
        if let Some(d) = r.deadline {
            self.deadlines.remove(&(d, run));
        }
        let id = r.noderole();
        let nr = self.cluster.brief(id)?;
        (nr.state == NodeRoleState::Transition).then_some((id, nr.node))
    }

    /// A success: stores the wall and the runlog and makes the noderole ACTIVE.
    #[inline(always)]
    fn succeeded(
        &mut self,
        id: NodeRoleId,
        node: NodeId,
        wall: Option<Value>,
        runlog: String,
    ) -> Finished {
        let result = RunResult::Succeeded { wall, runlog };
        match self
            .cluster
            .finish_run_quietly(id, result, &mut self.unblocked)
        {
            Ok(quiet) => {
                if !self.failures.is_empty() {
                    self.failures.remove(&id);
                }
                if quiet {
                    // Nothing journaled: the core does what reading the changes back would.
                    // The noderole is ACTIVE, with no run and no queue entry; its node is
                    // idle. Its children whose parents are now all ACTIVE may queue (none
                    // had a run or a retry: a run is TRANSITION, a retry ERROR, and neither
                    // changed).
                    debug_assert!(!self.is_queued(id) && self.running.of(id).is_none());
                    self.settle(id, NodeRoleState::Active, node);
                    for i in 0..self.unblocked.len() {
                        let child = self.unblocked[i];
                        debug_assert!(!self.retry_at.contains_key(&child));
                        self.reevaluate(child);
                    }
                    self.unblocked.clear();
                }
                Finished::Succeeded
            }
            Err(e) => {
                // The wall was not an object, or a hook refused: the run failed.
                let message = e.to_string();
                let _ = self.cluster.fail(
                    id,
                    Cause::JigFailed { message },
                    Some(format!("the run's result was refused: {e}")),
                );
                Finished::Failed { retry_at: None }
            }
        }
    }

    fn apply_outcome(
        &mut self,
        id: NodeRoleId,
        node: NodeId,
        outcome: Outcome,
        now: Timestamp,
    ) -> Finished {
        match outcome {
            Ok(out) => self.succeeded(id, node, out.wall, out.runlog),
            Err(e) => {
                let retryable = e.retryable();
                let result = RunResult::Failed {
                    message: e.to_string(),
                    runlog: e.runlog().to_owned(),
                };
                if self.cluster.finish_run(id, result).is_err() {
                    let _ = self.cluster.fail(
                        id,
                        Cause::JigFailed {
                            message: e.to_string(),
                        },
                        None,
                    );
                }
                Finished::Failed {
                    retry_at: self.schedule_retry(id, retryable, now),
                }
            }
        }
    }

    /// Moves time to `now`: runs past their deadline are abandoned and their noderoles put in
    /// ERROR (cause `Timeout`, then retried as the role's policy allows); due retries put
    /// ERROR noderoles back to TODO (cause `Retry`).
    pub fn handle_tick(&mut self, now: Timestamp) {
        self.absorb();
        while let Some(&(at, run)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(r) = self.running.remove(run) else {
                continue;
            };
            self.cancels.push(Cancel {
                run,
                noderole: r.noderole(),
                reason: CancelReason::Timeout,
            });
            let limit = at.0.saturating_sub(r.started.0);
            let log = format!("timed out after {limit} ms in TRANSITION; the run was abandoned");
            let _ = self.cluster.fail(r.noderole(), Cause::Timeout, Some(log));
            self.schedule_retry(r.noderole(), true, now);
            self.absorb();
        }
        while let Some(&(at, id)) = self.retries.first() {
            if at > now {
                break;
            }
            self.retries.pop_first();
            self.retry_at.remove(&id);
            let state = self.cluster.brief(id).map(|n| n.state);
            if state == Some(NodeRoleState::Error) {
                // Refused when a parent is no longer ACTIVE: it then waits for an operator.
                let _ = self.cluster.retry(id, Cause::Retry);
            }
            self.absorb();
        }
    }

    /// Sets a node's `alive` flag. A node that dies has every noderole put back to TODO or
    /// BLOCKED, and its run (if any) is abandoned; it re-runs when the node comes back.
    pub fn handle_node_alive(&mut self, node: NodeId, alive: bool) -> Result<(), AnnealError> {
        self.update(|c| c.set_node_alive(node, alive))
    }

    /// Sets a node's `available` flag. Nothing new starts on an unavailable node.
    pub fn handle_node_available(
        &mut self,
        node: NodeId,
        available: bool,
    ) -> Result<(), AnnealError> {
        self.update(|c| c.set_node_available(node, available))
    }

    /// An operator's retry of a noderole in ERROR (Crowbar's `todo!`).
    pub fn handle_retry(&mut self, noderole: NodeRoleId) -> Result<(), AnnealError> {
        self.update(|c| c.retry(noderole, Cause::Operator))?;
        self.drop_retry(noderole);
        self.failures.remove(&noderole);
        Ok(())
    }

    fn schedule_retry(
        &mut self,
        id: NodeRoleId,
        retryable: bool,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let n = self.failures.entry(id).or_insert(0);
        *n += 1;
        let attempt = *n;
        if !retryable {
            return None;
        }
        let role = self.role_of(id)?;
        let delay = self.cluster.role(role)?.retry.delay(attempt)?;
        if self.cluster.brief(id)?.state != NodeRoleState::Error {
            return None;
        }
        let at = Timestamp(now.0.saturating_add(delay));
        if let Some(old) = self.retry_at.insert(id, at) {
            self.retries.remove(&(old, id));
        }
        self.retries.insert((at, id));
        Some(at)
    }

    fn timeout_for(&self, role: RoleId) -> Option<u64> {
        let r = self.cluster.role(role)?;
        r.timeout_ms
            .or_else(|| self.config.jig_timeouts.get(&r.jig).copied())
            .or(self.config.default_timeout_ms)
    }

    fn role_of(&self, id: NodeRoleId) -> Option<RoleId> {
        self.cluster.brief(id).map(|n| n.role)
    }

    fn role_has(&self, role: RoleId, flag: RoleFlag) -> bool {
        self.cluster.role(role).is_some_and(|r| r.has(flag))
    }

    fn grow(&mut self, id: NodeRoleId) {
        let i = id.0 as usize;
        if self.queued.len() <= i {
            let n = (i + 1).max(self.cluster.noderole_id_bound());
            self.queued.resize(n, Queued::NONE);
        }
    }

    fn grow_node(&mut self, node: NodeId) {
        let i = node.0 as usize;
        if self.nodes.len() <= i {
            let n = (i + 1).max(self.cluster.node_id_bound());
            self.nodes.resize_with(n, NodeSlot::default);
        }
    }

    fn set_phase(&mut self, d: DeploymentId, phase: DeploymentPhase) -> bool {
        let i = d.0 as usize;
        if self.phases.len() <= i {
            self.phases.resize(i + 1, None);
        }
        let changed = self.phases[i] != Some(phase);
        self.phases[i] = Some(phase);
        changed
    }

    fn committed(&self, d: DeploymentId) -> bool {
        self.phases.get(d.0 as usize).copied().flatten() == Some(DeploymentPhase::Committed)
    }

    /// Takes the cluster's change journal and updates the queues from it: O(changes).
    pub(crate) fn absorb(&mut self) {
        if !self.cluster.has_changes() {
            // Nodes the core touched itself (see `succeeded`) still need their heads.
            self.refresh_nodes();
            return;
        }
        let mut changes = std::mem::take(&mut self.changes);
        self.cluster.take_changes(&mut changes);
        for &d in &changes.deployments {
            let phase = self.cluster.deployment(d).map(|d| d.phase);
            let changed = match phase {
                Some(p) => self.set_phase(d, p),
                None => false,
            };
            if changed {
                for id in self.cluster.noderoles_in(d) {
                    self.reevaluate(id);
                }
            }
        }
        for &n in &changes.nodes {
            self.touch_node(n);
        }
        for &id in &changes.noderoles {
            self.observe(id);
        }
        self.changes = changes;
        self.refresh_nodes();
    }

    /// Brings what the core keeps of a noderole in step with the model.
    fn observe(&mut self, id: NodeRoleId) {
        let Some(nr) = self.cluster.brief(id) else {
            self.forget(id);
            return;
        };
        if nr.state != NodeRoleState::Transition {
            // Moved out of TRANSITION under a running jig (its node died, an operator
            // acted): abandon the run.
            self.abandon_run(id);
        }
        self.settle(id, nr.state, nr.node);
        self.requeue(id, nr);
    }

    /// What any change of a noderole asks of the core besides its run and its queue: a retry
    /// is due only in ERROR, and its node may have become busy or idle.
    #[inline]
    fn settle(&mut self, id: NodeRoleId, state: NodeRoleState, node: NodeId) {
        if state != NodeRoleState::Error && !self.retry_at.is_empty() {
            self.drop_retry(id);
        }
        self.touch_node(node);
    }

    fn forget(&mut self, id: NodeRoleId) {
        self.grow(id);
        let i = id.0 as usize;
        let Queued { cohort, node } = self.queued[i];
        if cohort != NOT_QUEUED {
            // The noderole is gone from the cluster: its node is remembered here.
            self.nodes[node.0 as usize].queue.remove((cohort, id.0));
            self.queued[i].cohort = NOT_QUEUED;
            self.touch_node(node);
        }
        self.abandon_run(id);
        self.drop_retry(id);
    }

    /// Ends the run of `id` in progress, if any, and asks the driver to cancel it.
    fn abandon_run(&mut self, id: NodeRoleId) {
        if let Some(r) = self.running.take_of(id) {
            if let Some(d) = r.deadline {
                self.deadlines.remove(&(d, r.run));
            }
            self.cancels.push(Cancel {
                run: r.run,
                noderole: id,
                reason: CancelReason::NodeLost,
            });
        }
    }

    /// Drops the retry scheduled for `id`, if any.
    fn drop_retry(&mut self, id: NodeRoleId) {
        if let Some(at) = self.retry_at.remove(&id) {
            self.retries.remove(&(at, id));
        }
    }

    /// Puts the noderole in or out of its node's queue.
    fn reevaluate(&mut self, id: NodeRoleId) {
        if let Some(nr) = self.cluster.brief(id) {
            self.requeue(id, nr);
        }
    }

    /// [`Annealer::reevaluate`] with the noderole's facts already read.
    fn requeue(&mut self, id: NodeRoleId, nr: NodeRoleBrief) {
        let want = if queueable(&self.cluster, id, nr.state, || {
            self.committed(nr.deployment)
        }) {
            nr.cohort
        } else {
            NOT_QUEUED
        };
        let node = nr.node;
        self.grow(id);
        let have = self.queued[id.0 as usize].cohort;
        if have == want {
            return;
        }
        self.grow_node(node);
        let q = &mut self.nodes[node.0 as usize].queue;
        if have != NOT_QUEUED {
            q.remove((have, id.0));
        }
        if want != NOT_QUEUED {
            q.insert((want, id.0));
        }
        self.queued[id.0 as usize] = Queued { cohort: want, node };
        self.touch_node(node);
    }

    /// Takes `id` out of its node's queue, without touching the node: the caller does when
    /// the node's head may need a refresh.
    fn unqueue(&mut self, id: NodeRoleId, node: NodeId) {
        let q = &mut self.queued[id.0 as usize];
        let have = std::mem::replace(&mut q.cohort, NOT_QUEUED);
        if have != NOT_QUEUED {
            self.nodes[node.0 as usize].queue.remove((have, id.0));
        }
    }

    #[inline]
    fn touch_node(&mut self, node: NodeId) {
        self.grow_node(node);
        let slot = &mut self.nodes[node.0 as usize];
        if !slot.dirty {
            slot.dirty = true;
            self.dirty_nodes.push(node);
        }
    }

    fn refresh_nodes(&mut self) {
        while let Some(node) = self.dirty_nodes.pop() {
            let slot = &mut self.nodes[node.0 as usize];
            slot.dirty = false;
            let head = if self.cluster.node_can_start(node) {
                slot.queue.first()
            } else {
                None
            };
            if slot.head != head {
                if let Some((cohort, id)) = slot.head {
                    self.heads.remove(cohort, id);
                }
                if let Some((cohort, id)) = head {
                    self.heads.insert(cohort, id);
                }
                slot.head = head;
            }
        }
    }

    /// Recomputes from the model what the core keeps step by step (which noderoles are
    /// queued, under which cohort, on which node; each node's queue and head, and the heads
    /// listed; the runs in progress and their deadlines; the pending retries) and says which
    /// part disagrees: O(model), for tests and debugging. Learns the pending changes first, as
    /// every call does. [`Simulation`](crate::Simulation) runs it after every step in debug
    /// builds.
    pub fn check_consistency(&mut self) -> Result<(), String> {
        self.absorb();
        let c = &self.cluster;
        let mut per_node: HashMap<NodeId, Vec<(u32, u64)>> = HashMap::new();
        for nr in c.noderoles() {
            // The phase from the model, not the core's copy of it, which is checked so.
            let runnable = queueable(c, nr.id, nr.state, || {
                c.deployment(nr.deployment).map(|d| d.phase) == Some(DeploymentPhase::Committed)
            });
            let q = self
                .queued
                .get(nr.id.0 as usize)
                .copied()
                .unwrap_or(Queued::NONE);
            if runnable {
                if q.cohort != nr.cohort || q.node != nr.node {
                    return Err(format!(
                        "{} should be queued under cohort {} on {}; it is {q:?}",
                        nr.id, nr.cohort, nr.node
                    ));
                }
                per_node
                    .entry(nr.node)
                    .or_default()
                    .push((nr.cohort, nr.id.0));
            } else if q.cohort != NOT_QUEUED {
                return Err(format!("{} is queued but cannot run ({})", nr.id, nr.state));
            }
        }
        for (i, q) in self.queued.iter().enumerate() {
            let id = NodeRoleId(i as u64);
            if q.cohort != NOT_QUEUED && c.brief(id).is_none() {
                return Err(format!("{id} is queued but no longer exists"));
            }
        }
        let mut heads = 0;
        for (i, slot) in self.nodes.iter().enumerate() {
            let node = NodeId(i as u64);
            let mut want = per_node.remove(&node).unwrap_or_default();
            want.sort_unstable();
            let have = slot.queue.to_vec();
            if have != want {
                return Err(format!(
                    "the queue of {node} is {have:?}; it should be {want:?}"
                ));
            }
            let head = want.first().copied().filter(|_| c.node_can_start(node));
            if slot.head != head {
                return Err(format!(
                    "{node} lists {:?} as its head; it should be {head:?}",
                    slot.head
                ));
            }
            if slot.dirty {
                return Err(format!("{node} still waits for its head to be refreshed"));
            }
            if let Some((cohort, id)) = head {
                heads += 1;
                if !self.heads.contains(cohort, id) {
                    return Err(format!("the head {id} of {node} is not among the heads"));
                }
            }
        }
        if let Some(node) = per_node.keys().next() {
            return Err(format!("{node} has runnable noderoles but no queue"));
        }
        if self.heads.len() != heads {
            return Err(format!(
                "{} heads are listed; {heads} nodes have one",
                self.heads.len()
            ));
        }
        let mut deadlines = 0;
        let mut runs = 0;
        for r in self.running.iter() {
            runs += 1;
            let id = r.noderole();
            if c.brief(id).map(|b| b.state) != Some(NodeRoleState::Transition) {
                return Err(format!(
                    "{} of {id} is in progress but {id} is not in TRANSITION",
                    r.run
                ));
            }
            if self.running.of(id).map(|x| x.run) != Some(r.run) {
                return Err(format!("{} is not found by its noderole {id}", r.run));
            }
            if let Some(d) = r.deadline {
                deadlines += 1;
                if !self.deadlines.contains(&(d, r.run)) {
                    return Err(format!("the deadline of {} is not listed", r.run));
                }
            }
        }
        if runs != self.running.len() || deadlines != self.deadlines.len() {
            return Err(format!(
                "{runs} runs with {deadlines} deadlines in progress; counted {} and {}",
                self.running.len(),
                self.deadlines.len()
            ));
        }
        if self.retries.len() != self.retry_at.len() {
            return Err(format!(
                "{} retries scheduled, {} noderoles waiting for one",
                self.retries.len(),
                self.retry_at.len()
            ));
        }
        for &(at, id) in &self.retries {
            if self.retry_at.get(&id) != Some(&at) {
                return Err(format!("the retry of {id} at {} is not indexed", at.0));
            }
            if c.brief(id).map(|b| b.state) != Some(NodeRoleState::Error) {
                return Err(format!("a retry of {id} is pending but it is not in ERROR"));
            }
        }
        Ok(())
    }

    /// The queue head that goes before `id` on its node, if any (for `explain`).
    pub(crate) fn ahead_on_node(&self, id: NodeRoleId) -> Option<NodeRoleId> {
        let node = self.cluster.brief(id)?.node;
        let q = &self.nodes.get(node.0 as usize)?.queue;
        q.first().map(|k| NodeRoleId(k.1)).filter(|h| *h != id)
    }

    /// Whether `id` is in its node's queue.
    pub(crate) fn is_queued(&self, id: NodeRoleId) -> bool {
        self.queued
            .get(id.0 as usize)
            .is_some_and(|q| q.cohort != NOT_QUEUED)
    }

    /// The start time of a run.
    pub(crate) fn run_started(&self, run: RunId) -> Option<Timestamp> {
        self.running.get(run).map(|r| r.started)
    }
}
