//! Building an immutable, indexed [`Snapshot`] from hosts and zone settings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::name::nibbles;
use std::collections::HashSet;

use crate::snapshot::{Snapshot, ZoneInfo};
use crate::table::{NameTable, RrSetRef, TableBuilder};
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
        names: Vec::new(),
        tails: Vec::new(),
        recs: Vec::new(),
        zones: Vec::new(),
        config: &config,
        serial,
    };
    b.add_zone(config.domain.clone());
    for z in &reverse {
        b.add_zone(z.apex.clone());
    }
    let ttl = config.ttl;
    // Names: each FQDN once, each alias once, no alias at the apex.
    let mut claimed: HashSet<&[u8]> = HashSet::with_capacity(hosts.len());
    for host in hosts {
        check_in_zone(&host.fqdn, &config.domain)?;
        if !claimed.insert(host.fqdn.wire()) {
            return Err(DnsError::DuplicateName {
                name: host.fqdn.to_string(),
            });
        }
    }
    for host in hosts {
        for alias in &host.aliases {
            check_in_zone(alias, &config.domain)?;
            if alias == &config.domain || !claimed.insert(alias.wire()) {
                return Err(DnsError::DuplicateName {
                    name: alias.to_string(),
                });
            }
        }
    }
    drop(claimed);
    for host in hosts {
        let owner = b.add_name(host.fqdn.wire());
        for a in &host.v4 {
            b.add(owner, 0, TYPE_A, ttl, &a.octets());
        }
        for a in &host.v6 {
            b.add(owner, 0, TYPE_AAAA, ttl, &a.octets());
        }
        for alias in &host.aliases {
            let owner = b.add_name(alias.wire());
            b.add(owner, 0, TYPE_CNAME, ttl, host.fqdn.wire());
        }
        let addrs = host
            .v4
            .iter()
            .map(|a| IpAddr::V4(*a))
            .chain(host.v6.iter().map(|a| IpAddr::V6(*a)));
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
            let owner = b.add_name(ptr_owner(z, addr).wire());
            b.add(owner, 1 + zi as u16, TYPE_PTR, ttl, host.fqdn.wire());
        }
    }
    // RFC 2317: the natural names of a classless block, as CNAMEs into the classless zone.
    for (zi, z) in reverse.iter().enumerate().filter(|(_, z)| z.classless) {
        if let IpNet::V4(net) = z.net {
            for addr in net.hosts().chain([net.network(), net.broadcast()]) {
                let owner = b.add_name(DnsName::reverse_v4(addr).wire());
                let target = ptr_owner(z, IpAddr::V4(addr));
                b.add(owner, 1 + zi as u16, TYPE_CNAME, ttl, target.wire());
            }
        }
    }
    // SOA and NS at every apex; A/AAAA glue where the name server lies inside the zone.
    let ns = config.nameserver.clone();
    let mut glue = Vec::new();
    let mut glue_count = 0u16;
    if let Some(h) = hosts.iter().find(|h| h.fqdn == ns) {
        let v4 = dedup(&h.v4)
            .into_iter()
            .map(|a| (TYPE_A, a.octets().to_vec()));
        let v6 = dedup(&h.v6)
            .into_iter()
            .map(|a| (TYPE_AAAA, a.octets().to_vec()));
        for (rtype, rdata) in v4.chain(v6) {
            glue.extend_from_slice(ns.wire());
            push_tail(&mut glue, rtype, ttl, &rdata);
            glue_count += 1;
        }
    }
    for zi in 0..b.zones.len() {
        let apex_wire = b.zones[zi].apex.wire().to_vec();
        let apex = b.add_name(&apex_wire);
        let tail = b.tails.len() as u32;
        let soa = b.zones[zi].soa_answer.clone();
        b.tails.extend_from_slice(&soa);
        b.recs.push(Rec {
            owner: apex,
            owner_len: apex_wire.len() as u8,
            zone: zi as u16,
            rtype: TYPE_SOA,
            tail,
        });
        b.add(apex, zi as u16, TYPE_NS, config.soa_ttl, ns.wire());
    }
    let entries = b.pack(&ns, &glue, glue_count);
    let zone_index = b
        .zones
        .iter()
        .enumerate()
        .map(|(i, z)| (z.apex.wire().into(), i as u16))
        .collect();
    Ok(Snapshot {
        serial,
        entries,
        zones: b.zones,
        zone_index,
        config,
    })
}

/// One record while building: offsets into the builder's name and tail arenas.
#[derive(Clone, Copy)]
struct Rec {
    owner: u32,
    owner_len: u8,
    zone: u16,
    rtype: u16,
    tail: u32,
}

/// Collects every record flat (a dozen bytes each), then sorts, groups and packs them into
/// the snapshot's table, so the peak memory of a rebuild stays close to the size of the result.
struct Builder<'a> {
    names: Vec<u8>,
    tails: Vec<u8>,
    recs: Vec<Rec>,
    zones: Vec<ZoneInfo>,
    config: &'a ZoneConfig,
    serial: u32,
}

