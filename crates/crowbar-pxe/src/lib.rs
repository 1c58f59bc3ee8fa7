//! DHCPv4, PXE and TFTP services for provisioning bare metal.
//!
//! This crate holds the DHCPv4 server (on `dhcproto`), the PXE/iPXE/UEFI boot decisions and the
//! TFTP server that hand a booting machine its address and what it boots into.
#![deny(missing_docs)]
