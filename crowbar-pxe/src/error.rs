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
    ///
    /// The message already ends with the operating system's error, so it is not also handed
    /// out as [`source`](std::error::Error::source): a printer of the error chain (`{:#}` of
    /// `anyhow`) would print it twice.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The kernel refused a neighbour (ARP) entry. The message includes the kernel's answer
    /// (not a separate source, as for [`Io`](Self::Io)).
    #[error("neighbour entry {ip} -> {mac} on interface {ifindex}: {error}")]
    Neighbour {
        /// The interface index.
        ifindex: u32,
        /// The client's address.
        ip: Ipv4Addr,
        /// Its hardware address.
        mac: crate::MacAddr,
        /// The kernel's answer.
        error: std::io::Error,
    },
    /// The lease database failed. The message includes SQLite's (not a separate source).
    #[error("lease store: {error}")]
    LeaseStore {
        /// The underlying SQLite error.
        error: rusqlite::Error,
    },
}

impl From<rusqlite::Error> for PxeError {
    fn from(error: rusqlite::Error) -> Self {
        PxeError::LeaseStore { error }
    }
}

impl PxeError {
    pub(crate) fn io(context: impl Into<String>, error: std::io::Error) -> Self {
        PxeError::Io {
            context: context.into(),
            error,
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
