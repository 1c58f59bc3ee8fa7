//! The tokio driver: persistence before action, events, caps, time-outs, retries, crash
//! recovery and clean stops, over `MemStore` and `SqliteStore`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use crowbar_anneal::{
    AnnealEvent, AnnealHandle, AnnealStatus, Annealer, AnnealerConfig, Driver, DriverConfig,
    TokioClock,
};
use crowbar_core::{
    Cause, Cluster, MemStore, NodeId, NodeRoleId, NodeRoleState, NodeSpec, RetryPolicy, RoleFlag,
    RoleSpec, SqliteStore, Store,
};
use crowbar_jig::{Jig, JigOutput, JigRegistry, Outcome, RunContext, RunView};
use serde_json::json;

fn cluster() -> Cluster {
    Cluster::with_clock(Arc::new(TokioClock::new()))
}

fn nodes(c: &mut Cluster, n: usize) -> Vec<NodeId> {
    (0..n)
        .map(|i| {
            c.create_node(NodeSpec::new(format!("n{i}.example.com")).alive(true))
                .unwrap()
        })
        .collect()
}

fn commit_all(c: &mut Cluster) {
    for n in c.nodes().map(|n| n.id).collect::<Vec<_>>() {
        c.commit_node(n).unwrap();
    }
}

fn spawn(c: Cluster, store: Arc<dyn Store>, jigs: JigRegistry, cap: usize) -> AnnealHandle {
    let annealer = Annealer::new(c, AnnealerConfig::with_max_running(cap)).unwrap();
    Driver::spawn(annealer, store, jigs, DriverConfig::default())
}

async fn states(store: &dyn Store) -> Vec<NodeRoleState> {
    store
        .load()
        .await
        .unwrap()
        .noderoles
        .iter()
        .map(|n| n.state)
        .collect()
}

/// Checks, when it runs, that the store already holds its noderole in TRANSITION; counts
/// concurrent runs overall and per node; takes `delay` of tokio time.
struct Probe {
    store: Arc<MemStore>,
    delay: Duration,
    running: AtomicUsize,
    peak: AtomicUsize,
    nodes: Mutex<HashSet<NodeId>>,
    problems: Mutex<Vec<String>>,
}

