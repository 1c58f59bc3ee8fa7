//! The crate's one error type.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

/// Everything that can go wrong in crowbar-pxe, with the value that caused it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PxeError {
    /// A MAC address could not be parsed.
    #[error("invalid MAC address {text:?}")]
    InvalidMac {
        /// The text that was given.
        text: String,
    },
    /// A bootenv name could not be parsed.
    #[error("invalid bootenv {text:?}")]
    InvalidBootenv {
        /// The text that was given.
        text: String,
    },
    /// Two subnets of the configuration overlap.
    #[error("subnets {first} and {second} overlap")]
    OverlappingSubnets {
        /// The first subnet.
        first: Ipv4Net,
        /// The second subnet.
        second: Ipv4Net,
    },
    /// An address that must lie inside a subnet does not.
    #[error("{what} {addr} is outside subnet {subnet}")]
    OutsideSubnet {
        /// What the address is for (server address, pool start, ...).
        what: &'static str,
        /// The address.
        addr: Ipv4Addr,
        /// The subnet it should be in.
        subnet: Ipv4Net,
    },
    /// A pool's start is after its end.
    #[error("pool {start}-{end} is empty")]
    EmptyPool {
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
    },
    /// A MAC address appears in two host entries.
    #[error("MAC {mac} is reserved for both {first} and {second}")]
    DuplicateMac {
        /// The MAC address.
        mac: String,
        /// FQDN of the first entry.
        first: String,
        /// FQDN of the second entry.
        second: String,
    },
    /// An IPv4 address is reserved for two hosts.
    #[error("address {addr} is reserved for both {first} and {second}")]
    DuplicateAddress {
        /// The address.
        addr: Ipv4Addr,
        /// FQDN of the first entry.
        first: String,
        /// FQDN of the second entry.
        second: String,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The configuration key.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Two configuration keys that exclude each other were both given.
    #[error("invalid configuration: {first} and {second} cannot be used together")]
    ConflictingKeys {
        /// The first key.
        first: &'static str,
        /// The second key.
        second: &'static str,
    },
    /// A configuration or hosts file could not be parsed.
    #[error("cannot parse {path}: {message}")]
    Parse {
        /// The file (or `<string>`).
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a neighbour (ARP) entry.
    #[error("neighbour entry {ip} -> {mac} on interface {ifindex}: {source}")]
    Neighbour {
        /// The interface index.
        ifindex: u32,
        /// The client's address.
        ip: Ipv4Addr,
        /// Its hardware address.
        mac: crate::MacAddr,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// The lease database failed.
    #[error("lease store: {source}")]
    LeaseStore {
        /// The underlying SQLite error.
        #[from]
        source: rusqlite::Error,
    },
}

impl PxeError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PxeError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn conflict(first: &'static str, second: &'static str) -> Self {
        PxeError::ConflictingKeys { first, second }
    }

    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        PxeError::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
