//! The query path without sockets: answers decoded by hickory-proto and compared as text, and
//! property tests that throw random, truncated and oversized bytes at it.

use std::net::{IpAddr, Ipv4Addr};

use crowbar_dns::{Change, Host, Outcome, QueryContext, Snapshot, Transport, ZoneConfig, Zones};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use proptest::prelude::*;

fn zone_config() -> ZoneConfig {
    ZoneConfig::from_admin_fqdn("admin.lab.test".parse().unwrap())
        .unwrap()
        .with_reverse([
            "198.18.0.0/16".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ])
}

fn hosts() -> Vec<Host> {
    vec![
        Host::new("admin.lab.test".parse().unwrap()).with_v4("198.18.0.1".parse().unwrap()),
        Host::new("node1.lab.test".parse().unwrap())
            .with_v4("198.18.1.1".parse().unwrap())
            .with_v6("2001:db8:100::1".parse().unwrap())
            .with_alias("www.lab.test".parse().unwrap()),
        Host::new("node2.lab.test".parse().unwrap()).with_v4("198.18.1.2".parse().unwrap()),
    ]
}

fn snapshot() -> Snapshot {
    Snapshot::build(zone_config(), &hosts(), 7).unwrap()
}

fn ctx(transport: Transport) -> QueryContext {
    QueryContext {
        src: IpAddr::V4(Ipv4Addr::LOCALHOST),
        transport,
        forwarding: false,
        transfer_allowed: false,
    }
}

