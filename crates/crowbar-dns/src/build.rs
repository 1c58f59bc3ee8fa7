//! Building an immutable, indexed [`Snapshot`] from hosts and zone settings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::name::nibbles;
use crate::snapshot::{FastMap, Snapshot, ZoneInfo};
use crate::table::{Entry, NameTable, RrSet};
use crate::wire::{TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, TYPE_PTR, TYPE_SOA};
use crate::{DnsError, DnsName, Host, ZoneConfig};

/// Most zones one configured reverse prefix may be split into.
const MAX_SPLIT: u32 = 256;

/// A reverse zone: the prefix it covers and how owner names are formed.
#[derive(Clone, Debug)]
struct RevZone {
    net: IpNet,
    apex: DnsName,
    /// RFC 2317: the owner name of an address is `<last octet>.<apex>`, and the natural
    /// `in-addr.arpa` name is served as a CNAME to it.
    classless: bool,
}

pub(crate) fn build(
    config: Arc<ZoneConfig>,
    hosts: &[&Host],
    serial: u32,
) -> Result<Snapshot, DnsError> {
    let reverse = reverse_zones(&config, hosts)?;
    let mut b = Builder {
        entries: FastMap::default(),
        zones: Vec::new(),
        config: &config,
        serial,
    };
    b.add_zone(config.domain.clone());
    for z in &reverse {
        b.add_zone(z.apex.clone());
    }
    let ttl = config.ttl;
    // Forward records.
    for host in hosts {
        check_in_zone(&host.fqdn, &config.domain)?;
        let e = b.entry(&host.fqdn, 0);
        if e.alias.is_some()
            || e.rrsets
                .iter()
                .any(|r| r.rtype == TYPE_A || r.rtype == TYPE_AAAA)
        {
            return Err(DnsError::DuplicateName {
                name: host.fqdn.to_string(),
            });
        }
        for a in dedup(&host.v4) {
            add(e, TYPE_A, ttl, &a.octets());
        }
        for a in dedup(&host.v6) {
            add(e, TYPE_AAAA, ttl, &a.octets());
        }
    }
    for host in hosts {
        for alias in &host.aliases {
            check_in_zone(alias, &config.domain)?;
            if b.entries.contains_key(alias.wire()) || alias == &config.domain {
                return Err(DnsError::DuplicateName {
                    name: alias.to_string(),
                });
            }
            let e = b.entry(alias, 0);
            add(e, TYPE_CNAME, ttl, host.fqdn.wire());
            e.alias = Some(host.fqdn.wire().into());
        }
    }
    // Reverse records.
    for host in hosts {
        let addrs = dedup(&host.v4)
            .into_iter()
            .map(IpAddr::V4)
            .chain(dedup(&host.v6).into_iter().map(IpAddr::V6));
        for addr in addrs {
            let Some((zi, z)) = reverse
                .iter()
                .enumerate()
                .filter(|(_, z)| z.net.contains(&addr))
                .max_by_key(|(_, z)| z.net.prefix_len())
            else {
                tracing::debug!(%addr, host = %host.fqdn, "no reverse zone covers this address");
                continue;
            };
            let owner = ptr_owner(z, addr);
            let e = b.entry(&owner, 1 + zi as u16);
            add(e, TYPE_PTR, ttl, host.fqdn.wire());
        }
    }
    // RFC 2317: the natural names of a classless block, as CNAMEs into the classless zone.
    for (zi, z) in reverse.iter().enumerate().filter(|(_, z)| z.classless) {
        if let IpNet::V4(net) = z.net {
            for addr in net.hosts().chain([net.network(), net.broadcast()]) {
                let natural = DnsName::reverse_v4(addr);
                if b.entries.contains_key(natural.wire()) {
                    continue;
                }
                let target = ptr_owner(z, IpAddr::V4(addr));
                let e = b.entry(&natural, 1 + zi as u16);
                add(e, TYPE_CNAME, ttl, target.wire());
                e.alias = Some(target.wire().into());
            }
        }
    }
    b.finish_apexes();
    b.add_empty_non_terminals();
    let zone_index = b
        .zones
        .iter()
        .enumerate()
        .map(|(i, z)| (z.apex.wire().into(), i as u16))
        .collect();
    Ok(Snapshot {
        serial,
        entries: NameTable::build(b.entries.iter().map(|(k, e)| (&k[..], e))),
        zones: b.zones,
        zone_index,
        config,
    })
}

struct Builder<'a> {
    entries: FastMap<Box<[u8]>, Entry>,
    zones: Vec<ZoneInfo>,
    config: &'a ZoneConfig,
    serial: u32,
}

