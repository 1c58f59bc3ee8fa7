//! The socket layer on loopback (unprivileged ports, replies to the sender): DORA over UDP,
//! malformed packets survived, leases persisted to SQLite by the writer thread.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use crowbar_pxe::{
    ClientPacket, DhcpService, HostIndex, LeaseState, LeaseStore, LeaseWriter, Listener, MacAddr,
    ParsedReply, ReplyKind, Server, ServerConfig, ServiceConfig, SqliteLeaseStore, SubnetConfig,
};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn exchange(sock: &UdpSocket, to: std::net::SocketAddr, packet: &[u8]) -> ParsedReply {
    sock.send_to(packet, to).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("a reply within the read timeout");
    ParsedReply::parse(&buf[..n]).unwrap()
}

#[test]
fn dora_over_loopback_persists_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leases.sqlite");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = Server::new(
        ServerConfig::single(SubnetConfig {
            net: "127.0.0.0/8".parse().unwrap(),
            server_ip: LO,
            pool: Some(Ipv4Addr::new(127, 0, 1, 1)..=Ipv4Addr::new(127, 0, 1, 9)),
            routers: vec![],
            dns_servers: vec![],
            domain: None,
            pool_lease_secs: 600,
            reserved_lease_secs: 600,
        }),
        Arc::new(HostIndex::default()),
    )
    .unwrap();
    let writer = LeaseWriter::spawn(Box::new(SqliteLeaseStore::open(&db).unwrap()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        rt.block_on(async move {
            let svc = DhcpService::bind(ServiceConfig {
                listeners: vec![Listener {
                    interface: None,
                    address: LO,
                }],
                port: 0,
                client_port: 0,
                reply_to_source: true,
            })
            .unwrap();
            addr_tx.send(svc.local_addr().unwrap()).unwrap();
            svc.run(server, Some(writer), async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap()
        })
    });
    let server_addr = addr_rx.recv().unwrap();
    let to = std::net::SocketAddr::from((LO, server_addr.port()));
    let client = UdpSocket::bind((LO, 0)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    // Garbage first: dropped, and the service keeps answering.
    client.send_to(&[1, 1, 6, 0, 9, 9], to).unwrap();
    let mac = MacAddr([2, 0, 0, 0, 0, 0x42]);
    let offer = exchange(&client, to, &ClientPacket::discover(mac, 1).build());
    assert_eq!(
        (offer.kind, offer.yiaddr),
        (ReplyKind::Offer, Ipv4Addr::new(127, 0, 1, 1))
    );
    let ack = exchange(
        &client,
        to,
        &ClientPacket::request(mac, 2, LO, offer.yiaddr).build(),
    );
    assert_eq!((ack.kind, ack.yiaddr), (ReplyKind::Ack, offer.yiaddr));

    stop_tx.send(()).unwrap();
    let server = handle.join().unwrap();
    assert_eq!(server.stats().dropped_total(), 1);
    assert_eq!(server.stats().acks, 1);
    // The writer flushed on shutdown: the lease is in SQLite.
    let rows = SqliteLeaseStore::open(&db).unwrap().load().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].ip, rows[0].mac, rows[0].state),
        (offer.yiaddr, Some(mac), LeaseState::Bound)
    );
}
