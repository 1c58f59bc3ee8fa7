//! Networks wired into the crowbar model: creating a network creates its implicit
//! `network-<name>` role, binding that role to a node allocates the node's addresses in the same
//! batch, deleting the node releases them.

use std::net::IpAddr;
use std::sync::Arc;

use crowbar_core::{Cluster, HookError, NodeId, NodeRoleId, RoleFlag, RoleHooks, RoleSpec};
use serde_json::{Value, json};

use crate::{
    NetError, Network, NetworkAllocation, NetworkId, NetworkSpec, Networks, RangeKind, UlaConfig,
};

/// The record tables this layer writes through the cluster's batches.
const NETWORKS: &str = "network";
const ALLOCATIONS: &str = "network.allocation";
const SITE: &str = "network.site";

fn allocation_key(a: &NetworkAllocation) -> String {
    format!("{}/{}/{}", a.network.0, a.range, a.node.0)
}

/// The network registry of a [`Cluster`], kept in its [`Extensions`](crowbar_core::Extensions).
///
/// ```
/// use crowbar_core::{Cluster, DeploymentId, NodeSpec};
/// use crowbar_net::{ClusterNetworks, NetworkSpec, RangeKind, node_addresses};
/// # fn net(s: &str) -> ipnet::IpNet { s.parse().unwrap() }
///
/// let mut cluster = Cluster::new();
/// // The random 40-bit site id is drawn by the caller; it is used only if none is stored yet.
/// ClusterNetworks::install(&mut cluster, 0x12_3456_789a)?;
/// ClusterNetworks::create_network(
///     &mut cluster,
///     NetworkSpec::new("admin", DeploymentId(1), "1g0")
///         .range(RangeKind::Host, net("192.168.124.81/24"), net("192.168.124.160/24")),
/// )?;
/// let node = cluster.create_node(NodeSpec::new("d1.cr0wbar.com"))?;
/// cluster.bind_by_name("network-admin", "d1", None)?;
/// let addresses = node_addresses(&cluster, "admin", node);
/// assert_eq!(addresses[0].address.to_string(), "192.168.124.81/24");
/// assert_eq!(addresses[0].range, RangeKind::Host);
/// // v6: the admin network's auto prefix + the last 64 bits of md5("d1.cr0wbar.com").
/// assert!(addresses[1].address.to_string().starts_with("fd12:3456:789a:1:"));
/// assert_eq!(addresses[1].range, RangeKind::HostV6);
/// // All of it is in the pending batch, with the noderole.
/// assert_eq!(cluster.take_batch().records.len(), 4); // site, network, two allocations
/// # Ok::<(), crowbar_net::NetError>(())
/// ```
pub struct ClusterNetworks(Networks);

impl ClusterNetworks {
    /// Attaches networks to `cluster`: rebuilds the registry from the records the cluster was
    /// loaded with (if any), registers the hooks of every network role, and stores the site's
    /// ULA global id, using `fresh_global_id` (drawn at random by the caller) only when none is
    /// stored yet.
    pub fn install(cluster: &mut Cluster, fresh_global_id: u64) -> Result<(), NetError> {
        let mut ula = None;
        let mut networks = Vec::new();
        let mut allocations = Vec::new();
        let corrupt = |table: &str| {
            let table = table.to_owned();
            move |e: serde_json::Error| NetError::CorruptRecord {
                table: table.clone(),
                message: e.to_string(),
            }
        };
        for r in cluster.loaded_records() {
            let value = r.value.clone();
            match r.table.as_str() {
                SITE => {
                    ula = Some(serde_json::from_value::<UlaConfig>(value).map_err(corrupt(SITE))?)
                }
                NETWORKS => networks
                    .push(serde_json::from_value::<Network>(value).map_err(corrupt(NETWORKS))?),
                ALLOCATIONS => allocations.push(
                    serde_json::from_value::<NetworkAllocation>(value)
                        .map_err(corrupt(ALLOCATIONS))?,
                ),
                _ => {}
            }
        }
        let ula = match ula {
            Some(u) => u,
            None => {
                let u = UlaConfig::new(fresh_global_id & 0xff_ffff_ffff);
                cluster.put_record(SITE, "ula", serde_json::to_value(u).unwrap_or(Value::Null));
                u
            }
        };
        let registry = Networks::restore(ula, networks, allocations)?;
        let names: Vec<(NetworkId, String)> =
            registry.iter().map(|n| (n.id(), n.role_name())).collect();
        cluster.extensions_mut().insert(ClusterNetworks(registry));
        for (id, role) in names {
            cluster.register_hooks(&role, Arc::new(NetworkRole { network: id }));
        }
        Ok(())
    }

    /// The registry, if [`install`](Self::install) was called.
    pub fn get(cluster: &Cluster) -> Option<&Networks> {
        cluster.extensions().get::<ClusterNetworks>().map(|n| &n.0)
    }

