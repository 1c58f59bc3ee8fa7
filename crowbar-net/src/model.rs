//! The network model: ids, specs, and the validated [`Network`] with its ranges and router.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv6Net};
use serde::{Deserialize, Serialize};

use crowbar_core::{DeploymentId, NodeId};

use crate::addr::{from_int, to_int};
use crate::conduit::Conduit;
use crate::error::NetError;
use crate::ipv6;

/// The id of a network, assigned by [`Networks::add`](crate::Networks::add); an `auto` v6 prefix
/// uses it as its 16-bit subnet id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct NetworkId(pub u32);

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The Linux bonding mode of a teamed conduit; stored as its number 0..=6.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub enum TeamMode {
    /// 0: round robin.
    BalanceRr,
    /// 1: one active slave.
    ActiveBackup,
    /// 2: XOR hash.
    BalanceXor,
    /// 3: every slave sends everything.
    Broadcast,
    /// 4: IEEE 802.3ad (LACP).
    Ieee8023ad,
    /// 5: adaptive transmit load balancing, Crowbar's default.
    #[default]
    BalanceTlb,
    /// 6: adaptive load balancing.
    BalanceAlb,
}

impl TryFrom<u8> for TeamMode {
    type Error = NetError;

    fn try_from(mode: u8) -> Result<Self, Self::Error> {
        Ok(match mode {
            0 => TeamMode::BalanceRr,
            1 => TeamMode::ActiveBackup,
            2 => TeamMode::BalanceXor,
            3 => TeamMode::Broadcast,
            4 => TeamMode::Ieee8023ad,
            5 => TeamMode::BalanceTlb,
            6 => TeamMode::BalanceAlb,
            _ => return Err(NetError::InvalidTeamMode { mode }),
        })
    }
}

impl From<TeamMode> for u8 {
    fn from(mode: TeamMode) -> Self {
        match mode {
            TeamMode::BalanceRr => 0,
            TeamMode::ActiveBackup => 1,
            TeamMode::BalanceXor => 2,
            TeamMode::Broadcast => 3,
            TeamMode::Ieee8023ad => 4,
            TeamMode::BalanceTlb => 5,
            TeamMode::BalanceAlb => 6,
        }
    }
}

/// A network's IPv6 prefix setting. Serialized as `"none"`, `"auto"` or the /64 in CIDR form.
///
/// Parsing also accepts Crowbar's form, four hex groups without a length (`fc12:3456:789a:0001`).
///
/// ```
/// use crowbar_net::V6Prefix;
///
/// assert_eq!("auto".parse::<V6Prefix>().unwrap(), V6Prefix::Auto);
/// let crowbar: V6Prefix = "fc12:3456:789a:0001".parse().unwrap();
/// assert_eq!(crowbar.to_string(), "fc12:3456:789a:1::/64");
/// assert!("fd00::/48".parse::<V6Prefix>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum V6Prefix {
    /// No IPv6 on this network.
    None,
    /// An RFC 4193 prefix generated when the network is created, from the registry's
    /// [`UlaConfig`] and the network id, then stored with the network.
    Auto,
    /// This /64 (host bits zero).
    Explicit(Ipv6Net),
}

impl V6Prefix {
    fn parse_for(network: &str, text: &str) -> Result<Self, NetError> {
        let bad = || NetError::InvalidV6Prefix {
            network: network.to_owned(),
            prefix: text.to_owned(),
        };
        match text {
            "none" | "" => return Ok(V6Prefix::None),
            "auto" => return Ok(V6Prefix::Auto),
            _ => {}
        }
        let net = if text.contains('/') {
            text.parse::<Ipv6Net>().map_err(|_| bad())?
        } else {
            let groups: Vec<&str> = text.split(':').collect();
            let four_groups = groups.len() == 4
                && groups.iter().all(|g| {
                    (1..=4).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_hexdigit())
                });
            if !four_groups {
                return Err(bad());
            }
            format!("{text}::/64")
                .parse::<Ipv6Net>()
                .map_err(|_| bad())?
        };
        V6Prefix::explicit_for(network, net)
    }

    fn explicit_for(network: &str, net: Ipv6Net) -> Result<Self, NetError> {
        if net.prefix_len() != 64 || net.addr() != net.network() {
            return Err(NetError::InvalidV6Prefix {
                network: network.to_owned(),
                prefix: net.to_string(),
            });
        }
        Ok(V6Prefix::Explicit(net))
    }
}

