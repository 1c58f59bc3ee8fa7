//! The crate's one error type.

use std::net::IpAddr;

/// Everything that can go wrong when building zones or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// A name is not a valid DNS name (empty label, label over 63 bytes, name over 255 bytes).
    #[error("invalid DNS name {name:?}: {reason}")]
    InvalidName {
        /// The text that was rejected.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A host or alias lies outside the forward zone.
    #[error("{name} is outside the zone {zone}")]
    OutOfZone {
        /// The offending name.
        name: String,
        /// The forward zone.
        zone: String,
    },
    /// Two hosts, or a host and an alias, claim the same name.
    #[error("{name} is defined twice")]
    DuplicateName {
        /// The name defined twice.
        name: String,
    },
    /// An alias points at itself or at another alias.
    #[error("alias {alias} -> {target} is not allowed: {reason}")]
    BadAlias {
        /// The alias.
        alias: String,
        /// What it points at.
        target: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A reverse zone prefix cannot be served (too short, or would need too many zones).
    #[error("reverse zone {prefix} cannot be served: {reason}")]
    BadReverseZone {
        /// The configured prefix.
        prefix: String,
        /// Why not.
        reason: &'static str,
    },
    /// The hosts file has a line that cannot be parsed.
    #[error("hosts file line {line}: {reason}")]
    HostsSyntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Binding a listening socket failed. The message ends with the operating system's
    /// error, so it is not also a [`source`](std::error::Error::source) (a chain printer
    /// would print it twice).
    #[error("cannot bind {proto} socket on {addr}: {error}")]
    Bind {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// An I/O error while serving (the message includes the operating system's error).
    #[error("I/O error talking to {peer:?}: {error}")]
    Io {
        /// The peer, when there is one.
        peer: Option<IpAddr>,
        /// The operating system's error.
        error: std::io::Error,
    },
}
