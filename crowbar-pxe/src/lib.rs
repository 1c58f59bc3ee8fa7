//! DHCPv4, PXE and TFTP services for provisioning bare metal.
//!
//! This crate holds the DHCPv4 server (on `dhcproto`), the PXE/iPXE/UEFI boot decisions and the
//! TFTP server that hand a booting machine its address and what it boots into.
//!
//! # Tutorial: the pure server core
//!
//! [`Server`] is a state machine with no sockets and no clock: hand it a packet, the address
//! of the interface it arrived on and the current time; it returns an [`Outcome`] (a reply and
//! where to send it, or why there is none) and queues [`LeaseChange`]s for a [`LeaseStore`].
//!
//! First the DHCP database. Reservations come from Crowbar (through an adapter) or, as here,
//! from a static file:
//!
//! ```
//! use std::path::Path;
//! use std::sync::Arc;
//! use crowbar_pxe::{HostIndex, HostSource, StaticHosts};
//!
//! let hosts = StaticHosts::from_toml(r#"
//!     [[host]]
//!     fqdn = "node1.example.com"
//!     macs = ["52:54:00:aa:bb:01"]
//!     address = "10.77.0.50/24"
//!     bootenv = "sledgehammer"
//! "#, Path::new("hosts.toml"))?;
//! let index = Arc::new(HostIndex::new(hosts.hosts()?)?);
//! assert_eq!(index.len(), 1);
//! # Ok::<(), crowbar_pxe::PxeError>(())
//! ```
//!
//! Then a subnet with a small pool for unknown machines, and the server:
//!
//! ```
//! # use std::path::Path;
//! # use std::sync::Arc;
//! # use crowbar_pxe::{HostIndex, HostSource, StaticHosts};
//! use std::net::Ipv4Addr;
//! use std::time::{Duration, UNIX_EPOCH};
//! use crowbar_pxe::{
//!     ClientPacket, Destination, MacAddr, Outcome, ReplyKind, Server, ServerConfig, SubnetConfig,
//! };
//!
//! # let hosts = StaticHosts::from_toml(r#"
//! #     [[host]]
//! #     fqdn = "node1.example.com"
//! #     macs = ["52:54:00:aa:bb:01"]
//! #     address = "10.77.0.50/24"
//! #     bootenv = "sledgehammer"
//! # "#, Path::new("hosts.toml"))?;
//! # let index = Arc::new(HostIndex::new(hosts.hosts()?)?);
//! let us = Ipv4Addr::new(10, 77, 0, 1);
//! let mut server = Server::new(
//!     ServerConfig::single(SubnetConfig {
//!         net: "10.77.0.0/24".parse().unwrap(),
//!         server_ip: us,
//!         pool: Some(Ipv4Addr::new(10, 77, 0, 100)..=Ipv4Addr::new(10, 77, 0, 199)),
//!         routers: vec![us],
//!         dns_servers: vec![],
//!         domain: Some("example.com".into()),
//!         pool_lease_secs: 60,
//!         reserved_lease_secs: 3600,
//!     }),
//!     index,
//! )?;
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//!
//! // A reserved machine PXE-boots (x86-64 UEFI firmware): it is offered its address and
//! // `ipxe.efi`, broadcast because it set the broadcast flag.
//! let node: MacAddr = "52:54:00:aa:bb:01".parse()?;
//! let discover = ClientPacket::discover(node, 7).pxe_uefi_x64().broadcast().build();
//! let Outcome::Reply(offer) = server.handle(&discover, us, now) else { panic!() };
//! assert_eq!(offer.kind, ReplyKind::Offer);
//! assert_eq!(offer.yiaddr, Ipv4Addr::new(10, 77, 0, 50));
//! assert_eq!(offer.to, Destination::Broadcast);
//! let parsed = crowbar_pxe::ParsedReply::parse(&offer.bytes).unwrap();
//! assert_eq!(parsed.file.as_deref(), Some("ipxe.efi"));
//! assert_eq!(parsed.siaddr, us);
//!
//! // It requests the offered address (SELECTING) and gets an ACK.
//! let request = ClientPacket::request(node, 7, us, offer.yiaddr).build();
//! let Outcome::Reply(ack) = server.handle(&request, us, now) else { panic!() };
//! assert_eq!(ack.kind, ReplyKind::Ack);
//!
//! // An unknown machine gets the first pool address, with a short lease.
//! let stranger: MacAddr = "52:54:00:00:00:99".parse()?;
//! let Outcome::Reply(offer) = server.handle(&ClientPacket::discover(stranger, 8).build(), us, now)
//! else { panic!() };
//! assert_eq!(offer.yiaddr, Ipv4Addr::new(10, 77, 0, 100));
//! assert_eq!(crowbar_pxe::ParsedReply::parse(&offer.bytes).unwrap().lease_secs, Some(60));
//!
//! // Lease changes queue up for the store, in order.
//! let changes = server.take_changes();
//! assert_eq!(changes.len(), 3);
//!
//! // Garbage is dropped and counted, never a panic.
//! assert!(matches!(server.handle(&[1, 2, 3], us, now), Outcome::Dropped(_)));
//! assert_eq!(server.stats().dropped_total(), 1);
//!
//! // Offers that are never requested run out after the offer hold time.
//! assert_eq!(server.expire(now + Duration::from_secs(31)), 1);
//! # Ok::<(), crowbar_pxe::PxeError>(())
//! ```
//!
//! # Boot files, iPXE scripts, and what is not served yet
//!
//! The default [`BootPolicy`] sends firmware an iPXE binary over TFTP (`undionly.kpxe`,
//! `ipxe.efi`, ...) and sends iPXE itself `ipxe/<mac>.ipxe`, a script generated per machine
//! from its bootenv ([`IpxeScripts`], served by [`TftpService`] from memory). A site that
//! keeps its own menu sets one script for every iPXE client in the daemon's configuration,
//! a TFTP file name or a URL that iPXE fetches itself, the way dnsmasq and Kea setups chain
//! `boot.ipxe`:
//!
//! ```toml
//! [boot]
//! ipxe_script = "boot.ipxe"          # or "http://10.77.0.1/menu.ipxe"; default: ipxe/<mac>.ipxe
//! http_base = "http://10.77.0.1:8091" # where the generated scripts fetch kernels from
//! ```
//!
//! **Nothing in this project serves HTTP yet.** The generated scripts load the discovery
//! image and the OS installers from `http://<server>:8091/...` ([`ScriptConfig::http_base`],
//! by default the first subnet's `server_ip` on port 8091, the provisioner's port in Digital
//! Rebar), so a machine PXE-booted today gets its address, its iPXE binary and its script,
//! and stops at the script's first `kernel` line unless a web server of the site's own serves
//! those files there. The provisioning issue adds the provisioner's HTTP file server.
//!
//! The tokio socket layer ([`DhcpService`]) wraps this core: one socket per interface bound
//! with `SO_BINDTODEVICE`, replies sent per RFC 2131 §4.1, lease changes written in batches by
//! a [`LeaseWriter`] thread over a [`SqliteLeaseStore`]. [`TftpService`] serves a read-only
//! root plus generated per-node iPXE scripts ([`ScriptConfig`]).
#![deny(missing_docs)]