impl Builder<'_> {
    fn add_zone(&mut self, apex: DnsName) {
        let c = self.config;
        let mut rdata = Vec::new();
        rdata.extend_from_slice(c.nameserver.wire());
        rdata.extend_from_slice(c.hostmaster.wire());
        for v in [self.serial, c.refresh, c.retry, c.expire, c.minimum] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        let mut soa_negative = Vec::new();
        push_tail(
            &mut soa_negative,
            TYPE_SOA,
            c.soa_ttl.min(c.minimum),
            &rdata,
        );
        let mut soa_answer = Vec::new();
        push_tail(&mut soa_answer, TYPE_SOA, c.soa_ttl, &rdata);
        self.zones.push(ZoneInfo {
            apex,
            soa_negative: soa_negative.into(),
            soa_answer: soa_answer.into(),
        });
    }

    fn entry(&mut self, name: &DnsName, zone: u16) -> &mut Entry {
        self.entries
            .entry(name.wire().into())
            .or_insert_with(|| Entry {
                zone,
                rrsets: Vec::with_capacity(1),
                alias: None,
            })
    }

    /// SOA and NS at every apex, with A/AAAA glue for an in-zone name server.
    fn finish_apexes(&mut self) {
        let ns = self.config.nameserver.clone();
        let mut glue = Vec::new();
        let mut glue_count = 0u16;
        if let Some(e) = self.entries.get(ns.wire()) {
            for rr in e
                .rrsets
                .iter()
                .filter(|r| r.rtype == TYPE_A || r.rtype == TYPE_AAAA)
            {
                for tail in crate::table::tails(&rr.tails) {
                    glue.extend_from_slice(ns.wire());
                    glue.extend_from_slice(tail);
                    glue_count += 1;
                }
            }
        }
        for zi in 0..self.zones.len() {
            let apex = self.zones[zi].apex.clone();
            let soa = self.zones[zi].soa_answer.clone();
            let (soa_ttl, ns_wire) = (self.config.soa_ttl, ns.wire().to_vec());
            // Glue only where the name server lies inside the zone (as in a master file).
            let (glue, glue_count) = if ns.is_subdomain_of(&apex) {
                (glue.clone(), glue_count)
            } else {
                (Vec::new(), 0)
            };
            let e = self.entry(&apex, zi as u16);
            e.zone = zi as u16;
            e.rrsets
                .retain(|r| r.rtype != TYPE_SOA && r.rtype != TYPE_NS);
            e.rrsets.push(RrSet {
                rtype: TYPE_SOA,
                count: 1,
                tails: soa.to_vec(),
                ..RrSet::default()
            });
            let mut tails = Vec::new();
            push_tail(&mut tails, TYPE_NS, soa_ttl, &ns_wire);
            e.rrsets.push(RrSet {
                rtype: TYPE_NS,
                count: 1,
                tails,
                extra_count: glue_count,
                extra: glue,
            });
        }
    }

    /// Every ancestor of an owner name, up to its zone's apex, exists (as NODATA).
    fn add_empty_non_terminals(&mut self) {
        // Only names whose parent is missing can need new ancestors.
        let names: Vec<(DnsName, u16)> = self
            .entries
            .iter()
            .filter_map(|(k, e)| {
                let name = DnsName::from_wire_unchecked(k);
                let parent = name.parent()?;
                (!self.entries.contains_key(parent.wire())).then_some((name, e.zone))
            })
            .collect();
        for (name, zone) in names {
            let apex = self.zones[zone as usize].apex.clone();
            let mut cur = name;
            if !cur.is_subdomain_of(&apex) {
                continue; // RFC 2317 natural names live in a parent we do not own
            }
            while let Some(parent) = cur.parent() {
                if parent.wire().len() < apex.wire().len()
                    || self.entries.contains_key(parent.wire())
                {
                    break;
                }
                self.entry(&parent, zone);
                cur = parent;
            }
        }
    }
}

fn add(e: &mut Entry, rtype: u16, ttl: u32, rdata: &[u8]) {
    let idx = match e.rrsets.iter().position(|r| r.rtype == rtype) {
        Some(i) => i,
        None => {
            e.rrsets.push(RrSet {
                rtype,
                ..RrSet::default()
            });
            e.rrsets.len() - 1
        }
    };
    let rr = &mut e.rrsets[idx];
    let mut one = Vec::with_capacity(10 + rdata.len());
    push_tail(&mut one, rtype, ttl, rdata);
    if rr.tails.is_empty() {
        rr.tails = one;
    } else if crate::table::tails(&rr.tails).any(|t| t == one.as_slice()) {
        return;
    } else {
        rr.tails.extend_from_slice(&one);
    }
    rr.count += 1;
}

/// type, class IN, ttl, rdlength, rdata.
pub(crate) fn push_tail(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

fn dedup<T: PartialEq + Copy>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(x) {
            out.push(*x);
        }
    }
    out
}

