//! The immutable, indexed zone snapshot that answers queries.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::table::{EntryRef, NameTable};
use crate::wire::{TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, TYPE_PTR, TYPE_SOA};
use crate::{DnsName, ZoneConfig};

/// A hasher for wire-form names: FxHash over 8-byte words. Names come from the network, but
/// the map holds only our own names, so a slow collision-resistant hash buys nothing here.
#[derive(Default, Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        let mut rest = [0u8; 8];
        let r = chunks.remainder();
        rest[..r.len()].copy_from_slice(r);
        self.0 =
            (self.0.rotate_left(5) ^ u64::from_le_bytes(rest) ^ r.len() as u64).wrapping_mul(K);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<NameHasher>>;

/// One immutable version of all the zones: forward, reverse and their SOA serial, answering
/// queries in time independent of the number of hosts (one or two hash look-ups).
///
/// Get one from [`Zones::snapshot`](crate::Zones::snapshot) or [`Snapshot::build`].
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) serial: u32,
    /// Owner name (lower-cased wire form) to its records. Empty non-terminals are present
    /// with no records, so a missing key means NXDOMAIN.
    pub(crate) entries: NameTable,
    pub(crate) zones: Vec<ZoneInfo>,
    pub(crate) zone_index: FastMap<Box<[u8]>, u16>,
    pub(crate) config: Arc<ZoneConfig>,
}

#[derive(Debug)]
pub(crate) struct ZoneInfo {
    pub(crate) apex: DnsName,
    /// SOA record without its owner name, TTL = min(SOA TTL, MINIMUM) (RFC 2308).
    pub(crate) soa_negative: Box<[u8]>,
    /// SOA record without its owner name, as answered at the apex.
    pub(crate) soa_answer: Box<[u8]>,
}

/// One zone rendered as an RFC 1035 master file, e.g. for NSD or a secondary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneFile {
    /// The zone's apex.
    pub origin: DnsName,
    /// The master-file text.
    pub text: String,
}

impl Snapshot {
    /// Builds a snapshot from settings and hosts with the given SOA serial.
    ///
    /// Fails if a name is outside the forward zone, defined twice, or a reverse prefix cannot
    /// be served.
    pub fn build(
        config: ZoneConfig,
        hosts: &[crate::Host],
        serial: u32,
    ) -> Result<Snapshot, crate::DnsError> {
        let refs: Vec<&crate::Host> = hosts.iter().collect();
        crate::build::build(Arc::new(config), &refs, serial)
    }

    /// The SOA serial shared by every zone of this snapshot.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The apex of every zone served: the forward zone first, then the reverse zones.
    pub fn origins(&self) -> impl Iterator<Item = &DnsName> + '_ {
        self.zones.iter().map(|z| &z.apex)
    }

    /// The settings this snapshot was built with.
    pub fn config(&self) -> &ZoneConfig {
        &self.config
    }

    /// The number of owner names, empty non-terminals included.
    pub fn name_count(&self) -> usize {
        self.entries.len()
    }

    /// The records of zone `zone` (an index into [`origins`](Self::origins)) in canonical
    /// order of owner names, SOA first, as (owner, record tail) pairs. RFC 2317 natural
    /// names (which belong to the parent zone) are left out.
    pub(crate) fn zone_records(&self, zone: usize) -> Vec<(&DnsName, Vec<u8>, &[u8])> {
        let apex = &self.zones[zone].apex;
        let mut owners: Vec<(DnsName, EntryRef<'_>)> = self
            .entries
            .iter()
            .filter(|e| usize::from(e.zone) == zone)
            .map(|e| (DnsName::from_wire_unchecked(e.key), e))
            .filter(|(n, _)| n.is_subdomain_of(apex))
            .collect();
        owners.sort_by_cached_key(|a| canonical_key(&a.0));
        let mut out: Vec<(&DnsName, Vec<u8>, &[u8])> = Vec::new();
        for (name, e) in owners {
            let mut sets: Vec<_> = e.rrsets().collect();
            sets.sort_by_key(|r| (r.rtype != TYPE_SOA, r.rtype));
            for rr in sets {
                for tail in rr.tails() {
                    out.push((apex, name.wire().to_vec(), tail));
                }
            }
        }
        out
    }

    /// Renders every zone as a master file (for NSD in the differential test, or for a
    /// secondary that cannot transfer).
    pub fn zone_files(&self) -> Vec<ZoneFile> {
        (0..self.zones.len())
            .map(|zi| {
                let apex = &self.zones[zi].apex;
                let mut text = format!("$ORIGIN {apex}\n");
                for (_, owner, tail) in self.zone_records(zi) {
                    let owner = DnsName::from_wire_unchecked(&owner);
                    let _ = writeln!(text, "{owner} {}", render_tail(tail));
                }
                ZoneFile {
                    origin: apex.clone(),
                    text,
                }
            })
            .collect()
    }
}

/// Sort key: labels from the root down (RFC 4034 canonical order, names are lower-case).
fn canonical_key(name: &DnsName) -> Vec<Vec<u8>> {
    let mut labels = Vec::new();
    let w = name.wire();
    let mut p = 0;
    while w[p] != 0 {
        let len = w[p] as usize;
        labels.push(w[p + 1..p + 1 + len].to_vec());
        p += 1 + len;
    }
    labels.reverse();
    labels
}

fn read_name(rdata: &[u8], pos: &mut usize) -> DnsName {
    let start = *pos;
    while *pos < rdata.len() && rdata[*pos] != 0 {
        *pos += 1 + rdata[*pos] as usize;
    }
    *pos += 1;
    DnsName::from_wire_unchecked(&rdata[start..(*pos).min(rdata.len())])
}

/// `TTL IN TYPE RDATA` for one pre-encoded record tail.
fn render_tail(tail: &[u8]) -> String {
    let rtype = u16::from_be_bytes([tail[0], tail[1]]);
    let ttl = u32::from_be_bytes([tail[4], tail[5], tail[6], tail[7]]);
    let rdata = &tail[10..];
    let body = match rtype {
        TYPE_A if rdata.len() == 4 => {
            format!(
                "A {}",
                Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])
            )
        }
        TYPE_AAAA if rdata.len() == 16 => {
            let o: [u8; 16] = rdata.try_into().expect("16 bytes");
            format!("AAAA {}", Ipv6Addr::from(o))
        }
        TYPE_PTR | TYPE_CNAME | TYPE_NS => {
            let name = read_name(rdata, &mut 0);
            let t = match rtype {
                TYPE_PTR => "PTR",
                TYPE_CNAME => "CNAME",
                _ => "NS",
            };
            format!("{t} {name}")
        }
        TYPE_SOA => {
            let mut p = 0;
            let m = read_name(rdata, &mut p);
            let r = read_name(rdata, &mut p);
            let nums: Vec<u32> = rdata[p..]
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            format!("SOA {m} {r} {nums:?}")
                .replace(['[', ']'], "")
                .replace(',', "")
        }
        other => format!("TYPE{other} \\# {}", rdata.len()),
    };
    format!("{ttl} IN {body}")
}
