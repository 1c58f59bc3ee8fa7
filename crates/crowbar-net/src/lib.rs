//! Networks, ranges, routers and address allocation for Crowbar.
//!
//! This crate holds the network model (networks, ranges, routers, allocations, conduits) and the
//! IPv4 and IPv6 allocation algorithms: lowest-free IPv4 allocation with hints, RFC 4193 unique
//! local prefixes and interface identifiers derived from the MD5 of a node's FQDN.
#![deny(missing_docs)]
