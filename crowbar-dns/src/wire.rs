//! The query path: parse a query, answer it from a [`Snapshot`] into a reusable buffer.
//!
//! Answers are assembled from pre-encoded record tails; the owner name of an answer is a
//! compression pointer to the question, which is copied from the query, so the client's
//! spelling (0x20 case randomisation) is echoed back. No allocation on the query path.

use std::net::IpAddr;

use crate::snapshot::Snapshot;
use crate::table::{EntryRef, RrSetRef};

pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_NS: u16 = 2;
pub(crate) const TYPE_CNAME: u16 = 5;
pub(crate) const TYPE_SOA: u16 = 6;
pub(crate) const TYPE_PTR: u16 = 12;
pub(crate) const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;

const RCODE_NOERROR: u8 = 0;
const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;
const RCODE_REFUSED: u8 = 5;
const RCODE_NOTAUTH: u8 = 9;

/// Largest UDP answer we send, whatever the client offers (the DNS flag day 2020 value).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// How a query arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// UDP: answers are limited to 512 bytes, or the EDNS payload size up to
    /// [`MAX_UDP_PAYLOAD`], and truncated (TC, empty sections) beyond that.
    Udp,
    /// TCP: answers up to 65,535 bytes; zone transfers allowed.
    Tcp,
}

/// Who asked, and how: what the query path needs besides the bytes.
#[derive(Clone, Copy, Debug)]
pub struct QueryContext {
    /// The client's address (for the transfer ACL).
    pub src: IpAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// Whether forwarders are configured (names outside our zones with RD=1 are then handed
    /// back as [`Outcome::Forward`] instead of REFUSED).
    pub forwarding: bool,
    /// Whether `src` may transfer zones (AXFR/IXFR).
    pub transfer_allowed: bool,
}

/// What to do with a query after [`Snapshot::respond`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Send the buffer back to the client.
    Reply,
    /// Send nothing (a response, or too short to carry a header).
    Drop,
    /// The name is outside our zones and the client asked for recursion: relay the query to
    /// an upstream.
    Forward,
    /// An allowed zone transfer of the zone with this index (see
    /// [`Snapshot::transfer`]).
    Transfer(usize),
}

struct Question {
    /// End of the question section (offset in the query).
    end: usize,
    /// Lower-cased wire name.
    key: [u8; 255],
    key_len: usize,
    qtype: u16,
    qclass: u16,
}

#[derive(Clone, Copy)]
struct Edns {
    payload: u16,
    version: u8,
    dnssec_ok: bool,
}

