//! The worked examples of the reference (§6 of `crowbar-semantics.md`) and the validation rules,
//! each with the exact error it must produce.

use std::net::{IpAddr, Ipv6Addr};

use crowbar_core::{DeploymentId, NodeId};
use crowbar_net::ipv6::{crowbar_fc_prefix, host_address, interface_id, ula_prefix};
use crowbar_net::{
    NetError, Network, NetworkAllocation, NetworkId, NetworkSpec, Networks, RangeAllocator,
    RangeKind, TeamMode, UlaConfig, UlaForm, V6Prefix,
};
use ipnet::{IpNet, Ipv6Net};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn v6net(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

fn spec(name: &str, conduit: &str) -> NetworkSpec {
    NetworkSpec::new(name, DeploymentId(1), conduit)
}

/// Crowbar's default admin network (admin, dhcp and host ranges, router at .1).
fn admin_spec() -> NetworkSpec {
    spec("admin", "1g0")
        .range(
            RangeKind::Admin,
            net("192.168.124.10/24"),
            net("192.168.124.11/24"),
        )
        .range(
            RangeKind::Dhcp,
            net("192.168.124.21/24"),
            net("192.168.124.80/24"),
        )
        .range(
            RangeKind::Host,
            net("192.168.124.81/24"),
            net("192.168.124.160/24"),
        )
        .router(net("192.168.124.1/24"), 10)
}

fn registry() -> Networks {
    Networks::new(UlaConfig::new(0x12_3456_789a))
}

// ---- §6.5 IPv6 ----

#[test]
fn ipv6_reference_test_vector() {
    assert_eq!(interface_id("newtest.cr0wbar.com"), 0x493d_5d20_8c33_0f07);
    let prefix = v6net("fc12:3456:789a:0001::/64");
    let addr = host_address(prefix, "newtest.cr0wbar.com");
    assert_eq!(
        addr,
        "fc12:3456:789a:1:493d:5d20:8c33:f07"
            .parse::<Ipv6Addr>()
            .unwrap()
    );
    assert_eq!(addr.to_string(), "fc12:3456:789a:1:493d:5d20:8c33:f07");
}

#[test]
fn ipv6_interface_id_lower_cases_the_fqdn() {
    assert_eq!(
        interface_id("NEWTEST.CR0WBAR.COM"),
        interface_id("newtest.cr0wbar.com")
    );
    assert_ne!(interface_id("a.example"), interface_id("b.example"));
}

#[test]
fn ula_prefix_is_rfc4193_and_fc_is_the_compatibility_form() {
    // fd + 40-bit global id + 16-bit subnet id.
    assert_eq!(
        ula_prefix(0x12_3456_789a, 1),
        v6net("fd12:3456:789a:1::/64")
    );
    assert_eq!(
        ula_prefix(0xff_ffff_ffff, 0xffff),
        v6net("fdff:ffff:ffff:ffff::/64")
    );
    // Crowbar's form, with the reference's prefix.
    assert_eq!(
        crowbar_fc_prefix(0x12_3456_789a, 1),
        v6net("fc12:3456:789a:1::/64")
    );
}

#[test]
fn admin_network_gets_an_auto_prefix_and_a_host_v6_range() {
    let mut nets = registry();
    let id = nets.add(admin_spec()).unwrap();
    let admin = nets.get(id).unwrap();
    assert_eq!(admin.v6prefix(), V6Prefix::Auto);
    assert_eq!(admin.v6_net(), Some(v6net("fd12:3456:789a:1::/64")));
    let host_v6 = admin.range(&RangeKind::HostV6).unwrap();
    assert_eq!(host_v6.first(), net("fd12:3456:789a:1::1/64"));
    assert_eq!(
        host_v6.last(),
        net("fd12:3456:789a:1:ffff:ffff:ffff:fffe/64")
    );
}

#[test]
fn admin_network_told_otherwise_has_no_v6() {
    let mut nets = registry();
    let id = nets.add(admin_spec().v6prefix(V6Prefix::None)).unwrap();
    assert_eq!(nets.get(id).unwrap().v6_net(), None);
    assert_eq!(nets.get(id).unwrap().range(&RangeKind::HostV6), None);
}

#[test]
fn other_networks_have_no_v6_unless_asked() {
    let mut nets = registry();
    let plain = nets.add(spec("storage", "1g1")).unwrap();
    assert_eq!(nets.get(plain).unwrap().v6prefix(), V6Prefix::None);
    let auto = nets
        .add(spec("public", "1g2").v6prefix(V6Prefix::Auto))
        .unwrap();
    // Subnet id = network id.
    assert_eq!(auto, NetworkId(2));
    assert_eq!(
        nets.get(auto).unwrap().v6_net(),
        Some(v6net("fd12:3456:789a:2::/64"))
    );
}

#[test]
fn crowbar_fc_form_is_a_registry_setting() {
    let mut nets = Networks::new(UlaConfig {
        global_id: 0x12_3456_789a,
        form: UlaForm::CrowbarFc,
    });
    let id = nets.add(admin_spec()).unwrap();
    let admin = nets.get(id).unwrap();
    assert_eq!(admin.v6_net(), Some(v6net("fc12:3456:789a:1::/64")));
    let made = nets
        .allocate_node(id, NodeId(3), "newtest.cr0wbar.com", false, None, None)
        .unwrap();
    assert_eq!(
        made[1].address,
        net("fc12:3456:789a:1:493d:5d20:8c33:f07/64")
    );
}

#[test]
fn explicit_prefix_in_crowbar_form() {
    let prefix: V6Prefix = "fc12:3456:789a:0001".parse().unwrap();
    assert_eq!(prefix, V6Prefix::Explicit(v6net("fc12:3456:789a:1::/64")));
    let mut nets = registry();
    let id = nets.add(spec("public", "1g2").v6prefix(prefix)).unwrap();
    let made = nets
        .allocate_node(id, NodeId(1), "newtest.cr0wbar.com", false, None, None)
        .map(|m| m.into_iter().map(|a| a.address).collect::<Vec<_>>());
    // No v4 host range: binding fails, naming the missing range.
    assert_eq!(
        made,
        Err(NetError::MissingRange {
            network: "public".into(),
            range: RangeKind::Host
        })
    );
}

#[test]
fn auto_prefix_is_stored_not_regenerated() {
    let mut nets = registry();
    let id = nets.add(admin_spec()).unwrap();
    let json = serde_json::to_string(nets.get(id).unwrap()).unwrap();
    // A registry with another global id loads the stored prefix unchanged.
    let restored: Network = serde_json::from_str(&json).unwrap();
    let other = Networks::restore(UlaConfig::new(0x99), [restored], []).unwrap();
    assert_eq!(
        other.get(id).unwrap().v6_net(),
        Some(v6net("fd12:3456:789a:1::/64"))
    );
    assert_eq!(other.get(id).unwrap().v6prefix(), V6Prefix::Auto);
}

#[test]
fn auto_prefix_needs_a_16_bit_network_id() {
    let err = Network::new(
        NetworkId(0x1_0000),
        spec("public", "1g2").v6prefix(V6Prefix::Auto),
        UlaConfig::new(1),
    );
    assert_eq!(
        err,
        Err(NetError::SubnetIdOverflow {
            network: "public".into(),
            id: NetworkId(0x1_0000)
        })
    );
}

// ---- §6.3/§6.4 allocation ----

#[test]
fn binding_allocates_v4_from_host_and_v6_from_the_fqdn() {
    let mut nets = registry();
    let admin = nets.add(admin_spec()).unwrap();
    let made = nets
        .allocate_node(admin, NodeId(3), "newtest.cr0wbar.com", false, None, None)
        .unwrap();
    assert_eq!(
        made,
        vec![
            NetworkAllocation {
                node: NodeId(3),
                network: admin,
                range: RangeKind::Host,
                address: net("192.168.124.81/24"),
            },
            NetworkAllocation {
                node: NodeId(3),
                network: admin,
                range: RangeKind::HostV6,
                address: net("fd12:3456:789a:1:493d:5d20:8c33:f07/64"),
            },
        ]
    );
    // Admin nodes draw from the admin range; the dhcp range is never used.
    let made = nets
        .allocate_node(admin, NodeId(1), "admin.cr0wbar.com", true, None, None)
        .unwrap();
    assert_eq!(made[0].range, RangeKind::Admin);
    assert_eq!(made[0].address, net("192.168.124.10/24"));
    // Asking again makes nothing new and changes nothing.
    assert_eq!(
        nets.allocate_node(admin, NodeId(3), "newtest.cr0wbar.com", false, None, None),
        Ok(vec![])
    );
    assert_eq!(nets.node_allocations(admin, NodeId(3)).len(), 2);
}

#[test]
fn admin_node_on_a_network_without_admin_range_uses_host() {
    let mut nets = registry();
    let id = nets
        .add(spec("storage", "1g1").range(RangeKind::Host, net("10.0.0.1/24"), net("10.0.0.9/24")))
        .unwrap();
    let made = nets
        .allocate_node(id, NodeId(1), "a.example", true, None, None)
        .unwrap();
    assert_eq!(made[0].range, RangeKind::Host);
}

#[test]
fn hints_win_when_free_and_in_range() {
    let mut nets = registry();
    let admin = nets.add(admin_spec()).unwrap();
    let v4 = "192.168.124.100".parse().ok();
    let v6 = "fd12:3456:789a:1::42".parse().ok();
    let made = nets
        .allocate_node(admin, NodeId(5), "five.example", false, v4, v6)
        .unwrap();
    assert_eq!(made[0].address, net("192.168.124.100/24"));
    assert_eq!(made[1].address, net("fd12:3456:789a:1::42/64"));
    // The same hints for another node are taken: lowest free and the FQDN's address instead.
    let made = nets
        .allocate_node(admin, NodeId(6), "six.example", false, v4, v6)
        .unwrap();
    assert_eq!(made[0].address, net("192.168.124.81/24"));
    let six = IpAddr::V6(host_address(v6net("fd12:3456:789a:1::/64"), "six.example"));
    assert_eq!(made[1].address.addr(), six);
    // A hint in the dhcp range is outside the host range: ignored.
    let made = nets
        .allocate_node(
            admin,
            NodeId(7),
            "seven.example",
            false,
            "192.168.124.30".parse().ok(),
            None,
        )
        .unwrap();
    assert_eq!(made[0].address, net("192.168.124.82/24"));
}

#[test]
fn a_full_range_is_a_typed_error_and_binding_is_all_or_nothing() {
    let mut nets = registry();
    // A tiny explicit host-v6 range so the v6 step can fail.
    let id = nets
        .add(
            spec("tiny", "1g1")
                .v6prefix(V6Prefix::Explicit(v6net("fd00:1:2:3::/64")))
                .range(RangeKind::Host, net("10.0.0.1/24"), net("10.0.0.9/24"))
                .range(
                    RangeKind::HostV6,
                    net("fd00:1:2:3::1/64"),
                    net("fd00:1:2:3::1/64"),
                ),
        )
        .unwrap();
    nets.allocate_node(id, NodeId(1), "one.example", false, None, None)
        .unwrap();
    let err = nets.allocate_node(id, NodeId(2), "two.example", false, None, None);
    assert_eq!(
        err,
        Err(NetError::RangeFull {
            network: "tiny".into(),
            range: RangeKind::HostV6
        })
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "tiny.host-v6 is out of addresses"
    );
    // The v4 address taken for node 2 was given back.
    assert_eq!(nets.node_allocations(id, NodeId(2)), vec![]);
    assert_eq!(nets.holder("10.0.0.2".parse().unwrap()), None);
}

#[test]
fn the_router_address_is_never_handed_out() {
    let mut nets = registry();
    // No router address given: the first address of the first range is the router's.
    let mut s =
        spec("storage", "1g1").range(RangeKind::Host, net("10.0.0.1/24"), net("10.0.0.3/24"));
    s.router = Some(crowbar_net::RouterSpec {
        address: None,
        preference: 65536,
    });
    let id = nets.add(s).unwrap();
    assert_eq!(
        nets.get(id).unwrap().router().unwrap().address(),
        net("10.0.0.1/24")
    );
    let a = nets.allocate(id, &RangeKind::Host, NodeId(1), "10.0.0.1".parse().ok());
    assert_eq!(a.unwrap().address, net("10.0.0.2/24"));
    nets.allocate(id, &RangeKind::Host, NodeId(2), None)
        .unwrap();
    assert_eq!(
        nets.allocate(id, &RangeKind::Host, NodeId(3), None),
        Err(NetError::RangeFull {
            network: "storage".into(),
            range: RangeKind::Host
        })
    );
}

#[test]
fn deleting_a_node_releases_everything_it_holds() {
    let mut nets = registry();
    let admin = nets.add(admin_spec()).unwrap();
    let storage = nets
        .add(spec("storage", "1g1").range(RangeKind::Host, net("10.0.0.1/24"), net("10.0.0.9/24")))
        .unwrap();
    nets.allocate_node(admin, NodeId(4), "four.example", false, None, None)
        .unwrap();
    nets.allocate_node(storage, NodeId(4), "four.example", false, None, None)
        .unwrap();
    nets.allocate_node(storage, NodeId(5), "five.example", false, None, None)
        .unwrap();
    let released = nets.release_node(NodeId(4));
    let addrs: Vec<String> = released.iter().map(|a| a.address.to_string()).collect();
    assert_eq!(addrs.len(), 3);
    assert!(addrs.contains(&"192.168.124.81/24".to_owned()));
    assert!(addrs.contains(&"10.0.0.1/24".to_owned()));
    assert_eq!(nets.allocations().count(), 1);
    // Its addresses are free again: the next node gets the lowest.
    let made = nets
        .allocate_node(storage, NodeId(6), "six.example", false, None, None)
        .unwrap();
    assert_eq!(made[0].address, net("10.0.0.1/24"));
}

#[test]
fn removing_a_network_returns_its_allocations() {
    let mut nets = registry();
    let storage = nets
        .add(spec("storage", "1g1").range(RangeKind::Host, net("10.0.0.1/24"), net("10.0.0.9/24")))
        .unwrap();
    nets.allocate_node(storage, NodeId(4), "four.example", false, None, None)
        .unwrap();
    let (network, released) = nets.remove(storage).unwrap();
    assert_eq!(network.name(), "storage");
    assert_eq!(released.len(), 1);
    assert!(nets.by_name("storage").is_none());
    assert_eq!(
        nets.remove(storage).map(|_| ()),
        Err(NetError::UnknownNetwork { id: storage })
    );
}

// ---- restoring from stored allocations ----

#[test]
fn restore_rejects_inconsistent_allocations() {
    let mut nets = registry();
    let id = nets
        .add(spec("storage", "1g1").range(RangeKind::Host, net("10.0.0.1/24"), net("10.0.0.9/24")))
        .unwrap();
    let network = nets.get(id).unwrap().clone();
    let alloc = |node: u64, addr: &str| NetworkAllocation {
        node: NodeId(node),
        network: id,
        range: RangeKind::Host,
        address: net(addr),
    };
    let rebuild = |allocs: Vec<NetworkAllocation>| {
        RangeAllocator::from_allocations(&network, &RangeKind::Host, allocs).map(|_| ())
    };
    assert_eq!(
        rebuild(vec![alloc(1, "10.0.0.2/24"), alloc(2, "10.0.0.2/24")]),
        Err(NetError::AddressInUse {
            network: "storage".into(),
            range: RangeKind::Host,
            address: "10.0.0.2".parse().unwrap(),
            holder: Some(NodeId(1)),
        })
    );
    assert_eq!(
        rebuild(vec![alloc(1, "10.0.0.2/24"), alloc(1, "10.0.0.3/24")]),
        Err(NetError::NodeAlreadyAllocated {
            network: "storage".into(),
            range: RangeKind::Host,
            node: NodeId(1),
            address: "10.0.0.2".parse().unwrap(),
        })
    );
    assert_eq!(
        rebuild(vec![alloc(1, "10.0.0.10/24")]),
        Err(NetError::AddressOutOfRange {
            network: "storage".into(),
            range: RangeKind::Host,
            address: "10.0.0.10".parse().unwrap(),
        })
    );
    let mut wrong_range = alloc(1, "10.0.0.2/24");
    wrong_range.range = RangeKind::Dhcp;
    assert_eq!(
        Networks::restore(nets.ula(), [network.clone()], [wrong_range]).map(|_| ()),
        Err(NetError::MissingRange {
            network: "storage".into(),
            range: RangeKind::Dhcp
        })
    );
    let mut wrong_network = alloc(1, "10.0.0.2/24");
    wrong_network.network = NetworkId(9);
    assert_eq!(
        Networks::restore(nets.ula(), [network], [wrong_network]).map(|_| ()),
        Err(NetError::UnknownNetwork { id: NetworkId(9) })
    );
}

#[test]
fn serde_shapes() {
    let mut nets = registry();
    let id = nets.add(admin_spec()).unwrap();
    let made = nets
        .allocate_node(id, NodeId(3), "newtest.cr0wbar.com", false, None, None)
        .unwrap();
    assert_eq!(
        serde_json::to_string(&made[0]).unwrap(),
        r#"{"node":3,"network":1,"range":"host","address":"192.168.124.81/24"}"#
    );
    let value = serde_json::to_value(nets.get(id).unwrap()).unwrap();
    assert_eq!(value["v6prefix"], "auto");
    assert_eq!(value["v6_net"], "fd12:3456:789a:1::/64");
    assert_eq!(value["team_mode"], 5);
    assert_eq!(value["conduit"], "1g0");
    assert_eq!(value["router"]["pref"], 10);
    assert_eq!(value["ranges"][0]["name"], "admin");
    // The role template drops the ids and nests the network under crowbar.network.<name>.
    let template = nets.get(id).unwrap().role_template();
    let body = &template["crowbar"]["network"]["admin"];
    assert_eq!(body["ranges"][2]["first"], "192.168.124.81/24");
    assert!(body.get("id").is_none());

    // Crowbar's API shape deserializes into a spec.
    let spec: NetworkSpec = serde_json::from_str(
        r#"{"name":"bmc","deployment":1,"conduit":"1g0","vlan":100,"use_vlan":true,
            "ranges":[{"name":"host","first":"10.10.0.1/16","last":"10.10.255.254/16"}],
            "router":{"pref":20}}"#,
    )
    .unwrap();
    assert_eq!(spec.v6prefix, None);
    assert_eq!(spec.team_mode, TeamMode::BalanceTlb);
    let network = Network::new(NetworkId(4), spec, UlaConfig::new(1)).unwrap();
    assert_eq!(network.router().unwrap().address(), net("10.10.0.1/16"));
    assert_eq!(network.router().unwrap().preference(), 20);
    // A tampered stored network is rejected on load.
    let mut stored = serde_json::to_value(&network).unwrap();
    stored["vlan"] = 4095.into();
    let err = serde_json::from_value::<Network>(stored).unwrap_err();
    assert!(err.to_string().contains("vlan 4095"), "{err}");
}

