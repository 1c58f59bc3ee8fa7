//! Property tests: random and damaged packets never panic and are counted; no address is
//! ever held by two clients, whatever the clients do.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crowbar_pxe::{
    ClientPacket, HostIndex, LeaseState, MacAddr, Outcome, ParsedReply, ReplyKind, Server,
    ServerConfig, SubnetConfig,
};
use proptest::prelude::*;

const US: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);

fn server() -> Server {
    Server::new(
        ServerConfig::single(SubnetConfig {
            net: "10.9.0.0/24".parse().unwrap(),
            server_ip: US,
            pool: Some(Ipv4Addr::new(10, 9, 0, 10)..=Ipv4Addr::new(10, 9, 0, 40)),
            routers: vec![US],
            dns_servers: vec![],
            domain: None,
            pool_lease_secs: 60,
            reserved_lease_secs: 600,
        }),
        Arc::new(HostIndex::default()),
    )
    .unwrap()
}

fn valid_packet() -> Vec<u8> {
    ClientPacket::discover(MacAddr([2, 0, 0, 0, 0, 1]), 1)
        .pxe_uefi_x64()
        .ipxe()
        .build()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let mut s = server();
        let _ = s.handle(&bytes, US, UNIX_EPOCH + Duration::from_secs(1_000_000));
    }

    #[test]
    fn truncated_or_corrupted_packets_are_dropped_or_answered_never_panic(
        cut in 0usize..400,
        flips in proptest::collection::vec((240usize..400, any::<u8>()), 0..6),
    ) {
        let mut bytes = valid_packet();
        for (at, v) in flips {
            if at < bytes.len() {
                bytes[at] = v;
            }
        }
        bytes.truncate(cut.max(1));
        let mut s = server();
        match s.handle(&bytes, US, UNIX_EPOCH + Duration::from_secs(1_000_000)) {
            Outcome::Dropped(_) => prop_assert_eq!(s.stats().dropped_total(), 1),
            Outcome::Reply(r) => prop_assert!(ParsedReply::parse(&r.bytes).is_some()),
            Outcome::Silent(_) => {}
        }
    }

    #[test]
    fn no_address_is_ever_held_by_two_clients(
        ops in proptest::collection::vec((0u8..5, 0u8..40, 0u64..30), 1..300),
    ) {
        let mut s = server();
        let mut now = 1_000_000u64;
        let mut offered: HashMap<MacAddr, Ipv4Addr> = HashMap::new();
        for (op, client, dt) in ops {
            now += dt;
            let t = UNIX_EPOCH + Duration::from_secs(now);
            let mac = MacAddr([2, 0, 0, 0, 0, client]);
            let pkt = match op {
                0 => ClientPacket::discover(mac, 1).build(),
                1 => ClientPacket::request(mac, 2, US, offered.get(&mac).copied().unwrap_or(Ipv4Addr::new(10, 9, 0, 10))).build(),
                2 => ClientPacket::release(mac, 3, US, offered.get(&mac).copied().unwrap_or(Ipv4Addr::new(10, 9, 0, 11))).build(),
                3 => ClientPacket::decline(mac, 4, US, offered.get(&mac).copied().unwrap_or(Ipv4Addr::new(10, 9, 0, 12))).build(),
                _ => ClientPacket::init_reboot(mac, 5, Ipv4Addr::new(10, 9, 0, 10 + client % 31)).build(),
            };
            if let Outcome::Reply(r) = s.handle(&pkt, US, t)
                && matches!(r.kind, ReplyKind::Offer | ReplyKind::Ack) {
                    offered.insert(mac, r.yiaddr);
                    // The lease table agrees: this address belongs to this client only.
                    let lease = s.lease(r.yiaddr).unwrap();
                    prop_assert_eq!(lease.mac, Some(mac));
                }
            let mut owner: HashMap<Ipv4Addr, MacAddr> = HashMap::new();
            let mut held: HashMap<MacAddr, Ipv4Addr> = HashMap::new();
            for l in s.leases() {
                if l.state == LeaseState::Probation {
                    prop_assert!(l.mac.is_none());
                    continue;
                }
                let m = l.mac.unwrap();
                prop_assert!(owner.insert(l.ip, m).is_none());
                prop_assert!(held.insert(m, l.ip).is_none(), "client {} holds two addresses", m);
            }
        }
    }
}
