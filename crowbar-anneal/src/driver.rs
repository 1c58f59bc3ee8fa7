//! The driver: runs the scheduling core on tokio, with jigs, a store and an event stream.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crowbar_core::{
    Batch, Clock, Cluster, CoreError, HistoryEntry, Node, NodeId, NodeRoleId, RoleId, Store,
    SystemClock, Timestamp,
};
use crowbar_jig::{
    CancelReason, Jig, JigError, JigRegistry, NodeInfo, NodeView, Outcome, RunContext, RunView,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};

use crate::{
    AnnealError, AnnealStatus, Annealer, AnnealerConfig, Explanation, Plan, PlanScope, Ready,
    RunId, RunRequest,
};

/// A [`Clock`] that follows tokio's clock from the current system time: under
/// `tokio::time::pause` it moves with simulated time, so history stamps and time-outs agree.
#[derive(Debug)]
pub struct TokioClock {
    origin_ms: u64,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading the system time now.
    pub fn new() -> TokioClock {
        TokioClock::starting_at(SystemClock.now())
    }

    /// A clock reading `start` now.
    pub fn starting_at(start: Timestamp) -> TokioClock {
        TokioClock {
            origin_ms: start.0,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.origin_ms + self.origin.elapsed().as_millis() as u64)
    }
}

/// The driver's settings.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The scheduling core's settings (the global cap, time limits).
    pub annealer: AnnealerConfig,
    /// How many events a slow subscriber may fall behind before it loses some.
    pub event_capacity: usize,
    /// On [`AnnealHandle::stop`], how long runs in progress may take to finish before they
    /// are abandoned (they are then re-run at the next start).
    pub stop_grace: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            annealer: AnnealerConfig::default(),
            event_capacity: 4096,
            stop_grace: Duration::from_secs(30),
        }
    }
}

/// What a subscriber sees, in order.
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub enum AnnealEvent {
    /// A noderole changed state (persisted already).
    Transition(HistoryEntry),
    /// A jig run started.
    RunStarted {
        /// The run.
        run: RunId,
        /// Its noderole.
        noderole: NodeRoleId,
    },
    /// A run was abandoned.
    RunCancelled {
        /// The run.
        run: RunId,
        /// Its noderole.
        noderole: NodeRoleId,
        /// Why.
        reason: CancelReason,
    },
    /// A batch reached the store.
    Persisted {
        /// The store's revision after it.
        revision: u64,
        /// How many state changes it held.
        transitions: usize,
    },
    /// Nothing is running and nothing can start: stable (until the model changes).
    Idle {
        /// The anneal status.
        status: AnnealStatus,
    },
    /// The subscriber fell behind and missed this many events.
    Lagged(u64),
    /// The driver stopped; no more events follow.
    Stopped,
}

/// A subscription to the driver's events.
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<AnnealEvent>,
    stopped: bool,
}

impl Events {
    /// The next event; `None` after [`AnnealEvent::Stopped`].
    pub async fn recv(&mut self) -> Option<AnnealEvent> {
        if self.stopped {
            return None;
        }
        match self.rx.recv().await {
            Ok(e) => {
                self.stopped = e == AnnealEvent::Stopped;
                Some(e)
            }
            Err(broadcast::error::RecvError::Lagged(n)) => Some(AnnealEvent::Lagged(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Counters of a driver's work.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    /// State changes persisted.
    pub transitions: u64,
    /// Batches persisted.
    pub batches: u64,
    /// Jig runs started (destructive roles that skipped their jig included).
    pub runs: u64,
    /// The store's revision.
    pub revision: u64,
}

type Job = Box<dyn FnOnce(&mut Annealer) + Send>;

enum Command {
    Call(Job),
    /// A call whose caller waits until the batch it made is in the store.
    Durable(Job, oneshot::Sender<u64>),
    WaitIdle(oneshot::Sender<AnnealStatus>),
    Stats(oneshot::Sender<Stats>),
    Stop(oneshot::Sender<Result<(), String>>),
}

/// A handle on a running driver: cheap to clone, every method talks to the driver task.
#[derive(Clone, Debug)]
pub struct AnnealHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: Arc<EventChannel>,
}

/// The driver's event channel, shared by its task and handles, and made at the first
/// subscription: a driver that nobody follows allocates no event buffer (thousands of slots).
#[derive(Debug)]
struct EventChannel {
    capacity: usize,
    sender: OnceLock<broadcast::Sender<AnnealEvent>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl AnnealHandle {
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Annealer) -> T + Send + 'static,
    ) -> Result<T, AnnealError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |a| {
            let _ = tx.send(f(a));
        });
        self.commands
            .send(Command::Call(job))
            .map_err(|_| AnnealError::Stopped)?;
        rx.await.map_err(|_| AnnealError::Stopped)
    }

