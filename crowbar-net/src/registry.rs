//! The registry of all networks, [`Networks`]: cross-network validation and per-node allocation.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crowbar_core::NodeId;

use crate::alloc::RangeAllocator;
use crate::error::NetError;
use crate::ipv6;
use crate::model::{Network, NetworkAllocation, NetworkId, NetworkSpec, RangeKind, UlaConfig};

/// Every network of a cluster with its allocators.
///
/// It checks the rules that span networks when one is added (unique names, conduits identical
/// or disjoint, no two ranges overlapping anywhere), and so keeps addresses globally unique:
/// each address lies in at most one range, and each range hands an address to at most one node.
///
/// It is plain data, pure and synchronous: the caller persists what the methods return
/// ([`Network`]s and [`NetworkAllocation`]s) and rebuilds the registry with
/// [`restore`](Self::restore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Networks {
    ula: UlaConfig,
    next_id: u32,
    entries: BTreeMap<NetworkId, Entry>,
    names: BTreeMap<String, NetworkId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    network: Network,
    /// One per range, in the order of `network.ranges()`.
    allocators: Vec<RangeAllocator>,
}

impl Entry {
    fn allocator_mut(&mut self, kind: &RangeKind) -> Option<&mut RangeAllocator> {
        self.allocators
            .iter_mut()
            .find(|a| a.range().kind() == kind)
    }
}

impl Networks {
    /// An empty registry; `ula` makes the `auto` v6 prefixes of the networks added later.
    pub fn new(ula: UlaConfig) -> Self {
        Networks {
            ula,
            next_id: 1,
            entries: BTreeMap::new(),
            names: BTreeMap::new(),
        }
    }

    /// The registry rebuilt from stored networks and allocations, with every check of
    /// [`insert`](Self::insert) and [`RangeAllocator::from_allocations`].
    ///
    /// The next id given by [`add`](Self::add) is one above the highest stored id, so the id of
    /// a removed network above all others may be used again (its allocations went with it).
    pub fn restore(
        ula: UlaConfig,
        networks: impl IntoIterator<Item = Network>,
        allocations: impl IntoIterator<Item = NetworkAllocation>,
    ) -> Result<Self, NetError> {
        let mut registry = Networks::new(ula);
        for network in networks {
            registry.insert(network)?;
        }
        for allocation in allocations {
            let entry =
                registry
                    .entries
                    .get_mut(&allocation.network)
                    .ok_or(NetError::UnknownNetwork {
                        id: allocation.network,
                    })?;
            let name = entry.network.name().to_owned();
            let alloc =
                entry
                    .allocator_mut(&allocation.range)
                    .ok_or_else(|| NetError::MissingRange {
                        network: name,
                        range: allocation.range.clone(),
                    })?;
            alloc.insert(&allocation)?;
        }
        Ok(registry)
    }

    /// Checks `spec`, gives it the next id and adds it. The caller persists
    /// [`get`](Self::get)`(id)` and creates the `network-<name>` role.
    ///
    /// ```
    /// use crowbar_core::DeploymentId;
    /// use crowbar_net::{NetError, NetworkSpec, Networks, RangeKind, UlaConfig};
    ///
    /// let mut nets = Networks::new(UlaConfig::new(0x12_3456_789a));
    /// let admin = nets.add(NetworkSpec::new("admin", DeploymentId(1), "1g0")
    ///     .range(RangeKind::Host, "192.168.124.81/24".parse().unwrap(), "192.168.124.160/24".parse().unwrap()))
    ///     .unwrap();
    /// // The admin network gets an automatic RFC 4193 prefix; its subnet id is the network id.
    /// assert_eq!(nets.get(admin).unwrap().v6_net().unwrap().to_string(), "fd12:3456:789a:1::/64");
    ///
    /// // A second network may not partly share the conduit, nor overlap a range.
    /// let clash = nets.add(NetworkSpec::new("bmc", DeploymentId(1), "1g0")
    ///     .range(RangeKind::Host, "192.168.124.100/24".parse().unwrap(), "192.168.124.200/24".parse().unwrap()));
    /// assert!(matches!(clash, Err(NetError::RangeOverlap { .. })));
    /// ```
    pub fn add(&mut self, spec: NetworkSpec) -> Result<NetworkId, NetError> {
        let id = NetworkId(self.next_id);
        let network = Network::new(id, spec, self.ula)?;
        self.insert(network)?;
        Ok(id)
    }

