//! Annealing to stability with the noop jig: N nodes × 10 roles with cross-node parents, for
//! N = 1k, 10k and 100k, next to a bare topological walk of the same graph (the floor).
//!
//! - `floor`: Kahn's algorithm over the noderole graph (parents counted, children released),
//!   on a cluster just built, as every anneal line below starts from one.
//! - `floor_by_level`: the same walk breadth first (its ready list a FIFO queue), which visits
//!   the graph level by level: close to the (cohort, id) order the annealer must keep, where
//!   `floor` goes depth first, along each node's chain. In a large cluster each level sweeps
//!   every node, so this shows what that order alone costs a bare walk.
//! - `floor_warm`: the same walk repeated on one cluster, its tables already in the caches
//!   from the walk before: a lower bound no anneal can reach, as an anneal changes the
//!   cluster it walks and so always starts from a fresh one.
//! - `state_machine`: the same walk calling `start_run` and `finish_run` of crowbar-core on
//!   each noderole, the time pinned as the annealer pins it: the model's own cost, with no
//!   scheduling.
//! - `core`: the pure scheduling core alone, results applied at once, batches dropped.
//! - `driver_mem`: the tokio driver with the `noop` jig, every batch persisted in `MemStore`
//!   (which holds the cluster as built beforehand: it is filled before the cluster is built,
//!   so that this line too starts timing right after a build).
//! - `driver_sqlite` (1k nodes): the same into `SqliteStore` (WAL, synchronous=FULL); its
//!   throughput is in state transitions.
//!
//! `cargo bench -p crowbar --bench anneal`. In test mode (`-- --test`, or under `cargo test --benches`) the 100k case is left
//! out so that CI stays fast.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use crowbar::anneal::{AnnealStatus, Annealer, AnnealerConfig, Driver, DriverConfig};
use crowbar::core::{
    Batch, Cluster, MemStore, NodeRoleId, NodeSpec, RoleFlag, RoleSpec, RunResult, SqliteStore,
    Store, Timestamp,
};
use crowbar::jig::JigRegistry;

const ROLES: usize = 10;
const RACK: usize = 20;
/// The global cap used by the benches (Crowbar's default of 10 makes waves of 10 runs).
const CAP: usize = 1000;

/// A cluster of `nodes` nodes in racks of 20, each rack a deployment. Roles `r0`..`r9` form a
/// chain on every node (`r9` requires `r8`... all implicit); `r5` also requires `hub`, bound on
/// the first node of each rack: 10 noderoles per node plus one hub per rack, with a parent on
/// another node for 19 of every 20 `r5`s. Returns the cluster and its creation batch.
fn build(nodes: usize) -> (Cluster, Batch) {
    let mut c = Cluster::new();
    c.create_role(RoleSpec::new("hub").requires(["r4"]))
        .unwrap();
    for i in 0..ROLES {
        let mut spec = RoleSpec::new(format!("r{i}")).flag(RoleFlag::Implicit);
        if i > 0 {
            spec = spec.requires([format!("r{}", i - 1)]);
        }
        if i == 5 {
            spec = spec.requires(["hub"]);
        }
        c.create_role(spec).unwrap();
    }
    let racks = nodes.div_ceil(RACK);
    let mut deployments = Vec::with_capacity(racks);
    for r in 0..racks {
        let d = c.create_deployment(&format!("rack{r}"), None).unwrap();
        c.commit_deployment(d).unwrap();
        deployments.push(d);
    }
    let hub = c.find_role("hub").unwrap();
    let top = c.find_role(&format!("r{}", ROLES - 1)).unwrap();
    for n in 0..nodes {
        let id = c
            .create_node(NodeSpec::new(format!("n{n}.bench.example")).alive(true))
            .unwrap();
        let d = deployments[n / RACK];
        if n % RACK == 0 {
            c.bind(hub, id, Some(d)).unwrap();
        }
        c.bind(top, id, Some(d)).unwrap();
        c.commit_node(id).unwrap();
    }
    let batch = c.take_batch();
    (c, batch)
}

/// The floor: a topological walk of the same graph, depth first.
fn floor(c: &Cluster) -> usize {
    walk::<Vec<NodeRoleId>>(c)
}

/// The floor breadth first: the same walk with a FIFO ready list, level by level.
fn floor_by_level(c: &Cluster) -> usize {
    walk::<VecDeque<NodeRoleId>>(c)
}

