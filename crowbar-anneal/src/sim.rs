//! Deterministic simulation: the real scheduling core under simulated time, with jig
//! durations, failures, hangs and node deaths drawn from a seeded generator. The same seed and
//! model give the same history.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use crowbar_core::{HistoryEntry, ManualClock, NodeId, NodeRoleId, NodeRoleState, Timestamp};
use crowbar_jig::{CancelReason, JigError, JigOutput};

use crate::{AnnealStatus, Annealer, RunId};

/// SplitMix64: a small, fast, seedable generator, stable across releases.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `per_mille`/1000.
    pub(crate) fn chance(&mut self, per_mille: u32) -> bool {
        (self.next_u64() % 1000) < u64::from(per_mille)
    }
}

/// How the simulated world behaves. Probabilities are per mille, per run.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SimConfig {
    /// The generator's seed.
    pub seed: u64,
    /// The shortest run, in ms.
    pub min_run_ms: u64,
    /// The longest run, in ms.
    pub max_run_ms: u64,
    /// How often a run fails.
    pub failure_per_mille: u32,
    /// How often a failure is retryable.
    pub retryable_per_mille: u32,
    /// How often a run hangs (never returns; only a timeout ends it).
    pub hang_per_mille: u32,
    /// How often a run's node dies half-way through it.
    pub node_death_per_mille: u32,
    /// How long a dead node stays dead.
    pub revive_after_ms: u64,
    /// A bound on simulation steps, so that a bug cannot loop forever.
    pub max_steps: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            min_run_ms: 1_000,
            max_run_ms: 60_000,
            failure_per_mille: 0,
            retryable_per_mille: 0,
            hang_per_mille: 0,
            node_death_per_mille: 0,
            revive_after_ms: 300_000,
            max_steps: 10_000_000,
        }
    }
}

/// What happened to runs and nodes, in order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SimEvent {
    /// A run started.
    Started {
        /// When.
        at: Timestamp,
        /// The run.
        run: RunId,
        /// Its noderole.
        noderole: NodeRoleId,
    },
    /// A run ended and its result was applied.
    Finished {
        /// When.
        at: Timestamp,
        /// The run.
        run: RunId,
        /// Whether it succeeded.
        ok: bool,
    },
    /// The annealer abandoned a run.
    Cancelled {
        /// When.
        at: Timestamp,
        /// The run.
        run: RunId,
        /// Why.
        reason: CancelReason,
    },
    /// A node died.
    NodeDied {
        /// When.
        at: Timestamp,
        /// The node.
        node: NodeId,
    },
    /// A node came back.
    NodeRevived {
        /// When.
        at: Timestamp,
        /// The node.
        node: NodeId,
    },
}

