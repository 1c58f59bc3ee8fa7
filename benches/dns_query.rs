//! The DNS query path without sockets: `Snapshot::respond` on 1,000- and 20,000-host zones
//! (positive, NODATA, NXDOMAIN, PTR), and a full snapshot rebuild of 20,000 hosts (what every
//! change costs before it is visible).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use crowbar::dns::{Host, Outcome, QueryContext, Snapshot, Transport, ZoneConfig};

fn hosts(n: u32) -> Vec<Host> {
    (0..n)
        .map(|i| {
            let h = Host::new(format!("node{i:05}.prov.test").parse().expect("name")).with_v4(
                Ipv4Addr::new(198, 18, 1 + (i / 250) as u8, 1 + (i % 250) as u8),
            );
            if i % 2 == 0 {
                h.with_v6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0x100,
                    0,
                    0,
                    0,
                    0,
                    i as u16 + 1,
                ))
            } else {
                h
            }
        })
        .collect()
}

fn config() -> ZoneConfig {
    ZoneConfig::from_admin_fqdn("ns1.prov.test".parse().expect("name"))
        .expect("config")
        .with_reverse([
            "198.18.0.0/16".parse().expect("net"),
            "2001:db8::/32".parse().expect("net"),
        ])
}

fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn bench(c: &mut Criterion) {
    let ctx = QueryContext {
        src: IpAddr::V4(Ipv4Addr::LOCALHOST),
        transport: Transport::Udp,
        forwarding: false,
        transfer_allowed: false,
    };
    for n in [1_000u32, 20_000] {
        let hosts = hosts(n);
        let snap = Snapshot::build(config(), &hosts, 1).expect("snapshot");
        let cases = [
            ("a", query("node00777.prov.test", 1)),
            ("nodata_aaaa", query("node00777.prov.test", 28)),
            ("nxdomain", query("nohost00777.prov.test", 1)),
            ("ptr_v4", query("28.4.18.198.in-addr.arpa", 12)),
        ];
        let mut out = Vec::with_capacity(1500);
        for (label, q) in &cases {
            c.bench_function(&format!("dns_respond_{label}_{n}_hosts"), |b| {
                b.iter(|| {
                    let o = snap.respond(black_box(q), &ctx, &mut out);
                    assert_eq!(o, Outcome::Reply);
                })
            });
        }
    }
    let hosts = hosts(20_000);
    c.bench_function("dns_snapshot_build_20000_hosts", |b| {
        b.iter(|| Snapshot::build(config(), black_box(&hosts), 2).expect("snapshot"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
