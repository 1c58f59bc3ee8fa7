//! The server core against scripted clients: every RFC 2131 path, reservations, the pool,
//! persistence and expiry.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crowbar_pxe::{
    Bootenv, ClientPacket, Destination, HostEntry, HostIndex, LeaseChange, LeaseState, LeaseStore,
    MacAddr, MemLeaseStore, Outcome, ParsedReply, ReplyKind, Server, ServerConfig, Silence,
    SubnetConfig,
};

const US: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const RELAY_NET_US: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 254);
const NODE: MacAddr = MacAddr([0x52, 0x54, 0, 0xaa, 0xbb, 1]);
const LOCAL: MacAddr = MacAddr([0x52, 0x54, 0, 0xaa, 0xbb, 2]);
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);

fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn mac(n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([2, 0, b[0], b[1], b[2], b[3]])
}

fn subnet(net: &str, us: Ipv4Addr, pool: Option<(u8, u8)>) -> SubnetConfig {
    let o = us.octets();
    SubnetConfig {
        net: net.parse().unwrap(),
        server_ip: us,
        pool: pool
            .map(|(a, b)| Ipv4Addr::new(o[0], o[1], o[2], a)..=Ipv4Addr::new(o[0], o[1], o[2], b)),
        routers: vec![us],
        dns_servers: vec![us],
        domain: Some("example.com".into()),
        pool_lease_secs: 60,
        reserved_lease_secs: 3600,
    }
}

fn server_with(pool: (u8, u8)) -> Server {
    let hosts = HostIndex::new(vec![
        HostEntry {
            fqdn: "node1.example.com".into(),
            macs: vec![NODE],
            address: "10.77.0.50/24".parse().unwrap(),
            bootenv: Bootenv::Sledgehammer,
        },
        HostEntry {
            fqdn: "disk.example.com".into(),
            macs: vec![LOCAL],
            address: "10.77.0.51/24".parse().unwrap(),
            bootenv: Bootenv::Local,
        },
    ])
    .unwrap();
    let mut cfg = ServerConfig::single(subnet("10.77.0.0/24", US, Some(pool)));
    cfg.subnets
        .push(subnet("10.88.0.0/24", RELAY_NET_US, Some((10, 20))));
    Server::new(cfg, Arc::new(hosts)).unwrap()
}

fn server() -> Server {
    server_with((100, 199))
}

