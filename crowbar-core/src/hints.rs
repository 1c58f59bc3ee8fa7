//! Typed node hints: the operator's preferences that Crowbar kept as a JSON object on the node
//! (`admin_macs`, `<network>-v4addr`, `<network>-v6addr`), read and written through methods so
//! that a misspelt key is a compile error, stored as the same JSON object as before.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::CoreError;

/// The key of the MACs a node may boot from (Crowbar's `mac=` API shortcut writes it).
pub const ADMIN_MACS: &str = "admin_macs";
/// The key of the address jigs reach the node at when it has no admin-network hint.
pub const ADDRESS: &str = "address";

/// The key of the IPv4 address hinted for the node on `network` (`<network>-v4addr`).
pub fn v4addr_key(network: &str) -> String {
    format!("{network}-v4addr")
}

/// The key of the IPv6 address hinted for the node on `network` (`<network>-v6addr`).
pub fn v6addr_key(network: &str) -> String {
    format!("{network}-v6addr")
}

/// A borrowed, typed view of a node's hints ([`Node::hints`](crate::Node::hints)); reading it
/// allocates nothing. Values that do not parse read as absent, as Crowbar ignored them.
///
/// ```
/// use crowbar_core::{Cluster, NodeHints, NodeSpec};
///
/// let mut cluster = Cluster::new();
/// let hints = NodeHints::new()
///     .with_admin_mac("52:54:00:12:34:56")
///     .with_v4addr("admin", "192.168.124.83".parse().unwrap());
/// let id = cluster.create_node(NodeSpec::new("d1.cr0wbar.com").hints(hints))?;
/// let node = cluster.node(id).unwrap();
/// assert_eq!(node.hints().admin_macs().collect::<Vec<_>>(), ["52:54:00:12:34:56"]);
/// assert_eq!(node.hints().v4addr("admin"), Some("192.168.124.83".parse().unwrap()));
/// assert_eq!(node.hints().v4addr("storage"), None);
/// // Stored with the keys Crowbar used.
/// assert_eq!(node.hint["admin-v4addr"], "192.168.124.83");
/// assert_eq!(node.hint["admin_macs"][0], "52:54:00:12:34:56");
/// # Ok::<(), crowbar_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Hints<'a> {
    map: Option<&'a Map<String, Value>>,
}

impl<'a> Hints<'a> {
    /// A view of a hint object (anything but an object reads as empty).
    pub fn new(hint: &'a Value) -> Hints<'a> {
        Hints {
            map: hint.as_object(),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map?.get(key)
    }

    fn address<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        // Crowbar wrote either a bare address or `address/prefix-length`.
        self.get(key)?.as_str()?.split('/').next()?.parse().ok()
    }

    /// The hinted MACs (`admin_macs`), as written; entries that are not strings are skipped.
    pub fn admin_macs(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.get(ADMIN_MACS)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }

    /// The IPv4 address hinted on `network` (`<network>-v4addr`).
    pub fn v4addr(&self, network: &str) -> Option<Ipv4Addr> {
        self.address(&v4addr_key(network))
    }

    /// The IPv6 address hinted on `network` (`<network>-v6addr`).
    pub fn v6addr(&self, network: &str) -> Option<Ipv6Addr> {
        self.address(&v6addr_key(network))
    }

    /// The address jigs reach the node at (`address`).
    pub fn address_hint(&self) -> Option<IpAddr> {
        self.address(ADDRESS)
    }

    /// Where to reach the node: `address`, else the admin network's v4 hint, else its v6 hint.
    pub fn management_address(&self) -> Option<IpAddr> {
        self.address_hint()
            .or_else(|| self.address::<Ipv4Addr>("admin-v4addr").map(IpAddr::V4))
            .or_else(|| self.address::<Ipv6Addr>("admin-v6addr").map(IpAddr::V6))
    }
}

/// A node's hints, owned, to build or change them: serializes to the JSON object Crowbar
/// stored, keeping any key it does not know.
///
/// ```
/// use crowbar_core::NodeHints;
///
/// let mut hints = NodeHints::new().with_admin_mac("52:54:00:00:00:01");
/// hints.set_v6addr("admin", "fd00::7".parse().unwrap());
/// assert_eq!(
///     serde_json::to_value(&hints).unwrap(),
///     serde_json::json!({"admin_macs": ["52:54:00:00:00:01"], "admin-v6addr": "fd00::7"}),
/// );
/// // Loading keeps keys it has no method for.
/// let old = serde_json::json!({"admin_macs": ["52:54:00:00:00:02"], "rack": 4});
/// let hints = NodeHints::from_value(old.clone())?;
/// assert_eq!(hints.view().admin_macs().count(), 1);
/// assert_eq!(hints.into_value(), old);
/// # Ok::<(), crowbar_core::CoreError>(())
/// ```
#[derive(Clone, Default, PartialEq, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeHints(Map<String, Value>);

impl NodeHints {
    /// No hints.
    pub fn new() -> NodeHints {
        NodeHints::default()
    }

    /// Hints from their stored JSON object; refused when it is not an object.
    pub fn from_value(value: Value) -> Result<NodeHints, CoreError> {
        match value {
            Value::Object(map) => Ok(NodeHints(map)),
            _ => Err(CoreError::NotAnObject { what: "node hint" }),
        }
    }

    /// The JSON object to store.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// The typed reader over these hints.
    pub fn view(&self) -> Hints<'_> {
        Hints { map: Some(&self.0) }
    }

    /// Adds a MAC to `admin_macs` (kept once).
    pub fn add_admin_mac(&mut self, mac: impl Into<String>) {
        let mac = Value::String(mac.into());
        let list = self
            .0
            .entry(ADMIN_MACS.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        if let Value::Array(list) = list
            && !list.contains(&mac)
        {
            list.push(mac);
        }
    }

    /// As [`add_admin_mac`](Self::add_admin_mac), by value.
    #[must_use]
    pub fn with_admin_mac(mut self, mac: impl Into<String>) -> Self {
        self.add_admin_mac(mac);
        self
    }

    /// Sets the IPv4 address hinted on `network`.
    pub fn set_v4addr(&mut self, network: &str, addr: Ipv4Addr) {
        self.0
            .insert(v4addr_key(network), Value::String(addr.to_string()));
    }

    /// As [`set_v4addr`](Self::set_v4addr), by value.
    #[must_use]
    pub fn with_v4addr(mut self, network: &str, addr: Ipv4Addr) -> Self {
        self.set_v4addr(network, addr);
        self
    }

    /// Sets the IPv6 address hinted on `network`.
    pub fn set_v6addr(&mut self, network: &str, addr: Ipv6Addr) {
        self.0
            .insert(v6addr_key(network), Value::String(addr.to_string()));
    }

    /// As [`set_v6addr`](Self::set_v6addr), by value.
    #[must_use]
    pub fn with_v6addr(mut self, network: &str, addr: Ipv6Addr) -> Self {
        self.set_v6addr(network, addr);
        self
    }

    /// Sets the address jigs reach the node at.
    pub fn set_address(&mut self, addr: IpAddr) {
        self.0
            .insert(ADDRESS.to_owned(), Value::String(addr.to_string()));
    }

    /// As [`set_address`](Self::set_address), by value.
    #[must_use]
    pub fn with_address(mut self, addr: IpAddr) -> Self {
        self.set_address(addr);
        self
    }
}