fn query(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// The answer as text: rcode and flags, then one line per record.
fn render(snap: &Snapshot, q: &[u8]) -> String {
    let mut out = Vec::new();
    assert_eq!(
        snap.respond(q, &ctx(Transport::Udp), &mut out),
        Outcome::Reply
    );
    let m = Message::from_vec(&out).expect("our answer decodes");
    let mut s = format!(
        "{}{}{}",
        m.metadata.response_code,
        if m.metadata.authoritative { " aa" } else { "" },
        if m.metadata.truncation { " tc" } else { "" }
    );
    for (section, records) in [
        ("an", &m.answers),
        ("ns", &m.authorities),
        ("ar", &m.additionals),
    ] {
        for r in records.iter() {
            s.push_str(&format!("\n{section} {r}"));
        }
    }
    s
}

fn check(name: &str, rtype: RecordType, expected: &str) {
    let got = render(&snapshot(), &query(name, rtype, false));
    assert_eq!(got, expected.trim(), "{name} {rtype}\n--- got ---\n{got}");
}

#[test]
fn answers() {
    check(
        "node1.lab.test.",
        RecordType::A,
        "No Error aa\nan node1.lab.test. 60 IN A 198.18.1.1",
    );
    check(
        "Node1.LAB.test.",
        RecordType::AAAA,
        "No Error aa\nan Node1.LAB.test. 60 IN AAAA 2001:db8:100::1",
    );
    check(
        "www.lab.test.",
        RecordType::A,
        "No Error aa\nan www.lab.test. 60 IN CNAME node1.lab.test.\nan node1.lab.test. 60 IN A 198.18.1.1",
    );
    check(
        "www.lab.test.",
        RecordType::TXT,
        "No Error aa\nan www.lab.test. 60 IN CNAME node1.lab.test.\n\
         ns lab.test. 60 IN SOA admin.lab.test. hostmaster.lab.test. 7 3600 600 604800 60",
    );
    check(
        "2.1.18.198.in-addr.arpa.",
        RecordType::PTR,
        "No Error aa\nan 2.1.18.198.in-addr.arpa. 60 IN PTR node2.lab.test.",
    );
    check(
        "node2.lab.test.",
        RecordType::AAAA,
        "No Error aa\nns lab.test. 60 IN SOA admin.lab.test. hostmaster.lab.test. 7 3600 600 604800 60",
    );
    check(
        "x.node2.lab.test.",
        RecordType::A,
        "Non-Existent Domain aa\nns lab.test. 60 IN SOA admin.lab.test. hostmaster.lab.test. 7 3600 600 604800 60",
    );
    check(
        "0.0.1.0.8.b.d.0.1.0.0.2.ip6.arpa.",
        RecordType::PTR,
        "No Error aa\nns 8.b.d.0.1.0.0.2.ip6.arpa. 60 IN SOA admin.lab.test. hostmaster.lab.test. 7 3600 600 604800 60",
    );
    check("example.com.", RecordType::A, "Query Refused");
    check("lab.test.", RecordType::AXFR, "Query Refused");
}

#[test]
fn one_batch_changes_forward_reverse_and_serial_together() {
    let zones = Zones::new(zone_config(), hosts(), u32::MAX).unwrap();
    let before = zones.snapshot();
    let serial = zones
        .apply([
            Change::Remove("node2.lab.test".parse().unwrap()),
            Change::Upsert(
                Host::new("node3.lab.test".parse().unwrap()).with_v4("198.18.1.3".parse().unwrap()),
            ),
        ])
        .unwrap();
    assert_eq!(serial, 0, "RFC 1982: the serial wraps");
    let after = zones.snapshot();
    // The old snapshot is untouched; the new one has all of the change.
    assert!(
        render(&before, &query("node2.lab.test.", RecordType::A, false)).contains("198.18.1.2")
    );
    assert!(render(&after, &query("node3.lab.test.", RecordType::A, false)).contains("198.18.1.3"));
    assert!(
        render(
            &after,
            &query("3.1.18.198.in-addr.arpa.", RecordType::PTR, false)
        )
        .contains("node3.lab.test.")
    );
    assert!(
        render(
            &after,
            &query("2.1.18.198.in-addr.arpa.", RecordType::PTR, false)
        )
        .starts_with("Non-Existent Domain")
    );
    assert!(render(&after, &query("lab.test.", RecordType::SOA, false)).contains(" 0 3600 600"));
    // A bad batch changes nothing.
    let bad = zones.apply([Change::Upsert(Host::new("elsewhere.test".parse().unwrap()))]);
    assert!(matches!(bad, Err(crowbar_dns::DnsError::OutOfZone { .. })));
    assert_eq!(zones.serial(), 0);
}

#[test]
fn large_rrset_truncates_to_an_empty_answer() {
    let mut big = Host::new("big.lab.test".parse().unwrap());
    for i in 1..=60u8 {
        big = big.with_v4(Ipv4Addr::new(198, 18, 50, i));
    }
    let snap = Snapshot::build(zone_config(), &[big], 1).unwrap();
    assert_eq!(
        render(&snap, &query("big.lab.test.", RecordType::A, false)),
        "No Error aa tc"
    );
    let mut out = Vec::new();
    snap.respond(
        &query("big.lab.test.", RecordType::A, true),
        &ctx(Transport::Udp),
        &mut out,
    );
    assert_eq!(Message::from_vec(&out).unwrap().answers.len(), 60);
    snap.respond(
        &query("big.lab.test.", RecordType::A, false),
        &ctx(Transport::Tcp),
        &mut out,
    );
    assert_eq!(Message::from_vec(&out).unwrap().answers.len(), 60);
}

/// Whatever the bytes: no panic, and any reply is a well-formed response to the same id.
fn assert_sane(snap: &Snapshot, bytes: &[u8]) {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut out = Vec::new();
        match snap.respond(bytes, &ctx(transport), &mut out) {
            Outcome::Reply => {
                assert!(out.len() >= 12);
                assert_eq!(out[..2], bytes[..2]);
                assert_ne!(out[2] & 0x80, 0, "QR set");
                if transport == Transport::Udp {
                    assert!(out.len() <= 1232);
                }
                if out[4..6] == [0, 1] {
                    Message::from_vec(&out).expect("a reply with a question decodes");
                }
            }
            Outcome::Drop => assert!(bytes.len() < 12 || bytes[2] & 0x80 != 0),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn valid_query() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "node1.lab.test.",
        "NODE2.Lab.Test.",
        "www.lab.test.",
        "lab.test.",
        "nohost.lab.test.",
        "1.1.18.198.in-addr.arpa.",
        "example.com.",
    ]);
    let types = prop::sample::select(vec![
        RecordType::A,
        RecordType::AAAA,
        RecordType::PTR,
        RecordType::SOA,
        RecordType::NS,
        RecordType::ANY,
        RecordType::AXFR,
        RecordType::IXFR,
        RecordType::CNAME,
    ]);
    (names, types, any::<bool>()).prop_map(|(n, t, e)| query(n, t, e))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        assert_sane(&snapshot(), &bytes);
    }

    #[test]
    fn truncated_queries_get_formerr_or_nothing(q in valid_query(), cut in 0usize..100) {
        let cut = cut.min(q.len());
        assert_sane(&snapshot(), &q[..cut]);
    }

    #[test]
    fn mutated_queries_never_panic(
        q in valid_query(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        tail in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut q = q;
        for (i, b) in flips {
            let at = i.index(q.len());
            q[at] = b;
        }
        q.extend_from_slice(&tail);
        assert_sane(&snapshot(), &q);
    }
}

#[test]
fn oversized_datagrams_are_handled() {
    let snap = snapshot();
    let mut q = query("node1.lab.test.", RecordType::A, true);
    q.resize(65_535, 0xab);
    assert_sane(&snap, &q);
    assert_sane(&snap, &vec![0xff; 65_535]);
}
