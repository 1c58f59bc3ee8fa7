//! Feeds arbitrary bytes to the query path of a small snapshot, over UDP and TCP, with and
//! without forwarding and transfers allowed. The target fails if anything panics, or if a
//! reply breaks the basic invariants (same id, QR set, UDP size limit).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use crowbar_dns::{Host, Outcome, QueryContext, Snapshot, Transport, ZoneConfig};
use libfuzzer_sys::fuzz_target;

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let cfg = ZoneConfig::from_admin_fqdn("admin.lab.test".parse().unwrap())
            .unwrap()
            .with_reverse([
                "198.18.0.0/16".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
                "192.168.7.64/26".parse().unwrap(),
            ]);
        let hosts = [
            Host::new("admin.lab.test".parse().unwrap()).with_v4("198.18.0.1".parse().unwrap()),
            Host::new("node1.lab.test".parse().unwrap())
                .with_v4("198.18.1.1".parse().unwrap())
                .with_v6("2001:db8:100::1".parse().unwrap())
                .with_alias("www.lab.test".parse().unwrap()),
            Host::new("small.lab.test".parse().unwrap()).with_v4("192.168.7.70".parse().unwrap()),
        ];
        Snapshot::build(cfg, &hosts, 1).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let snap = snapshot();
    let mut out = Vec::new();
    for transport in [Transport::Udp, Transport::Tcp] {
        for flag in [false, true] {
            let ctx = QueryContext {
                src: IpAddr::V4(Ipv4Addr::LOCALHOST),
                transport,
                forwarding: flag,
                transfer_allowed: flag,
            };
            match snap.respond(data, &ctx, &mut out) {
                Outcome::Reply => {
                    assert!(out.len() >= 12 && out[..2] == data[..2] && out[2] & 0x80 != 0);
                    if transport == Transport::Udp {
                        assert!(out.len() <= usize::from(crowbar_dns::MAX_UDP_PAYLOAD));
                    }
                }
                Outcome::Transfer(zone) => {
                    let _ = snap.transfer(zone, data);
                }
                _ => {}
            }
        }
    }
});