enum Parsed {
    Drop,
    /// Reply with a bare header carrying this rcode.
    Error(u8),
    Query(Box<Question>, Option<Edns>),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Skips a possibly compressed name; returns the offset after it.
fn skip_name(b: &[u8], mut p: usize) -> Option<usize> {
    loop {
        let len = *b.get(p)?;
        match len {
            0 => return Some(p + 1),
            l if l & 0xc0 == 0xc0 => {
                b.get(p + 1)?;
                return Some(p + 2);
            }
            l if l & 0xc0 != 0 => return None,
            l => p += 1 + usize::from(l),
        }
    }
}

fn parse(q: &[u8]) -> Parsed {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return Parsed::Drop;
    }
    let opcode = (q[2] >> 3) & 0x0f;
    if opcode != 0 {
        return Parsed::Error(RCODE_NOTIMP);
    }
    let counts = [4, 6, 8, 10].map(|i| u16::from_be_bytes([q[i], q[i + 1]]));
    if counts[0] != 1 {
        return Parsed::Error(RCODE_FORMERR);
    }
    let mut question = Box::new(Question {
        end: 0,
        key: [0; 255],
        key_len: 0,
        qtype: 0,
        qclass: 0,
    });
    let mut p = 12;
    loop {
        let Some(&len) = q.get(p) else {
            return Parsed::Error(RCODE_FORMERR);
        };
        let len = usize::from(len);
        if len > 63 || question.key_len + len + 1 > 255 || p + 1 + len > q.len() {
            return Parsed::Error(RCODE_FORMERR);
        }
        let k = question.key_len;
        question.key[k] = len as u8;
        for (i, &b) in q[p + 1..p + 1 + len].iter().enumerate() {
            question.key[k + 1 + i] = b.to_ascii_lowercase();
        }
        question.key_len += 1 + len;
        p += 1 + len;
        if len == 0 {
            break;
        }
    }
    let (Some(qtype), Some(qclass)) = (be16(q, p), be16(q, p + 2)) else {
        return Parsed::Error(RCODE_FORMERR);
    };
    question.qtype = qtype;
    question.qclass = qclass;
    question.end = p + 4;
    // Skip answer and authority records, look for one OPT in the additional section.
    let mut p = question.end;
    let mut edns = None;
    for (section, &count) in counts.iter().enumerate().skip(1) {
        for _ in 0..count {
            let owner = p;
            let Some(after) = skip_name(q, p) else {
                return Parsed::Error(RCODE_FORMERR);
            };
            let (Some(rtype), Some(class), Some(rdlen)) =
                (be16(q, after), be16(q, after + 2), be16(q, after + 8))
            else {
                return Parsed::Error(RCODE_FORMERR);
            };
            let next = after + 10 + usize::from(rdlen);
            if next > q.len() {
                return Parsed::Error(RCODE_FORMERR);
            }
            if section == 3 && rtype == TYPE_OPT {
                if edns.is_some() || q[owner] != 0 {
                    return Parsed::Error(RCODE_FORMERR);
                }
                edns = Some(Edns {
                    payload: class,
                    version: q[after + 5],
                    dnssec_ok: q[after + 6] & 0x80 != 0,
                });
            }
            p = next;
        }
    }
    Parsed::Query(question, edns)
}

/// Writes a response header; counts are patched later.
fn header(out: &mut Vec<u8>, q: &[u8], aa: bool, rcode: u8) {
    out.clear();
    out.extend_from_slice(&q[0..2]);
    let opcode = q[2] & 0x78;
    out.push(0x80 | opcode | if aa { 0x04 } else { 0 } | (q[2] & 0x01));
    out.push((q[3] & 0x10) | (rcode & 0x0f));
    out.extend_from_slice(&[0; 8]);
}

fn set_counts(out: &mut [u8], qd: u16, an: u16, ns: u16, ar: u16) {
    for (i, v) in [qd, an, ns, ar].into_iter().enumerate() {
        out[4 + 2 * i..6 + 2 * i].copy_from_slice(&v.to_be_bytes());
    }
}

fn push_opt(out: &mut Vec<u8>, edns: Edns, ext_rcode: u8) {
    let _ = edns.version;
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, 0, if edns.dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
}

fn ptr(out: &mut Vec<u8>, offset: usize) {
    out.extend_from_slice(&(0xc000u16 | offset as u16).to_be_bytes());
}

/// Appends every record of `rr` with its owner as a pointer to `owner`.
fn push_rrset(out: &mut Vec<u8>, rr: &RrSetRef<'_>, owner: usize) {
    for tail in rr.tails() {
        ptr(out, owner);
        out.extend_from_slice(tail);
    }
}

struct Sections {
    an: u16,
    ns: u16,
    ar: u16,
}