impl FromStr for V6Prefix {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        V6Prefix::parse_for("", s)
    }
}

impl fmt::Display for V6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V6Prefix::None => f.write_str("none"),
            V6Prefix::Auto => f.write_str("auto"),
            V6Prefix::Explicit(net) => write!(f, "{net}"),
        }
    }
}

impl TryFrom<String> for V6Prefix {
    type Error = NetError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<V6Prefix> for String {
    fn from(value: V6Prefix) -> Self {
        value.to_string()
    }
}

/// Which form an `auto` prefix takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UlaForm {
    /// RFC 4193: `fd` + global id + subnet id ([`ipv6::ula_prefix`]).
    #[default]
    Rfc4193,
    /// Crowbar's `fc` form ([`ipv6::crowbar_fc_prefix`]), for compatibility only.
    CrowbarFc,
}

/// How `auto` v6 prefixes are made: the site's 40-bit global id, drawn at random once by the
/// caller and stored, and the form. (`Default`, global id 0, is for tests only.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct UlaConfig {
    /// The global id; only the low 40 bits are used.
    pub global_id: u64,
    /// The prefix form.
    pub form: UlaForm,
}

impl UlaConfig {
    /// An RFC 4193 configuration with this global id.
    pub fn new(global_id: u64) -> Self {
        UlaConfig {
            global_id,
            form: UlaForm::Rfc4193,
        }
    }

    /// The /64 for this subnet id.
    pub fn prefix(&self, subnet_id: u16) -> Ipv6Net {
        match self.form {
            UlaForm::Rfc4193 => ipv6::ula_prefix(self.global_id, subnet_id),
            UlaForm::CrowbarFc => ipv6::crowbar_fc_prefix(self.global_id, subnet_id),
        }
    }
}

/// What a range is for. Serialized as its name: `admin`, `host`, `dhcp`, `host-v6` or another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RangeKind {
    /// `admin`: addresses for admin nodes.
    Admin,
    /// `host`: addresses for every other node.
    Host,
    /// `dhcp`: the anonymous DHCP pool; never allocated from by [`Networks::allocate_node`](crate::Networks::allocate_node).
    Dhcp,
    /// `host-v6`: IPv6 addresses, created with the network when it has a v6 prefix.
    HostV6,
    /// Any other name (letters, digits, `-`, `_`); allocated from only when asked by name.
    Other(String),
}

impl RangeKind {
    /// The range's name.
    pub fn as_str(&self) -> &str {
        match self {
            RangeKind::Admin => "admin",
            RangeKind::Host => "host",
            RangeKind::Dhcp => "dhcp",
            RangeKind::HostV6 => "host-v6",
            RangeKind::Other(name) => name,
        }
    }

    /// The canonical kind: `Other("host")` becomes `Host`, and so on.
    fn normalized(&self) -> Result<RangeKind, NetError> {
        self.as_str().parse()
    }
}

impl FromStr for RangeKind {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "admin" => RangeKind::Admin,
            "host" => RangeKind::Host,
            "dhcp" => RangeKind::Dhcp,
            "host-v6" => RangeKind::HostV6,
            other if valid_name(other) => RangeKind::Other(other.to_owned()),
            other => {
                return Err(NetError::InvalidRangeName {
                    name: other.to_owned(),
                });
            }
        })
    }
}

