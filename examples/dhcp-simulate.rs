//! `dhcp-simulate`: the pure DHCP core with a simulated fleet, no sockets, simulated time.
//!
//! ```sh
//! cargo run --example dhcp-simulate -- --machines 2000 --reserved 500
//! ```
//!
//! Boots `--machines` PXE clients (the first `--reserved` of them known to the DHCP database,
//! alternating BIOS and UEFI firmware, then iPXE), persists the lease changes to an in-memory
//! store, releases a tenth of the pool clients, lets simulated time run past the discovery
//! lease, and prints what the server decided and its counters in Prometheus format.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use crowbar_pxe::{
    Bootenv, ClientPacket, HostEntry, HostIndex, LeaseStore, MacAddr, MemLeaseStore, Outcome,
    ParsedReply, ReplyKind, Server, ServerConfig, SubnetConfig,
};

#[derive(Parser, Debug)]
#[command(about = "Simulate a fleet booting against the DHCP core")]
struct Args {
    /// Machines that boot.
    #[arg(long, default_value_t = 2000)]
    machines: u32,
    /// How many of them have a reservation.
    #[arg(long, default_value_t = 500)]
    reserved: u32,
}

fn mac(n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x52, 0x54, b[0], b[1], b[2], b[3]])
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.reserved > args.machines || args.machines > 60_000 {
        bail!("need reserved <= machines <= 60000");
    }
    let us = Ipv4Addr::new(10, 77, 0, 1);
    let hosts = (0..args.reserved)
        .map(|n| HostEntry {
            fqdn: format!("node{n}.sim.test"),
            macs: vec![mac(n)],
            address: format!("10.77.{}.{}/16", 1 + n / 250, 1 + n % 250)
                .parse()
                .expect("a valid address"),
            bootenv: if n % 10 == 0 {
                Bootenv::Local
            } else {
                Bootenv::Sledgehammer
            },
        })
        .collect();
    let mut server = Server::new(
        ServerConfig::single(SubnetConfig {
            net: "10.77.0.0/16".parse()?,
            server_ip: us,
            pool: Some(Ipv4Addr::new(10, 77, 128, 1)..=Ipv4Addr::new(10, 77, 255, 254)),
            routers: vec![us],
            dns_servers: vec![us],
            domain: Some("sim.test".into()),
            pool_lease_secs: 120,
            reserved_lease_secs: 3600,
        }),
        Arc::new(HostIndex::new(hosts)?),
    )?;
    let mut store = MemLeaseStore::new();
    let mut now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut files: BTreeMap<String, u32> = BTreeMap::new();
    let mut bound = Vec::new();

    for n in 0..args.machines {
        let m = mac(n);
        let arch = if n % 2 == 0 { 0 } else { 7 };
        let vendor = format!("PXEClient:Arch:{arch:05}:UNDI:003016");
        for ipxe in [false, true] {
            let mut discover = ClientPacket::discover(m, n)
                .vendor_class(&vendor)
                .arch(&[arch]);
            if ipxe {
                discover = discover.ipxe();
            }
            let Outcome::Reply(offer) = server.handle(&discover.build(), us, now) else {
                bail!("no offer for {m}");
            };
            let request = ClientPacket::request(m, n, us, offer.yiaddr).arch(&[arch]);
            let request = if ipxe { request.ipxe() } else { request };
            let Outcome::Reply(ack) = server.handle(&request.build(), us, now) else {
                bail!("no reply to the request of {m}");
            };
            let parsed = ParsedReply::parse(&ack.bytes).context("decoding our own ACK")?;
            if parsed.kind != ReplyKind::Ack {
                bail!("{m} was refused");
            }
            let file = match parsed.file {
                Some(f) if f.starts_with("ipxe/") => "ipxe/<mac>.ipxe".to_owned(),
                Some(f) => f,
                None => "(none: bootenv local)".to_owned(),
            };
            *files.entry(file).or_default() += 1;
            if ipxe {
                bound.push((m, parsed.yiaddr));
            }
        }
        store.apply(&server.take_changes())?;
    }
    // A tenth of the discovered (pool) machines release their address.
    for (m, ip) in bound.iter().skip(args.reserved as usize).step_by(10) {
        server.handle(&ClientPacket::release(*m, 1, us, *ip).build(), us, now);
    }
    store.apply(&server.take_changes())?;
    let before = store.load()?.len();
    // The discovery leases (120 s) run out; the reserved ones (3600 s) do not.
    now += Duration::from_secs(121);
    let expired = server.expire(now);
    store.apply(&server.take_changes())?;

    println!("boot files handed out:");
    for (file, n) in &files {
        println!("  {n:>6}  {file}");
    }
    println!(
        "leases stored: {before} after the boot storm, {} after expiry ({expired} expired)",
        store.load()?.len()
    );
    print!("{}", server.stats().to_prometheus());
    Ok(())
}
