//! IPv6 addressing: RFC 4193 unique local prefixes and Crowbar's interface identifiers.
//!
//! A network with a v6 prefix gives each node the address `<prefix>:<interface id>`, where the
//! interface id is the last 64 bits of the MD5 of the node's lower-cased FQDN, used as is (no
//! EUI-64 bit flipping), exactly as Crowbar did. The `auto` prefix is an RFC 4193 unique local
//! prefix: `fd` + a 40-bit random global id + a 16-bit subnet id. The caller draws the random
//! global id; nothing in this crate reads a clock or a random source.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use md5::{Digest, Md5};

const LOW_40_BITS: u64 = (1 << 40) - 1;

/// The interface identifier of a node: the last 64 bits of the MD5 of its lower-cased FQDN.
///
/// Lower-casing is ASCII only (DNS names are ASCII; Crowbar used Ruby's ASCII `downcase`).
///
/// ```
/// use crowbar_net::ipv6::interface_id;
///
/// // md5("newtest.cr0wbar.com") ends in 493d5d208c330f07.
/// assert_eq!(interface_id("newtest.cr0wbar.com"), 0x493d_5d20_8c33_0f07);
/// assert_eq!(interface_id("NewTest.Cr0wbar.COM"), 0x493d_5d20_8c33_0f07);
/// ```
pub fn interface_id(fqdn: &str) -> u64 {
    let mut md5 = Md5::new();
    let mut buf = [0u8; 64];
    for chunk in fqdn.as_bytes().chunks(buf.len()) {
        let lower = &mut buf[..chunk.len()];
        lower.copy_from_slice(chunk);
        lower.make_ascii_lowercase();
        md5.update(lower);
    }
    let digest = md5.finalize();
    let mut last = [0u8; 8];
    last.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(last)
}

/// The address of a node in a /64: the first 64 bits of `prefix` followed by
/// [`interface_id`]`(fqdn)`.
///
/// Only the upper 64 bits of the prefix's network address are used, so a prefix of another length
/// is treated as the /64 it starts with.
///
/// ```
/// use crowbar_net::ipv6::host_address;
///
/// let prefix = "fc12:3456:789a:0001::/64".parse().unwrap();
/// let addr = host_address(prefix, "newtest.cr0wbar.com");
/// assert_eq!(addr.to_string(), "fc12:3456:789a:1:493d:5d20:8c33:f07");
/// ```
pub fn host_address(prefix: Ipv6Net, fqdn: &str) -> Ipv6Addr {
    let upper = u128::from(prefix.network()) & !u128::from(u64::MAX);
    Ipv6Addr::from(upper | u128::from(interface_id(fqdn)))
}

/// The RFC 4193 unique local /64: `fd00::/8`, the low 40 bits of `global_id`, then `subnet_id`.
///
/// Draw `global_id` at random once per site (RFC 4193 §3.2) and keep it; give each network its
/// own `subnet_id`.
///
/// ```
/// use crowbar_net::ipv6::ula_prefix;
///
/// let prefix = ula_prefix(0x12_3456_789a, 1);
/// assert_eq!(prefix.to_string(), "fd12:3456:789a:1::/64");
/// // Bits above the low 40 are ignored.
/// assert_eq!(ula_prefix(0xffff_ff12_3456_789a, 1), prefix);
/// ```
pub fn ula_prefix(global_id: u64, subnet_id: u16) -> Ipv6Net {
    prefix_with_first_byte(0xfd, global_id, subnet_id)
}

/// Crowbar's form of the automatic prefix: as [`ula_prefix`] but starting with `fc`.
///
/// RFC 4193 leaves `fc00::/8` undefined (its "L" bit is clear), so use this only to stay
/// compatible with addresses an existing Crowbar installation handed out.
///
/// ```
/// use crowbar_net::ipv6::crowbar_fc_prefix;
///
/// assert_eq!(crowbar_fc_prefix(0x12_3456_789a, 1).to_string(), "fc12:3456:789a:1::/64");
/// ```
pub fn crowbar_fc_prefix(global_id: u64, subnet_id: u16) -> Ipv6Net {
    prefix_with_first_byte(0xfc, global_id, subnet_id)
}

fn prefix_with_first_byte(first: u8, global_id: u64, subnet_id: u16) -> Ipv6Net {
    let bits = (u128::from(first) << 120)
        | (u128::from(global_id & LOW_40_BITS) << 80)
        | (u128::from(subnet_id) << 64);
    // 64 is a valid IPv6 prefix length.
    Ipv6Net::new(Ipv6Addr::from(bits), 64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_test_vector() {
        let prefix: Ipv6Net = "fc12:3456:789a:0001::/64".parse().unwrap();
        assert_eq!(
            host_address(prefix, "newtest.cr0wbar.com"),
            "fc12:3456:789a:1:493d:5d20:8c33:f07"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
    }

    #[test]
    fn host_address_ignores_host_bits_of_the_prefix() {
        let prefix: Ipv6Net = "fd00:1:2:3:ffff::/64".parse().unwrap();
        let addr = host_address(prefix, "a.example");
        assert_eq!(u128::from(addr) >> 64, 0xfd00_0001_0002_0003);
        assert_eq!(u128::from(addr) as u64, interface_id("a.example"));
    }

    #[test]
    fn ula_layout() {
        let p = ula_prefix(0xab_cdef_0123, 0xbeef);
        assert_eq!(p.to_string(), "fdab:cdef:123:beef::/64");
        assert_eq!(p.prefix_len(), 64);
        assert_eq!(crowbar_fc_prefix(0, 0).to_string(), "fc00::/64");
    }
}
