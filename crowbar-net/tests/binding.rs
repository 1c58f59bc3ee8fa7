//! Networks wired into role binding: allocation in the same batch as the noderole, rollback,
//! release on node deletion, and surviving a reopened SQLite store.

use std::sync::Arc;

use crowbar_core::{
    Cluster, CoreError, DeploymentId, HookError, NodeRoleId, NodeSpec, RoleHooks, RoleSpec,
    SqliteStore, Store, SystemClock,
};
use crowbar_net::{ClusterNetworks, NetworkSpec, RangeKind, node_addresses};
use serde_json::json;

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn admin_network() -> NetworkSpec {
    NetworkSpec::new("admin", DeploymentId(1), "1g0")
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
            net("192.168.124.83/24"),
        )
}

fn cluster() -> Cluster {
    let mut c = Cluster::new();
    ClusterNetworks::install(&mut c, 0x12_3456_789a).unwrap();
    ClusterNetworks::create_network(&mut c, admin_network()).unwrap();
    c
}

fn v4(c: &Cluster, node: crowbar_core::NodeId) -> Vec<String> {
    node_addresses(c, "admin", node)
        .iter()
        .filter(|a| matches!(a.address, ipnet::IpNet::V4(_)))
        .map(|a| a.address.to_string())
        .collect()
}

#[test]
fn binding_allocates_by_kind_and_hint_in_the_same_batch() {
    let mut c = cluster();
    let role = c
        .role(c.find_role("network-admin").unwrap())
        .unwrap()
        .clone();
    assert!(role.has(crowbar_core::RoleFlag::Implicit));
    assert!(role.has(crowbar_core::RoleFlag::Bootstrap));
    c.take_batch();
    let admin = c
        .create_node(NodeSpec::new("admin.cr0wbar.com").admin(true))
        .unwrap();
    let hinted = c
        .create_node(
            NodeSpec::new("d1.cr0wbar.com").hint(json!({"admin-v4addr": "192.168.124.83"})),
        )
        .unwrap();
    let plain = c.create_node(NodeSpec::new("d2.cr0wbar.com")).unwrap();
    let nr = c.bind_by_name("network-admin", "admin", None).unwrap();
    c.bind_by_name("network-admin", "d1", None).unwrap();
    c.bind_by_name("network-admin", "d2", None).unwrap();
    assert_eq!(
        v4(&c, admin),
        vec!["192.168.124.10/24"],
        "admin range for admin nodes"
    );
    assert_eq!(
        v4(&c, hinted),
        vec!["192.168.124.83/24"],
        "the hint when free and in range"
    );
    assert_eq!(
        v4(&c, plain),
        vec!["192.168.124.81/24"],
        "else the lowest free host address"
    );
    let batch = c.take_batch();
    assert_eq!(batch.noderoles.len(), 3);
    let allocations = batch
        .records
        .iter()
        .filter(
            |r| matches!(r, crowbar_core::RecordChange::Put(r) if r.table == "network.allocation"),
        )
        .count();
    assert_eq!(
        allocations, 6,
        "v4 and v6 for each of three nodes, in the noderoles' batch"
    );
    assert_eq!(
        c.noderole(nr).unwrap().sysdata["crowbar"]["network"]["admin"]["addresses"][0],
        "192.168.124.10/24"
    );
    // Binding again returns the same noderole and allocates nothing new.
    assert_eq!(c.bind_by_name("network-admin", "admin", None).unwrap(), nr);
    assert!(!c.has_pending());
}

