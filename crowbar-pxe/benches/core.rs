//! The server core's hot path: a full DORA (DISCOVER→OFFER, REQUEST→ACK) per new client,
//! packets encoded and decoded, pool allocation included, lease changes drained.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use crowbar_pxe::{ClientPacket, HostIndex, MacAddr, Outcome, Server, ServerConfig, SubnetConfig};

const US: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn server() -> Server {
    Server::new(
        ServerConfig::single(SubnetConfig {
            net: "10.77.0.0/16".parse().unwrap(),
            server_ip: US,
            pool: Some(Ipv4Addr::new(10, 77, 1, 1)..=Ipv4Addr::new(10, 77, 255, 254)),
            routers: vec![US],
            dns_servers: vec![US],
            domain: Some("bench.test".into()),
            pool_lease_secs: 3600,
            reserved_lease_secs: 3600,
        }),
        Arc::new(HostIndex::default()),
    )
    .unwrap()
}

fn dora(c: &mut Criterion) {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut s = server();
    let mut n: u32 = 0;
    c.bench_function("dora_new_client", |b| {
        b.iter(|| {
            n = (n + 1) % 60_000;
            if n == 0 {
                s = server();
            }
            let k = n.to_be_bytes();
            let mac = MacAddr([2, 0, k[0], k[1], k[2], k[3]]);
            let relay = Ipv4Addr::new(10, 77, 0, 2);
            let d = ClientPacket::discover(mac, n).relayed_by(relay).build();
            let Outcome::Reply(offer) = s.handle(&d, US, now) else {
                panic!("no offer")
            };
            let r = ClientPacket::request(mac, n, US, offer.yiaddr)
                .relayed_by(relay)
                .build();
            black_box(s.handle(&r, US, now));
            black_box(s.take_changes());
        })
    });
    c.bench_function("decode_drop_malformed", |b| {
        let mut bad = ClientPacket::discover(MacAddr([2, 0, 0, 0, 0, 1]), 1).build();
        bad.truncate(250);
        bad[245] = 200;
        b.iter(|| black_box(s.handle(black_box(&bad), US, now)))
    });
}

criterion_group!(benches, dora);
criterion_main!(benches);