    /// Changes the model (commit, set node flags, retry...); the annealer acts on it at once.
    pub async fn update<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Cluster) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, AnnealError> {
        self.call(move |a| a.update(f)).await?
    }

    /// Changes the model like [`AnnealHandle::update`], and answers only once what `f` changed
    /// is in the store: the value of `f` and the store's revision after it. An API that must
    /// not acknowledge a change before it is durable uses this. A refused change (`Err` from
    /// `f`) changed nothing and is answered at once.
    ///
    /// If the store fails while persisting the change, the driver stops (memory would be
    /// ahead of the store) and this returns [`AnnealError::Stopped`]; the next start reloads
    /// what was stored.
    pub async fn update_durable<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Cluster) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<(T, u64), AnnealError> {
        let (tx, rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let job: Job = Box::new(move |a| {
            let _ = tx.send(a.update(f));
        });
        self.commands
            .send(Command::Durable(job, done_tx))
            .map_err(|_| AnnealError::Stopped)?;
        let value = rx.await.map_err(|_| AnnealError::Stopped)??;
        let revision = done_rx.await.map_err(|_| AnnealError::Stopped)?;
        Ok((value, revision))
    }

    /// Runs `f` on the scheduling core inside the driver (to read the model, for instance).
    pub async fn with_annealer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Annealer) -> T + Send + 'static,
    ) -> Result<T, AnnealError> {
        self.call(f).await
    }

    /// Why a noderole is not running now.
    pub async fn explain(&self, noderole: NodeRoleId) -> Result<Explanation, AnnealError> {
        self.call(move |a| a.explain(noderole)).await?
    }

    /// What committing `scope` would run.
    pub async fn plan(&self, scope: PlanScope) -> Result<Plan, AnnealError> {
        self.call(move |a| a.plan(scope)).await
    }

    /// The anneal status now.
    pub async fn status(&self) -> Result<AnnealStatus, AnnealError> {
        self.call(|a| a.status()).await
    }

    /// The driver's counters.
    pub async fn stats(&self) -> Result<Stats, AnnealError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Stats(tx))
            .map_err(|_| AnnealError::Stopped)?;
        rx.await.map_err(|_| AnnealError::Stopped)
    }

    /// Waits until nothing runs and nothing can start, with every change persisted; returns
    /// the anneal status then.
    pub async fn wait_idle(&self) -> Result<AnnealStatus, AnnealError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::WaitIdle(tx))
            .map_err(|_| AnnealError::Stopped)?;
        rx.await.map_err(|_| AnnealError::Stopped)
    }

    /// Subscribes to events from now on.
    pub fn subscribe(&self) -> Events {
        let sender = self
            .events
            .sender
            .get_or_init(|| broadcast::channel(self.events.capacity).0);
        Events {
            rx: sender.subscribe(),
            stopped: false,
        }
    }

    /// Stops: no new runs start; runs in progress get [`DriverConfig::stop_grace`] to finish,
    /// then are abandoned (left in TRANSITION in the store, so the next start re-runs them);
    /// everything else is persisted. Returns the driver's error if it stopped on one.
    pub async fn stop(&self) -> Result<(), AnnealError> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).is_err() {
            return Ok(());
        }
        match rx.await {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(message)) => Err(AnnealError::Driver { message }),
        }
    }
}

/// Starts drivers.
#[derive(Debug)]
pub struct Driver;

impl Driver {
    /// Loads the model from `store`, recovers what a crash left in TRANSITION (persisting the
    /// recovery first), and starts annealing. History is stamped with a [`TokioClock`].
    pub async fn start(
        store: Arc<dyn Store>,
        jigs: JigRegistry,
        config: DriverConfig,
    ) -> Result<AnnealHandle, AnnealError> {
        let snapshot = store.load().await?;
        let cluster = Cluster::from_snapshot(snapshot, Arc::new(TokioClock::new()))?;
        let annealer = Annealer::new(cluster, config.annealer.clone())?;
        Ok(Driver::spawn(annealer, store, jigs, config))
    }

