//! Crowbar in Rust: bare-metal cluster orchestration as an embeddable library.
//!
//! This facade re-exports the workspace crates under short names:
//!
//! - [`core`]: the domain model, the noderole state machine, the `Store` trait and its stores.
//! - [`net`]: networks and the IPv4/IPv6 allocator.
//! - [`jig`]: the `Jig` trait and built-in jigs.
//! - [`anneal`]: the annealer.
//! - [`pxe`]: DHCPv4, PXE and TFTP.
//! - [`dns`]: authoritative DNS.
//!
//! [`provision`] feeds DHCP and DNS from the model: Crowbar's DHCP and DNS databases.
#![deny(missing_docs)]

/// The README's tour, checked as a doc test so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "agent")]
pub mod agent;
pub mod provision;

pub use crowbar_anneal as anneal;
pub use crowbar_core as core;
pub use crowbar_dns as dns;
pub use crowbar_jig as jig;
pub use crowbar_net as net;
pub use crowbar_pxe as pxe;
