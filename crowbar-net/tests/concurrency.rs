//! Concurrent allocation requests never collide.
//!
//! [`Networks`] is plain data (`Send + Sync`); sharing it is the caller's choice. Here eight
//! threads share one registry behind a `Mutex` and bind overlapping sets of nodes, some of them
//! racing for the same node and the same hint; afterwards every node holds exactly one address
//! per range, no address is held twice, and every thread that asked for one node saw the same
//! answer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::thread;

use crowbar_core::{DeploymentId, NodeId};
use crowbar_net::{NetworkAllocation, NetworkId, NetworkSpec, Networks, RangeKind, UlaConfig};

const THREADS: u64 = 8;
const NODES_PER_THREAD: u64 = 150;

fn shared_registry() -> (Arc<Mutex<Networks>>, NetworkId, NetworkId) {
    let mut nets = Networks::new(UlaConfig::new(0x42));
    let admin = nets
        .add(
            NetworkSpec::new("admin", DeploymentId(1), "1g0")
                .range(
                    RangeKind::Admin,
                    "10.0.0.1/16".parse().unwrap(),
                    "10.0.0.250/16".parse().unwrap(),
                )
                .range(
                    RangeKind::Host,
                    "10.0.1.1/16".parse().unwrap(),
                    "10.0.255.254/16".parse().unwrap(),
                ),
        )
        .unwrap();
    let storage = nets
        .add(NetworkSpec::new("storage", DeploymentId(1), "1g1").range(
            RangeKind::Host,
            "10.1.0.1/16".parse().unwrap(),
            "10.1.255.254/16".parse().unwrap(),
        ))
        .unwrap();
    (Arc::new(Mutex::new(nets)), admin, storage)
}

#[test]
fn concurrent_binds_never_collide() {
    let (shared, admin, storage) = shared_registry();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let mut seen: Vec<NetworkAllocation> = Vec::new();
                for i in 0..NODES_PER_THREAD {
                    // Half the nodes are this thread's own, half are shared by all threads.
                    let node = if i % 2 == 0 { t * 1000 + i } else { i };
                    let fqdn = format!("n{node}.example");
                    // Every thread hints the same address: only one node may get it.
                    let hint = Some(Ipv4Addr::new(10, 0, 1, 7));
                    for network in [admin, storage] {
                        let mut nets = shared.lock().unwrap();
                        nets.allocate_node(network, NodeId(node), &fqdn, node % 7 == 0, hint, None)
                            .unwrap();
                        seen.extend(nets.node_allocations(network, NodeId(node)));
                    }
                    // Some threads delete and re-bind a node of their own while others run.
                    if i % 10 == 0 {
                        let mut nets = shared.lock().unwrap();
                        nets.release_node(NodeId(node));
                        nets.allocate_node(admin, NodeId(node), &fqdn, false, None, None)
                            .unwrap();
                        seen.retain(|a| a.node != NodeId(node));
                        seen.extend(nets.node_allocations(admin, NodeId(node)));
                    }
                }
                seen
            })
        })
        .collect();
    let per_thread: Vec<Vec<NetworkAllocation>> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();

    let nets = shared.lock().unwrap();
    let all: Vec<NetworkAllocation> = nets.allocations().collect();
    let addresses: BTreeSet<IpAddr> = all.iter().map(|a| a.address.addr()).collect();
    assert_eq!(addresses.len(), all.len(), "an address was allocated twice");
    let mut by_slot: BTreeMap<(NodeId, NetworkId, RangeKind), IpAddr> = BTreeMap::new();
    for a in &all {
        let range = nets.get(a.network).unwrap().range(&a.range).unwrap();
        assert!(
            range.contains(a.address.addr()),
            "{} outside its range",
            a.address
        );
        let old = by_slot.insert((a.node, a.network, a.range.clone()), a.address.addr());
        assert_eq!(
            old, None,
            "node {} holds two addresses in one range",
            a.node
        );
    }
    // Each node: one address on admin and one on storage, except the nodes deleted and
    // re-bound on admin only.
    let nodes: BTreeSet<NodeId> = all.iter().map(|a| a.node).collect();
    let own = THREADS * NODES_PER_THREAD / 2;
    let shared_nodes = NODES_PER_THREAD / 2;
    assert_eq!(nodes.len() as u64, own + shared_nodes);
    // The hinted address went to exactly one node.
    assert!(nets.holder("10.0.1.7".parse().unwrap()).is_some());
    // What a thread last saw for a shared node is what the registry holds: racing threads
    // were all handed the same allocation.
    for seen in &per_thread {
        for a in seen.iter().filter(|a| a.node.0 < 1000) {
            assert_eq!(
                by_slot.get(&(a.node, a.network, a.range.clone())),
                Some(&a.address.addr())
            );
        }
    }
}

#[test]
fn the_registry_and_its_parts_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Networks>();
    send_sync::<crowbar_net::RangeAllocator>();
    send_sync::<crowbar_net::Network>();
    send_sync::<crowbar_net::NetError>();
}
