//! Authoritative DNS for the cluster.
//!
//! This crate serves the nodes' A, AAAA and PTR records on `hickory-server`, from an indexed
//! zone store whose query cost does not grow with the size of the zone.
#![deny(missing_docs)]

mod build;
mod error;
mod model;
mod name;
mod server;
mod snapshot;
mod table;
mod wire;
mod zones;

pub use error::DnsError;
pub use model::{Change, Host, ZoneConfig, parse_hosts};
pub use name::DnsName;
pub use server::{DnsServer, ServerConfig};
pub use snapshot::{Snapshot, ZoneFile};
pub use wire::{MAX_UDP_PAYLOAD, Outcome, QueryContext, Transport};
pub use zones::Zones;
