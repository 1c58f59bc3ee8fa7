//! Addresses as integers: the allocator works on `u128` so one index serves IPv4 and IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The address as an integer (IPv4 in the low 32 bits).
pub(crate) fn to_int(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of the same family as `like` with integer value `value`.
///
/// For IPv4, `value` must fit 32 bits; the allocator only produces values between a range's ends.
pub(crate) fn from_int(like: IpAddr, value: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => {
            let v = u32::try_from(value).unwrap_or(u32::MAX);
            IpAddr::V4(Ipv4Addr::from(v))
        }
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// `addr` with the prefix length of `net` (Crowbar stores allocations as `a.b.c.d/len`).
pub(crate) fn with_prefix(addr: IpAddr, net: &IpNet) -> IpNet {
    // The prefix length comes from a net of the same family, so it is always valid.
    IpNet::new(addr, net.prefix_len()).unwrap_or_else(|_| IpNet::from(addr))
}