    /// Starts annealing `annealer` (whose pending changes are persisted first) on the current
    /// tokio runtime. Its cluster's clock gives the time.
    pub fn spawn(
        mut annealer: Annealer,
        store: Arc<dyn Store>,
        jigs: JigRegistry,
        config: DriverConfig,
    ) -> AnnealHandle {
        for name in jigs.names().map(str::to_owned).collect::<Vec<_>>() {
            let t = jigs.get(&name).and_then(|j| j.timeout());
            if let Some(t) = t
                && !annealer.config().jig_timeouts.contains_key(&name)
            {
                annealer.set_jig_timeout(&name, t.as_millis() as u64);
            }
        }
        let (commands, rx) = mpsc::unbounded_channel();
        let events = Arc::new(EventChannel {
            capacity: config.event_capacity.max(16),
            sender: OnceLock::new(),
        });
        let clock = annealer.cluster().clock().clone();
        let task = Task {
            annealer,
            store,
            jigs,
            clock,
            config,
            commands: rx,
            events: events.clone(),
            tasks: JoinSet::new(),
            by_task: HashMap::new(),
            by_run: HashMap::new(),
            idle_waiters: Vec::new(),
            durable_waiters: Vec::new(),
            stats: Stats::default(),
            was_idle: false,
            contexts: ContextCache::default(),
            immediate: Vec::new(),
            instant_ok: Vec::new(),
        };
        tokio::spawn(task.run());
        AnnealHandle { commands, events }
    }
}

struct Task {
    annealer: Annealer,
    store: Arc<dyn Store>,
    jigs: JigRegistry,
    clock: Arc<dyn Clock>,
    config: DriverConfig,
    commands: mpsc::UnboundedReceiver<Command>,
    events: Arc<EventChannel>,
    tasks: JoinSet<(RunId, Outcome)>,
    by_task: HashMap<tokio::task::Id, RunId>,
    by_run: HashMap<RunId, (AbortHandle, Arc<dyn Jig>, NodeRoleId)>,
    idle_waiters: Vec<oneshot::Sender<AnnealStatus>>,
    /// Callers of `update_durable` whose change is not yet known to be in the store.
    durable_waiters: Vec<oneshot::Sender<u64>>,
    stats: Stats,
    was_idle: bool,
    contexts: ContextCache,
    /// Outcomes known without spawning (instant jigs, runs that could not start), applied
    /// after `advance`; kept between waves to reuse its buffer.
    immediate: Vec<(RunId, Outcome)>,
    /// Instant successes with nothing to report (the `noop` jig's), kept apart as bare run
    /// ids so that no outcome is moved for them; applied after `immediate`.
    instant_ok: Vec<RunId>,
}

/// What starting a run needs of its role: the jig (or the name of the missing one), whether
/// the jig wants the layered data, and the role's name to share with every run.
struct RoleEntry {
    generation: u64,
    jig: Result<Arc<dyn Jig>, String>,
    needs_data: bool,
    name: Arc<str>,
}

/// Per role and per node, what every run's [`RunContext`] shares, indexed by id, so starting
/// a run looks nothing up by name and allocates nothing. An entry is dropped when the batch
/// that the core hands out carries its row (the row changed), and every entry when a command
/// ran on the annealer (it may have changed anything, even taken the batch); the latter bumps
/// `generation`, which outdates every entry at once.
#[derive(Default)]
struct ContextCache {
    generation: u64,
    roles: Vec<Option<RoleEntry>>,
    nodes: Vec<Option<(u64, Arc<NodeInfo>)>>,
}

impl ContextCache {
    fn forget_all(&mut self) {
        self.generation += 1;
    }