impl fmt::Display for RangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for RangeKind {
    type Error = NetError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<RangeKind> for String {
    fn from(value: RangeKind) -> Self {
        value.as_str().to_owned()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A range as given: its kind and both ends with the subnet's prefix length
/// (`192.168.124.81/24`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeSpec {
    /// What the range is for (serialized as `name`).
    #[serde(rename = "name")]
    pub kind: RangeKind,
    /// The first address.
    pub first: IpNet,
    /// The last address.
    pub last: IpNet,
}

/// A router as given. With no address, the first address of the network's first range is used.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouterSpec {
    /// The router's address with the subnet's prefix length.
    #[serde(default)]
    pub address: Option<IpNet>,
    /// Lower wins the default route (serialized as `pref`; default 65536).
    #[serde(rename = "pref", default = "default_preference")]
    pub preference: u32,
}

fn default_preference() -> u32 {
    65536
}

fn default_order() -> u32 {
    1000
}

/// A network as asked for: raw input, checked by [`Network::new`] or
/// [`Networks::add`](crate::Networks::add). Deserializable from Crowbar's API shape.
///
/// ```
/// use crowbar_core::DeploymentId;
/// use crowbar_net::{NetworkSpec, RangeKind};
///
/// let spec = NetworkSpec::new("admin", DeploymentId(1), "1g0")
///     .range(RangeKind::Admin, "192.168.124.10/24".parse().unwrap(), "192.168.124.11/24".parse().unwrap())
///     .router("192.168.124.1/24".parse().unwrap(), 10);
/// assert_eq!(spec.ranges.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Unique name: letters, digits, `-`, `_`.
    pub name: String,
    /// The deployment the network belongs to.
    pub deployment: DeploymentId,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Ordering among networks (default 1000).
    #[serde(default = "default_order")]
    pub order: u32,
    /// The VLAN tag, checked only when `use_vlan`.
    #[serde(default)]
    pub vlan: u16,
    /// Whether to put the network on a VLAN interface.
    #[serde(default)]
    pub use_vlan: bool,
    /// Whether to put the network on a bridge.
    #[serde(default)]
    pub use_bridge: bool,
    /// Whether to bond the conduit's members.
    #[serde(default)]
    pub use_team: bool,
    /// The bonding mode when teaming (default 5, balance-tlb).
    #[serde(default)]
    pub team_mode: TeamMode,
    /// The conduit, comma-separated (`1g0`, `+1g0,+1g1`).
    pub conduit: String,
    /// The v6 prefix. Absent means "not told": `auto` for the network named `admin`, none for
    /// others.
    #[serde(default)]
    pub v6prefix: Option<V6Prefix>,
    /// The ranges.
    #[serde(default)]
    pub ranges: Vec<RangeSpec>,
    /// The router, if any.
    #[serde(default)]
    pub router: Option<RouterSpec>,
}

impl NetworkSpec {
    /// A spec with Crowbar's model defaults: no VLAN, no bridge, no team, mode 5, no ranges,
    /// no router, v6 prefix not told.
    pub fn new(
        name: impl Into<String>,
        deployment: DeploymentId,
        conduit: impl Into<String>,
    ) -> Self {
        NetworkSpec {
            name: name.into(),
            deployment,
            description: String::new(),
            order: default_order(),
            vlan: 0,
            use_vlan: false,
            use_bridge: false,
            use_team: false,
            team_mode: TeamMode::default(),
            conduit: conduit.into(),
            v6prefix: None,
            ranges: Vec::new(),
            router: None,
        }
    }

    /// Adds a range.
    pub fn range(mut self, kind: RangeKind, first: IpNet, last: IpNet) -> Self {
        self.ranges.push(RangeSpec { kind, first, last });
        self
    }

    /// Puts the network on VLAN `tag` (sets `use_vlan`, as Crowbar's API does for `vlan > 0`).
    pub fn vlan(mut self, tag: u16) -> Self {
        self.vlan = tag;
        self.use_vlan = true;
        self
    }

    /// Bonds the conduit's members in `mode`.
    pub fn team(mut self, mode: TeamMode) -> Self {
        self.use_team = true;
        self.team_mode = mode;
        self
    }

    /// Sets `use_bridge`.
    pub fn bridge(mut self, use_bridge: bool) -> Self {
        self.use_bridge = use_bridge;
        self
    }

    /// Sets the v6 prefix explicitly (including [`V6Prefix::None`] to keep `admin` v4-only).
    pub fn v6prefix(mut self, prefix: V6Prefix) -> Self {
        self.v6prefix = Some(prefix);
        self
    }

    /// Sets the router.
    pub fn router(mut self, address: IpNet, preference: u32) -> Self {
        self.router = Some(RouterSpec {
            address: Some(address),
            preference,
        });
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }
}

/// A checked range of a network: both ends in one subnet and family, neither the subnet nor the
/// broadcast address, first ≤ last. Membership is inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct NetworkRange {
    #[serde(rename = "name")]
    kind: RangeKind,
    first: IpNet,
    last: IpNet,
}

