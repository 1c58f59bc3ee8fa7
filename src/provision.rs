//! The provisioner's databases from the model: what DNS serves and whom DHCP reserves for, as
//! Crowbar's `dns-database` and `dhcp-database` roles computed them.
//!
//! `crowbar-dns` and `crowbar-pxe` know nothing of the model; these adapters read a
//! [`Cluster`] (with its [`ClusterNetworks`](crate::net::ClusterNetworks)) and produce their input types. [`DnsFeed`] and
//! [`ModelHosts`] keep a running server in step: call their `refresh` after each batch of
//! changes; a refresh that changes something swaps the served data in one step.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use crate::core::{Bootenv, Cluster, Node};
use crate::dns::{DnsError, DnsName, Host, ZoneConfig, Zones};
use crate::pxe::{HostEntry, HostSource, MacAddr, PxeError};

/// The network whose addresses DNS and DHCP serve.
pub const ADMIN_NETWORK: &str = "admin";

fn admin_addresses(cluster: &Cluster, node: &Node) -> Vec<ipnet::IpNet> {
    crate::net::node_addresses(cluster, ADMIN_NETWORK, node.id)
        .into_iter()
        .map(|a| a.address)
        .collect()
}

/// The DNS domain, as Crowbar took it: the first admin node's FQDN without its first label.
pub fn dns_domain(cluster: &Cluster) -> Option<String> {
    cluster
        .nodes()
        .find(|n| n.admin)
        .map(|n| n.name.domain().to_owned())
}

/// Zone settings for the model: the domain from [`dns_domain`], the admin node as the name
/// server. `None` until there is an admin node.
pub fn dns_zone_config(cluster: &Cluster) -> Option<ZoneConfig> {
    let admin = cluster.nodes().find(|n| n.admin)?;
    let domain: DnsName = admin.name.domain().parse().ok()?;
    let nameserver: DnsName = admin.name.as_str().parse().ok()?;
    Some(ZoneConfig::new(domain, nameserver))
}

/// Crowbar's DNS database: every node with an address on the admin network, with its A and
/// AAAA addresses; an alias that is not the FQDN's first label becomes a CNAME in the node's
/// domain.
pub fn dns_hosts(cluster: &Cluster) -> Vec<Host> {
    let mut hosts = Vec::new();
    for node in cluster.nodes() {
        let addresses = admin_addresses(cluster, node);
        if addresses.is_empty() {
            continue;
        }
        let Ok(fqdn) = node.name.as_str().parse::<DnsName>() else {
            continue;
        };
        let mut host = Host::new(fqdn);
        for a in addresses {
            host = host.with_addr(a.addr());
        }
        if node.alias != node.name.first_label()
            && let Ok(alias) = format!("{}.{}", node.alias, node.name.domain()).parse()
        {
            host = host.with_alias(alias);
        }
        hosts.push(host);
    }
    hosts
}

/// The MACs a node may boot from: its `admin_macs` hint, then every link-layer address in its
/// discovered interfaces (`discovery.ohai.network.interfaces.*.addresses`, family `lladdr`),
/// de-duplicated. Unparsable entries are skipped.
pub fn node_macs(node: &Node) -> Vec<MacAddr> {
    let mut macs: Vec<MacAddr> = Vec::new();
    let mut add = |s: &str| {
        if let Ok(m) = s.parse::<MacAddr>()
            && !macs.contains(&m)
        {
            macs.push(m);
        }
    };
    node.hints().admin_macs().for_each(&mut add);
    let interfaces = node
        .discovery
        .pointer("/ohai/network/interfaces")
        .and_then(|v| v.as_object());
    for iface in interfaces.into_iter().flat_map(|m| m.values()) {
        let Some(addrs) = iface.get("addresses").and_then(|v| v.as_object()) else {
            continue;
        };
        for (addr, info) in addrs {
            if info.get("family").and_then(|f| f.as_str()) == Some("lladdr") {
                add(addr);
            }
        }
    }
    macs
}

fn pxe_bootenv(bootenv: &Bootenv) -> crate::pxe::Bootenv {
    match bootenv {
        Bootenv::Discovery => crate::pxe::Bootenv::Sledgehammer,
        Bootenv::Install(os) => crate::pxe::Bootenv::Install { os: os.clone() },
        Bootenv::Local => crate::pxe::Bootenv::Local,
    }
}

/// Crowbar's DHCP database: every node that is not an admin node, holds an IPv4 address on the
/// admin network and has at least one MAC ([`node_macs`]), with its bootenv.
pub fn dhcp_hosts(cluster: &Cluster) -> Vec<HostEntry> {
    let mut out = Vec::new();
    for node in cluster.nodes().filter(|n| !n.admin) {
        let Some(ipnet::IpNet::V4(address)) = admin_addresses(cluster, node)
            .into_iter()
            .find(|a| matches!(a.addr(), IpAddr::V4(_)))
        else {
            continue;
        };
        let macs = node_macs(node);
        if macs.is_empty() {
            continue;
        }
        out.push(HostEntry {
            fqdn: node.name.to_string(),
            macs,
            address,
            bootenv: pxe_bootenv(&node.bootenv),
        });
    }
    out
}

/// Keeps a DNS server's [`Zones`] in step with the model.
pub struct DnsFeed {
    zones: Arc<Zones>,
}

impl DnsFeed {
    /// Zones built from the model now (serial 1), and the feed that keeps them current. `None`
    /// until the model has an admin node (there is no domain before that).
    pub fn new(cluster: &Cluster) -> Result<Option<DnsFeed>, DnsError> {
        let Some(config) = dns_zone_config(cluster) else {
            return Ok(None);
        };
        let zones = Arc::new(Zones::new(config, dns_hosts(cluster), 1)?);
        Ok(Some(DnsFeed { zones }))
    }

    /// The zones to hand to a [`DnsServer`](crate::dns::DnsServer).
    pub fn zones(&self) -> Arc<Zones> {
        self.zones.clone()
    }

    /// Recomputes the hosts; if they changed, swaps them in (forward, reverse and SOA serial in
    /// one snapshot) and returns the new serial.
    pub fn refresh(&mut self, cluster: &Cluster) -> Result<Option<u32>, DnsError> {
        // Compare with what the zones serve (kept in name order) rather than a copy of our own.
        let mut hosts = dns_hosts(cluster);
        hosts.sort_by(|a, b| a.fqdn.cmp(&b.fqdn));
        if hosts == self.zones.hosts() {
            return Ok(None);
        }
        Ok(Some(self.zones.replace(hosts)?))
    }
}

/// A [`HostSource`] for the DHCP server, fed from the model by [`ModelHosts::refresh`].
#[derive(Clone, Default)]
pub struct ModelHosts(Arc<RwLock<Vec<HostEntry>>>);

impl ModelHosts {
    /// A source holding the model's DHCP database now.
    pub fn new(cluster: &Cluster) -> ModelHosts {
        ModelHosts(Arc::new(RwLock::new(dhcp_hosts(cluster))))
    }

    /// Recomputes the database; returns whether it changed (then tell the DHCP service to
    /// reload).
    pub fn refresh(&self, cluster: &Cluster) -> bool {
        let hosts = dhcp_hosts(cluster);
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        if *guard == hosts {
            return false;
        }
        *guard = hosts;
        true
    }
}

impl HostSource for ModelHosts {
    fn hosts(&self) -> Result<Vec<HostEntry>, PxeError> {
        Ok(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}