impl Probe {
    fn new(store: Arc<MemStore>, delay: Duration) -> Arc<Probe> {
        Arc::new(Probe {
            store,
            delay,
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            nodes: Mutex::new(HashSet::new()),
            problems: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl Jig for Probe {
    async fn run(&self, cx: RunContext) -> Outcome {
        let history = self.store.history(cx.noderole).await.unwrap();
        if history.last().map(|h| h.to) != Some(NodeRoleState::Transition) {
            self.problems.lock().unwrap().push(format!(
                "{} ran before its TRANSITION was stored",
                cx.noderole
            ));
        }
        if !self.nodes.lock().unwrap().insert(cx.node.id) {
            self.problems
                .lock()
                .unwrap()
                .push(format!("two runs on {}", cx.node.id));
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.nodes.lock().unwrap().remove(&cx.node.id);
        Ok(JigOutput::with_wall(
            json!({"probe": {"node": cx.node.alias}}),
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn runs_start_only_after_their_batch_is_stored_and_stay_under_the_caps() {
    let store = Arc::new(MemStore::new());
    let probe = Probe::new(store.clone(), Duration::from_secs(5));
    let mut jigs = JigRegistry::with_builtins();
    jigs.register("probe", probe.clone());
    let mut c = cluster();
    c.create_role(RoleSpec::new("base").jig("probe").flag(RoleFlag::Implicit))
        .unwrap();
    c.create_role(RoleSpec::new("app").jig("probe").requires(["base"]))
        .unwrap();
    for n in nodes(&mut c, 8) {
        let alias = c.node(n).unwrap().alias.clone();
        c.bind_by_name("app", &alias, None).unwrap();
    }
    commit_all(&mut c);
    let handle = spawn(c, store.clone(), jigs, 3);
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Finished);
    handle.stop().await.unwrap();
    assert!(
        probe.problems.lock().unwrap().is_empty(),
        "{:?}",
        probe.problems
    );
    assert_eq!(probe.peak.load(Ordering::SeqCst), 3);
    let snapshot = store.load().await.unwrap();
    assert!(
        snapshot
            .noderoles
            .iter()
            .all(|n| n.state == NodeRoleState::Active)
    );
    let app = snapshot.noderoles.iter().find(|n| n.role.0 == 2).unwrap();
    assert!(app.wall["probe"]["node"].is_string());
}

#[tokio::test(start_paused = true)]
async fn subscribers_follow_every_transition_in_order() {
    let store = Arc::new(MemStore::new());
    let mut c = cluster();
    c.create_role(RoleSpec::new("a").jig("test").flag(RoleFlag::Implicit))
        .unwrap();
    c.create_role(RoleSpec::new("b").jig("test").requires(["a"]))
        .unwrap();
    nodes(&mut c, 2);
    let b0 = c.bind_by_name("b", "n0", None).unwrap();
    c.bind_by_name("b", "n1", None).unwrap();
    commit_all(&mut c);
    let handle = spawn(c, store.clone(), JigRegistry::with_builtins(), 10);
    let mut events = handle.subscribe();
    // A clone of the handle subscribes to the same channel (made at the first subscription).
    let mut through_clone = handle.clone().subscribe();
    let mut seen = Vec::new();
    let mut started = 0;
    loop {
        match events.recv().await.unwrap() {
            AnnealEvent::Transition(h) if h.noderole == b0 => seen.push(h.to.name()),
            AnnealEvent::RunStarted { .. } => started += 1,
            AnnealEvent::Idle { status } => {
                assert_eq!(status, AnnealStatus::Finished);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(started, 4);
    assert_eq!(
        seen,
        ["PROPOSED", "BLOCKED", "TODO", "TRANSITION", "ACTIVE"]
    );
    let mut seen_through_clone = Vec::new();
    loop {
        match through_clone.recv().await.unwrap() {
            AnnealEvent::Transition(h) if h.noderole == b0 => {
                seen_through_clone.push(h.to.name());
            }
            AnnealEvent::Idle { .. } => break,
            _ => {}
        }
    }
    assert_eq!(seen_through_clone, seen);
    handle.stop().await.unwrap();
    assert_eq!(events.recv().await, Some(AnnealEvent::Stopped));
    assert_eq!(events.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_hung_run_times_out_and_a_flaky_one_is_retried_with_backoff() {
    let store = Arc::new(MemStore::new());
    let mut c = cluster();
    c.create_role(
        RoleSpec::new("hang")
            .jig("test")
            .template(json!({"test": {"delay_ms": 3_600_000}}))
            .timeout_ms(1_000),
    )
    .unwrap();
    c.create_role(
        RoleSpec::new("flaky")
            .jig("test")
            .template(json!({"test": {"fail_attempts": 2, "retryable": true}}))
            .retry(RetryPolicy {
                max_retries: 3,
                backoff_ms: 100,
                max_backoff_ms: 1_000,
            }),
    )
    .unwrap();
    nodes(&mut c, 2);
    let hang = c.bind_by_name("hang", "n0", None).unwrap();
    let flaky = c.bind_by_name("flaky", "n1", None).unwrap();
    commit_all(&mut c);
    let handle = spawn(c, store.clone(), JigRegistry::with_builtins(), 10);
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Failed);
    handle.stop().await.unwrap();

    let h = store.history(hang).await.unwrap();
    let last = h.last().unwrap();
    assert_eq!(
        (last.to, &last.cause),
        (NodeRoleState::Error, &Cause::Timeout)
    );
    let snapshot = store.load().await.unwrap();
    let hung = snapshot.noderoles.iter().find(|n| n.id == hang).unwrap();
    assert!(
        hung.runlog.contains("timed out after 1000 ms"),
        "{}",
        hung.runlog
    );

    let f = store.history(flaky).await.unwrap();
    let causes: Vec<String> = f.iter().map(|h| format!("{} {}", h.to, h.cause)).collect();
    assert_eq!(
        causes[2..],
        [
            "TRANSITION jig started",
            "ERROR jig failed: attempt 1 of the first 2 that fail",
            "TODO retry",
            "TRANSITION jig started",
            "ERROR jig failed: attempt 2 of the first 2 that fail",
            "TODO retry",
            "TRANSITION jig started",
            "ACTIVE jig succeeded",
        ]
    );
    // Backoff: 100 ms, then 200 ms.
    assert_eq!(f[4].at.0 - f[3].at.0, 100);
    assert_eq!(f[7].at.0 - f[6].at.0, 200);
    let fl = snapshot.noderoles.iter().find(|n| n.id == flaky).unwrap();
    assert_eq!(fl.wall["test"]["attempt"], 3);
}

#[tokio::test(start_paused = true)]
async fn after_a_crash_transition_reruns_except_destructive_roles() {
    let store = Arc::new(MemStore::new());
    let mut c = cluster();
    c.create_role(RoleSpec::new("idempotent")).unwrap();
    c.create_role(RoleSpec::new("wipe-disks").flag(RoleFlag::Destructive))
        .unwrap();
    nodes(&mut c, 2);
    let safe = c.bind_by_name("idempotent", "n0", None).unwrap();
    let wipe = c.bind_by_name("wipe-disks", "n1", None).unwrap();
    commit_all(&mut c);
    // The process dies with both runs in progress.
    c.start_run(safe).unwrap();
    c.start_run(wipe).unwrap();
    store.apply(c.take_batch()).await.unwrap();
    drop(c);

    let handle = Driver::start(
        store.clone(),
        JigRegistry::with_builtins(),
        DriverConfig::default(),
    )
    .await
    .unwrap();
    let recovered = handle
        .with_annealer(|a| a.recovered().to_vec())
        .await
        .unwrap();
    assert_eq!(recovered.len(), 2);
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Failed);
    let consistent = handle.with_annealer(|a| a.check_consistency()).await;
    assert_eq!(consistent.unwrap(), Ok(()));
    handle.stop().await.unwrap();

    let causes = |h: Vec<crowbar_core::HistoryEntry>| -> Vec<String> {
        h.iter().map(|h| format!("{} {}", h.to, h.cause)).collect()
    };
    assert_eq!(
        causes(store.history(safe).await.unwrap())[3..],
        [
            "TODO recovery",
            "TRANSITION jig started",
            "ACTIVE jig succeeded"
        ]
    );
    assert_eq!(
        causes(store.history(wipe).await.unwrap())[3..],
        ["ERROR recovery"]
    );
    let snapshot = store.load().await.unwrap();
    let w = snapshot.noderoles.iter().find(|n| n.id == wipe).unwrap();
    assert!(w.runlog.contains("destructive"), "{}", w.runlog);
}

#[tokio::test(start_paused = true)]
async fn stop_waits_for_runs_then_abandons_them_and_the_next_start_reruns_them() {
    let store = Arc::new(MemStore::new());
    let mut c = cluster();
    c.create_role(
        RoleSpec::new("slow")
            .jig("test")
            .template(json!({"test": {"delay_ms": 60_000}})),
    )
    .unwrap();
    nodes(&mut c, 1);
    let slow = c.bind_by_name("slow", "n0", None).unwrap();
    commit_all(&mut c);
    let annealer = Annealer::new(c, AnnealerConfig::default()).unwrap();
    let config = DriverConfig {
        stop_grace: Duration::from_secs(1),
        ..DriverConfig::default()
    };
    let handle = Driver::spawn(
        annealer,
        store.clone(),
        JigRegistry::with_builtins(),
        config,
    );
    let mut events = handle.subscribe();
    while !matches!(events.recv().await, Some(AnnealEvent::RunStarted { .. })) {}
    handle.stop().await.unwrap();
    assert!(
        handle.status().await.is_err(),
        "stopped drivers refuse calls"
    );
    assert_eq!(states(store.as_ref()).await, [NodeRoleState::Transition]);

    let handle = Driver::start(
        store.clone(),
        JigRegistry::with_builtins(),
        DriverConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Finished);
    handle.stop().await.unwrap();
    let h = store.history(slow).await.unwrap();
    assert_eq!(h.last().unwrap().to, NodeRoleState::Active);
    assert!(h.iter().any(|h| h.cause == Cause::Recovery));
}

#[tokio::test(start_paused = true)]
async fn node_death_mid_run_abandons_the_run_and_it_reruns_on_return() {
    let store = Arc::new(MemStore::new());
    let mut c = cluster();
    c.create_role(
        RoleSpec::new("slow")
            .jig("test")
            .template(json!({"test": {"delay_ms": 10_000}})),
    )
    .unwrap();
    let n = nodes(&mut c, 1)[0];
    let slow = c.bind_by_name("slow", "n0", None).unwrap();
    commit_all(&mut c);
    let handle = spawn(c, store.clone(), JigRegistry::with_builtins(), 10);
    let mut events = handle.subscribe();
    while !matches!(events.recv().await, Some(AnnealEvent::RunStarted { .. })) {}
    handle
        .update(move |c| c.set_node_alive(n, false))
        .await
        .unwrap();
    loop {
        if let Some(AnnealEvent::RunCancelled {
            noderole, reason, ..
        }) = events.recv().await
        {
            assert_eq!(noderole, slow);
            assert_eq!(reason, crowbar_jig::CancelReason::NodeLost);
            break;
        }
    }
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Scheduled);
    let consistent = handle.with_annealer(|a| a.check_consistency()).await;
    assert_eq!(consistent.unwrap(), Ok(()));
    let why = handle.explain(slow).await.unwrap();
    assert!(why.to_string().contains("is not alive"), "{why}");
    handle
        .update(move |c| c.set_node_alive(n, true))
        .await
        .unwrap();
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Finished);
    handle.stop().await.unwrap();
    let runs = store
        .history(slow)
        .await
        .unwrap()
        .iter()
        .filter(|h| h.cause == Cause::JigStarted)
        .count();
    assert_eq!(runs, 2);
}

#[tokio::test]
async fn an_unknown_jig_fails_the_noderole_with_a_clear_message() {
    let store = Arc::new(MemStore::new());
    let mut c = cluster();
    c.create_role(RoleSpec::new("chef").jig("chef-solo"))
        .unwrap();
    nodes(&mut c, 1);
    let nr = c.bind_by_name("chef", "n0", None).unwrap();
    commit_all(&mut c);
    let handle = spawn(c, store.clone(), JigRegistry::with_builtins(), 10);
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Failed);
    handle.stop().await.unwrap();
    let last = store.history(nr).await.unwrap().pop().unwrap();
    assert_eq!(
        last.cause,
        Cause::JigFailed {
            message: "no jig named \"chef-solo\" is registered".into()
        }
    );
}

#[tokio::test]
async fn sqlite_holds_the_annealed_model_and_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crowbar.sqlite");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let mut c = cluster();
    c.create_role(RoleSpec::new("a").flag(RoleFlag::Implicit))
        .unwrap();
    c.create_role(RoleSpec::new("b").requires(["a"])).unwrap();
    for n in nodes(&mut c, 20) {
        let alias = c.node(n).unwrap().alias.clone();
        c.bind_by_name("b", &alias, None).unwrap();
    }
    commit_all(&mut c);
    let handle = spawn(c, store.clone(), JigRegistry::with_builtins(), 10);
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Finished);
    let stats = handle.stats().await.unwrap();
    handle.stop().await.unwrap();
    drop(store);
    let reopened = SqliteStore::open(&path).unwrap();
    assert!(
        states(&reopened)
            .await
            .iter()
            .all(|s| *s == NodeRoleState::Active)
    );
    // 40 noderoles: bind, commit, start, finish each; b's unblock too.
    assert_eq!(stats.transitions, 40 * 4 + 20);
    let h = reopened.history(NodeRoleId(2)).await.unwrap();
    assert_eq!(h.last().unwrap().to, NodeRoleState::Active);
}

/// Records what each run saw of its role and node. Finishes at once through `run_now`, where
/// the driver shows the node's row in the model, or (`spawned`) declines it so that every run
/// goes to a task with a context built from the driver's per-role and per-node caches.
#[derive(Default)]
struct Seen {
    runs: Mutex<Vec<(String, String, Option<std::net::IpAddr>)>>,
    spawned: bool,
}

impl Seen {
    fn spawned(spawned: bool) -> Seen {
        Seen {
            spawned,
            ..Seen::default()
        }
    }

    fn record(&self, cx: RunView<'_>) {
        let seen = (
            cx.role.to_string(),
            cx.node.alias.to_owned(),
            cx.node.address(),
        );
        self.runs.lock().unwrap().push(seen);
    }
}

#[async_trait]
impl Jig for Seen {
    async fn run(&self, cx: RunContext) -> Outcome {
        self.record(cx.view());
        Ok(JigOutput::empty())
    }

    fn needs_data(&self) -> bool {
        false
    }

    fn run_now(&self, cx: RunView<'_>) -> Option<Outcome> {
        if self.spawned {
            return None;
        }
        self.record(cx);
        Some(Ok(JigOutput::empty()))
    }
}

/// Gives the node of a noderole that becomes ACTIVE a new address, inside the annealer.
struct Renumber;

impl crowbar_core::RoleHooks for Renumber {
    fn on_active(
        &self,
        c: &mut Cluster,
        noderole: NodeRoleId,
    ) -> Result<(), crowbar_core::HookError> {
        let node = c.noderole(noderole).unwrap().node;
        c.set_node_hint(node, json!({"address": "10.0.0.2"}))
            .map_err(|e| crowbar_core::HookError::new(e.to_string()))
    }
}

#[tokio::test]
async fn run_contexts_follow_node_changes_made_by_hooks_and_by_updates() {
    for spawned in [false, true] {
        run_contexts_follow_node_changes_made_by_hooks_and_by_updates_case(spawned).await;
    }
}

async fn run_contexts_follow_node_changes_made_by_hooks_and_by_updates_case(spawned: bool) {
    let seen = Arc::new(Seen::spawned(spawned));
    let mut jigs = JigRegistry::new();
    jigs.register("seen", seen.clone());
    let mut c = cluster();
    c.create_role(RoleSpec::new("first").jig("seen")).unwrap();
    c.create_role(RoleSpec::new("second").jig("seen").requires(["first"]))
        .unwrap();
    c.register_hooks("first", Arc::new(Renumber));
    for (name, address) in [
        ("n0.example.com", "10.0.0.1"),
        ("n1.example.com", "10.0.1.1"),
    ] {
        c.create_node(
            NodeSpec::new(name)
                .alive(true)
                .hint(json!({"address": address})),
        )
        .unwrap();
    }
    c.bind_by_name("first", "n0", None).unwrap();
    let second = c.bind_by_name("second", "n0", None).unwrap();
    // A run on n1 first puts n0 and n1 in the cache before n0 changes.
    c.create_role(RoleSpec::new("other").jig("seen")).unwrap();
    c.bind_by_name("other", "n1", None).unwrap();
    commit_all(&mut c);
    let store = Arc::new(MemStore::new());
    let handle = spawn(c, store.clone(), jigs, 10);
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Finished);
    let addr = |s: &str| Some(s.parse().unwrap());
    let mut runs = std::mem::take(&mut *seen.runs.lock().unwrap());
    runs.sort();
    assert_eq!(
        runs,
        vec![
            ("first".into(), "n0".into(), addr("10.0.0.1")),
            ("other".into(), "n1".into(), addr("10.0.1.1")),
            ("second".into(), "n0".into(), addr("10.0.0.2")),
        ],
        "the run after the hook sees the node's new address"
    );

    handle
        .update(move |c| {
            let n0 = c.find_node("n0").unwrap();
            c.set_node_hint(n0, json!({"admin-v6addr": "fd00::3/64"}))?;
            c.deactivate(second, Cause::Retry)
        })
        .await
        .unwrap();
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Finished);
    assert_eq!(
        *seen.runs.lock().unwrap(),
        vec![("second".into(), "n0".into(), addr("fd00::3"))],
        "a run after an update sees the node as updated"
    );
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn run_contexts_are_rebuilt_after_a_call_even_when_it_took_the_batch_itself() {
    for spawned in [false, true] {
        run_contexts_are_rebuilt_after_a_call_even_when_it_took_the_batch_itself_case(spawned)
            .await;
    }
}

async fn run_contexts_are_rebuilt_after_a_call_even_when_it_took_the_batch_itself_case(
    spawned: bool,
) {
    let seen = Arc::new(Seen::spawned(spawned));
    let mut jigs = JigRegistry::new();
    jigs.register("seen", seen.clone());
    let mut c = cluster();
    c.create_role(RoleSpec::new("os").jig("seen")).unwrap();
    c.create_node(
        NodeSpec::new("n0.example.com")
            .alive(true)
            .hint(json!({"address": "10.0.0.1"})),
    )
    .unwrap();
    let os = c.bind_by_name("os", "n0", None).unwrap();
    commit_all(&mut c);
    let handle = spawn(c, Arc::new(MemStore::new()), jigs, 10);
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Finished);
    let addr = |s: &str| Some(s.parse().unwrap());
    let first = std::mem::take(&mut *seen.runs.lock().unwrap());
    assert_eq!(first, vec![("os".into(), "n0".into(), addr("10.0.0.1"))]);

    // The node changes and the batch that carries its row is taken inside the call, so the
    // driver never sees it: only dropping every cached context after a call keeps the next
    // run from seeing the old address.
    let taken = handle
        .with_annealer(move |a| {
            let c = a.cluster_mut();
            let n0 = c.find_node("n0").unwrap();
            c.set_node_hint(n0, json!({"address": "10.0.0.9"})).unwrap();
            c.deactivate(os, Cause::Retry).unwrap();
            c.take_batch().nodes.len()
        })
        .await
        .unwrap();
    assert_eq!(
        taken, 1,
        "the node's row left with the batch taken in the call"
    );
    assert_eq!(handle.wait_idle().await.unwrap(), AnnealStatus::Finished);
    assert_eq!(
        *seen.runs.lock().unwrap(),
        vec![("os".into(), "n0".into(), addr("10.0.0.9"))],
        "the run after the call sees the node as changed"
    );
    handle.stop().await.unwrap();
}

/// Answers at once, by role: wall data, a runlog, a failure, or nothing to report.
struct Instant;

#[async_trait]
impl Jig for Instant {
    async fn run(&self, _cx: RunContext) -> Outcome {
        unreachable!("every run is answered at once")
    }

    fn needs_data(&self) -> bool {
        false
    }

    fn run_now(&self, cx: RunView<'_>) -> Option<Outcome> {
        Some(match cx.role {
            "wall" => Ok(JigOutput::with_wall(json!({"answer": 42}))),
            "log" => Ok(JigOutput {
                wall: None,
                runlog: "said something".into(),
            }),
            "fail" => Err(crowbar_jig::JigError::failed("no luck", false)),
            _ => Ok(JigOutput::empty()),
        })
    }
}

#[tokio::test]
async fn instant_results_with_and_without_data_are_applied_in_the_same_wave() {
    let mut jigs = JigRegistry::new();
    jigs.register("instant", Arc::new(Instant));
    let mut c = cluster();
    let ids = nodes(&mut c, 4);
    let mut bound = Vec::new();
    for (role, node) in ["wall", "log", "fail", "quiet"].into_iter().zip(&ids) {
        c.create_role(RoleSpec::new(role).jig("instant")).unwrap();
        let name = c.node(*node).unwrap().name.to_string();
        bound.push(c.bind_by_name(role, &name, None).unwrap());
    }
    commit_all(&mut c);
    let store = Arc::new(MemStore::new());
    let handle = spawn(c, store.clone(), jigs, 10);
    // A result left unapplied would keep the annealer busy for ever: fail instead.
    let idle = tokio::time::timeout(Duration::from_secs(30), handle.wait_idle()).await;
    assert_eq!(
        idle.expect("the anneal ends").unwrap(),
        AnnealStatus::Failed
    );
    let stats = handle.stats().await.unwrap();
    handle.stop().await.unwrap();
    assert_eq!(stats.runs, 4, "all four ran, once each");
    let snapshot = store.load().await.unwrap();
    let row = |id: NodeRoleId| snapshot.noderoles.iter().find(|n| n.id == id).unwrap();
    let [wall, log, fail, quiet] = [0, 1, 2, 3].map(|i| row(bound[i]));
    assert_eq!(wall.state, NodeRoleState::Active);
    assert_eq!(wall.wall, json!({"answer": 42}));
    assert_eq!(log.state, NodeRoleState::Active);
    assert_eq!(log.runlog, "said something");
    assert_eq!(fail.state, NodeRoleState::Error);
    assert_eq!(quiet.state, NodeRoleState::Active);
    assert_eq!(quiet.runlog, "");
}