/// The ready list of a topological walk: a stack walks depth first, a queue breadth first.
trait ReadyList: Default {
    fn put(&mut self, id: NodeRoleId);
    fn take(&mut self) -> Option<NodeRoleId>;
}

impl ReadyList for Vec<NodeRoleId> {
    #[inline(always)]
    fn put(&mut self, id: NodeRoleId) {
        self.push(id);
    }
    #[inline(always)]
    fn take(&mut self) -> Option<NodeRoleId> {
        self.pop()
    }
}

impl ReadyList for VecDeque<NodeRoleId> {
    #[inline(always)]
    fn put(&mut self, id: NodeRoleId) {
        self.push_back(id);
    }
    #[inline(always)]
    fn take(&mut self) -> Option<NodeRoleId> {
        self.pop_front()
    }
}

/// Kahn's algorithm: parents counted, children released once their last parent is visited.
/// Returns how many noderoles it visited.
fn walk<R: ReadyList>(c: &Cluster) -> usize {
    let bound = c.noderole_id_bound();
    let mut pending = vec![0u32; bound];
    let mut ready = R::default();
    for nr in c.noderoles() {
        let n = c.parents(nr.id).len() as u32;
        pending[nr.id.0 as usize] = n;
        if n == 0 {
            ready.put(nr.id);
        }
    }
    let mut visited = 0;
    while let Some(id) = ready.take() {
        visited += 1;
        for &child in c.children(id) {
            let p = &mut pending[child.0 as usize];
            *p -= 1;
            if *p == 0 {
                ready.put(child);
            }
        }
    }
    visited
}

/// The state machine alone, as a second floor: `start_run` and `finish_run` of every
/// noderole in a topological order, no scheduling, with the time pinned as the annealer pins
/// it for a wave (so the clock is read once, not per transition): what the model itself costs
/// an anneal (state, counters, history, batch marks).
fn state_machine(c: &mut Cluster) -> usize {
    c.set_time(Some(Timestamp(1)));
    let mut pending = vec![0u32; c.noderole_id_bound()];
    let mut queue: Vec<NodeRoleId> = Vec::new();
    for nr in c.noderoles() {
        let n = c.parents(nr.id).len() as u32;
        pending[nr.id.0 as usize] = n;
        if n == 0 {
            queue.push(nr.id);
        }
    }
    let mut runs = 0;
    while let Some(id) = queue.pop() {
        c.start_run(id).unwrap();
        let done = RunResult::Succeeded {
            wall: None,
            runlog: String::new(),
        };
        c.finish_run(id, done).unwrap();
        runs += 1;
        for i in 0..c.children(id).len() {
            let child = c.children(id)[i];
            let p = &mut pending[child.0 as usize];
            *p -= 1;
            if *p == 0 {
                queue.push(child);
            }
        }
    }
    c.set_time(None);
    black_box(c.take_batch());
    runs
}

/// The pure core to stability, every run succeeding at once.
fn anneal_core(a: &mut Annealer) -> u64 {
    let now = Timestamp(0);
    loop {
        let ready = a.ready(now);
        if ready.is_empty() {
            break;
        }
        a.advance();
        a.handle_runs_succeeded(ready.runs.into_iter().map(|r| r.run), now);
    }
    a.runs_started()
}

fn config() -> AnnealerConfig {
    AnnealerConfig::with_max_running(CAP)
}

/// The driver to stability; returns the transitions it persisted and the time it took (the
/// final drop of the model is not counted).
fn driver(rt: &tokio::runtime::Runtime, a: Annealer, store: Arc<dyn Store>) -> (u64, Duration) {
    rt.block_on(async move {
        let t = Instant::now();
        let h = Driver::spawn(
            a,
            store,
            JigRegistry::with_builtins(),
            DriverConfig::default(),
        );
        assert_eq!(h.wait_idle().await.unwrap(), AnnealStatus::Finished);
        let elapsed = t.elapsed();
        let stats = h.stats().await.unwrap();
        h.stop().await.unwrap();
        (stats.transitions, elapsed)
    })
}

/// Runs `one` on `iters` freshly built clusters of `nodes` nodes and sums the times it reports
/// (the build is not timed; the cluster's drop happens inside `one`, after its timer stops).
fn on_fresh_clusters(
    iters: u64,
    nodes: usize,
    mut one: impl FnMut(Cluster) -> Duration,
) -> Duration {
    with_fresh_clusters(iters, nodes, || (), |(), c| one(c))
}

