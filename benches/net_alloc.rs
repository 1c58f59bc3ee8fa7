//! Address allocation at scale: 60,000 binds in a /16, and the last free addresses of a /16 at
//! 99.9% occupancy, next to a naive walk from the range's first address (Crowbar's algorithm).
//!
//! Run with `cargo bench -p crowbar --bench net_alloc`.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use crowbar::core::NodeId;
use crowbar::net::{
    Network, NetworkId, NetworkSpec, Networks, RangeAllocator, RangeKind, UlaConfig,
};

/// 10.1.0.1 ..= 10.1.255.254: the 65,534 usable addresses of a /16.
const FIRST: u32 = 0x0a01_0001;
const LAST: u32 = 0x0a01_fffe;
const SIZE: u32 = LAST - FIRST + 1;

fn slash16_spec(name: &str, v6prefix: &str) -> NetworkSpec {
    serde_json::from_str(&format!(
        r#"{{"name":"{name}","deployment":1,"conduit":"1g0","v6prefix":"{v6prefix}",
            "ranges":[{{"name":"host","first":"10.1.0.1/16","last":"10.1.255.254/16"}}]}}"#
    ))
    .expect("a valid spec")
}

fn registry(v6prefix: &str) -> (Networks, NetworkId) {
    let mut nets = Networks::new(UlaConfig::new(0x12_3456_789a));
    let id = nets
        .add(slash16_spec("bench", v6prefix))
        .expect("a valid network");
    (nets, id)
}

fn bind_60000(c: &mut Criterion) {
    let mut group = c.benchmark_group("net_alloc");
    group.sample_size(20);
    for (label, v6prefix) in [
        ("bind_60000_in_slash16", "none"),
        ("bind_60000_in_slash16_with_v6", "auto"),
    ] {
        group.bench_function(label, |b| {
            b.iter_batched(
                || {
                    let fqdns: Vec<String> =
                        (0..60_000).map(|n| format!("n{n}.cr0wbar.com")).collect();
                    (registry(v6prefix), fqdns)
                },
                |((mut nets, id), fqdns)| {
                    for (n, fqdn) in fqdns.iter().enumerate() {
                        let made = nets
                            .allocate_node(id, NodeId(n as u64), fqdn, false, None, None)
                            .expect("room left");
                        black_box(made);
                    }
                    nets
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// A /16 host range holding every address but the `free` highest ones.
fn nearly_full(free: u32) -> RangeAllocator {
    let spec = slash16_spec("full", "none");
    let network = Network::new(NetworkId(1), spec, UlaConfig::default()).expect("valid");
    let mut alloc = RangeAllocator::new(&network, &RangeKind::Host).expect("range");
    for n in 0..SIZE - free {
        alloc.allocate(NodeId(u64::from(n)), None).expect("room");
    }
    alloc
}

/// Crowbar's algorithm: walk from `first` alongside the sorted allocations to the first gap.
fn naive_lowest_free(used: &BTreeSet<u32>) -> Option<u32> {
    let mut candidate = FIRST;
    for &u in used {
        if u != candidate {
            break;
        }
        candidate += 1;
    }
    (candidate <= LAST).then_some(candidate)
}

fn nearly_full_range(c: &mut Criterion) {
    let mut group = c.benchmark_group("net_alloc");
    // 65 free of 65,534: 99.9% occupied, the free addresses at the top (the walk's worst case).
    for (label, free) in [("at_99.9pct", 65), ("last_free_address", 1)] {
        let mut alloc = nearly_full(free);
        let node = NodeId(u64::MAX);
        group.bench_function(format!("allocate_release_{label}"), |b| {
            b.iter(|| {
                let a = alloc.allocate(node, None).expect("one free");
                black_box(&a);
                alloc.release(node)
            });
        });
        let used: BTreeSet<u32> = (FIRST..=LAST - free).collect();
        group.bench_function(format!("naive_walk_{label}"), |b| {
            b.iter(|| naive_lowest_free(black_box(&used)));
        });
        // A hint at the last free address.
        let hint = IpAddr::V4(Ipv4Addr::from(LAST));
        group.bench_function(format!("allocate_release_hint_{label}"), |b| {
            b.iter(|| {
                let a = alloc.allocate(node, Some(hint)).expect("hint free");
                black_box(&a);
                alloc.release(node)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bind_60000, nearly_full_range);
criterion_main!(benches);