fn reply(out: Outcome) -> (crowbar_pxe::Reply, ParsedReply) {
    match out {
        Outcome::Reply(r) => {
            let p = ParsedReply::parse(&r.bytes).expect("reply decodes");
            (r, p)
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn dora(s: &mut Server, m: MacAddr, now: SystemTime) -> Ipv4Addr {
    let (offer, _) = reply(s.handle(&ClientPacket::discover(m, 1).build(), US, now));
    let (ack, p) = reply(s.handle(
        &ClientPacket::request(m, 2, US, offer.yiaddr).build(),
        US,
        now,
    ));
    assert_eq!(ack.kind, ReplyKind::Ack);
    p.yiaddr
}

#[test]
fn reserved_node_gets_its_address_hostname_and_pxe_options() {
    let mut s = server();
    let (offer, p) = reply(
        s.handle(
            &ClientPacket::discover(NODE, 7)
                .pxe_uefi_x64()
                .broadcast()
                .build(),
            US,
            t(0),
        ),
    );
    assert_eq!(offer.kind, ReplyKind::Offer);
    assert_eq!(offer.to, Destination::Broadcast);
    assert!(offer.bytes.len() >= 300, "padded to 300 bytes");
    assert_eq!(p.yiaddr, NODE_IP);
    assert_eq!(p.siaddr, US);
    assert_eq!(p.file.as_deref(), Some("ipxe.efi"));
    assert_eq!(p.tftp_server_name.as_deref(), Some("10.77.0.1"));
    assert_eq!(p.vendor_class.as_deref(), Some("PXEClient"));
    assert_eq!(p.lease_secs, Some(3600));
    assert_eq!(p.server_id, Some(US));
    assert_eq!(p.hostname.as_deref(), Some("node1"));
    let (ack, p) = reply(
        s.handle(
            &ClientPacket::request(NODE, 8, US, NODE_IP)
                .pxe_uefi_x64()
                .build(),
            US,
            t(1),
        ),
    );
    assert_eq!(ack.kind, ReplyKind::Ack);
    assert_eq!(p.yiaddr, NODE_IP);
    // No broadcast flag, no ciaddr: unicast to the new address at the client's MAC.
    assert_eq!(
        ack.to,
        Destination::Hardware {
            ip: NODE_IP,
            mac: NODE
        }
    );
    assert_eq!(s.lease_of(NODE).unwrap().state, LeaseState::Bound);
    assert_eq!(s.lease_of(NODE).unwrap().expires, 1_800_000_000 + 1 + 3600);
}

#[test]
fn ipxe_client_gets_its_script_and_local_node_no_boot_options() {
    let mut s = server();
    let (_, p) = reply(s.handle(
        &ClientPacket::discover(NODE, 1).arch(&[0]).ipxe().build(),
        US,
        t(0),
    ));
    assert_eq!(p.file.as_deref(), Some("ipxe/52-54-00-aa-bb-01.ipxe"));
    let (_, p) = reply(s.handle(
        &ClientPacket::discover(LOCAL, 1).pxe_uefi_x64().build(),
        US,
        t(0),
    ));
    assert_eq!(p.yiaddr, Ipv4Addr::new(10, 77, 0, 51));
    assert_eq!(
        (p.file, p.siaddr, p.vendor_class),
        (None, Ipv4Addr::UNSPECIFIED, None)
    );
}

#[test]
fn unknown_machine_gets_a_pool_address_with_a_short_lease() {
    let mut s = server();
    let ip = dora(&mut s, mac(1), t(0));
    assert_eq!(ip, Ipv4Addr::new(10, 77, 0, 100));
    assert_eq!(s.lease(ip).unwrap().expires, 1_800_000_060);
    // A second DISCOVER from the same client offers the same address again.
    let (_, p) = reply(s.handle(&ClientPacket::discover(mac(1), 3).build(), US, t(5)));
    assert_eq!(p.yiaddr, ip);
    assert_eq!(dora(&mut s, mac(2), t(0)), Ipv4Addr::new(10, 77, 0, 101));
}

#[test]
fn requested_address_in_discover_is_honoured_when_free() {
    let mut s = server();
    let want = Ipv4Addr::new(10, 77, 0, 150);
    let (_, p) = reply(s.handle(
        &ClientPacket::discover(mac(1), 1).requested_ip(want).build(),
        US,
        t(0),
    ));
    assert_eq!(p.yiaddr, want);
    // Taken now: the next client asking for it gets another one.
    let (_, p) = reply(s.handle(
        &ClientPacket::discover(mac(2), 1).requested_ip(want).build(),
        US,
        t(0),
    ));
    assert_eq!(p.yiaddr, Ipv4Addr::new(10, 77, 0, 100));
    // A reserved address is never handed to someone else.
    let (_, p) = reply(
        s.handle(
            &ClientPacket::discover(mac(3), 1)
                .requested_ip(NODE_IP)
                .build(),
            US,
            t(0),
        ),
    );
    assert_eq!(p.yiaddr, Ipv4Addr::new(10, 77, 0, 101));
}

#[test]
fn selecting_another_server_withdraws_our_offer() {
    let mut s = server();
    let (offer, _) = reply(s.handle(&ClientPacket::discover(mac(1), 1).build(), US, t(0)));
    let out = s.handle(
        &ClientPacket::request(mac(1), 2, Ipv4Addr::new(10, 77, 0, 2), offer.yiaddr).build(),
        US,
        t(1),
    );
    assert_eq!(out, Outcome::Silent(Silence::OtherServer));
    assert!(s.lease(offer.yiaddr).is_none());
}

#[test]
fn selecting_a_different_address_than_offered_is_naked() {
    let mut s = server();
    reply(s.handle(&ClientPacket::discover(mac(1), 1).build(), US, t(0)));
    let (nak, p) = reply(s.handle(
        &ClientPacket::request(mac(1), 2, US, Ipv4Addr::new(10, 77, 0, 160)).build(),
        US,
        t(1),
    ));
    assert_eq!(nak.kind, ReplyKind::Nak);
    assert_eq!(nak.to, Destination::Broadcast);
    assert_eq!(p.yiaddr, Ipv4Addr::UNSPECIFIED);
}

#[test]
fn init_reboot_acks_the_known_address_and_naks_wrong_subnet_or_wrong_address() {
    let mut s = server();
    let (ack, _) = reply(s.handle(
        &ClientPacket::init_reboot(NODE, 1, NODE_IP).build(),
        US,
        t(0),
    ));
    assert_eq!(ack.kind, ReplyKind::Ack);
    // A reserved node asking for its old pool address is told no (opnsense#7431).
    let (nak, _) = reply(s.handle(
        &ClientPacket::init_reboot(NODE, 2, Ipv4Addr::new(10, 77, 0, 120)).build(),
        US,
        t(0),
    ));
    assert_eq!(nak.kind, ReplyKind::Nak);
    // Wrong subnet: a laptop that moved.
    let (nak, p) = reply(s.handle(
        &ClientPacket::init_reboot(mac(9), 3, Ipv4Addr::new(192, 168, 1, 10)).build(),
        US,
        t(0),
    ));
    assert_eq!((nak.kind, p.server_id), (ReplyKind::Nak, Some(US)));
}

#[test]
fn non_authoritative_server_stays_silent_for_clients_it_does_not_know() {
    let mut cfg = ServerConfig::single(subnet("10.77.0.0/24", US, Some((100, 199))));
    cfg.authoritative = false;
    let mut s = Server::new(cfg, Arc::new(HostIndex::default())).unwrap();
    let out = s.handle(
        &ClientPacket::init_reboot(mac(1), 1, Ipv4Addr::new(10, 77, 0, 130)).build(),
        US,
        t(0),
    );
    assert_eq!(out, Outcome::Silent(Silence::NoRecord));
}

#[test]
fn renewing_is_unicast_to_ciaddr_and_extends_the_lease() {
    let mut s = server();
    let ip = dora(&mut s, mac(1), t(0));
    let (ack, p) = reply(s.handle(&ClientPacket::renew(mac(1), 5, ip).build(), US, t(30)));
    assert_eq!(ack.kind, ReplyKind::Ack);
    assert_eq!(ack.to, Destination::Unicast(SocketAddrV4::new(ip, 68)));
    assert_eq!(p.yiaddr, ip);
    assert_eq!(s.lease(ip).unwrap().expires, 1_800_000_090);
    // Rebinding someone else's address: NAK.
    let (nak, _) = reply(s.handle(
        &ClientPacket::renew(mac(2), 6, ip).broadcast().build(),
        US,
        t(31),
    ));
    assert_eq!(nak.kind, ReplyKind::Nak);
}

#[test]
fn release_frees_the_address_for_the_next_client() {
    let mut s = server();
    let ip = dora(&mut s, mac(1), t(0));
    let other = dora(&mut s, mac(2), t(0));
    assert_eq!(
        s.handle(&ClientPacket::release(mac(1), 9, US, ip).build(), US, t(10)),
        Outcome::Silent(Silence::Released)
    );
    assert!(s.lease_of(mac(1)).is_none());
    // A release for an address the client does not hold changes nothing.
    s.handle(
        &ClientPacket::release(mac(1), 9, US, other).build(),
        US,
        t(10),
    );
    assert!(s.lease(other).is_some());
    assert_eq!(dora(&mut s, mac(3), t(11)), ip);
    assert_eq!(s.stats().releases, 1);
}

#[test]
fn declined_address_goes_on_probation_and_comes_back_later() {
    let mut s = server_with((100, 101));
    let ip = dora(&mut s, mac(1), t(0));
    s.handle(&ClientPacket::decline(mac(1), 3, US, ip).build(), US, t(1));
    let lease = s.lease(ip).unwrap();
    assert_eq!((lease.state, lease.mac), (LeaseState::Probation, None));
    assert_eq!(dora(&mut s, mac(1), t(2)), Ipv4Addr::new(10, 77, 0, 101));
    assert_eq!(
        s.handle(&ClientPacket::discover(mac(2), 1).build(), US, t(3)),
        Outcome::Silent(Silence::PoolExhausted)
    );
    // Probation (600 s) over: the address is handed out again.
    let (_, p) = reply(s.handle(&ClientPacket::discover(mac(2), 1).build(), US, t(602)));
    assert_eq!(p.yiaddr, ip);
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut s = server();
    let ciaddr = Ipv4Addr::new(10, 77, 0, 7);
    let (ack, p) = reply(s.handle(&ClientPacket::inform(mac(1), 1, ciaddr).build(), US, t(0)));
    assert_eq!(ack.kind, ReplyKind::Ack);
    assert_eq!(ack.to, Destination::Unicast(SocketAddrV4::new(ciaddr, 68)));
    assert_eq!((p.yiaddr, p.lease_secs), (Ipv4Addr::UNSPECIFIED, None));
    assert!(s.lease(ciaddr).is_none());
}

#[test]
fn relayed_requests_are_served_from_the_relay_subnet_and_answered_to_the_relay() {
    let mut s = server();
    let (offer, p) = reply(s.handle(
        &ClientPacket::discover(mac(1), 1).relayed_by(RELAY).build(),
        US,
        t(0),
    ));
    assert_eq!(offer.to, Destination::Relay(SocketAddrV4::new(RELAY, 67)));
    assert_eq!(p.yiaddr, Ipv4Addr::new(10, 88, 0, 10));
    assert_eq!(p.giaddr, RELAY);
    assert_eq!(p.server_id, Some(RELAY_NET_US));
    let (nak, p) = reply(
        s.handle(
            &ClientPacket::init_reboot(mac(1), 2, Ipv4Addr::new(10, 77, 0, 100))
                .relayed_by(RELAY)
                .build(),
            US,
            t(0),
        ),
    );
    assert_eq!(nak.kind, ReplyKind::Nak);
    assert_eq!(nak.to, Destination::Relay(SocketAddrV4::new(RELAY, 67)));
    assert!(p.broadcast, "a NAK through a relay sets the broadcast bit");
    // Option 82 is copied into the reply (RFC 3046).
    let (_, p) = reply(
        s.handle(
            &ClientPacket::discover(mac(2), 4)
                .relayed_by(RELAY)
                .circuit_id(b"switch7/port12")
                .build(),
            US,
            t(0),
        ),
    );
    assert_eq!(p.circuit_id.as_deref(), Some(&b"switch7/port12"[..]));
    let unknown_relay = ClientPacket::discover(mac(1), 3)
        .relayed_by(Ipv4Addr::new(172, 16, 0, 1))
        .build();
    assert_eq!(
        s.handle(&unknown_relay, US, t(0)),
        Outcome::Silent(Silence::NoSubnet)
    );
}

#[test]
fn leases_expire_and_unrequested_offers_are_reclaimed() {
    let mut s = server();
    let ip = dora(&mut s, mac(1), t(0));
    reply(s.handle(&ClientPacket::discover(mac(2), 1).build(), US, t(0)));
    assert_eq!(s.expire(t(30)), 1, "the offer to mac 2 ran out after 30 s");
    assert!(s.lease(ip).is_some());
    assert_eq!(s.expire(t(60)), 1);
    assert!(s.lease(ip).is_none());
    assert_eq!(s.stats().expired, 2);
}

#[test]
fn leases_survive_a_restart_through_the_store() {
    let mut store = MemLeaseStore::new();
    let mut s = server();
    let ip = dora(&mut s, mac(1), t(0));
    store.apply(&s.take_changes()).unwrap();
    assert!(matches!(store.get(ip), Some(l) if l.state == LeaseState::Bound));

    let mut again = server();
    again.load_leases(store.load().unwrap(), t(10));
    assert_eq!(again.lease_of(mac(1)).unwrap().ip, ip);
    // The restored lease is not handed to anyone else, and its owner keeps it.
    assert_eq!(
        dora(&mut again, mac(2), t(11)),
        Ipv4Addr::new(10, 77, 0, 101)
    );
    let (ack, _) =
        reply(again.handle(&ClientPacket::init_reboot(mac(1), 1, ip).build(), US, t(12)));
    assert_eq!(ack.kind, ReplyKind::Ack);
    // Loading after expiry drops the lease and tells the store.
    let mut late = server();
    late.load_leases(store.load().unwrap(), t(1000));
    assert!(late.lease(ip).is_none());
    assert_eq!(late.take_changes(), vec![LeaseChange::Remove(ip)]);
}

#[test]
fn invalid_configurations_are_refused_with_the_offending_values() {
    let bad_pool = ServerConfig::single(SubnetConfig {
        pool: Some(Ipv4Addr::new(10, 77, 1, 1)..=Ipv4Addr::new(10, 77, 1, 9)),
        ..subnet("10.77.0.0/24", US, None)
    });
    match Server::new(bad_pool, Arc::new(HostIndex::default())) {
        Err(crowbar_pxe::PxeError::OutsideSubnet { what, addr, .. }) => {
            assert_eq!((what, addr), ("pool start", Ipv4Addr::new(10, 77, 1, 1)));
        }
        other => panic!("expected OutsideSubnet, got {other:?}"),
    }
    let with_broadcast = ServerConfig::single(SubnetConfig {
        pool: Some(Ipv4Addr::new(10, 77, 0, 200)..=Ipv4Addr::new(10, 77, 0, 255)),
        ..subnet("10.77.0.0/24", US, None)
    });
    match Server::new(with_broadcast, Arc::new(HostIndex::default())) {
        Err(crowbar_pxe::PxeError::InvalidConfig { field, .. }) => {
            assert_eq!(field, "subnet 10.77.0.0/24 pool");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    let mut overlap = ServerConfig::single(subnet("10.77.0.0/16", US, None));
    overlap
        .subnets
        .push(subnet("10.77.5.0/24", Ipv4Addr::new(10, 77, 5, 1), None));
    assert!(matches!(
        Server::new(overlap, Arc::new(HostIndex::default())),
        Err(crowbar_pxe::PxeError::OverlappingSubnets { .. })
    ));
}

#[test]
fn counters_render_for_prometheus() {
    let mut s = server();
    dora(&mut s, mac(1), t(0));
    s.handle(&[1, 2, 3], US, t(0));
    s.handle(
        &ClientPacket::release(mac(1), 9, US, Ipv4Addr::new(10, 77, 0, 100)).build(),
        US,
        t(1),
    );
    let text = s.stats().to_prometheus();
    for line in [
        "crowbar_dhcp_received_total 4",
        "crowbar_dhcp_offers_total 1",
        "crowbar_dhcp_acks_total 1",
        "crowbar_dhcp_releases_total 1",
        "crowbar_dhcp_dropped_total{reason=\"truncated packet\"} 1",
        "crowbar_dhcp_silent_total{reason=\"Released\"} 1",
        "# TYPE crowbar_dhcp_naks_total counter",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn replies_fit_the_clients_maximum_message_size() {
    let cfg = ServerConfig::single(SubnetConfig {
        dns_servers: (1..=100).map(|i| Ipv4Addr::new(10, 77, 1, i)).collect(),
        ..subnet("10.77.0.0/24", US, Some((100, 199)))
    });
    let mut s = Server::new(cfg, Arc::new(HostIndex::default())).unwrap();
    // No option 57: 576 bytes with IP and UDP headers; the long DNS list is shed.
    let (offer, _) = reply(s.handle(&ClientPacket::discover(mac(1), 1).build(), US, t(0)));
    assert!(offer.bytes.len() + 28 <= 576, "{} bytes", offer.bytes.len());
    // A client that accepts 1472 bytes (iPXE) gets everything.
    let big = ClientPacket::discover(mac(2), 1)
        .max_message_size(1472)
        .build();
    let (offer, _) = reply(s.handle(&big, US, t(0)));
    assert!(offer.bytes.len() > 548, "{} bytes", offer.bytes.len());
}