impl NetworkRange {
    fn new(network: &str, spec: &RangeSpec) -> Result<Self, NetError> {
        let kind = spec.kind.normalized()?;
        let (first, last) = (spec.first, spec.last);
        let err_pair = |make: fn(String, RangeKind, IpNet, IpNet) -> NetError| {
            make(network.to_owned(), kind.clone(), first, last)
        };
        let same_family = matches!(
            (first, last),
            (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
        );
        if !same_family {
            return Err(err_pair(|network, range, first, last| {
                NetError::RangeFamilyMismatch {
                    network,
                    range,
                    first,
                    last,
                }
            }));
        }
        if first.prefix_len() != last.prefix_len() || first.network() != last.network() {
            return Err(err_pair(|network, range, first, last| {
                NetError::RangeSubnetMismatch {
                    network,
                    range,
                    first,
                    last,
                }
            }));
        }
        for end in [first, last] {
            if end.addr() == end.network() {
                return Err(NetError::RangeAtSubnetAddress {
                    network: network.to_owned(),
                    range: kind,
                    address: end,
                });
            }
            if end.addr() == end.broadcast() {
                return Err(NetError::RangeAtBroadcast {
                    network: network.to_owned(),
                    range: kind,
                    address: end,
                });
            }
        }
        if to_int(first.addr()) > to_int(last.addr()) {
            return Err(err_pair(|network, range, first, last| {
                NetError::RangeReversed {
                    network,
                    range,
                    first,
                    last,
                }
            }));
        }
        Ok(NetworkRange { kind, first, last })
    }

    /// What the range is for.
    pub fn kind(&self) -> &RangeKind {
        &self.kind
    }

    /// The first address, with the subnet's prefix length.
    pub fn first(&self) -> IpNet {
        self.first
    }

    /// The last address, with the subnet's prefix length.
    pub fn last(&self) -> IpNet {
        self.last
    }

    /// The subnet both ends lie in.
    pub fn subnet(&self) -> IpNet {
        self.first.trunc()
    }

    /// Whether `addr` lies in `first..=last` (and is of the range's family).
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.is_ipv4() && {
            let a = to_int(addr);
            self.first_int() <= a && a <= self.last_int()
        }
    }

    /// Whether this is an IPv4 range.
    pub fn is_ipv4(&self) -> bool {
        matches!(self.first, IpNet::V4(_))
    }

    /// How many addresses the range holds.
    pub fn size(&self) -> u128 {
        // Validation keeps first above the subnet address and last below the broadcast one, so
        // the count fits even for a v6 range spanning a /0.
        self.last_int() - self.first_int() + 1
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &NetworkRange) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && self.first_int() <= other.last_int()
            && other.first_int() <= self.last_int()
    }

    pub(crate) fn first_int(&self) -> u128 {
        to_int(self.first.addr())
    }

    pub(crate) fn last_int(&self) -> u128 {
        to_int(self.last.addr())
    }

    pub(crate) fn addr_at(&self, value: u128) -> IpAddr {
        from_int(self.first.addr(), value)
    }

    fn host_v6(prefix: Ipv6Net) -> NetworkRange {
        let base = u128::from(prefix.network());
        let first = Ipv6Addr::from(base | 1);
        let last = Ipv6Addr::from(base | (u128::from(u64::MAX) - 1));
        NetworkRange {
            kind: RangeKind::HostV6,
            first: IpNet::V6(Ipv6Net::new(first, 64).unwrap_or(prefix)),
            last: IpNet::V6(Ipv6Net::new(last, 64).unwrap_or(prefix)),
        }
    }
}

/// A network's router.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct NetworkRouter {
    address: IpNet,
    #[serde(rename = "pref")]
    preference: u32,
}

impl NetworkRouter {
    /// The router's address, with the subnet's prefix length.
    pub fn address(&self) -> IpNet {
        self.address
    }

    /// Lower wins the default route.
    pub fn preference(&self) -> u32 {
        self.preference
    }
}

/// An address held by a node: the record the store persists (one per node and range).
///
/// The address keeps the range's prefix length, as Crowbar stored it (`192.168.124.81/24`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NetworkAllocation {
    /// The node holding the address.
    pub node: NodeId,
    /// The network.
    pub network: NetworkId,
    /// The range within the network.
    pub range: RangeKind,
    /// The address, with the subnet's prefix length.
    pub address: IpNet,
}

/// A validated network. It cannot hold an invalid conduit, VLAN, team setting, v6 prefix or
/// range; cross-network rules (conduit overlap, range overlap, unique names) are checked by
/// [`Networks`](crate::Networks).
///
/// Serializes to JSON for the store; deserializing checks everything again, and keeps the
/// resolved `auto` prefix instead of generating a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NetworkRecord")]
pub struct Network {
    id: NetworkId,
    name: String,
    deployment: DeploymentId,
    description: String,
    order: u32,
    vlan: u16,
    use_vlan: bool,
    use_bridge: bool,
    use_team: bool,
    team_mode: TeamMode,
    conduit: Conduit,
    v6prefix: V6Prefix,
    v6_net: Option<Ipv6Net>,
    ranges: Vec<NetworkRange>,
    router: Option<NetworkRouter>,
}