// ---- §6.1/§6.2 validation, data-driven ----

/// Adds `specs` in order to a fresh registry and renders each outcome, one line per spec.
fn check(specs: Vec<NetworkSpec>, expected: &str) {
    let mut nets = registry();
    let got: Vec<String> = specs
        .into_iter()
        .map(|s| {
            let name = s.name.clone();
            match nets.add(s) {
                Ok(id) => format!("{name}: ok {id}"),
                Err(e) => format!("{name}: {e}"),
            }
        })
        .collect();
    let got = got.join("\n");
    let expected = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(got == expected, "got:\n{got}\n\nexpected:\n{expected}");
}

#[test]
fn validation_of_names_conduits_vlans_and_teams() {
    // The tag is checked only when the network uses VLANs.
    let mut vlan_unused = spec("vlan-unused", "1g5");
    vlan_unused.vlan = 4095;
    check(
        vec![
            spec("", "1g0"),
            spec("has space", "1g0"),
            spec("empty", ""),
            spec("eth", "eth0"),
            spec("mixed", "1g0,10g1").team(TeamMode::BalanceRr),
            spec("two", "1g0,1g1"),
            spec("one-team", "1g0").team(TeamMode::BalanceRr),
            spec("nine", "1g0,1g1,1g2,1g3,1g4,1g5,1g6,1g7,1g8").team(TeamMode::BalanceRr),
            spec("vlan0", "1g0").vlan(0),
            spec("vlan4095", "1g0").vlan(4095),
            vlan_unused,
            spec("bond", "1g1,1g2")
                .team(TeamMode::Ieee8023ad)
                .vlan(4094),
            spec("same", "1g2,1g1").team(TeamMode::BalanceRr).vlan(10),
            spec("partial", "1g2,1g3").team(TeamMode::BalanceRr),
            spec("bond", "1g9"),
        ],
        r#"
        : invalid network name "": use letters, digits, '-' and '_'
        has space: invalid network name "has space": use letters, digits, '-' and '_'
        empty: network empty: the conduit is empty
        eth: network eth: conduit member "eth0" is not of the form [-+?]<speed><n>, e.g. 1g0 or +10g1
        mixed: network mixed: conduit 1g0,10g1 mixes flags or speeds
        two: network two: conduit 1g0,1g1 has 2 members, a network without teaming needs exactly 1
        one-team: network one-team: conduit 1g0 has 1 members, a teamed network needs 2 to 8
        nine: network nine: conduit 1g0,1g1,1g2,1g3,1g4,1g5,1g6,1g7,1g8 has 9 members, a teamed network needs 2 to 8
        vlan0: network vlan0: vlan 0 is outside 1..=4094
        vlan4095: network vlan4095: vlan 4095 is outside 1..=4094
        vlan-unused: ok 1
        bond: ok 2
        same: ok 3
        partial: network partial: conduit 1g2,1g3 partly overlaps conduit 1g1,1g2 of network bond; conduits must be identical or disjoint
        bond: network bond already exists
        "#,
    );
    assert_eq!(
        TeamMode::try_from(7),
        Err(NetError::InvalidTeamMode { mode: 7 })
    );
    assert!(serde_json::from_str::<TeamMode>("7").is_err());
}