mod bootenv;
mod client;
mod config;
mod daemon;
mod error;
mod hosts;
mod ipxe;
mod lease;
mod mac;
mod neigh;
mod pool;
mod pxe;
mod server;
mod service;
mod tftp;
mod wire;

pub use bootenv::Bootenv;
pub use client::{ClientPacket, ParsedReply};
pub use config::{DaemonConfig, HostsConfig};
pub use daemon::{run_daemon, run_daemon_with_hosts};
pub use error::PxeError;
pub use hosts::{HostEntry, HostIndex, HostSource, StaticHosts};
pub use ipxe::ScriptConfig;
pub use lease::{
    Lease, LeaseChange, LeaseState, LeaseStore, LeaseWriter, MemLeaseStore, SqliteLeaseStore,
};
pub use mac::MacAddr;
pub use neigh::{MemNeighbours, Neighbours, NetlinkNeighbours};
pub use pxe::{
    ArchMatch, BootDecision, BootPolicy, BootRule, BootTarget, ClientFacts, VendorClass, arch,
    script_path,
};
pub use server::{
    CLIENT_PORT, Destination, Outcome, Reply, ReplyKind, SERVER_PORT, Server, ServerConfig,
    Silence, Stats, SubnetConfig,
};
pub use service::{DhcpService, Listener, ServiceConfig};
pub use tftp::{
    GeneratedFiles, IpxeScripts, MalformedRequest, PathRefusal, TftpConfig, TftpCounts,
    TftpService, TftpStats, resolve as resolve_tftp_path,
};
pub use wire::DropReason;
