//! The one error type of this crate, [`NetError`].

use std::net::IpAddr;

use ipnet::{IpNet, Ipv6Net};

use crowbar_core::NodeId;

use crate::model::{NetworkId, RangeKind};

/// Everything that can go wrong when building networks or allocating addresses.
///
/// Each variant names the offending value (the network, the range, the address, the node), so a
/// caller can report it without parsing the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A network name is empty or holds a character outside `[A-Za-z0-9_-]`.
    #[error("invalid network name {name:?}: use letters, digits, '-' and '_'")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A range name is empty or holds a character outside `[A-Za-z0-9_-]`.
    #[error("invalid range name {name:?}: use letters, digits, '-' and '_'")]
    InvalidRangeName {
        /// The rejected name.
        name: String,
    },
    /// A network's conduit has no members.
    #[error("network {network}: the conduit is empty")]
    EmptyConduit {
        /// The network.
        network: String,
    },
    /// A conduit member does not match `[-+?]<speed><index>` with speed `<1-3 digits>m|g`.
    #[error(
        "network {network}: conduit member {member:?} is not of the form [-+?]<speed><n>, e.g. 1g0 or +10g1"
    )]
    InvalidConduitMember {
        /// The network.
        network: String,
        /// The rejected member.
        member: String,
    },
    /// A conduit names the same member twice.
    #[error("network {network}: conduit member {member} appears twice")]
    DuplicateConduitMember {
        /// The network.
        network: String,
        /// The repeated member.
        member: String,
    },
    /// The members of one conduit do not all share one flag and one speed.
    #[error("network {network}: conduit {conduit} mixes flags or speeds")]
    MixedConduit {
        /// The network.
        network: String,
        /// The whole conduit.
        conduit: String,
    },
    /// A teamed network has fewer than 2 or more than 8 conduit members, or an unteamed one more
    /// than one.
    #[error("network {network}: conduit {conduit} has {members} members, {expected}")]
    ConduitSize {
        /// The network.
        network: String,
        /// The whole conduit.
        conduit: String,
        /// How many members it has.
        members: usize,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// Two networks' conduits share some members but are not the same set.
    #[error(
        "network {network}: conduit {conduit} partly overlaps conduit {other_conduit} of network {other}; conduits must be identical or disjoint"
    )]
    ConduitOverlap {
        /// The network being added.
        network: String,
        /// Its conduit.
        conduit: String,
        /// The existing network.
        other: String,
        /// The existing network's conduit.
        other_conduit: String,
    },
    /// A VLAN tag outside 1..=4094 on a network that uses VLANs.
    #[error("network {network}: vlan {vlan} is outside 1..=4094")]
    InvalidVlan {
        /// The network.
        network: String,
        /// The rejected tag.
        vlan: u16,
    },
    /// A team mode outside the Linux bonding modes 0..=6.
    #[error("team mode {mode} is not a Linux bonding mode (0..=6)")]
    InvalidTeamMode {
        /// The rejected mode.
        mode: u8,
    },
    /// A `v6prefix` that is not `none`, `auto` or a /64.
    #[error(
        "network {network}: v6 prefix {prefix:?} is not none, auto or a /64 with zero host bits"
    )]
    InvalidV6Prefix {
        /// The network (empty when parsed outside a network).
        network: String,
        /// The rejected prefix, as given.
        prefix: String,
    },
    /// An `auto` prefix needs the network id as its 16-bit subnet id, and it is too large.
    #[error("network {network}: id {id} does not fit the 16-bit subnet id of an auto v6 prefix")]
    SubnetIdOverflow {
        /// The network.
        network: String,
        /// Its id.
        id: NetworkId,
    },
    /// A `host-v6` range that is not IPv6, or lies outside the network's v6 prefix.
    #[error("network {network}: range host-v6 {first}..{last} must be IPv6 and inside the v6 prefix{}", prefix.map(|p| format!(" {p}")).unwrap_or_default())]
    HostV6Range {
        /// The network.
        network: String,
        /// The range's first address.
        first: IpNet,
        /// The range's last address.
        last: IpNet,
        /// The network's v6 prefix, if it has one.
        prefix: Option<Ipv6Net>,
    },
    /// Two ranges of one network share a name.
    #[error("network {network}: range {range} is defined twice")]
    DuplicateRange {
        /// The network.
        network: String,
        /// The repeated range.
        range: RangeKind,
    },
    /// A range's two ends are of different families (IPv4 and IPv6).
    #[error("network {network}, range {range}: {first} and {last} are of different families")]
    RangeFamilyMismatch {
        /// The network.
        network: String,
        /// The range.
        range: RangeKind,
        /// Its first address.
        first: IpNet,
        /// Its last address.
        last: IpNet,
    },
    /// A range's two ends are not in the same subnet (or have different prefix lengths).
    #[error("network {network}, range {range}: {first} and {last} are not in one subnet")]
    RangeSubnetMismatch {
        /// The network.
        network: String,
        /// The range.
        range: RangeKind,
        /// Its first address.
        first: IpNet,
        /// Its last address.
        last: IpNet,
    },
    /// A range's first address is above its last.
    #[error("network {network}, range {range}: first {first} is above last {last}")]
    RangeReversed {
        /// The network.
        network: String,
        /// The range.
        range: RangeKind,
        /// Its first address.
        first: IpNet,
        /// Its last address.
        last: IpNet,
    },
    /// A range end is the subnet (network) address.
    #[error("network {network}, range {range}: {address} is the subnet address")]
    RangeAtSubnetAddress {
        /// The network.
        network: String,
        /// The range.
        range: RangeKind,
        /// The offending end.
        address: IpNet,
    },
    /// A range end is the broadcast (all-ones host part) address.
    #[error("network {network}, range {range}: {address} is the broadcast address")]
    RangeAtBroadcast {
        /// The network.
        network: String,
        /// The range.
        range: RangeKind,
        /// The offending end.
        address: IpNet,
    },
    /// Two ranges overlap, in one network or across two.
    #[error(
        "network {network}, range {range} overlaps network {other_network}, range {other_range}"
    )]
    RangeOverlap {
        /// The network being added.
        network: String,
        /// Its range.
        range: RangeKind,
        /// The network holding the other range (may be the same network).
        other_network: String,
        /// The other range.
        other_range: RangeKind,
    },
    /// A network name is already taken.
    #[error("network {name} already exists")]
    DuplicateNetwork {
        /// The name.
        name: String,
    },
    /// A network id is already taken.
    #[error("network id {id} already exists")]
    DuplicateNetworkId {
        /// The id.
        id: NetworkId,
    },
    /// No network has this id.
    #[error("no network with id {id}")]
    UnknownNetwork {
        /// The id.
        id: NetworkId,
    },
    /// No network has this name.
    #[error("no network named {name:?}")]
    UnknownNetworkName {
        /// The name.
        name: String,
    },
    /// The network has no range to allocate from (no `host`, or no `admin`/`host` for an admin
    /// node), or an allocation names a range the network lacks.
    #[error("network {network} has no range {range}")]
    MissingRange {
        /// The network.
        network: String,
        /// The range looked for.
        range: RangeKind,
    },
    /// Every address of the range is taken.
    #[error("{network}.{range} is out of addresses")]
    RangeFull {
        /// The network.
        network: String,
        /// The full range.
        range: RangeKind,
    },
    /// A persisted allocation's address lies outside its range.
    #[error("network {network}, range {range}: {address} is outside the range")]
    AddressOutOfRange {
        /// The network.
        network: String,
        /// The range.
        range: RangeKind,
        /// The address.
        address: IpAddr,
    },
    /// A persisted allocation's address is already held by another node or reserved for the
    /// router.
    #[error("network {network}, range {range}: {address} is already in use")]
    AddressInUse {
        /// The network.
        network: String,
        /// The range.
        range: RangeKind,
        /// The address.
        address: IpAddr,
        /// The node holding it, or `None` when it is the router's address.
        holder: Option<NodeId>,
    },
    /// A persisted allocation gives a node a second address in one range.
    #[error("network {network}, range {range}: {node} already holds {address}")]
    NodeAlreadyAllocated {
        /// The network.
        network: String,
        /// The range.
        range: RangeKind,
        /// The node.
        node: NodeId,
        /// The address it already holds.
        address: IpAddr,
    },
    /// A stored network record could not be decoded.
    #[error("corrupt {table} record: {message}")]
    CorruptRecord {
        /// The record table.
        table: String,
        /// The decoder's message.
        message: String,
    },
    /// The crowbar model refused an operation (creating the network's role, say).
    #[error("model: {0}")]
    Model(#[from] crowbar_core::CoreError),
}