#[test]
fn validation_of_ranges() {
    let r = |name: &str, kind: RangeKind, first: &str, last: &str| {
        spec(name, "1g0").range(kind, net(first), net(last))
    };
    check(
        vec![
            r("fam", RangeKind::Host, "10.0.0.1/24", "fd00::5/64"),
            r("subnet", RangeKind::Host, "10.0.0.1/24", "10.0.1.5/24"),
            r("len", RangeKind::Host, "10.0.0.1/24", "10.0.0.5/25"),
            r("rev", RangeKind::Host, "10.0.0.9/24", "10.0.0.5/24"),
            r("net-first", RangeKind::Host, "10.0.0.0/24", "10.0.0.5/24"),
            r("net-last", RangeKind::Host, "10.0.0.1/24", "10.0.0.0/24"),
            r(
                "bcast-last",
                RangeKind::Host,
                "10.0.0.1/24",
                "10.0.0.255/24",
            ),
            r(
                "bcast-first",
                RangeKind::Host,
                "10.0.0.255/24",
                "10.0.0.255/24",
            ),
            r(
                "v6-bcast",
                RangeKind::HostV6,
                "fd00::1/64",
                "fd00::ffff:ffff:ffff:ffff/64",
            ),
            r("slash32", RangeKind::Host, "10.9.9.9/32", "10.9.9.9/32"),
            r("dup", RangeKind::Host, "10.0.0.1/24", "10.0.0.5/24").range(
                RangeKind::Host,
                net("10.0.0.6/24"),
                net("10.0.0.9/24"),
            ),
            r("inner", RangeKind::Host, "10.0.0.1/24", "10.0.0.5/24").range(
                RangeKind::Dhcp,
                net("10.0.0.5/24"),
                net("10.0.0.9/24"),
            ),
            r("ok", RangeKind::Host, "10.0.0.1/24", "10.0.0.5/24").range(
                RangeKind::Dhcp,
                net("10.0.0.6/24"),
                net("10.0.0.9/24"),
            ),
            r("across", RangeKind::Host, "10.0.0.9/24", "10.0.0.20/24"),
            r("v6-vs-v4", RangeKind::Host, "fd00::1/64", "fd00::ffff/64"),
            r(
                "named",
                RangeKind::Other("mgmt pool".into()),
                "10.2.0.1/24",
                "10.2.0.9/24",
            ),
            r(
                "hostname",
                RangeKind::Other("host".into()),
                "10.3.0.1/24",
                "10.3.0.9/24",
            ),
        ],
        r#"
        fam: network fam, range host: 10.0.0.1/24 and fd00::5/64 are of different families
        subnet: network subnet, range host: 10.0.0.1/24 and 10.0.1.5/24 are not in one subnet
        len: network len, range host: 10.0.0.1/24 and 10.0.0.5/25 are not in one subnet
        rev: network rev, range host: first 10.0.0.9/24 is above last 10.0.0.5/24
        net-first: network net-first, range host: 10.0.0.0/24 is the subnet address
        net-last: network net-last, range host: 10.0.0.0/24 is the subnet address
        bcast-last: network bcast-last, range host: 10.0.0.255/24 is the broadcast address
        bcast-first: network bcast-first, range host: 10.0.0.255/24 is the broadcast address
        v6-bcast: network v6-bcast, range host-v6: fd00::ffff:ffff:ffff:ffff/64 is the broadcast address
        slash32: network slash32, range host: 10.9.9.9/32 is the subnet address
        dup: network dup: range host is defined twice
        inner: network inner, range dhcp overlaps network inner, range host
        ok: ok 1
        across: network across, range host overlaps network ok, range dhcp
        v6-vs-v4: ok 2
        named: invalid range name "mgmt pool": use letters, digits, '-' and '_'
        hostname: ok 3
        "#,
    );
    // Other("host") is normalised to Host.
    let mut nets = registry();
    let id = nets
        .add(spec("n", "1g0").range(
            RangeKind::Other("host".into()),
            net("10.3.0.1/24"),
            net("10.3.0.9/24"),
        ))
        .unwrap();
    assert_eq!(nets.get(id).unwrap().ranges()[0].kind(), &RangeKind::Host);
}