#[test]
fn a_full_range_refuses_the_bind_and_changes_nothing() {
    let mut c = cluster();
    for i in 1..=3 {
        c.create_node(NodeSpec::new(format!("d{i}.cr0wbar.com")))
            .unwrap();
        c.bind_by_name("network-admin", &format!("d{i}"), None)
            .unwrap();
    }
    c.take_batch();
    c.create_node(NodeSpec::new("d4.cr0wbar.com")).unwrap();
    c.take_batch();
    match c.bind_by_name("network-admin", "d4", None) {
        Err(CoreError::Hook {
            role,
            hook,
            message,
        }) => {
            assert_eq!((role.as_str(), hook), ("network-admin", "on_proposed"));
            assert!(message.contains("host"), "names the range: {message}");
        }
        other => panic!("expected a hook refusal, got {other:?}"),
    }
    assert!(!c.has_pending(), "nothing to persist");
    assert!(
        c.noderole_for(
            c.find_role("network-admin").unwrap(),
            c.find_node("d4").unwrap()
        )
        .is_none()
    );
}

struct Refuse;

impl RoleHooks for Refuse {
    fn on_proposed(&self, _: &mut Cluster, _: NodeRoleId) -> Result<(), HookError> {
        Err(HookError::new("refused"))
    }
}

#[test]
fn a_refused_bind_gives_the_allocation_back() {
    let mut c = cluster();
    c.create_role(RoleSpec::new("os").requires(["network-admin"]))
        .unwrap();
    c.register_hooks("os", Arc::new(Refuse));
    let d1 = c.create_node(NodeSpec::new("d1.cr0wbar.com")).unwrap();
    assert!(c.bind_by_name("os", "d1", None).is_err());
    assert!(
        v4(&c, d1).is_empty(),
        "the rolled-back bind holds no address"
    );
    let d2 = c.create_node(NodeSpec::new("d2.cr0wbar.com")).unwrap();
    c.bind_by_name("network-admin", "d2", None).unwrap();
    assert_eq!(
        v4(&c, d2),
        vec!["192.168.124.81/24"],
        "the address went back to the pool"
    );
}

#[test]
fn deleting_a_node_releases_its_addresses_in_the_batch() {
    let mut c = cluster();
    let d1 = c.create_node(NodeSpec::new("d1.cr0wbar.com")).unwrap();
    c.bind_by_name("network-admin", "d1", None).unwrap();
    c.take_batch();
    c.delete_node(d1).unwrap();
    let batch = c.take_batch();
    let deletes = batch
        .records
        .iter()
        .filter(|r| matches!(r, crowbar_core::RecordChange::Delete { table, .. } if table == "network.allocation"))
        .count();
    assert_eq!(deletes, 2);
    let d2 = c.create_node(NodeSpec::new("d2.cr0wbar.com")).unwrap();
    c.bind_by_name("network-admin", "d2", None).unwrap();
    assert_eq!(v4(&c, d2), vec!["192.168.124.81/24"]);
}

#[tokio::test]
async fn allocations_survive_reopening_the_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.sqlite");
    let (before, prefix) = {
        let store = SqliteStore::open(&path).unwrap();
        let mut c = cluster();
        for i in 1..=2 {
            c.create_node(NodeSpec::new(format!("d{i}.cr0wbar.com")))
                .unwrap();
            c.bind_by_name("network-admin", &format!("d{i}"), None)
                .unwrap();
        }
        store.apply(c.take_batch()).await.unwrap();
        let nets = ClusterNetworks::get(&c).unwrap();
        let before: Vec<_> = nets.allocations().collect();
        let prefix = nets.by_name("admin").unwrap().v6_net().unwrap();
        (before, prefix)
    };
    let store = SqliteStore::open(&path).unwrap();
    let mut c = Cluster::from_snapshot(store.load().await.unwrap(), Arc::new(SystemClock)).unwrap();
    // A different fresh id: the stored one wins, so the prefix is the same.
    ClusterNetworks::install(&mut c, 0xdead_beef).unwrap();
    let nets = ClusterNetworks::get(&c).unwrap();
    assert_eq!(nets.allocations().collect::<Vec<_>>(), before);
    assert_eq!(nets.by_name("admin").unwrap().v6_net().unwrap(), prefix);
    assert!(!c.has_pending(), "reloading writes nothing");
    let d3 = c.create_node(NodeSpec::new("d3.cr0wbar.com")).unwrap();
    c.bind_by_name("network-admin", "d3", None).unwrap();
    assert_eq!(
        v4(&c, d3),
        vec!["192.168.124.83/24"],
        "no collision with the stored addresses"
    );
    store.apply(c.take_batch()).await.unwrap();
}

