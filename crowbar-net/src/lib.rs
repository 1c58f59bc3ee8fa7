//! Networks, ranges, routers and address allocation for Crowbar.
//!
//! This crate holds the network model (networks, ranges, routers, allocations, conduits) and the
//! IPv4 and IPv6 allocation algorithms: lowest-free IPv4 allocation with hints, RFC 4193 unique
//! local prefixes and interface identifiers derived from the MD5 of a node's FQDN.
//!
//! The algorithms are pure and synchronous: no I/O, no clock, no randomness. The caller
//! persists the [`Network`]s and [`NetworkAllocation`]s they return, and rebuilds the in-memory
//! index with [`Networks::restore`]. [`ClusterNetworks`] does exactly that for a
//! `crowbar_core::Cluster`: creating a network creates its implicit `network-<name>` role, and
//! binding that role to a node allocates the node's addresses in the same store batch as the
//! noderole (see its example).
//!
//! # Tutorial
//!
//! ## 1. A registry and an admin network
//!
//! The registry makes `auto` IPv6 prefixes from a 40-bit global id that the caller draws at
//! random once for the site and stores ([`UlaConfig`]). Networks are given as a
//! [`NetworkSpec`] and checked when added; a [`Network`] cannot be invalid.
//!
//! ```
//! use crowbar_core::DeploymentId;
//! use crowbar_net::{NetworkSpec, Networks, RangeKind, UlaConfig, V6Prefix};
//! # fn net(s: &str) -> ipnet::IpNet { s.parse().unwrap() }
//!
//! let mut nets = Networks::new(UlaConfig::new(0x12_3456_789a));
//! let admin = nets.add(
//!     NetworkSpec::new("admin", DeploymentId(1), "1g0")
//!         .range(RangeKind::Admin, net("192.168.124.10/24"), net("192.168.124.11/24"))
//!         .range(RangeKind::Dhcp, net("192.168.124.21/24"), net("192.168.124.80/24"))
//!         .range(RangeKind::Host, net("192.168.124.81/24"), net("192.168.124.160/24"))
//!         .router(net("192.168.124.1/24"), 10),
//! )?;
//! let network = nets.get(admin).unwrap();
//! assert_eq!(network.role_name(), "network-admin");
//! // Not told otherwise, the admin network gets an RFC 4193 prefix, subnet id = network id,
//! // and a host-v6 range covering that /64.
//! assert_eq!(network.v6prefix(), V6Prefix::Auto);
//! assert_eq!(network.v6_net().unwrap().to_string(), "fd12:3456:789a:1::/64");
//! assert!(network.range(&RangeKind::HostV6).is_some());
//! # Ok::<(), crowbar_net::NetError>(())
//! ```
//!
//! ## 2. Validation
//!
//! Errors are one enum, [`NetError`], whose variants name the offending network, range or
//! address. Rules within a network are checked by [`Network::new`], rules across networks by
//! [`Networks::add`]:
//!
//! ```
//! use crowbar_core::DeploymentId;
//! use crowbar_net::{NetError, NetworkSpec, Networks, RangeKind, UlaConfig};
//! # fn net(s: &str) -> ipnet::IpNet { s.parse().unwrap() }
//!
//! let mut nets = Networks::new(UlaConfig::new(1));
//! // A range may not start at the subnet address.
//! let err = nets.add(NetworkSpec::new("storage", DeploymentId(1), "1g1")
//!     .range(RangeKind::Host, net("10.0.0.0/24"), net("10.0.0.9/24")));
//! assert_eq!(err, Err(NetError::RangeAtSubnetAddress {
//!     network: "storage".into(),
//!     range: RangeKind::Host,
//!     address: net("10.0.0.0/24"),
//! }));
//! // VLAN tags are 1..=4094; teaming needs 2 to 8 conduit members.
//! let err = nets.add(NetworkSpec::new("public", DeploymentId(1), "1g2").vlan(5000));
//! assert!(matches!(err, Err(NetError::InvalidVlan { vlan: 5000, .. })));
//!
//! nets.add(NetworkSpec::new("storage", DeploymentId(1), "1g1")
//!     .range(RangeKind::Host, net("10.0.0.1/24"), net("10.0.0.9/24")))?;
//! // Conduits of two networks are identical or disjoint...
//! let err = nets.add(NetworkSpec::new("bonded", DeploymentId(1), "1g1,1g2")
//!     .team(Default::default()));
//! assert!(matches!(err, Err(NetError::ConduitOverlap { .. })));
//! // ...and no two ranges overlap, whichever networks they belong to.
//! let err = nets.add(NetworkSpec::new("other", DeploymentId(1), "1g1")
//!     .range(RangeKind::Host, net("10.0.0.5/24"), net("10.0.0.20/24")));
//! assert!(matches!(err, Err(NetError::RangeOverlap { .. })));
//! # Ok::<(), crowbar_net::NetError>(())
//! ```
//!
//! ## 3. Binding a node to a network
//!
//! [`Networks::allocate_node`] does what binding the `network-<name>` role does: an address
//! from the `admin` range (admin nodes) or the `host` range (others), the hint if it is free,
//! else the lowest free address; plus, when the network has a v6 prefix, the node's address
//! from [`ipv6::host_address`]. It returns what it allocated, to be written in the same store
//! batch as the noderole. Asking again allocates nothing new.
//!
//! ```
//! # use crowbar_core::DeploymentId;
//! # use crowbar_net::{NetworkSpec, Networks, RangeKind, UlaConfig, V6Prefix};
//! # fn net(s: &str) -> ipnet::IpNet { s.parse().unwrap() }
//! use crowbar_core::NodeId;
//!
//! # let mut nets = Networks::new(UlaConfig::new(0x12_3456_789a));
//! # let admin = nets.add(NetworkSpec::new("admin", DeploymentId(1), "1g0")
//! #     .range(RangeKind::Admin, net("192.168.124.10/24"), net("192.168.124.11/24"))
//! #     .range(RangeKind::Host, net("192.168.124.81/24"), net("192.168.124.160/24")))?;
//! let made = nets.allocate_node(admin, NodeId(7), "d52-54-00.cr0wbar.com", false, None, None)?;
//! assert_eq!(made[0].address.to_string(), "192.168.124.81/24");
//! assert_eq!(made[0].range, RangeKind::Host);
//! assert_eq!(made[1].range, RangeKind::HostV6);
//! assert!(made[1].address.to_string().starts_with("fd12:3456:789a:1:"));
//!
//! // An admin node draws from the admin range, and a free hint wins.
//! let hint = "192.168.124.11".parse().ok();
//! let made = nets.allocate_node(admin, NodeId(1), "admin.cr0wbar.com", true, hint, None)?;
//! assert_eq!(made[0].address.to_string(), "192.168.124.11/24");
//!
//! // Idempotent: nothing new to write.
//! assert!(nets.allocate_node(admin, NodeId(7), "d52-54-00.cr0wbar.com", false, None, None)?.is_empty());
//! assert_eq!(nets.node_allocations(admin, NodeId(7)).len(), 2);
//! # Ok::<(), crowbar_net::NetError>(())
//! ```
//!
//! ## 4. Deleting a node, and restoring from the store
//!
//! [`Networks::release_node`] frees everything a node holds and returns it, for the caller to
//! delete. Networks and allocations serialize to JSON; [`Networks::restore`] rebuilds the
//! same registry from them, checking everything again.
//!
//! ```
//! # use crowbar_core::{DeploymentId, NodeId};
//! # use crowbar_net::{NetworkSpec, Networks, RangeKind, UlaConfig};
//! # fn net(s: &str) -> ipnet::IpNet { s.parse().unwrap() }
//! use crowbar_net::{Network, NetworkAllocation};
//!
//! # let mut nets = Networks::new(UlaConfig::new(0x12_3456_789a));
//! # let admin = nets.add(NetworkSpec::new("admin", DeploymentId(1), "1g0")
//! #     .range(RangeKind::Host, net("192.168.124.81/24"), net("192.168.124.160/24")))?;
//! nets.allocate_node(admin, NodeId(7), "a.cr0wbar.com", false, None, None)?;
//! nets.allocate_node(admin, NodeId(8), "b.cr0wbar.com", false, None, None)?;
//! assert_eq!(nets.release_node(NodeId(7)).len(), 2);
//!
//! // What the store keeps:
//! let stored_nets: Vec<String> =
//!     nets.iter().map(|n| serde_json::to_string(n).unwrap()).collect();
//! let stored_allocs: Vec<String> =
//!     nets.allocations().map(|a| serde_json::to_string(&a).unwrap()).collect();
//!
//! // After a restart:
//! let networks = stored_nets.iter().map(|j| serde_json::from_str::<Network>(j).unwrap());
//! let allocs = stored_allocs.iter().map(|j| serde_json::from_str::<NetworkAllocation>(j).unwrap());
//! let again = Networks::restore(nets.ula(), networks, allocs)?;
//! assert_eq!(again, nets);
//! # Ok::<(), crowbar_net::NetError>(())
//! ```
//!
//! ## 5. The IPv6 functions
//!
//! The [`ipv6`] module has the algorithms other tools call directly: [`ipv6::interface_id`],
//! [`ipv6::host_address`], [`ipv6::ula_prefix`] and the compatibility
//! [`ipv6::crowbar_fc_prefix`].
//!
//! ```
//! use crowbar_net::ipv6;
//!
//! let prefix = "fc12:3456:789a:0001::/64".parse().unwrap();
//! assert_eq!(
//!     ipv6::host_address(prefix, "newtest.cr0wbar.com").to_string(),
//!     "fc12:3456:789a:1:493d:5d20:8c33:f07",
//! );
//! ```
#![deny(missing_docs)]

/// The README's example, checked as a doc test so that crates.io shows code that runs.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod addr;
mod alloc;
mod binding;
mod conduit;
mod error;
pub mod ipv6;
mod model;
mod registry;

pub use alloc::RangeAllocator;
pub use binding::{ClusterNetworks, node_addresses};
pub use conduit::{Conduit, ConduitMember, SpeedFlag};
pub use error::NetError;
pub use model::{
    Network, NetworkAllocation, NetworkId, NetworkRange, NetworkRouter, NetworkSpec, RangeKind,
    RangeSpec, RouterSpec, TeamMode, UlaConfig, UlaForm, V6Prefix,
};
pub use registry::Networks;