/// The outcome of [`Simulation::run`].
#[derive(Clone, PartialEq, Debug)]
pub struct SimReport {
    /// Every state change, as the store would have received it.
    pub history: Vec<HistoryEntry>,
    /// Runs and node events.
    pub events: Vec<SimEvent>,
    /// Simulated time at the end.
    pub end: Timestamp,
    /// The anneal status at the end.
    pub status: AnnealStatus,
    /// The most runs at once.
    pub peak_running: usize,
    /// Broken invariants (two runs on a node, cap exceeded, a run whose parent was not
    /// ACTIVE, a run that never ended, no progress): empty when all is well.
    pub violations: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Pending {
    Finish(RunId, bool, bool),
    Kill(NodeId),
    Revive(NodeId),
}

/// Runs an [`Annealer`] to stability under simulated time.
///
/// The annealer's cluster must stamp its history with `clock` (build it with
/// `Cluster::with_clock(clock.clone())`), so that the history follows simulated time.
///
/// Besides the invariants of runs (one per node, the cap, parents ACTIVE, every run ends), it
/// checks at the end that the model's indices and the core's own state agree with the model
/// ([`Cluster::check_consistency`](crowbar_core::Cluster::check_consistency),
/// [`Annealer::check_consistency`]), and in debug builds the core's state after every step
/// (O(model) each): any disagreement is a violation.
pub struct Simulation {
    annealer: Annealer,
    clock: Arc<ManualClock>,
    config: SimConfig,
    rng: SplitMix64,
    now: Timestamp,
    seq: u64,
    queue: BinaryHeap<Reverse<(Timestamp, u64, Pending)>>,
    active: HashMap<RunId, (NodeRoleId, NodeId)>,
    on_node: HashMap<NodeId, RunId>,
    report: SimReport,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("config", &self.config)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Simulation {
    /// A simulation of `annealer` starting at the clock's time.
    pub fn new(annealer: Annealer, clock: Arc<ManualClock>, config: SimConfig) -> Simulation {
        use crowbar_core::Clock;
        let now = clock.now();
        Simulation {
            annealer,
            clock,
            rng: SplitMix64::new(config.seed),
            config,
            now,
            seq: 0,
            queue: BinaryHeap::new(),
            active: HashMap::new(),
            on_node: HashMap::new(),
            report: SimReport {
                history: Vec::new(),
                events: Vec::new(),
                end: now,
                status: AnnealStatus::Finished,
                peak_running: 0,
                violations: Vec::new(),
            },
        }
    }

    /// The annealer, to inspect the model after the run.
    pub fn annealer(&mut self) -> &mut Annealer {
        &mut self.annealer
    }

    fn push(&mut self, at: Timestamp, p: Pending) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, p)));
    }

    fn violation(&mut self, v: String) {
        if self.report.violations.len() < 20 {
            self.report.violations.push(v);
        }
    }

    fn drain(&mut self) {
        loop {
            let ready = self.annealer.ready(self.now);
            if ready.is_empty() {
                break;
            }
            self.report.history.extend(ready.batch.history);
            for c in ready.cancels {
                if let Some((_, node)) = self.active.remove(&c.run) {
                    self.on_node.remove(&node);
                }
                self.report.events.push(SimEvent::Cancelled {
                    at: self.now,
                    run: c.run,
                    reason: c.reason,
                });
            }
            for r in ready.runs {
                if let Some(other) = self.on_node.get(&r.node) {
                    let v = format!("{} started on {} while {other} runs there", r.run, r.node);
                    self.violation(v);
                }
                let cluster = self.annealer.cluster();
                let bad: Vec<String> = cluster
                    .parents(r.noderole)
                    .iter()
                    .filter_map(|p| {
                        let state = cluster.noderole(*p).map(|n| n.state);
                        (state != Some(NodeRoleState::Active))
                            .then(|| format!("{} started with parent {p} in {state:?}", r.noderole))
                    })
                    .collect();
                for v in bad {
                    self.violation(v);
                }
                self.active.insert(r.run, (r.noderole, r.node));
                self.on_node.insert(r.node, r.run);
                let cap = self.annealer.config().max_running;
                if self.active.len() > cap {
                    let v = format!("{} runs at once, cap {cap}", self.active.len());
                    self.violation(v);
                }
                self.report.peak_running = self.report.peak_running.max(self.active.len());
                self.report.events.push(SimEvent::Started {
                    at: self.now,
                    run: r.run,
                    noderole: r.noderole,
                });
                let cfg = &self.config;
                let (lo, hi) = (cfg.min_run_ms, cfg.max_run_ms);
                let (fail, retry, hang, death) = (
                    cfg.failure_per_mille,
                    cfg.retryable_per_mille,
                    cfg.hang_per_mille,
                    cfg.node_death_per_mille,
                );
                let duration = self.rng.range(lo, hi);
                let fails = self.rng.chance(fail);
                let retryable = self.rng.chance(retry);
                let hangs = self.rng.chance(hang);
                let dies = self.rng.chance(death);
                if !hangs {
                    let at = Timestamp(self.now.0 + duration);
                    self.push(at, Pending::Finish(r.run, !fails, retryable));
                }
                if dies {
                    let at = Timestamp(self.now.0 + duration / 2);
                    self.push(at, Pending::Kill(r.node));
                    let back = Timestamp(at.0 + self.config.revive_after_ms);
                    self.push(back, Pending::Revive(r.node));
                }
            }
            self.annealer.advance();
        }
    }

    /// Runs until nothing is left to do (no run, no pending event, no deadline), then
    /// reports.
    pub fn run(mut self) -> SimReport {
        self.run_to_end()
    }

    /// Like [`Simulation::run`], keeping the simulation (and its annealer) to inspect after.
    pub fn run_to_end(&mut self) -> SimReport {
        let mut steps = 0usize;
        loop {
            self.drain();
            let next_event = self.queue.peek().map(|r| r.0.0);
            let next = match (next_event, self.annealer.next_deadline()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            steps += 1;
            if steps > self.config.max_steps {
                self.violation(format!("no stability after {steps} steps"));
                break;
            }
            self.now = self.now.max(next);
            self.clock.set(self.now);
            while let Some(Reverse((at, _, p))) = self.queue.peek().copied() {
                if at > self.now {
                    break;
                }
                self.queue.pop();
                self.apply(p);
            }
            self.annealer.handle_tick(self.now);
            if cfg!(debug_assertions)
                && let Err(e) = self.annealer.check_consistency()
            {
                self.violation(format!(
                    "scheduler state out of step at {}: {e}",
                    self.now.0
                ));
                break;
            }
        }
        if let Err(e) = self.annealer.cluster().check_consistency() {
            self.violation(format!("model indices out of step: {e}"));
        }
        if let Err(e) = self.annealer.check_consistency() {
            self.violation(format!("scheduler state out of step: {e}"));
        }
        for (run, (nr, _)) in &self.active {
            let v = format!("{run} of {nr} never ended");
            self.report.violations.push(v);
        }
        self.report.end = self.now;
        self.report.status = self.annealer.status();
        self.report.clone()
    }

    fn apply(&mut self, p: Pending) {
        let now = self.now;
        match p {
            Pending::Finish(run, ok, retryable) => {
                let outcome = if ok {
                    Ok(JigOutput::empty())
                } else {
                    Err(JigError::failed("simulated failure", retryable))
                };
                let finished = self.annealer.handle_run_finished(run, outcome, now);
                if finished != crate::Finished::Stale {
                    if let Some((_, node)) = self.active.remove(&run) {
                        self.on_node.remove(&node);
                    }
                    self.report
                        .events
                        .push(SimEvent::Finished { at: now, run, ok });
                }
            }
            Pending::Kill(node) => {
                if self.annealer.cluster().node(node).is_some_and(|n| n.alive) {
                    let _ = self.annealer.handle_node_alive(node, false);
                    self.report
                        .events
                        .push(SimEvent::NodeDied { at: now, node });
                }
            }
            Pending::Revive(node) => {
                if self.annealer.cluster().node(node).is_some_and(|n| !n.alive) {
                    let _ = self.annealer.handle_node_alive(node, true);
                    self.report
                        .events
                        .push(SimEvent::NodeRevived { at: now, node });
                }
            }
        }
    }
}