fn wire_len(names: &[u8], off: usize) -> usize {
    let mut p = off;
    while names[p] != 0 {
        p += 1 + usize::from(names[p]);
    }
    p + 1 - off
}

fn tail_len(tails: &[u8], off: usize) -> usize {
    10 + usize::from(u16::from_be_bytes([tails[off + 8], tails[off + 9]]))
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

    fn add_name(&mut self, wire: &[u8]) -> u32 {
        let off = self.names.len() as u32;
        self.names.extend_from_slice(wire);
        off
    }

    fn add(&mut self, owner: u32, zone: u16, rtype: u16, ttl: u32, rdata: &[u8]) {
        let tail = self.tails.len() as u32;
        push_tail(&mut self.tails, rtype, ttl, rdata);
        let owner_len = wire_len(&self.names, owner as usize) as u8;
        self.recs.push(Rec {
            owner,
            owner_len,
            zone,
            rtype,
            tail,
        });
    }

    fn name(&self, r: &Rec) -> &[u8] {
        let off = r.owner as usize;
        &self.names[off..off + usize::from(r.owner_len)]
    }

    fn tail(&self, off: u32) -> &[u8] {
        let off = off as usize;
        &self.tails[off..off + tail_len(&self.tails, off)]
    }

    /// Sorts by owner, type and data; drops duplicates; adds empty non-terminals; packs.
    fn pack(&mut self, ns: &DnsName, glue: &[u8], glue_count: u16) -> NameTable {
        let mut recs = std::mem::take(&mut self.recs);
        recs.sort_unstable_by(|a, b| {
            self.name(a)
                .cmp(self.name(b))
                .then(a.rtype.cmp(&b.rtype))
                .then_with(|| self.tail(a.tail).cmp(self.tail(b.tail)))
        });
        recs.dedup_by(|b, a| {
            a.rtype == b.rtype
                && self.name(a) == self.name(b)
                && self.tail(a.tail) == self.tail(b.tail)
        });
        // Owner groups, as ranges of `recs`.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < recs.len() {
            let mut j = i + 1;
            while j < recs.len() && self.name(&recs[j]) == self.name(&recs[i]) {
                j += 1;
            }
            groups.push((i, j));
            i = j;
        }
        // Empty non-terminals: every missing ancestor up to the zone's apex.
        let mut ents: Vec<(Vec<u8>, u16)> = Vec::new();
        {
            let owners: HashSet<&[u8]> = groups.iter().map(|&(i, _)| self.name(&recs[i])).collect();
            let mut seen: HashSet<Vec<u8>> = HashSet::new();
            for &(i, _) in &groups {
                let (name, zone) = (self.name(&recs[i]), recs[i].zone);
                let apex = &self.zones[usize::from(zone)].apex;
                let under = crate::name::label_starts(name).any(|p| &name[p..] == apex.wire());
                if !under {
                    continue; // RFC 2317 natural names live in a parent we do not own
                }
                let mut cur = name;
                loop {
                    cur = &cur[1 + usize::from(cur[0])..];
                    if cur.len() <= apex.wire().len()
                        || owners.contains(cur)
                        || !seen.insert(cur.to_vec())
                    {
                        break;
                    }
                    ents.push((cur.to_vec(), zone));
                }
            }
        }
        let mut table = TableBuilder::new(
            groups.len() + ents.len(),
            self.tails.len() + self.names.len(),
        );
        let mut sets: Vec<(u16, u16, Vec<u8>)> = Vec::new();
        for &(i, j) in &groups {
            sets.clear();
            for r in &recs[i..j] {
                match sets.last_mut() {
                    Some((t, n, tails)) if *t == r.rtype => {
                        *n += 1;
                        tails.extend_from_slice(self.tail(r.tail));
                    }
                    _ => sets.push((r.rtype, 1, self.tail(r.tail).to_vec())),
                }
            }
            let key = self.name(&recs[i]);
            let zone = recs[i].zone;
            let apex = &self.zones[usize::from(zone)].apex;
            let glued = glue_count > 0 && apex.wire() == key && ns.is_subdomain_of(apex);
            let alias = sets
                .iter()
                .find(|s| s.0 == TYPE_CNAME)
                .map(|s| &s.2[10..tail_len(&s.2, 0)]);
            let refs: Vec<RrSetRef<'_>> = sets
                .iter()
                .map(|(t, n, tails)| {
                    let g = glued && *t == TYPE_NS;
                    RrSetRef {
                        rtype: *t,
                        count: *n,
                        tails,
                        extra_count: if g { glue_count } else { 0 },
                        extra: if g { glue } else { &[] },
                    }
                })
                .collect();
            table.push(key, zone, alias, &refs);
        }
        for (name, zone) in &ents {
            table.push(name, *zone, None, &[]);
        }
        table.finish()
    }
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