    /// Forgets the roles and nodes `batch` writes or deletes.
    fn forget(&mut self, batch: &Batch) {
        fn clear<T>(slots: &mut [Option<T>], index: u64) {
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| slots.get_mut(i)) {
                *slot = None;
            }
        }
        for r in &batch.roles {
            clear(&mut self.roles, r.id.get());
        }
        for n in &batch.nodes {
            clear(&mut self.nodes, n.id.get());
        }
        for &n in &batch.deleted_nodes {
            clear(&mut self.nodes, n.get());
        }
    }

    /// The run's jig and role entry, from an entry brought up to date first, and its node's
    /// row in the model. A missing role or jig is [`JigError::UnknownJig`] (named when the
    /// role names one), a missing node [`JigError::Staging`]; the jig is checked first, as the
    /// likelier and more useful report. Inlined, with the building of a missing entry out of
    /// line: a run of a wave finds it current.
    #[inline]
    fn entries<'a>(
        &'a mut self,
        cluster: &'a Cluster,
        jigs: &JigRegistry,
        r: &RunRequest,
    ) -> Result<Entries<'a>, JigError> {
        let generation = self.generation;
        let ri = r.role.get() as usize;
        if !matches!(self.roles.get(ri), Some(Some(e)) if e.generation == generation) {
            self.build(cluster, jigs, r.role)?;
        }
        let Some(Some(role)) = self.roles.get(ri) else {
            unreachable!("entry built above");
        };
        let jig = match &role.jig {
            Ok(jig) => jig,
            Err(name) => return Err(JigError::UnknownJig { name: name.clone() }),
        };
        let node = cluster.node(r.node).ok_or_else(|| JigError::Staging {
            message: format!("unknown {}", r.node),
        })?;
        Ok(Entries { jig, role, node })
    }

    /// Brings the entry of a run's role up to date.
    #[cold]
    fn build(
        &mut self,
        cluster: &Cluster,
        jigs: &JigRegistry,
        role: RoleId,
    ) -> Result<(), JigError> {
        role_entry(&mut self.roles, self.generation, cluster, jigs, role)
            .map(|_| ())
            .ok_or_else(|| JigError::UnknownJig {
                name: String::new(),
            })
    }

    /// What runs on `node` see of it, shared among them: built once per node (and again
    /// after its row changed), for runs that go to a task and so outlive the borrow of the
    /// model that instant jigs are asked with.
    fn node(&mut self, cluster: &Cluster, node: NodeId) -> Option<Arc<NodeInfo>> {
        node_entry(&mut self.nodes, self.generation, cluster, node).cloned()
    }
}

/// The current entry of `role`, built first unless it is current; `None` when the role does
/// not exist.
fn role_entry<'a>(
    roles: &'a mut Vec<Option<RoleEntry>>,
    generation: u64,
    cluster: &Cluster,
    jigs: &JigRegistry,
    role: RoleId,
) -> Option<&'a RoleEntry> {
    let i = usize::try_from(role.get()).ok()?;
    if !matches!(roles.get(i), Some(Some(e)) if e.generation == generation) {
        let row = cluster.role(role)?;
        let jig = jigs.get(&row.jig).cloned().ok_or_else(|| row.jig.clone());
        let needs_data = jig.as_ref().is_ok_and(|j| j.needs_data());
        if roles.len() <= i {
            roles.resize_with(i + 1, || None);
        }
        roles[i] = Some(RoleEntry {
            generation,
            jig,
            needs_data,
            name: Arc::from(row.name.as_str()),
        });
    }
    roles[i].as_ref()
}

/// What runs on `node` see of it, built first unless it is current; `None` when the node
/// does not exist.
fn node_entry<'a>(
    nodes: &'a mut Vec<Option<(u64, Arc<NodeInfo>)>>,
    generation: u64,
    cluster: &Cluster,
    node: NodeId,
) -> Option<&'a Arc<NodeInfo>> {
    let i = usize::try_from(node.get()).ok()?;
    if !matches!(nodes.get(i), Some(Some((g, _))) if *g == generation) {
        let row = cluster.node(node)?;
        if nodes.len() <= i {
            nodes.resize_with(i + 1, || None);
        }
        nodes[i] = Some((generation, Arc::new(NodeInfo::from_node(row))));
    }
    nodes[i].as_ref().map(|(_, info)| info)
}

/// What a run needs from the cache and the model, borrowed.
struct Entries<'a> {
    jig: &'a Arc<dyn Jig>,
    role: &'a RoleEntry,
    node: &'a Node,
}