impl Snapshot {
    /// Answers one DNS message. `query` is the raw message as received; the answer (if any)
    /// is written to `out`, which is cleared first. Never panics, whatever the bytes.
    ///
    /// ```
    /// # use crowbar_dns::*;
    /// let cfg = ZoneConfig::from_admin_fqdn("admin.lab.test".parse()?)?;
    /// let hosts = [Host::new("node1.lab.test".parse()?).with_v4("198.18.1.1".parse()?)];
    /// let snap = Snapshot::build(cfg, &hosts, 1)?;
    /// // A hand-made query: id 0x1234, RD, one question: NODE1.lab.test IN A.
    /// let mut q = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    /// q.extend_from_slice(b"\x05NODE1\x03lab\x04test\x00\x00\x01\x00\x01");
    /// let ctx = QueryContext {
    ///     src: "127.0.0.1".parse()?,
    ///     transport: Transport::Udp,
    ///     forwarding: false,
    ///     transfer_allowed: false,
    /// };
    /// let mut out = Vec::new();
    /// assert_eq!(snap.respond(&q, &ctx, &mut out), Outcome::Reply);
    /// assert_eq!(&out[..2], &[0x12, 0x34]);        // same id
    /// assert_eq!(out[3] & 0x0f, 0);                 // NOERROR
    /// assert_eq!(&out[6..8], &[0, 1]);              // one answer
    /// assert_eq!(&out[out.len() - 4..], &[198, 18, 1, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn respond(&self, query: &[u8], ctx: &QueryContext, out: &mut Vec<u8>) -> Outcome {
        let (question, edns) = match parse(query) {
            Parsed::Drop => return Outcome::Drop,
            Parsed::Error(rcode) => {
                header(out, query, false, rcode);
                return Outcome::Reply;
            }
            Parsed::Query(q, e) => (q, e),
        };
        let qname = &question.key[..question.key_len];
        tracing::trace!(qtype = question.qtype, len = query.len(), "query");
        let qlen = question.end - 12;
        let copy_question = |out: &mut Vec<u8>| out.extend_from_slice(&query[12..question.end]);

        if let Some(e) = edns
            && e.version > 0
        {
            // BADVERS = 16: upper eight bits in the OPT record, lower four in the header.
            header(out, query, false, 0);
            copy_question(out);
            push_opt(out, e, 1);
            set_counts(out, 1, 0, 0, 1);
            return Outcome::Reply;
        }
        let simple = |out: &mut Vec<u8>, aa: bool, rcode: u8| {
            header(out, query, aa, rcode);
            copy_question(out);
            let ar = match edns {
                Some(e) => {
                    push_opt(out, e, 0);
                    1
                }
                None => 0,
            };
            set_counts(out, 1, 0, 0, ar);
            Outcome::Reply
        };
        if question.qclass != CLASS_IN {
            return simple(out, false, RCODE_REFUSED);
        }

        let entry = self.entries.get(qname);
        let zone = match entry {
            Some(e) => Some(usize::from(e.zone)),
            None => self.find_zone(qname),
        };
        let Some(zone) = zone else {
            if ctx.forwarding && query[2] & 0x01 != 0 {
                return Outcome::Forward;
            }
            return simple(out, false, RCODE_REFUSED);
        };

        if question.qtype == TYPE_AXFR || question.qtype == TYPE_IXFR {
            let is_apex = self.zones[zone].apex.wire() == qname;
            return match (ctx.transport, is_apex, ctx.transfer_allowed) {
                (_, false, _) => simple(out, false, RCODE_NOTAUTH),
                (_, true, false) => simple(out, false, RCODE_REFUSED),
                (Transport::Udp, true, true) => {
                    // Ask the client to retry over TCP.
                    let o = simple(out, true, RCODE_NOERROR);
                    out[2] |= 0x02;
                    o
                }
                (Transport::Tcp, true, true) => Outcome::Transfer(zone),
            };
        }

        header(out, query, true, RCODE_NOERROR);
        copy_question(out);
        let s = match entry {
            Some(e) => self.answer_entry(out, &e, zone, question.qtype, qlen),
            None => {
                out[3] |= RCODE_NXDOMAIN;
                self.push_soa(out, zone, 12, qname.len());
                Sections {
                    an: 0,
                    ns: 1,
                    ar: 0,
                }
            }
        };
        let mut ar = s.ar;
        if let Some(e) = edns {
            push_opt(out, e, 0);
            ar += 1;
        }
        set_counts(out, 1, s.an, s.ns, ar);

