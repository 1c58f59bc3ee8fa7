//! The DHCP and DNS databases from the model, and a live DNS server following the model: a node
//! added, an address allocated, a node deleted are answered by `dig` right after the refresh.

use std::process::Command;
use std::time::{Duration, Instant};

use crowbar::core::DeploymentId;
use crowbar::core::{Bootenv, Cluster, NodeSpec};
use crowbar::dns::{DnsServer, ServerConfig};
use crowbar::net::{ClusterNetworks, NetworkSpec, RangeKind};
use crowbar::provision::{DnsFeed, ModelHosts, dhcp_hosts, dns_domain, dns_hosts};
use crowbar::pxe::HostSource;
use serde_json::json;

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn model() -> Cluster {
    let mut c = Cluster::new();
    ClusterNetworks::install(&mut c, 0x12_3456_789a).unwrap();
    ClusterNetworks::create_network(
        &mut c,
        NetworkSpec::new("admin", DeploymentId(1), "1g0")
            .range(
                RangeKind::Admin,
                net("192.168.124.10/24"),
                net("192.168.124.11/24"),
            )
            .range(
                RangeKind::Host,
                net("192.168.124.81/24"),
                net("192.168.124.160/24"),
            ),
    )
    .unwrap();
    c.create_node(NodeSpec::new("admin.cr0wbar.com").admin(true).alive(true))
        .unwrap();
    c.bind_by_name("network-admin", "admin", None).unwrap();
    c.create_node(
        NodeSpec::new("d1.cr0wbar.com")
            .alias("web")
            .hint(json!({"admin_macs": ["52:54:00:12:34:56"]})),
    )
    .unwrap();
    c.bind_by_name("network-admin", "d1.cr0wbar.com", None)
        .unwrap();
    // Known only by its discovered interfaces.
    let d2 = c.create_node(NodeSpec::new("d2.cr0wbar.com")).unwrap();
    c.set_node_discovery(
        d2,
        json!({"ohai": {"network": {"interfaces": {"eth0": {"addresses": {
            "52:54:00:AB:CD:EF": {"family": "lladdr"},
            "192.168.124.82": {"family": "inet"}
        }}}}}}),
    )
    .unwrap();
    c.bind_by_name("network-admin", "d2", None).unwrap();
    // No MAC at all: not in the DHCP database.
    c.create_node(NodeSpec::new("d3.cr0wbar.com")).unwrap();
    c.bind_by_name("network-admin", "d3", None).unwrap();
    c
}

#[test]
fn dhcp_database_has_managed_nodes_with_macs_addresses_and_bootenvs() {
    let mut c = model();
    c.set_node_bootenv(c.find_node("d2").unwrap(), Bootenv::Local)
        .unwrap();
    let rows: Vec<String> = dhcp_hosts(&c)
        .iter()
        .map(|h| {
            let macs: Vec<String> = h.macs.iter().map(ToString::to_string).collect();
            format!("{} {} {} {}", h.fqdn, macs.join(","), h.address, h.bootenv)
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            "d1.cr0wbar.com 52:54:00:12:34:56 192.168.124.81/24 sledgehammer",
            "d2.cr0wbar.com 52:54:00:ab:cd:ef 192.168.124.82/24 local",
        ]
    );
    let source = ModelHosts::new(&c);
    assert_eq!(source.hosts().unwrap().len(), 2);
    assert!(!source.refresh(&c), "nothing changed");
    c.set_node_hint(
        c.find_node("d3").unwrap(),
        json!({"admin_macs": ["52:54:00:00:00:03"]}),
    )
    .unwrap();
    assert!(source.refresh(&c));
    assert_eq!(source.hosts().unwrap().len(), 3);
}

#[test]
fn dns_database_has_every_node_with_admin_addresses_and_aliases() {
    let c = model();
    assert_eq!(dns_domain(&c).as_deref(), Some("cr0wbar.com"));
    let hosts = dns_hosts(&c);
    let names: Vec<String> = hosts.iter().map(|h| h.fqdn.to_string()).collect();
    assert_eq!(
        names,
        [
            "admin.cr0wbar.com.",
            "d1.cr0wbar.com.",
            "d2.cr0wbar.com.",
            "d3.cr0wbar.com."
        ]
    );
    let d1 = &hosts[1];
    assert_eq!(
        d1.v4,
        vec!["192.168.124.81".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(d1.v6.len(), 1, "the auto v6 address");
    assert_eq!(d1.aliases[0].to_string(), "web.cr0wbar.com.");
}

fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+short",
            "+norec",
            "+time=1",
            "+tries=1",
        ])
        .args(args)
        .output()
        .expect("dig is installed (.ci/run installs bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn poll(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_server_follows_the_model() {
    let mut c = model();
    let mut feed = DnsFeed::new(&c).unwrap().expect("there is an admin node");
    let server = DnsServer::start(
        feed.zones(),
        ServerConfig::new(vec!["127.0.0.1:0".parse().unwrap()]),
    )
    .await
    .unwrap();
    let port = server.udp_addrs()[0].port();
    let ask =
        move |args: &'static [&'static str]| tokio::task::spawn_blocking(move || dig(port, args));
    assert_eq!(
        ask(&["d1.cr0wbar.com", "A"]).await.unwrap(),
        "192.168.124.81"
    );
    assert_eq!(
        ask(&["-x", "192.168.124.82"]).await.unwrap(),
        "d2.cr0wbar.com."
    );

    // A node added and its address allocated: visible after the refresh.
    c.create_node(NodeSpec::new("d4.cr0wbar.com")).unwrap();
    c.bind_by_name("network-admin", "d4", None).unwrap();
    let serial = feed.refresh(&c).unwrap().expect("the hosts changed");
    assert!(serial > 1, "the serial rises");
    let seen = tokio::task::spawn_blocking(move || {
        poll(|| dig(port, &["d4.cr0wbar.com", "A"]) == "192.168.124.84")
    });
    assert!(seen.await.unwrap(), "d4 resolves once the model has it");

    // A node deleted: gone, forward and reverse.
    c.delete_node(c.find_node("d4").unwrap()).unwrap();
    feed.refresh(&c).unwrap().expect("the hosts changed");
    assert_eq!(ask(&["d4.cr0wbar.com", "A"]).await.unwrap(), "");
    assert_eq!(ask(&["-x", "192.168.124.84"]).await.unwrap(), "");
    assert_eq!(feed.refresh(&c).unwrap(), None, "nothing more to change");
    server.shutdown().await;
}