impl Task {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Whether anyone follows the events (a lock: ask once per batch, not per event).
    fn listening(&self) -> bool {
        self.events
            .sender
            .get()
            .is_some_and(|s| s.receiver_count() > 0)
    }

    /// Publishes an event to the subscribers, if any.
    fn emit(&self, event: AnnealEvent) {
        if self.listening() {
            self.publish(event);
        }
    }

    /// Publishes an event, the caller having checked [`Task::listening`].
    fn publish(&self, event: AnnealEvent) {
        if let Some(s) = self.events.sender.get() {
            let _ = s.send(event);
        }
    }

    async fn run(mut self) {
        let mut stop_reply: Option<oneshot::Sender<Result<(), String>>> = None;
        let mut grace: Option<tokio::time::Instant> = None;
        let result = loop {
            if let Err(e) = self.step().await {
                break Err(e);
            }
            if stop_reply.is_some() && self.by_run.is_empty() {
                break Ok(());
            }
            let now = self.now();
            let sleep_until = self.annealer.next_deadline().map(|d| {
                tokio::time::Instant::now() + Duration::from_millis(d.0.saturating_sub(now.0))
            });
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Stop(reply)) => {
                        stop_reply = Some(reply);
                        self.annealer.set_paused(true);
                        grace = Some(tokio::time::Instant::now() + self.config.stop_grace);
                    }
                    Some(cmd) => self.command(cmd),
                    None if stop_reply.is_none() => {
                        // Every handle is gone: stop as if asked.
                        self.annealer.set_paused(true);
                        grace = Some(tokio::time::Instant::now() + self.config.stop_grace);
                        let (tx, _) = oneshot::channel();
                        stop_reply = Some(tx);
                    }
                    None => {}
                },
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.joined(joined);
                }
                _ = sleep_or_never(sleep_until) => {}
                _ = sleep_or_never(grace) => {
                    self.abandon_all();
                    break Ok(());
                }
            }
            // Take whatever else is ready without waiting, so that one batch carries it all.
            while let Some(joined) = self.tasks.try_join_next_with_id() {
                self.joined(joined);
            }
            let now = self.now();
            self.annealer.handle_tick(now);
        };
        let result = match result {
            Ok(()) => self.flush().await,
            Err(e) => Err(e),
        };
        self.emit(AnnealEvent::Stopped);
        if let Err(e) = &result {
            tracing::error!(error = %e, "annealer stopped on an error");
        }
        if let Some(reply) = stop_reply {
            let _ = reply.send(result.map_err(|e| e.to_string()));
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Call(job) => {
                job(&mut self.annealer);
                self.contexts.forget_all();
            }
            Command::Durable(job, done) => {
                job(&mut self.annealer);
                self.contexts.forget_all();
                self.durable_waiters.push(done);
            }
            Command::WaitIdle(tx) => self.idle_waiters.push(tx),
            Command::Stats(tx) => {
                let _ = tx.send(self.stats);
            }
            Command::Stop(_) => {}
        }
    }

    fn joined(
        &mut self,
        joined: Result<(tokio::task::Id, (RunId, Outcome)), tokio::task::JoinError>,
    ) {
        let now = self.now();
        match joined {
            Ok((id, (run, outcome))) => {
                self.by_task.remove(&id);
                self.by_run.remove(&run);
                self.annealer.handle_run_finished(run, outcome, now);
            }
            Err(e) => {
                let Some(run) = self.by_task.remove(&e.id()) else {
                    return;
                };
                self.by_run.remove(&run);
                if e.is_panic() {
                    let outcome = Err(JigError::failed("the jig panicked", false));
                    self.annealer.handle_run_finished(run, outcome, now);
                }
            }
        }
    }

    /// Hands out everything the core has to do: persist, then act, then advance.
    async fn step(&mut self) -> Result<(), AnnealError> {
        while self.annealer.has_ready() {
            let now = self.now();
            let ready = self.annealer.ready(now);
            self.act(ready).await?;
            self.annealer.advance();
            let now = self.now();
            self.annealer
                .handle_runs_finished(self.immediate.drain(..), now);
            self.annealer
                .handle_runs_succeeded(self.instant_ok.drain(..), now);
            // Instant jigs and an in-memory store never wait: let other tasks (and this
            // driver's own commands) in now and then.
            tokio::task::consume_budget().await;
        }
        // Everything the commands before this step changed is in the store now.
        for w in self.durable_waiters.drain(..) {
            let _ = w.send(self.stats.revision);
        }
        let idle = self.annealer.is_idle() && self.by_run.is_empty();
        if idle {
            let status = self.annealer.status();
            for w in self.idle_waiters.drain(..) {
                let _ = w.send(status);
            }
            if !self.was_idle {
                self.emit(AnnealEvent::Idle { status });
            }
        }
        self.was_idle = idle;
        Ok(())
    }

    async fn persist(&mut self, batch: Batch) -> Result<(), AnnealError> {
        if batch.is_empty() {
            return Ok(());
        }
        let transitions = batch.history.len();
        let history = self.listening().then(|| batch.history.clone());
        let revision = self.store.apply(batch).await?;
        self.stats.transitions += transitions as u64;
        self.stats.batches += 1;
        self.stats.revision = revision;
        if let Some(history) = history {
            for h in history {
                self.publish(AnnealEvent::Transition(h));
            }
            self.publish(AnnealEvent::Persisted {
                revision,
                transitions,
            });
        }
        Ok(())
    }

    /// Persists the batch of `ready`, abandons its cancels and starts its runs; outcomes known
    /// at once go to `self.immediate` (empty successes to `self.instant_ok`).
    async fn act(&mut self, ready: Ready) -> Result<(), AnnealError> {
        self.contexts.forget(&ready.batch);
        self.persist(ready.batch).await?;
        let listening = self.listening();
        for c in ready.cancels {
            if let Some((abort, jig, noderole)) = self.by_run.remove(&c.run) {
                abort.abort();
                tokio::spawn(async move { jig.cancelled(noderole, c.reason).await });
            }
            if listening {
                self.publish(AnnealEvent::RunCancelled {
                    run: c.run,
                    noderole: c.noderole,
                    reason: c.reason,
                });
            }
        }
        self.stats.runs += ready.runs.len() as u64;
        for r in ready.runs {
            if listening {
                self.publish(AnnealEvent::RunStarted {
                    run: r.run,
                    noderole: r.noderole,
                });
            }
            // The jig, role name and node stay borrowed from the cache for the instant path;
            // only a run that goes to a task gets a context of its own.
            let cluster = self.annealer.cluster();
            let Entries { jig, role, node } = match self.contexts.entries(cluster, &self.jigs, &r) {
                Ok(entries) => entries,
                Err(e) => {
                    self.immediate.push((r.run, Err(e)));
                    continue;
                }
            };
            let view = RunView {
                noderole: r.noderole,
                role: &role.name,
                node: NodeView::of_node(node),
                run_count: r.run_count,
                attempt: r.attempt,
            };
            if let Some(outcome) = jig.run_now(view) {
                // Checked in place, by reference: the outcome is moved only when it is kept.
                match &outcome {
                    Ok(out) if out.is_empty() => self.instant_ok.push(r.run),
                    _ => self.immediate.push((r.run, outcome)),
                }
                continue;
            }
            let (name, jig, needs_data) = (role.name.clone(), jig.clone(), role.needs_data);
            let Some(node) = self.contexts.node(cluster, r.node) else {
                unreachable!("the node was read above");
            };
            let cx =
                RunContext::from_shared(cluster, r.noderole, r.attempt, name, node, needs_data);
            let cx = match cx {
                Ok(cx) => cx,
                Err(e) => {
                    self.immediate.push((r.run, Err(e)));
                    continue;
                }
            };
            let run = r.run;
            let j = jig.clone();
            let abort = self.tasks.spawn(async move { (run, j.run(cx).await) });
            self.by_task.insert(abort.id(), run);
            self.by_run.insert(run, (abort, jig, r.noderole));
        }
        Ok(())
    }

    fn abandon_all(&mut self) {
        for (_, (abort, jig, noderole)) in self.by_run.drain() {
            abort.abort();
            tokio::spawn(async move { jig.cancelled(noderole, CancelReason::Shutdown).await });
        }
        self.by_task.clear();
    }

    async fn flush(&mut self) -> Result<(), AnnealError> {
        self.annealer.set_paused(true);
        self.step().await
    }
}

async fn sleep_or_never(until: Option<tokio::time::Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