        let limit = match (ctx.transport, edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => 512,
            (Transport::Udp, Some(e)) => usize::from(e.payload.clamp(512, MAX_UDP_PAYLOAD)),
        };
        if out.len() > limit {
            // RFC 2181 9: an empty answer with TC, not a partial RRset.
            out.truncate(question.end);
            out[2] |= 0x02;
            let ar = match edns {
                Some(e) => {
                    push_opt(out, e, 0);
                    1
                }
                None => 0,
            };
            set_counts(out, 1, 0, 0, ar);
        }
        Outcome::Reply
    }

    /// The longest zone apex that is a suffix of `qname`, walking up one label at a time.
    fn find_zone(&self, qname: &[u8]) -> Option<usize> {
        let mut p = 0;
        while p < qname.len() {
            if let Some(&z) = self.zone_index.get(&qname[p..]) {
                return Some(usize::from(z));
            }
            let len = usize::from(qname[p]);
            if len == 0 {
                break;
            }
            p += 1 + len;
        }
        None
    }

    /// The SOA of `zone` in the authority section; its owner is a pointer into the name at
    /// `name_at`, of length `name_len`.
    fn push_soa(&self, out: &mut Vec<u8>, zone: usize, name_at: usize, name_len: usize) {
        let z = &self.zones[zone];
        ptr(out, name_at + name_len - z.apex.wire().len());
        out.extend_from_slice(&z.soa_negative);
    }

    fn answer_entry(
        &self,
        out: &mut Vec<u8>,
        e: &EntryRef<'_>,
        zone: usize,
        qtype: u16,
        qlen: usize,
    ) -> Sections {
        let owner = 12;
        let name_len = qlen - 4;
        if qtype == TYPE_ANY {
            let mut an = 0;
            for rr in e.rrsets() {
                push_rrset(out, &rr, owner);
                an += rr.count;
            }
            if an > 0 {
                return Sections { an, ns: 0, ar: 0 };
            }
        } else if let Some(rr) = e.find(qtype) {
            push_rrset(out, &rr, owner);
            out.extend_from_slice(rr.extra);
            return Sections {
                an: rr.count,
                ns: 0,
                ar: rr.extra_count,
            };
        } else if let (Some(tw), Some(cname)) = (e.alias, e.find(TYPE_CNAME)) {
            // Chase an in-zone CNAME: CNAME, then the target's records (or its negative).
            push_rrset(out, &cname, owner);
            let target_at = owner + name_len + 4 + 2 + 10;
            return match self.entries.get(tw) {
                Some(t) => match t.find(qtype) {
                    Some(rr) => {
                        push_rrset(out, &rr, target_at);
                        Sections {
                            an: 1 + rr.count,
                            ns: 0,
                            ar: 0,
                        }
                    }
                    None => {
                        self.push_soa(out, usize::from(t.zone), target_at, tw.len());
                        Sections {
                            an: 1,
                            ns: 1,
                            ar: 0,
                        }
                    }
                },
                None => {
                    let z = self.find_zone(tw).unwrap_or(zone);
                    out[3] |= RCODE_NXDOMAIN;
                    self.push_soa(out, z, target_at, tw.len());
                    Sections {
                        an: 1,
                        ns: 1,
                        ar: 0,
                    }
                }
            };
        }
        // NODATA.
        self.push_soa(out, zone, owner, name_len);
        Sections {
            an: 0,
            ns: 1,
            ar: 0,
        }
    }

    /// The messages of a zone transfer (RFC 5936) of zone `zone`, answering `query`: SOA,
    /// every record, SOA again, in messages of at most about 16 KB.
    pub fn transfer(&self, zone: usize, query: &[u8]) -> Vec<Vec<u8>> {
        let Parsed::Query(question, _) = parse(query) else {
            return Vec::new();
        };
        if zone >= self.zones.len() {
            return Vec::new();
        }
        let mut records = self.zone_records(zone);
        if let Some(first) = records.first().cloned() {
            records.push(first);
        }
        let mut messages = Vec::new();
        let mut out = Vec::new();
        let mut an = 0u16;
        let start = |out: &mut Vec<u8>| {
            header(out, query, true, RCODE_NOERROR);
            out.extend_from_slice(&query[12..question.end]);
        };
        start(&mut out);
        for (_, owner, tail) in records {
            if out.len() + owner.len() + tail.len() > 16_000 && an > 0 {
                set_counts(&mut out, 1, an, 0, 0);
                messages.push(std::mem::take(&mut out));
                start(&mut out);
                an = 0;
            }
            out.extend_from_slice(&owner);
            out.extend_from_slice(tail);
            an += 1;
        }
        set_counts(&mut out, 1, an, 0, 0);
        messages.push(out);
        messages
    }
}
