//! The DHCP database: which machine (by MAC) gets which address and bootenv.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use ipnet::Ipv4Net;
use serde::Deserialize;

use crate::{Bootenv, MacAddr, PxeError};

/// One row of Crowbar's DHCP database: a node, its MACs, its admin address and its bootenv.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HostEntry {
    /// The node's fully qualified name.
    pub fqdn: String,
    /// Every MAC the node may boot from.
    pub macs: Vec<MacAddr>,
    /// The reserved IPv4 address with its prefix length (`10.77.0.50/24`).
    pub address: Ipv4Net,
    /// What the node boots into.
    pub bootenv: Bootenv,
}

impl HostEntry {
    /// The host name: the FQDN up to the first dot.
    pub fn hostname(&self) -> &str {
        self.fqdn.split('.').next().unwrap_or(&self.fqdn)
    }
}

/// Where host entries come from: a static file, or (through an adapter) the crowbar model.
///
/// Implementations must be cheap to call; the daemon calls `hosts` at start and whenever it
/// is told the database changed, then swaps the index it builds in one step.
pub trait HostSource: Send + Sync {
    /// The full current list of entries.
    fn hosts(&self) -> Result<Vec<HostEntry>, PxeError>;
}

/// A fixed list of host entries, usually read from a TOML file (see [`StaticHosts::from_toml`]).
#[derive(Clone, Debug, Default)]
pub struct StaticHosts {
    entries: Vec<HostEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHostsFile {
    #[serde(default)]
    host: Vec<RawHost>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHost {
    fqdn: String,
    macs: Vec<String>,
    address: String,
    #[serde(default = "default_bootenv")]
    bootenv: String,
}

fn default_bootenv() -> String {
    "sledgehammer".to_owned()
}

impl RawHost {
    pub(crate) fn validate(self) -> Result<HostEntry, PxeError> {
        let macs = self
            .macs
            .iter()
            .map(|m| m.parse())
            .collect::<Result<Vec<MacAddr>, _>>()?;
        let address: Ipv4Net = self.address.parse().map_err(|_| {
            PxeError::config(
                format!("host {}: address", self.fqdn),
                "expected a.b.c.d/len",
            )
        })?;
        Ok(HostEntry {
            fqdn: self.fqdn,
            macs,
            address,
            bootenv: self.bootenv.parse()?,
        })
    }
}

pub(crate) fn parse_hosts(raw: Vec<RawHost>) -> Result<Vec<HostEntry>, PxeError> {
    raw.into_iter().map(RawHost::validate).collect()
}

impl StaticHosts {
    /// Wraps a list of entries.
    pub fn new(entries: Vec<HostEntry>) -> Self {
        StaticHosts { entries }
    }

    /// Parses a hosts file:
    ///
    /// ```toml
    /// [[host]]
    /// fqdn = "d52-54-00-aa-bb-01.example.com"
    /// macs = ["52:54:00:aa:bb:01"]
    /// address = "10.77.0.50/24"
    /// bootenv = "sledgehammer"
    /// ```
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, PxeError> {
        let raw: RawHostsFile = toml::from_str(text).map_err(|e| PxeError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Ok(StaticHosts {
            entries: parse_hosts(raw.host)?,
        })
    }

    /// Reads and parses a hosts file.
    pub fn load(path: &Path) -> Result<Self, PxeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PxeError::io(format!("reading {}", path.display()), e))?;
        Self::from_toml(&text, path)
    }
}

impl HostSource for StaticHosts {
    fn hosts(&self) -> Result<Vec<HostEntry>, PxeError> {
        Ok(self.entries.clone())
    }
}

/// A validated, indexed snapshot of the DHCP database: lookups by MAC and by address are O(1).
#[derive(Debug, Default)]
pub struct HostIndex {
    by_mac: HashMap<MacAddr, Arc<HostEntry>>,
    by_addr: HashMap<Ipv4Addr, Arc<HostEntry>>,
}

impl HostIndex {
    /// Builds the index, rejecting a MAC or an address that belongs to two entries.
    pub fn new(entries: Vec<HostEntry>) -> Result<Self, PxeError> {
        let mut index = HostIndex::default();
        for entry in entries {
            let entry = Arc::new(entry);
            if let Some(other) = index.by_addr.insert(entry.address.addr(), entry.clone()) {
                return Err(PxeError::DuplicateAddress {
                    addr: entry.address.addr(),
                    first: other.fqdn.clone(),
                    second: entry.fqdn.clone(),
                });
            }
            for mac in &entry.macs {
                if let Some(other) = index.by_mac.insert(*mac, entry.clone())
                    && !Arc::ptr_eq(&other, &entry)
                {
                    return Err(PxeError::DuplicateMac {
                        mac: mac.to_string(),
                        first: other.fqdn.clone(),
                        second: entry.fqdn.clone(),
                    });
                }
            }
        }
        Ok(index)
    }

    /// The entry that reserves this MAC.
    pub fn by_mac(&self, mac: &MacAddr) -> Option<&Arc<HostEntry>> {
        self.by_mac.get(mac)
    }

    /// The entry that reserves this address.
    pub fn by_addr(&self, addr: Ipv4Addr) -> Option<&Arc<HostEntry>> {
        self.by_addr.get(&addr)
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &HostEntry> {
        self.by_addr.values().map(|e| e.as_ref())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[host]]
fqdn = "node1.example.com"
macs = ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"]
address = "10.77.0.50/24"
bootenv = "ubuntu-22.04-install"

[[host]]
fqdn = "node2.example.com"
macs = ["52:54:00:aa:bb:03"]
address = "10.77.0.51/24"
"#;

    #[test]
    fn static_file_is_indexed_by_every_mac() {
        let hosts = StaticHosts::from_toml(FILE, Path::new("hosts.toml")).unwrap();
        let index = HostIndex::new(hosts.hosts().unwrap()).unwrap();
        let n1 = index.by_mac(&"52:54:00:aa:bb:02".parse().unwrap()).unwrap();
        assert_eq!(n1.fqdn, "node1.example.com");
        assert_eq!(n1.hostname(), "node1");
        assert_eq!(
            n1.bootenv,
            Bootenv::Install {
                os: "ubuntu-22.04".into()
            }
        );
        let n2 = index.by_addr("10.77.0.51".parse().unwrap()).unwrap();
        assert_eq!(n2.bootenv, Bootenv::Sledgehammer);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn duplicate_mac_is_rejected() {
        let text = FILE.replace("52:54:00:aa:bb:03", "52:54:00:aa:bb:01");
        let hosts = StaticHosts::from_toml(&text, Path::new("h")).unwrap();
        match HostIndex::new(hosts.hosts().unwrap()) {
            Err(PxeError::DuplicateMac { mac, .. }) => assert_eq!(mac, "52:54:00:aa:bb:01"),
            other => panic!("expected DuplicateMac, got {other:?}"),
        }
    }

    #[test]
    fn bad_bootenv_is_a_typed_error() {
        let text = FILE.replace("ubuntu-22.04-install", "windows");
        assert!(matches!(
            StaticHosts::from_toml(&text, Path::new("h")),
            Err(PxeError::InvalidBootenv { .. })
        ));
    }
}
