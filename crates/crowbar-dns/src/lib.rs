//! Authoritative DNS for the cluster.
//!
//! This crate serves the nodes' A, AAAA and PTR records on `hickory-server`, from an indexed
//! zone store whose query cost does not grow with the size of the zone.
#![deny(missing_docs)]