fn check_in_zone(name: &DnsName, zone: &DnsName) -> Result<(), DnsError> {
    if name.is_subdomain_of(zone) {
        Ok(())
    } else {
        Err(DnsError::OutOfZone {
            name: name.to_string(),
            zone: zone.to_string(),
        })
    }
}

fn ptr_owner(z: &RevZone, addr: IpAddr) -> DnsName {
    match addr {
        IpAddr::V4(a) if z.classless => z
            .apex
            .prepend(&a.octets()[3].to_string())
            .expect("valid classless owner"),
        IpAddr::V4(a) => DnsName::reverse_v4(a),
        IpAddr::V6(a) => DnsName::reverse_v6(a),
    }
}

fn reverse_zones(config: &ZoneConfig, hosts: &[&Host]) -> Result<Vec<RevZone>, DnsError> {
    let mut nets: Vec<IpNet> = config.reverse.clone();
    if nets.is_empty() {
        for h in hosts {
            for a in &h.v4 {
                nets.push(IpNet::V4(
                    Ipv4Net::new(*a, 24).expect("24 is valid").trunc(),
                ));
            }
            for a in &h.v6 {
                nets.push(IpNet::V6(
                    Ipv6Net::new(*a, 64).expect("64 is valid").trunc(),
                ));
            }
        }
    }
    let mut zones: Vec<RevZone> = Vec::new();
    for net in nets {
        for z in split(net)? {
            if !zones.iter().any(|o| o.apex == z.apex) {
                zones.push(z);
            }
        }
    }
    Ok(zones)
}

/// The zones that serve `net`: split on octet (IPv4) or nibble (IPv6) boundaries, or one RFC
/// 2317 zone for an IPv4 block longer than /24.
fn split(net: IpNet) -> Result<Vec<RevZone>, DnsError> {
    let net = net.trunc();
    let bad = |reason| DnsError::BadReverseZone {
        prefix: net.to_string(),
        reason,
    };
    let (step, len) = match net {
        IpNet::V4(n) if n.prefix_len() > 24 => {
            let [a, b, c, d] = n.network().octets();
            let apex = DnsName::new(&format!("{d}-{}.{c}.{b}.{a}.in-addr.arpa", n.prefix_len()))?;
            return Ok(vec![RevZone {
                net,
                apex,
                classless: true,
            }]);
        }
        IpNet::V4(n) => (8, n.prefix_len()),
        IpNet::V6(n) => (4, n.prefix_len()),
    };
    if len == 0 {
        return Err(bad("a reverse zone needs a non-zero prefix length"));
    }
    let target = len.div_ceil(step) * step;
    if 1u32 << (target - len) > MAX_SPLIT {
        return Err(bad("it would split into more than 256 zones"));
    }
    let subnets: Vec<IpNet> = net
        .subnets(target)
        .map_err(|_| bad("bad prefix"))?
        .collect();
    Ok(subnets
        .into_iter()
        .map(|n| RevZone {
            net: n,
            apex: match n {
                IpNet::V4(v) => v4_apex(v.network(), target / 8),
                IpNet::V6(v) => v6_apex(v.network(), target as usize / 4),
            },
            classless: false,
        })
        .collect())
}

fn v4_apex(addr: Ipv4Addr, octets: u8) -> DnsName {
    let o = addr.octets();
    let mut s = String::new();
    for i in (0..octets as usize).rev() {
        s.push_str(&o[i].to_string());
        s.push('.');
    }
    s.push_str("in-addr.arpa");
    DnsName::new(&s).expect("valid reverse apex")
}

fn v6_apex(addr: Ipv6Addr, nibble_count: usize) -> DnsName {
    DnsName::new(&nibbles(&addr.octets(), nibble_count)).expect("valid reverse apex")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apexes(net: &str) -> Vec<String> {
        split(net.parse().unwrap())
            .unwrap()
            .into_iter()
            .map(|z| z.apex.to_string())
            .collect()
    }

    #[test]
    fn reverse_zone_splitting() {
        assert_eq!(apexes("198.18.0.0/16"), ["18.198.in-addr.arpa."]);
        assert_eq!(
            apexes("10.1.2.0/23"),
            ["2.1.10.in-addr.arpa.", "3.1.10.in-addr.arpa."]
        );
        assert_eq!(apexes("192.168.1.64/26"), ["64-26.1.168.192.in-addr.arpa."]);
        assert_eq!(apexes("2001:db8::/32"), ["8.b.d.0.1.0.0.2.ip6.arpa."]);
        assert_eq!(apexes("2001:db8::/31").len(), 2);
        assert!(matches!(
            split("10.0.0.0/0".parse().unwrap()),
            Err(DnsError::BadReverseZone { .. })
        ));
    }
}
