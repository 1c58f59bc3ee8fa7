//! Property tests of the allocator against a naive model, and of the registry's invariants:
//! no address is ever allocated twice, every address lies in its range, release and reallocate
//! behave, and rebuilding from the allocations gives back the same state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crowbar_core::{DeploymentId, NodeId};
use crowbar_net::{
    NetError, Network, NetworkAllocation, NetworkId, NetworkSpec, Networks, RangeAllocator,
    RangeKind, RouterSpec, UlaConfig, V6Prefix,
};
use ipnet::IpNet;
use proptest::prelude::*;

// ---- one range against a model ----

#[derive(Debug, Clone)]
enum Op {
    /// Allocate for `node`, hinting at `first + offset` (the offset may fall outside the range).
    Alloc {
        node: u64,
        hint: Option<i64>,
    },
    Release {
        node: u64,
    },
}

fn op(size: u64) -> impl Strategy<Value = Op> {
    let span = size as i64;
    prop_oneof![
        3 => (0..12u64, proptest::option::of(-3..span + 3))
            .prop_map(|(node, hint)| Op::Alloc { node, hint }),
        1 => (0..12u64).prop_map(|node| Op::Release { node }),
    ]
}

/// The naive model: Crowbar's walk from `first` upward, over a map of node → value.
#[derive(Default)]
struct Model {
    first: u128,
    last: u128,
    reserved: Option<u128>,
    held: BTreeMap<u64, u128>,
}

impl Model {
    fn used(&self, v: u128) -> bool {
        self.reserved == Some(v) || self.held.values().any(|&h| h == v)
    }

    fn alloc(&mut self, node: u64, hint: Option<u128>) -> Option<u128> {
        if let Some(&v) = self.held.get(&node) {
            return Some(v);
        }
        let pick = match hint {
            Some(h) if self.first <= h && h <= self.last && !self.used(h) => Some(h),
            _ => (self.first..=self.last).find(|&v| !self.used(v)),
        }?;
        self.held.insert(node, pick);
        Some(pick)
    }
}

fn int(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn addr_of(v6: bool, v: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
}

/// A network with one host range `[base + start, base + start + size - 1]` and optionally a
/// router inside it.
fn one_range(v6: bool, start: u64, size: u64, router: Option<u64>) -> (Network, Model) {
    let (base, len) = if v6 {
        (u128::from("fd00:0:0:7::".parse::<Ipv6Addr>().unwrap()), 64)
    } else {
        (u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 0))), 24)
    };
    let first = base + u128::from(start);
    let last = first + u128::from(size) - 1;
    let at = |v: u128| IpNet::new(addr_of(v6, v), len).unwrap();
    let mut spec = NetworkSpec::new("n", DeploymentId(1), "1g0")
        .v6prefix(V6Prefix::None)
        .range(RangeKind::Host, at(first), at(last));
    let reserved = router.map(|r| first + u128::from(r % size));
    if let Some(r) = reserved {
        spec.router = Some(RouterSpec {
            address: Some(at(r)),
            preference: 1,
        });
    }
    let network = Network::new(NetworkId(1), spec, UlaConfig::new(1)).unwrap();
    let model = Model {
        first,
        last,
        reserved,
        held: BTreeMap::new(),
    };
    (network, model)
}