#[test]
fn validation_of_v6_prefixes() {
    for bad in [
        "fd00::/48",
        "fd00::1/64",
        "fc12:3456:789a",
        "fc12:3456:789a:00001",
        "xyz",
    ] {
        assert_eq!(
            bad.parse::<V6Prefix>(),
            Err(NetError::InvalidV6Prefix {
                network: String::new(),
                prefix: bad.into(),
            }),
            "{bad}"
        );
    }
    let err = Network::new(
        NetworkId(1),
        spec("n", "1g0").v6prefix(V6Prefix::Explicit(v6net("fd00::/56"))),
        UlaConfig::new(1),
    );
    assert_eq!(
        err,
        Err(NetError::InvalidV6Prefix {
            network: "n".into(),
            prefix: "fd00::/56".into()
        })
    );
    // Two networks with the same explicit prefix would overlap in host-v6.
    let mut nets = registry();
    let p = V6Prefix::Explicit(v6net("fd00:1::/64"));
    nets.add(spec("a", "1g0").v6prefix(p)).unwrap();
    assert_eq!(
        nets.add(spec("b", "1g1").v6prefix(p)),
        Err(NetError::RangeOverlap {
            network: "b".into(),
            range: RangeKind::HostV6,
            other_network: "a".into(),
            other_range: RangeKind::HostV6
        })
    );
}