/// The stored form of a [`Network`], checked again on load.
#[derive(Deserialize)]
struct NetworkRecord {
    id: NetworkId,
    #[serde(flatten)]
    spec: NetworkSpec,
    v6_net: Option<Ipv6Net>,
}

impl TryFrom<NetworkRecord> for Network {
    type Error = NetError;

    fn try_from(record: NetworkRecord) -> Result<Self, Self::Error> {
        let name = record.spec.name.clone();
        let asked = record.spec.v6prefix.unwrap_or(V6Prefix::None);
        let consistent = match (asked, record.v6_net) {
            (V6Prefix::None, None) => true,
            (V6Prefix::Auto, Some(net)) => V6Prefix::explicit_for(&name, net).is_ok(),
            (V6Prefix::Explicit(p), Some(net)) => p == net,
            _ => false,
        };
        if !consistent {
            return Err(NetError::InvalidV6Prefix {
                network: name,
                prefix: record
                    .v6_net
                    .map_or_else(|| asked.to_string(), |n| n.to_string()),
            });
        }
        Network::build(record.id, record.spec, asked, record.v6_net)
    }
}

impl Network {
    /// Checks `spec` and builds network `id`. An `auto` v6 prefix is made from `ula` and `id`
    /// (which must then fit 16 bits); with a v6 prefix the network gets a `host-v6` range
    /// `<prefix>::1 ..= <prefix>:ffff:ffff:ffff:fffe` unless the spec has one.
    pub fn new(id: NetworkId, spec: NetworkSpec, ula: UlaConfig) -> Result<Network, NetError> {
        if !valid_name(&spec.name) {
            return Err(NetError::InvalidName { name: spec.name });
        }
        let default = if spec.name == "admin" {
            V6Prefix::Auto
        } else {
            V6Prefix::None
        };
        let asked = spec.v6prefix.unwrap_or(default);
        let v6_net = match asked {
            V6Prefix::None => None,
            V6Prefix::Explicit(net) => match V6Prefix::explicit_for(&spec.name, net)? {
                V6Prefix::Explicit(net) => Some(net),
                _ => None,
            },
            V6Prefix::Auto => {
                let subnet = u16::try_from(id.0).map_err(|_| NetError::SubnetIdOverflow {
                    network: spec.name.clone(),
                    id,
                })?;
                Some(ula.prefix(subnet))
            }
        };
        Network::build(id, spec, asked, v6_net)
    }