fn range_case() -> impl Strategy<Value = (bool, u64, u64, Option<u64>, Vec<Op>)> {
    (
        any::<bool>(),
        1..200u64,
        1..40u64,
        proptest::option::of(0..40u64),
    )
        .prop_flat_map(|(v6, start, size, router)| {
            (
                Just(v6),
                Just(start),
                Just(size),
                Just(router),
                proptest::collection::vec(op(size), 1..80),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn allocator_matches_the_naive_walk((v6, start, size, router, ops) in range_case()) {
        let (network, mut model) = one_range(v6, start, size, router);
        let mut alloc = RangeAllocator::new(&network, &RangeKind::Host).unwrap();
        for op in ops {
            match op {
                Op::Alloc { node, hint } => {
                    let hint_v = hint.map(|h| (model.first as i128 + i128::from(h)) as u128);
                    let got = alloc.allocate(NodeId(node), hint_v.map(|v| addr_of(v6, v)));
                    match model.alloc(node, hint_v) {
                        Some(v) => {
                            let got = got.unwrap();
                            prop_assert_eq!(got.address.addr(), addr_of(v6, v));
                            prop_assert_eq!(got.node, NodeId(node));
                        }
                        None => prop_assert_eq!(got, Err(NetError::RangeFull {
                            network: "n".into(),
                            range: RangeKind::Host,
                        })),
                    }
                }
                Op::Release { node } => {
                    let got = alloc.release(NodeId(node)).map(|a| int(a.address.addr()));
                    prop_assert_eq!(got, model.held.remove(&node));
                }
            }
            // Same holdings as the model: so no address twice, and all inside the range.
            let held: BTreeMap<u64, u128> = alloc
                .allocations()
                .map(|a| (a.node.0, int(a.address.addr())))
                .collect();
            prop_assert_eq!(&held, &model.held);
            let distinct: BTreeSet<u128> = held.values().copied().collect();
            prop_assert_eq!(distinct.len(), held.len());
            for a in alloc.allocations() {
                prop_assert!(network.range(&RangeKind::Host).unwrap().contains(a.address.addr()));
                prop_assert_eq!(a.address.prefix_len(), if v6 { 64 } else { 24 });
            }
            let reserved = u128::from(model.reserved.is_some());
            prop_assert_eq!(alloc.free_count(), u128::from(size) - held.len() as u128 - reserved);
            // Rebuilding from the allocations gives the same index.
            let rebuilt =
                RangeAllocator::from_allocations(&network, &RangeKind::Host, alloc.allocations())
                    .unwrap();
            prop_assert_eq!(&rebuilt, &alloc);
        }
    }
}

// ---- the registry across networks ----

#[derive(Debug, Clone)]
enum NetOp {
    Bind {
        net: usize,
        node: u64,
        is_admin: bool,
        v4_hint: Option<u8>,
        v6_hint: Option<u8>,
    },
    Unbind {
        net: usize,
        node: u64,
    },
    DeleteNode {
        node: u64,
    },
}

fn net_op() -> impl Strategy<Value = NetOp> {
    prop_oneof![
        4 => (0..3usize, 0..30u64, any::<bool>(), proptest::option::of(0..40u8), proptest::option::of(0..8u8))
            .prop_map(|(net, node, is_admin, v4_hint, v6_hint)| NetOp::Bind { net, node, is_admin, v4_hint, v6_hint }),
        1 => (0..3usize, 0..30u64).prop_map(|(net, node)| NetOp::Unbind { net, node }),
        1 => (0..30u64).prop_map(|node| NetOp::DeleteNode { node }),
    ]
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Three networks with small ranges so they fill up: admin (admin, dhcp, host, auto v6),
/// storage (host only), public (host plus a tiny explicit host-v6 range).
fn three_networks() -> (Networks, Vec<NetworkId>) {
    let mut nets = Networks::new(UlaConfig::new(0xab_cdef_0123));
    let admin = nets
        .add(
            NetworkSpec::new("admin", DeploymentId(1), "1g0")
                .range(
                    RangeKind::Admin,
                    net("192.168.124.10/24"),
                    net("192.168.124.12/24"),
                )
                .range(
                    RangeKind::Dhcp,
                    net("192.168.124.21/24"),
                    net("192.168.124.30/24"),
                )
                .range(
                    RangeKind::Host,
                    net("192.168.124.81/24"),
                    net("192.168.124.95/24"),
                )
                .router(net("192.168.124.81/24"), 10),
        )
        .unwrap();
    let storage = nets
        .add(NetworkSpec::new("storage", DeploymentId(1), "1g1").range(
            RangeKind::Host,
            net("10.10.0.1/24"),
            net("10.10.0.20/24"),
        ))
        .unwrap();
    let public = nets
        .add(
            NetworkSpec::new("public", DeploymentId(1), "1g1")
                .vlan(300)
                .v6prefix(V6Prefix::Explicit("fd00:300::/64".parse().unwrap()))
                .range(RangeKind::Host, net("10.30.0.5/24"), net("10.30.0.30/24"))
                .range(
                    RangeKind::HostV6,
                    net("fd00:300::1/64"),
                    net("fd00:300::6/64"),
                ),
        )
        .unwrap();
    (nets, vec![admin, storage, public])
}

fn check_invariants(nets: &Networks) -> Result<(), TestCaseError> {
    let all: Vec<NetworkAllocation> = nets.allocations().collect();
    let addrs: BTreeSet<IpAddr> = all.iter().map(|a| a.address.addr()).collect();
    prop_assert_eq!(addrs.len(), all.len(), "an address was allocated twice");
    let per_range: BTreeSet<(NetworkId, RangeKind, NodeId)> = all
        .iter()
        .map(|a| (a.network, a.range.clone(), a.node))
        .collect();
    prop_assert_eq!(
        per_range.len(),
        all.len(),
        "a node holds two addresses in one range"
    );
    for a in &all {
        let network = nets.get(a.network).unwrap();
        let range = network.range(&a.range).unwrap();
        prop_assert!(
            range.contains(a.address.addr()),
            "{} outside {}",
            a.address,
            a.range
        );
        prop_assert_ne!(&a.range, &RangeKind::Dhcp);
        if let Some(router) = network.router() {
            prop_assert_ne!(a.address.addr(), router.address().addr());
        }
        prop_assert_eq!(nets.holder(a.address.addr()), Some((a.network, a.node)));
    }
    Ok(())
}

fn fqdn(node: u64) -> String {
    format!("node{node}.cr0wbar.com")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn registry_never_hands_out_an_address_twice(ops in proptest::collection::vec(net_op(), 1..120)) {
        let (mut nets, ids) = three_networks();
        for op in ops {
            match op {
                NetOp::Bind { net, node, is_admin, v4_hint, v6_hint } => {
                    let id = ids[net];
                    let before = nets.node_allocations(id, NodeId(node));
                    let v4 = v4_hint.map(|h| match net {
                        0 => Ipv4Addr::new(192, 168, 124, 80 + h),
                        1 => Ipv4Addr::new(10, 10, 0, h),
                        _ => Ipv4Addr::new(10, 30, 0, h),
                    });
                    let v6 = v6_hint.map(|h| Ipv6Addr::new(0xfd00, 0x300, 0, 0, 0, 0, 0, u16::from(h)));
                    let primary = if is_admin && net == 0 { RangeKind::Admin } else { RangeKind::Host };
                    let index = nets.allocator(id, &primary).unwrap();
                    let had_primary = index.get(NodeId(node)).is_some();
                    let hint_was_free = v4.is_some_and(|h| index.is_free(IpAddr::V4(h)));
                    match nets.allocate_node(id, NodeId(node), &fqdn(node), is_admin, v4, v6) {
                        Ok(made) => {
                            let after = nets.node_allocations(id, NodeId(node));
                            prop_assert_eq!(before.len() + made.len(), after.len());
                            for m in &made {
                                prop_assert!(after.contains(m));
                            }
                            prop_assert_eq!(made.is_empty(), before.len() == after.len());
                            if !had_primary {
                                prop_assert_eq!(&made[0].range, &primary);
                                // A free hint inside the range wins; a taken one never does.
                                let got = made[0].address.addr();
                                if let Some(h) = v4 {
                                    prop_assert_eq!(got == IpAddr::V4(h), hint_was_free);
                                }
                            }
                        }
                        Err(NetError::RangeFull { .. }) => {
                            // All or nothing.
                            prop_assert_eq!(nets.node_allocations(id, NodeId(node)), before);
                        }
                        Err(other) => prop_assert!(false, "unexpected {other}"),
                    }
                }
                NetOp::Unbind { net, node } => {
                    let before = nets.node_allocations(ids[net], NodeId(node));
                    let released = nets.release(ids[net], NodeId(node)).unwrap();
                    prop_assert_eq!(released, before);
                    prop_assert!(nets.node_allocations(ids[net], NodeId(node)).is_empty());
                }
                NetOp::DeleteNode { node } => {
                    let before = nets.allocations().filter(|a| a.node == NodeId(node)).count();
                    prop_assert_eq!(nets.release_node(NodeId(node)).len(), before);
                    prop_assert_eq!(nets.allocations().filter(|a| a.node == NodeId(node)).count(), 0);
                }
            }
            check_invariants(&nets)?;
        }
        // Through JSON and back, as the store would do it.
        let networks: Vec<Network> = nets
            .iter()
            .map(|n| serde_json::from_str(&serde_json::to_string(n).unwrap()).unwrap())
            .collect();
        let allocations: Vec<NetworkAllocation> = nets
            .allocations()
            .map(|a| serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap())
            .collect();
        let restored = Networks::restore(nets.ula(), networks, allocations).unwrap();
        prop_assert_eq!(&restored, &nets);
    }
}

#[test]
fn v6_bind_uses_the_fqdn_address_and_falls_back_when_it_is_taken() {
    let (mut nets, ids) = three_networks();
    let admin = ids[0];
    let prefix = nets.get(admin).unwrap().v6_net().unwrap();
    let auto = crowbar_net::ipv6::host_address(prefix, &fqdn(1));
    // Node 2 takes node 1's automatic address with a hint...
    let made = nets
        .allocate_node(admin, NodeId(2), &fqdn(2), false, None, Some(auto))
        .unwrap();
    assert_eq!(made[1].address.addr(), IpAddr::V6(auto));
    // ...so node 1 gets the lowest free address of host-v6 instead.
    let made = nets
        .allocate_node(admin, NodeId(1), &fqdn(1), false, None, None)
        .unwrap();
    assert_eq!(
        made[1].address.addr(),
        IpAddr::V6(Ipv6Addr::from(u128::from(prefix.network()) | 1))
    );
}
