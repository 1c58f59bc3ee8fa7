//! Bind and commit 10,000 nodes × 20 roles, into `MemStore` and into `SqliteStore`, and the core
//! memory per noderole.
//!
//! `cargo bench --bench binding`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crowbar::core::{Cluster, MemStore, NodeSpec, RoleFlag, RoleSpec, SqliteStore, Store};

/// Resident memory of this process, from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

const ROLES: usize = 20;

/// 20 roles in a chain (`r19` requires `r18` ... `r0`, all implicit so each node gets its own
/// chain), `r10` also requiring `svc`, which lives on one service node: binding `r19` on a node
/// creates its 20 noderoles, one of them with a parent on another node.
fn build(nodes: usize) -> Cluster {
    let mut c = Cluster::new();
    c.create_role(RoleSpec::new("svc")).unwrap();
    for i in 0..ROLES {
        let mut spec = RoleSpec::new(format!("r{i}"));
        if i > 0 {
            spec = spec.requires([format!("r{}", i - 1)]);
        }
        if i == 10 {
            spec = spec.requires(["svc"]);
        }
        if i < ROLES - 1 {
            spec = spec.flag(RoleFlag::Implicit);
        }
        c.create_role(spec).unwrap();
    }
    let svc_node = c
        .create_node(NodeSpec::new("svc.bench.example").alive(true))
        .unwrap();
    let svc = c.find_role("svc").unwrap();
    c.bind(svc, svc_node, None).unwrap();
    let top = c.find_role(&format!("r{}", ROLES - 1)).unwrap();
    for i in 0..nodes {
        let n = c
            .create_node(NodeSpec::new(format!("n{i}.bench.example")).alive(true))
            .unwrap();
        c.bind(top, n, None).unwrap();
        c.commit_node(n).unwrap();
    }
    c
}

/// The growth of resident memory while building 10,000 nodes × 20 roles, per noderole, once
/// the pending batch has been taken and dropped: the model's own state (nodes, roles, indices,
/// graph) with empty user data.
fn memory_per_noderole() {
    let before = resident_bytes();
    let mut c = build(10_000);
    drop(c.take_batch());
    let after = resident_bytes();
    if let (Some(before), Some(after)) = (before, after) {
        eprintln!(
            "memory: {} noderoles, {:.0} bytes of resident memory per noderole",
            c.noderole_count(),
            after.saturating_sub(before) as f64 / c.noderole_count() as f64
        );
    }
}

fn bench(crit: &mut Criterion) {
    memory_per_noderole();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = crit.benchmark_group("bind_commit");
    group.sample_size(10);
    let nodes = 10_000;
    group.throughput(Throughput::Elements((nodes * ROLES) as u64));
    group.bench_function(BenchmarkId::new("memstore", nodes), |b| {
        b.iter(|| {
            let mut c = build(nodes);
            let store = MemStore::new();
            rt.block_on(store.apply(c.take_batch())).unwrap();
        })
    });
    group.bench_function(BenchmarkId::new("sqlite", nodes), |b| {
        b.iter_with_setup(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let mut c = build(nodes);
                let store = SqliteStore::open(dir.path().join("bench.sqlite")).unwrap();
                rt.block_on(store.apply(c.take_batch())).unwrap();
                dir
            },
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