fn allocation_records(batch: &crowbar_core::Batch) -> Vec<String> {
    batch
        .records
        .iter()
        .map(|r| match r {
            crowbar_core::RecordChange::Put(r) => format!("put {}", r.key),
            crowbar_core::RecordChange::Delete { key, .. } => format!("delete {key}"),
        })
        .collect()
}

#[test]
fn issue_23_allocations_by_hand_go_through_the_clusters_transactions() {
    use crowbar_net::NetError;
    let mut c = cluster();
    let a = c.create_node(NodeSpec::new("d1.cr0wbar.com")).unwrap();
    let b = c.create_node(NodeSpec::new("d2.cr0wbar.com")).unwrap();
    c.take_batch();

    let hint = "192.168.124.82".parse().ok();
    let got = ClusterNetworks::allocate(&mut c, "admin", &RangeKind::Host, a, hint).unwrap();
    assert_eq!(got.address.to_string(), "192.168.124.82/24");
    assert_eq!(got.node, a);
    // Idempotent: the same allocation, nothing new to write.
    let again = ClusterNetworks::allocate(&mut c, "admin", &RangeKind::Host, a, None).unwrap();
    assert_eq!(again, got);
    assert_eq!(allocation_records(&c.take_batch()), ["put 1/host/1"]);

    // Two steps in one refused transaction: both undone, in the registry and in the batch.
    let r: Result<(), NetError> = c.transaction(|c| {
        ClusterNetworks::release(c, "admin", a)?;
        ClusterNetworks::allocate(c, "admin", &RangeKind::Host, b, hint)?;
        ClusterNetworks::allocate(c, "admin", &RangeKind::Dhcp, b, None)?;
        ClusterNetworks::allocate(c, "nosuch", &RangeKind::Host, b, None)?;
        Ok(())
    });
    assert_eq!(
        r,
        Err(NetError::UnknownNetworkName {
            name: "nosuch".into()
        })
    );
    assert!(!c.has_pending());
    let nets = ClusterNetworks::get(&c).unwrap();
    assert_eq!(
        nets.holder("192.168.124.82".parse().unwrap()).map(|h| h.1),
        Some(a)
    );
    assert!(nets.allocations().all(|x| x.node == a));
    assert_eq!(v4(&c, a), ["192.168.124.82/24"]);

    // Released by hand: the record goes in the batch.
    let released = ClusterNetworks::release(&mut c, "admin", a).unwrap();
    assert_eq!(released, [got]);
    assert_eq!(allocation_records(&c.take_batch()), ["delete 1/host/1"]);
    assert!(v4(&c, a).is_empty());
    // Unknown nodes are refused.
    assert!(matches!(
        ClusterNetworks::allocate(
            &mut c,
            "admin",
            &RangeKind::Host,
            crowbar_core::NodeId(99),
            None
        ),
        Err(NetError::Model(CoreError::Unknown { what: "node", .. }))
    ));
}

#[test]
fn issue_23_node_addresses_say_their_range_and_typed_hints_steer_binding() {
    let mut c = cluster();
    let hints = crowbar_core::NodeHints::new()
        .with_v4addr("admin", "192.168.124.83".parse().unwrap())
        .with_v6addr("admin", "fd12:3456:789a:1::99".parse().unwrap());
    let n = c
        .create_node(NodeSpec::new("d1.cr0wbar.com").hints(hints))
        .unwrap();
    c.bind_by_name("network-admin", "d1", None).unwrap();
    let got: Vec<(RangeKind, String)> = node_addresses(&c, "admin", n)
        .into_iter()
        .map(|a| (a.range, a.address.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            (RangeKind::Host, "192.168.124.83/24".to_owned()),
            (RangeKind::HostV6, "fd12:3456:789a:1::99/64".to_owned()),
        ]
    );
}
