//! Authoritative DNS for the cluster.
//!
//! This crate serves the nodes' A, AAAA and PTR records on `hickory-server`, from an indexed
//! zone store whose query cost does not grow with the size of the zone.
//!
//! It knows nothing of the crowbar model: it is fed [`Host`]s (a name, aliases, addresses),
//! so it runs just as well from a static hosts file as from an adapter over the model.
//!
//! # 1. Describe the zones
//!
//! The forward domain comes from the admin node's FQDN, as in Crowbar. Reverse zones are
//! prefixes: IPv4 on octet boundaries, RFC 2317 classless zones for blocks smaller than a /24,
//! IPv6 on nibble boundaries.
//!
//! ```
//! use crowbar_dns::{Host, ZoneConfig, parse_hosts};
//!
//! let config = ZoneConfig::from_admin_fqdn("admin.lab.test".parse()?)?.with_reverse([
//!     "198.18.0.0/16".parse()?,
//!     "2001:db8::/32".parse()?,
//!     "192.168.7.64/26".parse()?,
//! ]);
//! // From a hosts file (address, FQDN, aliases)...
//! let mut hosts = parse_hosts(
//!     "198.18.0.1 admin.lab.test\n198.18.1.1 node1.lab.test www\n2001:db8:100::1 node1.lab.test\n",
//!     &config.domain,
//! )?;
//! // ...or built in code, as an adapter over the crowbar model would.
//! hosts.push(Host::new("node2.lab.test".parse()?).with_v4("198.18.1.2".parse()?));
//! assert_eq!(hosts.len(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # 2. Build the zones and answer from a snapshot
//!
//! [`Zones`] holds the current [`Snapshot`]: an immutable, indexed copy of every zone with
//! every answer pre-encoded. [`Snapshot::respond`] answers one raw DNS message into a buffer:
//! no allocation, no lock, one or two hash look-ups whatever the zone size.
//!
//! ```
//! # use crowbar_dns::*;
//! # let config = ZoneConfig::from_admin_fqdn("admin.lab.test".parse()?)?;
//! let hosts = vec![Host::new("node1.lab.test".parse()?).with_v4("198.18.1.1".parse()?)];
//! let zones = Zones::new(config, hosts, 2026112101)?;
//! let snapshot = zones.snapshot();
//! assert_eq!(snapshot.serial(), 2026112101);
//! // The zones as master files, e.g. to serve the same data from NSD:
//! let files = snapshot.zone_files();
//! assert!(files[0].text.contains("node1.lab.test. 60 IN A 198.18.1.1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # 3. Serve, and change the zones while serving
//!
//! [`DnsServer`] binds explicit addresses: UDP sockets answered by our own loop, TCP through
//! hickory-server's `Server` with our handler. Each [`Zones::apply`] is one snapshot swap:
//! forward records, reverse records and the SOA serial change together, and the next query
//! sees them. Secondaries in [`ServerConfig::notify`] get a NOTIFY for every new serial.
//!
//! ```
//! use std::net::UdpSocket;
//! use std::sync::Arc;
//! use crowbar_dns::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Runtime::new()?;
//! let config = ZoneConfig::from_admin_fqdn("admin.lab.test".parse()?)?;
//! let zones = Arc::new(Zones::new(config, vec![], 1)?);
//! let server = runtime.block_on(DnsServer::start(
//!     zones.clone(),
//!     ServerConfig::new(vec!["127.0.0.1:0".parse()?]),
//! ))?;
//!
//! // A query for node7.lab.test A, as a client would send it.
//! let mut query = vec![0xbe, 0xef, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
//! query.extend_from_slice(b"\x05node7\x03lab\x04test\x00\x00\x01\x00\x01");
//! let client = UdpSocket::bind("127.0.0.1:0")?;
//! client.connect(server.udp_addrs()[0])?;
//! let mut ask = || -> std::io::Result<Vec<u8>> {
//!     client.send(&query)?;
//!     let mut buf = [0u8; 512];
//!     let n = client.recv(&mut buf)?;
//!     Ok(buf[..n].to_vec())
//! };
//! assert_eq!(ask()?[3] & 0x0f, 3); // NXDOMAIN
//!
//! // The node gets an address: one batch, one new serial.
//! let serial = zones.apply([Change::Upsert(
//!     Host::new("node7.lab.test".parse()?).with_v4("198.18.1.7".parse()?),
//! )])?;
//! assert_eq!(serial, 2);
//! let answer = ask()?;
//! assert_eq!(answer[3] & 0x0f, 0); // NOERROR
//! assert_eq!(&answer[answer.len() - 4..], &[198, 18, 1, 7]);
//!
//! runtime.block_on(server.shutdown());
//! # Ok(())
//! # }
//! ```
//!
//! # What is answered how
//!
//! * Names are matched case-insensitively; the question is echoed as the client spelled it.
//! * A name we hold without the asked type is NODATA, an unknown name below one of our zones is
//!   NXDOMAIN; both carry the zone's SOA in the authority section, with the negative TTL
//!   `min(SOA TTL, MINIMUM)`. Empty non-terminals are NODATA.
//! * Names outside our zones are REFUSED, unless forwarders are configured and the query has
//!   RD=1: then the query is relayed to them.
//! * UDP answers fit 512 bytes, or the EDNS size up to [`MAX_UDP_PAYLOAD`]; a bigger answer is
//!   sent empty with TC so the client retries over TCP. EDNS versions above 0 get BADVERS.
//! * Malformed queries get FORMERR when they carry a readable header, and are dropped
//!   otherwise; other opcodes get NOTIMP.
//! * AXFR (and IXFR, answered as a full transfer) over TCP to [`ServerConfig::allow_transfer`]
//!   networks only.
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