/// As [`on_fresh_clusters`], with `setup` (a store to fill, say) run before each build, so
/// that every line starts timing right after a build, as the floor does.
fn with_fresh_clusters<S>(
    iters: u64,
    nodes: usize,
    mut setup: impl FnMut() -> S,
    mut one: impl FnMut(S, Cluster) -> Duration,
) -> Duration {
    (0..iters)
        .map(|_| {
            let prepared = setup();
            one(prepared, build(nodes).0)
        })
        .sum()
}

/// Criterion's test mode: `cargo bench -- --test`, or the bench run by `cargo test` (no
/// `--bench` argument), where each benchmark runs once.
fn test_mode() -> bool {
    let mut args = std::env::args();
    args.any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench")
}

fn anneal(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sizes = vec![1_000, 10_000];
    if !test_mode() {
        sizes.push(100_000);
    }
    let mut group = c.benchmark_group("anneal");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(100));
    for &nodes in &sizes {
        let (cluster, batch) = build(nodes);
        let noderoles = cluster.noderole_count() as u64;
        group.throughput(Throughput::Elements(noderoles));
        group.measurement_time(Duration::from_secs(if nodes >= 100_000 { 60 } else { 10 }));
        group.bench_function(BenchmarkId::new("floor", nodes), |b| {
            b.iter_custom(|iters| {
                on_fresh_clusters(iters, nodes, |c| {
                    let t = Instant::now();
                    assert_eq!(black_box(floor(&c)), noderoles as usize);
                    t.elapsed()
                })
            });
        });
        group.bench_function(BenchmarkId::new("floor_by_level", nodes), |b| {
            b.iter_custom(|iters| {
                on_fresh_clusters(iters, nodes, |c| {
                    let t = Instant::now();
                    assert_eq!(black_box(floor_by_level(&c)), noderoles as usize);
                    t.elapsed()
                })
            });
        });
        group.bench_function(BenchmarkId::new("floor_warm", nodes), |b| {
            b.iter(|| assert_eq!(black_box(floor(&cluster)), noderoles as usize));
        });
        drop(cluster);
        group.bench_function(BenchmarkId::new("state_machine", nodes), |b| {
            b.iter_custom(|iters| {
                on_fresh_clusters(iters, nodes, |mut c| {
                    let t = Instant::now();
                    assert_eq!(black_box(state_machine(&mut c)), noderoles as usize);
                    t.elapsed()
                })
            });
        });
        group.bench_function(BenchmarkId::new("core", nodes), |b| {
            b.iter_custom(|iters| {
                on_fresh_clusters(iters, nodes, |c| {
                    let mut a = Annealer::new(c, config()).unwrap();
                    let t = Instant::now();
                    assert_eq!(black_box(anneal_core(&mut a)), noderoles);
                    t.elapsed()
                })
            });
        });
        // The store holds the cluster as built (its creation batch) before the run, as after
        // `Driver::start`; it is filled before the cluster is built.
        let mem_store = || {
            let store = Arc::new(MemStore::new());
            rt.block_on(store.apply(batch.clone())).unwrap();
            store
        };
        let in_memory = |store: Arc<MemStore>, c: Cluster| {
            driver(&rt, Annealer::new(c, config()).unwrap(), store)
        };
        group.bench_function(BenchmarkId::new("driver_mem", nodes), |b| {
            b.iter_custom(|iters| {
                with_fresh_clusters(iters, nodes, mem_store, |store, c| {
                    black_box(in_memory(store, c)).1
                })
            });
        });
        if nodes == 1_000 {
            let transitions = in_memory(mem_store(), build(nodes).0).0;
            group.throughput(Throughput::Elements(transitions));
            let sqlite_store = || {
                let dir = tempfile::tempdir().unwrap();
                let store = Arc::new(SqliteStore::open(dir.path().join("b.sqlite")).unwrap());
                rt.block_on(store.apply(batch.clone())).unwrap();
                (dir, store)
            };
            group.bench_function(BenchmarkId::new("driver_sqlite_transitions", nodes), |b| {
                b.iter_custom(|iters| {
                    with_fresh_clusters(iters, nodes, sqlite_store, |(_dir, store), c| {
                        let a = Annealer::new(c, config()).unwrap();
                        let (done, elapsed) = black_box(driver(&rt, a, store));
                        assert_eq!(done, transitions);
                        elapsed
                    })
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, anneal);
criterion_main!(benches);