    fn get_mut(cluster: &mut Cluster) -> Option<&mut Networks> {
        cluster
            .extensions_mut()
            .get_mut::<ClusterNetworks>()
            .map(|n| &mut n.0)
    }

    fn registry_mut(cluster: &mut Cluster) -> Result<&mut Networks, NetError> {
        Self::get_mut(cluster).ok_or(NetError::Model(crowbar_core::CoreError::Unknown {
            what: "network registry",
            name: "call ClusterNetworks::install first".into(),
        }))
    }

    /// Allocates by hand (Crowbar's `allocate_ip`): an address for `node` from the range
    /// `range` of the network named `network`, with [`Networks::allocate`]'s rules (idempotent;
    /// the hint if free; else the lowest free address). The allocation goes in the cluster's
    /// pending batch, and is given back if the operation this call is part of (a
    /// [`Cluster::transaction`], a hook) is refused.
    ///
    /// ```
    /// use crowbar_core::{Cluster, CoreError, DeploymentId, NodeSpec};
    /// use crowbar_net::{ClusterNetworks, NetError, NetworkSpec, RangeKind};
    /// # fn net(s: &str) -> ipnet::IpNet { s.parse().unwrap() }
    ///
    /// let mut cluster = Cluster::new();
    /// ClusterNetworks::install(&mut cluster, 1)?;
    /// ClusterNetworks::create_network(&mut cluster, NetworkSpec::new("bmc", DeploymentId(1), "1g1")
    ///     .range(RangeKind::Host, net("10.9.0.10/24"), net("10.9.0.11/24")))?;
    /// let a = cluster.create_node(NodeSpec::new("a.cr0wbar.com"))?;
    /// let b = cluster.create_node(NodeSpec::new("b.cr0wbar.com"))?;
    /// cluster.take_batch();
    ///
    /// let hint = "10.9.0.11".parse().ok();
    /// let got = ClusterNetworks::allocate(&mut cluster, "bmc", &RangeKind::Host, a, hint)?;
    /// assert_eq!(got.address.to_string(), "10.9.0.11/24");
    /// assert_eq!(cluster.take_batch().records.len(), 1);
    ///
    /// // Inside a transaction that is refused, the allocation is given back with the rest.
    /// let r: Result<(), NetError> = cluster.transaction(|c| {
    ///     ClusterNetworks::allocate(c, "bmc", &RangeKind::Host, b, None)?;
    ///     Err(NetError::Model(CoreError::Unknown { what: "node", name: "x".into() }))
    /// });
    /// assert!(r.is_err());
    /// assert!(ClusterNetworks::get(&cluster).unwrap().holder("10.9.0.10".parse().unwrap()).is_none());
    /// assert!(!cluster.has_pending());
    ///
    /// assert_eq!(ClusterNetworks::release(&mut cluster, "bmc", a)?.len(), 1);
    /// # Ok::<(), NetError>(())
    /// ```
    pub fn allocate(
        cluster: &mut Cluster,
        network: &str,
        range: &RangeKind,
        node: NodeId,
        hint: Option<IpAddr>,
    ) -> Result<NetworkAllocation, NetError> {
        cluster.transaction(|c| {
            c.node(node).ok_or_else(|| {
                NetError::Model(crowbar_core::CoreError::Unknown {
                    what: "node",
                    name: node.to_string(),
                })
            })?;
            let networks = Self::registry_mut(c)?;
            let id = networks
                .by_name(network)
                .ok_or_else(|| NetError::UnknownNetworkName {
                    name: network.to_owned(),
                })?
                .id();
            let before = networks.allocator(id, range).and_then(|a| a.get(node));
            let allocation = networks.allocate(id, range, node, hint)?;
            if before.is_none() {
                let kind = range.clone();
                c.on_rollback(move |c| {
                    if let Some(n) = ClusterNetworks::get_mut(c) {
                        let _ = n.release_range(id, &kind, node);
                    }
                });
                put_allocation(c, &allocation);
            }
            Ok(allocation)
        })
    }

    /// Releases by hand every address `node` holds on the network named `network`, in the
    /// cluster's pending batch (and taken again if the operation this call is part of is
    /// refused). Returns what was released.
    pub fn release(
        cluster: &mut Cluster,
        network: &str,
        node: NodeId,
    ) -> Result<Vec<NetworkAllocation>, NetError> {
        cluster.transaction(|c| {
            let networks = Self::registry_mut(c)?;
            let id = networks
                .by_name(network)
                .ok_or_else(|| NetError::UnknownNetworkName {
                    name: network.to_owned(),
                })?
                .id();
            let released = networks.release(id, node)?;
            release_records(c, released.clone());
            Ok(released)
        })
    }