    fn build(
        id: NetworkId,
        spec: NetworkSpec,
        v6prefix: V6Prefix,
        v6_net: Option<Ipv6Net>,
    ) -> Result<Network, NetError> {
        let name = spec.name;
        if !valid_name(&name) {
            return Err(NetError::InvalidName { name });
        }
        let conduit = Conduit::parse_for(&name, &spec.conduit)?;
        let members = conduit.len();
        if spec.use_team && !(2..=8).contains(&members) {
            return Err(NetError::ConduitSize {
                network: name,
                conduit: conduit.to_string(),
                members,
                expected: "a teamed network needs 2 to 8",
            });
        }
        if !spec.use_team && members != 1 {
            return Err(NetError::ConduitSize {
                network: name,
                conduit: conduit.to_string(),
                members,
                expected: "a network without teaming needs exactly 1",
            });
        }
        if spec.use_vlan && !(1..=4094).contains(&spec.vlan) {
            return Err(NetError::InvalidVlan {
                network: name,
                vlan: spec.vlan,
            });
        }
        let mut ranges: Vec<NetworkRange> = Vec::with_capacity(spec.ranges.len() + 1);
        for range_spec in &spec.ranges {
            let range = NetworkRange::new(&name, range_spec)?;
            if range.kind == RangeKind::HostV6 {
                let inside = match (range.first, v6_net) {
                    (IpNet::V6(first), Some(prefix)) => prefix.contains(&first.addr()),
                    (IpNet::V6(_), None) => true,
                    (IpNet::V4(_), _) => false,
                };
                if !inside || range.first.prefix_len() < v6_net.map_or(0, |p| p.prefix_len()) {
                    return Err(NetError::HostV6Range {
                        network: name,
                        first: range.first,
                        last: range.last,
                        prefix: v6_net,
                    });
                }
            }
            if let Some(other) = ranges.iter().find(|r| r.kind == range.kind) {
                return Err(NetError::DuplicateRange {
                    network: name,
                    range: other.kind.clone(),
                });
            }
            if let Some(other) = ranges.iter().find(|r| r.overlaps(&range)) {
                return Err(NetError::RangeOverlap {
                    network: name.clone(),
                    range: range.kind,
                    other_network: name,
                    other_range: other.kind.clone(),
                });
            }
            ranges.push(range);
        }
        if let Some(prefix) = v6_net
            && !ranges.iter().any(|r| r.kind == RangeKind::HostV6)
        {
            let range = NetworkRange::host_v6(prefix);
            if let Some(other) = ranges.iter().find(|r| r.overlaps(&range)) {
                return Err(NetError::RangeOverlap {
                    network: name.clone(),
                    range: range.kind,
                    other_network: name,
                    other_range: other.kind.clone(),
                });
            }
            ranges.push(range);
        }
        let router = match spec.router {
            None => None,
            Some(RouterSpec {
                address: Some(address),
                preference,
            }) => Some(NetworkRouter {
                address,
                preference,
            }),
            Some(RouterSpec {
                address: None,
                preference,
            }) => ranges.first().map(|r| NetworkRouter {
                address: r.first,
                preference,
            }),
        };
        Ok(Network {
            id,
            name,
            deployment: spec.deployment,
            description: spec.description,
            order: spec.order,
            vlan: spec.vlan,
            use_vlan: spec.use_vlan,
            use_bridge: spec.use_bridge,
            use_team: spec.use_team,
            team_mode: spec.team_mode,
            conduit,
            v6prefix,
            v6_net,
            ranges,
            router,
        })
    }

    /// The id.
    pub fn id(&self) -> NetworkId {
        self.id
    }

    /// The unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the network's implicit role, `network-<name>`.
    pub fn role_name(&self) -> String {
        format!("network-{}", self.name)
    }

    /// Whether this is the admin network (named `admin`).
    pub fn is_admin_network(&self) -> bool {
        self.name == "admin"
    }

    /// The deployment.
    pub fn deployment(&self) -> DeploymentId {
        self.deployment
    }

    /// The description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The order among networks.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// The VLAN tag (meaningful when [`use_vlan`](Self::use_vlan)).
    pub fn vlan(&self) -> u16 {
        self.vlan
    }

    /// Whether the network is on a VLAN.
    pub fn use_vlan(&self) -> bool {
        self.use_vlan
    }

    /// Whether the network is on a bridge.
    pub fn use_bridge(&self) -> bool {
        self.use_bridge
    }

    /// Whether the conduit's members are bonded.
    pub fn use_team(&self) -> bool {
        self.use_team
    }

    /// The bonding mode.
    pub fn team_mode(&self) -> TeamMode {
        self.team_mode
    }

    /// The conduit.
    pub fn conduit(&self) -> &Conduit {
        &self.conduit
    }

    /// The v6 prefix setting as asked (`Auto` stays `Auto`; see [`v6_net`](Self::v6_net)).
    pub fn v6prefix(&self) -> V6Prefix {
        self.v6prefix
    }

    /// The v6 /64 in use, if any: the explicit one or the resolved `auto` one.
    pub fn v6_net(&self) -> Option<Ipv6Net> {
        self.v6_net
    }

    /// The ranges, in the order given (an automatic `host-v6` last).
    pub fn ranges(&self) -> &[NetworkRange] {
        &self.ranges
    }

    /// The range of this kind.
    pub fn range(&self, kind: &RangeKind) -> Option<&NetworkRange> {
        self.ranges.iter().find(|r| &r.kind == kind)
    }

    /// The router.
    pub fn router(&self) -> Option<&NetworkRouter> {
        self.router.as_ref()
    }

    /// The template of the network's role, as Crowbar generated it:
    /// `{"crowbar":{"network":{<name>: <the network without ids, with ranges and router>}}}`.
    pub fn role_template(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = body.as_object_mut() {
            map.remove("id");
            map.remove("deployment");
        }
        serde_json::json!({ "crowbar": { "network": { self.name.clone(): body } } })
    }
}