#[test]
fn host_v6_range_must_be_ipv6_inside_the_prefix() {
    let prefix = v6net("fd00:1:2:3::/64");
    let err = Network::new(
        NetworkId(1),
        spec("n", "1g0").v6prefix(V6Prefix::Explicit(prefix)).range(
            RangeKind::HostV6,
            net("fd00:1:2:4::1/64"),
            net("fd00:1:2:4::9/64"),
        ),
        UlaConfig::new(1),
    );
    assert_eq!(
        err,
        Err(NetError::HostV6Range {
            network: "n".into(),
            first: net("fd00:1:2:4::1/64"),
            last: net("fd00:1:2:4::9/64"),
            prefix: Some(prefix),
        })
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "network n: range host-v6 fd00:1:2:4::1/64..fd00:1:2:4::9/64 must be IPv6 and inside the v6 prefix fd00:1:2:3::/64"
    );
    let err = Network::new(
        NetworkId(1),
        spec("n", "1g0").range(RangeKind::HostV6, net("10.0.0.1/24"), net("10.0.0.9/24")),
        UlaConfig::new(1),
    );
    assert!(matches!(
        err,
        Err(NetError::HostV6Range { prefix: None, .. })
    ));
}

#[test]
fn host_v6_range_without_prefix_allocates_hint_or_lowest() {
    // As Crowbar: the v6 step runs whenever a host-v6 range exists; with no prefix there is no
    // automatic address, so the hint or the lowest free address is used.
    let mut nets = registry();
    let id = nets
        .add(
            spec("n", "1g0")
                .range(RangeKind::Host, net("10.0.0.1/24"), net("10.0.0.9/24"))
                .range(
                    RangeKind::HostV6,
                    net("fd00:9::10/64"),
                    net("fd00:9::20/64"),
                ),
        )
        .unwrap();
    let made = nets
        .allocate_node(id, NodeId(1), "a.example", false, None, None)
        .unwrap();
    assert_eq!(made[1].address, net("fd00:9::10/64"));
    let made = nets
        .allocate_node(
            id,
            NodeId(2),
            "b.example",
            false,
            None,
            "fd00:9::1f".parse().ok(),
        )
        .unwrap();
    assert_eq!(made[1].address, net("fd00:9::1f/64"));
}