    /// Creates a network and its implicit `network-<name>` role (flagged `bootstrap` and
    /// `discovery` for the admin network, as in Crowbar Anvil; jig `noop`; template = the
    /// network), in the cluster's pending batch. Refused, with nothing changed, when the network
    /// is invalid, overlaps another, or its role name is taken.
    pub fn create_network(cluster: &mut Cluster, spec: NetworkSpec) -> Result<NetworkId, NetError> {
        let networks = Self::registry_mut(cluster)?;
        let id = networks.add(spec)?;
        let network = networks.get(id).expect("just added").clone();
        let mut role = RoleSpec::new(network.role_name())
            .flag(RoleFlag::Implicit)
            .flag(RoleFlag::Milestone)
            .template(network.role_template());
        if network.is_admin_network() {
            role = role.flag(RoleFlag::Bootstrap).flag(RoleFlag::Discovery);
        }
        if let Err(e) = cluster.create_role(role) {
            if let Some(networks) = Self::get_mut(cluster) {
                let _ = networks.remove(id);
            }
            return Err(e.into());
        }
        cluster.register_hooks(&network.role_name(), Arc::new(NetworkRole { network: id }));
        cluster.put_record(
            NETWORKS,
            network.name(),
            serde_json::to_value(&network).unwrap_or(Value::Null),
        );
        Ok(id)
    }
}

/// The addresses `node` holds on the network named `network`, each with its range, v4 first.
pub fn node_addresses(cluster: &Cluster, network: &str, node: NodeId) -> Vec<NetworkAllocation> {
    let Some(nets) = ClusterNetworks::get(cluster) else {
        return Vec::new();
    };
    let Some(net) = nets.by_name(network) else {
        return Vec::new();
    };
    let mut out = nets.node_allocations(net.id(), node);
    out.sort_by_key(|a| a.address.addr().is_ipv6());
    out
}

fn put_allocation(cluster: &mut Cluster, a: &NetworkAllocation) {
    cluster.put_record(
        ALLOCATIONS,
        &allocation_key(a),
        serde_json::to_value(a).unwrap_or(Value::Null),
    );
}

/// Deletes the records of `released` in the pending batch, and registers taking them back if
/// the operation is refused.
fn release_records(cluster: &mut Cluster, released: Vec<NetworkAllocation>) {
    if released.is_empty() {
        return;
    }
    for a in &released {
        cluster.delete_record(ALLOCATIONS, &allocation_key(a));
    }
    cluster.on_rollback(move |c| {
        if let Some(n) = ClusterNetworks::get_mut(c) {
            for a in released {
                let hint: IpAddr = a.address.addr();
                let _ = n.allocate(a.network, &a.range, a.node, Some(hint));
            }
        }
    });
}

/// The hooks of one `network-<name>` role.
struct NetworkRole {
    network: NetworkId,
}

impl RoleHooks for NetworkRole {
    fn on_proposed(&self, cluster: &mut Cluster, noderole: NodeRoleId) -> Result<(), HookError> {
        let nr = cluster
            .noderole(noderole)
            .ok_or_else(|| HookError::new("noderole vanished"))?;
        let node = cluster
            .node(nr.node)
            .ok_or_else(|| HookError::new("node vanished"))?
            .clone();
        let network_id = self.network;
        let networks = ClusterNetworks::get_mut(cluster)
            .ok_or_else(|| HookError::new("network registry not installed"))?;
        let name = networks
            .get(network_id)
            .map(|n| n.name().to_owned())
            .ok_or_else(|| HookError::new("network vanished"))?;
        let v4 = node.hints().v4addr(&name);
        let v6 = node.hints().v6addr(&name);
        let made = networks
            .allocate_node(network_id, node.id, node.name.as_str(), node.admin, v4, v6)
            .map_err(|e| HookError::new(e.to_string()))?;
        let all = networks.node_allocations(network_id, node.id);
        if !made.is_empty() {
            let node_id = node.id;
            cluster.on_rollback(move |c| {
                if let Some(n) = ClusterNetworks::get_mut(c) {
                    let _ = n.release(network_id, node_id);
                }
            });
        }
        for a in &made {
            put_allocation(cluster, a);
        }
        let addresses: Vec<String> = all.iter().map(|a| a.address.to_string()).collect();
        cluster
            .set_sysdata(
                noderole,
                json!({"crowbar": {"network": {name: {"addresses": addresses}}}}),
            )
            .map_err(|e| HookError::new(e.to_string()))
    }

    fn on_node_delete(&self, cluster: &mut Cluster, node: NodeId) -> Result<(), HookError> {
        let network_id = self.network;
        let Some(networks) = ClusterNetworks::get_mut(cluster) else {
            return Ok(());
        };
        let released = networks
            .release(network_id, node)
            .map_err(|e| HookError::new(e.to_string()))?;
        release_records(cluster, released);
        Ok(())
    }
}