    /// Adds a network that already has its id (one loaded from the store), after the checks
    /// across networks.
    pub fn insert(&mut self, network: Network) -> Result<(), NetError> {
        self.check_against_others(&network)?;
        let allocators = network
            .ranges()
            .iter()
            .map(|r| RangeAllocator::new(&network, r.kind()))
            .collect::<Result<Vec<_>, _>>()?;
        let id = network.id();
        self.next_id = self.next_id.max(id.0.saturating_add(1));
        self.names.insert(network.name().to_owned(), id);
        self.entries.insert(
            id,
            Entry {
                network,
                allocators,
            },
        );
        Ok(())
    }

    fn check_against_others(&self, network: &Network) -> Result<(), NetError> {
        if self.names.contains_key(network.name()) {
            return Err(NetError::DuplicateNetwork {
                name: network.name().to_owned(),
            });
        }
        if self.entries.contains_key(&network.id()) {
            return Err(NetError::DuplicateNetworkId { id: network.id() });
        }
        for other in self.entries.values().map(|e| &e.network) {
            if network.conduit().intersects(other.conduit())
                && !network.conduit().same_set(other.conduit())
            {
                return Err(NetError::ConduitOverlap {
                    network: network.name().to_owned(),
                    conduit: network.conduit().to_string(),
                    other: other.name().to_owned(),
                    other_conduit: other.conduit().to_string(),
                });
            }
            for range in network.ranges() {
                if let Some(theirs) = other.ranges().iter().find(|r| r.overlaps(range)) {
                    return Err(NetError::RangeOverlap {
                        network: network.name().to_owned(),
                        range: range.kind().clone(),
                        other_network: other.name().to_owned(),
                        other_range: theirs.kind().clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Removes a network, returning it and the allocations it held (for the caller to delete
    /// in the same batch).
    pub fn remove(&mut self, id: NetworkId) -> Result<(Network, Vec<NetworkAllocation>), NetError> {
        let entry = self
            .entries
            .remove(&id)
            .ok_or(NetError::UnknownNetwork { id })?;
        self.names.remove(entry.network.name());
        let released = entry
            .allocators
            .iter()
            .flat_map(RangeAllocator::allocations)
            .collect();
        Ok((entry.network, released))
    }

    /// The network with this id.
    pub fn get(&self, id: NetworkId) -> Option<&Network> {
        self.entries.get(&id).map(|e| &e.network)
    }

    /// The network with this name.
    pub fn by_name(&self, name: &str) -> Option<&Network> {
        self.names.get(name).and_then(|id| self.get(*id))
    }

    /// Every network, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Network> + '_ {
        self.entries.values().map(|e| &e.network)
    }

    /// How many networks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no networks.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The configuration of `auto` prefixes.
    pub fn ula(&self) -> UlaConfig {
        self.ula
    }

    /// The allocator of one range, to read.
    pub fn allocator(&self, network: NetworkId, kind: &RangeKind) -> Option<&RangeAllocator> {
        self.entries
            .get(&network)?
            .allocators
            .iter()
            .find(|a| a.range().kind() == kind)
    }

    /// What binding `network-<name>` to a node allocates, as Crowbar's `on_proposed` did:
    ///
    /// 1. an address from the `admin` range if `is_admin` and the network has one, else from
    ///    the `host` range ([`NetError::MissingRange`] if there is none): `v4_hint` if it is
    ///    free and in that range, else the lowest free address;
    /// 2. when the network has a `host-v6` range (every network with a v6 prefix has one), an
    ///    address from it: `v6_hint` if free and in range, else
    ///    [`ipv6::host_address`]`(prefix, fqdn)` if the network has a prefix and that address
    ///    is free, else the lowest free one.
    ///
    /// Returns the allocations made by this call, for the caller to write in the same batch
    /// as the noderole; a range where the node already holds an address is left as it is and
    /// not returned again (so a second call returns nothing). All or nothing: if the second
    /// step fails, the first is undone. The `dhcp` range is never used.
    pub fn allocate_node(
        &mut self,
        network: NetworkId,
        node: NodeId,
        fqdn: &str,
        is_admin: bool,
        v4_hint: Option<Ipv4Addr>,
        v6_hint: Option<Ipv6Addr>,
    ) -> Result<Vec<NetworkAllocation>, NetError> {
        let entry = self
            .entries
            .get_mut(&network)
            .ok_or(NetError::UnknownNetwork { id: network })?;
        let primary = if is_admin && entry.network.range(&RangeKind::Admin).is_some() {
            RangeKind::Admin
        } else {
            RangeKind::Host
        };
        let v6_net = entry.network.v6_net();
        let missing = |entry: &Entry, range: RangeKind| NetError::MissingRange {
            network: entry.network.name().to_owned(),
            range,
        };
        let mut made = Vec::new();

        let Some(first) = entry.allocator_mut(&primary) else {
            return Err(missing(entry, primary));
        };
        if first.get(node).is_none() {
            made.push(first.allocate(node, v4_hint.map(IpAddr::V4))?);
        }

        if let Some(v6) = entry.allocator_mut(&RangeKind::HostV6)
            && v6.get(node).is_none()
        {
            let hint = v6_hint
                .map(IpAddr::V6)
                .filter(|&h| v6.is_free(h))
                .or_else(|| v6_net.map(|prefix| IpAddr::V6(ipv6::host_address(prefix, fqdn))));
            match v6.allocate(node, hint) {
                Ok(allocation) => made.push(allocation),
                Err(err) => {
                    // All or nothing: give back what the first step took.
                    if !made.is_empty()
                        && let Some(first) = entry.allocator_mut(&primary)
                    {
                        first.release(node);
                    }
                    return Err(err);
                }
            }
        }
        Ok(made)
    }

    /// Crowbar's `allocate_ip`: an address for `node` from the named range of `network`, with
    /// [`RangeAllocator::allocate`]'s rules (idempotent; hint if free; else lowest free).
    pub fn allocate(
        &mut self,
        network: NetworkId,
        range: &RangeKind,
        node: NodeId,
        hint: Option<IpAddr>,
    ) -> Result<NetworkAllocation, NetError> {
        let entry = self
            .entries
            .get_mut(&network)
            .ok_or(NetError::UnknownNetwork { id: network })?;
        let name = entry.network.name().to_owned();
        entry
            .allocator_mut(range)
            .ok_or_else(|| NetError::MissingRange {
                network: name,
                range: range.clone(),
            })?
            .allocate(node, hint)
    }

    /// Releases every address `node` holds on `network` (unbinding the network role),
    /// returning the released allocations.
    pub fn release(
        &mut self,
        network: NetworkId,
        node: NodeId,
    ) -> Result<Vec<NetworkAllocation>, NetError> {
        let entry = self
            .entries
            .get_mut(&network)
            .ok_or(NetError::UnknownNetwork { id: network })?;
        Ok(entry
            .allocators
            .iter_mut()
            .filter_map(|a| a.release(node))
            .collect())
    }

    /// Releases the address `node` holds in one range of `network`, if any.
    pub fn release_range(
        &mut self,
        network: NetworkId,
        range: &RangeKind,
        node: NodeId,
    ) -> Result<Option<NetworkAllocation>, NetError> {
        let entry = self
            .entries
            .get_mut(&network)
            .ok_or(NetError::UnknownNetwork { id: network })?;
        let name = entry.network.name().to_owned();
        Ok(entry
            .allocator_mut(range)
            .ok_or_else(|| NetError::MissingRange {
                network: name,
                range: range.clone(),
            })?
            .release(node))
    }

    /// Releases every address `node` holds on any network (deleting the node), returning the
    /// released allocations for the caller to delete in the same batch.
    pub fn release_node(&mut self, node: NodeId) -> Vec<NetworkAllocation> {
        self.entries
            .values_mut()
            .flat_map(|e| e.allocators.iter_mut().filter_map(|a| a.release(node)))
            .collect()
    }

    /// The addresses `node` holds on `network` (Crowbar's `allocations?node=`), in range order.
    pub fn node_allocations(&self, network: NetworkId, node: NodeId) -> Vec<NetworkAllocation> {
        self.entries.get(&network).map_or_else(Vec::new, |e| {
            e.allocators.iter().filter_map(|a| a.get(node)).collect()
        })
    }

    /// Who holds `addr`, anywhere.
    pub fn holder(&self, addr: IpAddr) -> Option<(NetworkId, NodeId)> {
        self.entries.iter().find_map(|(id, e)| {
            e.allocators
                .iter()
                .find_map(|a| a.holder(addr))
                .map(|node| (*id, node))
        })
    }

    /// Every allocation, by network, range and address.
    pub fn allocations(&self) -> impl Iterator<Item = NetworkAllocation> + '_ {
        self.entries
            .values()
            .flat_map(|e| e.allocators.iter().flat_map(RangeAllocator::allocations))
    }
}
