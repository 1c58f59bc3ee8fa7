//! `dhcp-probe`: acts as a DHCP relay agent and prints the server's replies, one per line.
//!
//! ```sh
//! dhcp-probe --bind 10.88.0.1 --server 10.77.0.1 --mac 52:54:00:00:00:09 --garbage 3
//! ```
//!
//! It binds `<bind>:67`, optionally sends `--garbage` malformed packets first, then a relayed
//! DISCOVER (giaddr = `--bind`) and, when an OFFER comes back, the REQUEST; it prints
//! `OFFER yiaddr=… giaddr=… siaddr=… file=…` and `ACK …` and exits 0, or exits 1 on timeout.
//! Used by the namespace tests and handy for poking a running crowbar-dhcpd.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use crowbar_pxe::{ClientPacket, MacAddr, ParsedReply, ReplyKind};

#[derive(Parser, Debug)]
#[command(about = "Relay-style DHCP probe")]
struct Args {
    /// The relay address (giaddr); the probe listens on port 67 there.
    #[arg(long)]
    bind: Ipv4Addr,
    /// The DHCP server.
    #[arg(long)]
    server: Ipv4Addr,
    /// The client MAC to ask for.
    #[arg(long)]
    mac: MacAddr,
    /// Server port.
    #[arg(long, default_value_t = 67)]
    port: u16,
    /// Malformed packets to send first.
    #[arg(long, default_value_t = 0)]
    garbage: usize,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sock = UdpSocket::bind(SocketAddr::from((args.bind, args.port)))
        .with_context(|| format!("binding {}:{}", args.bind, args.port))?;
    let server = SocketAddr::from((args.server, args.port));
    let valid = ClientPacket::discover(args.mac, 0x1234)
        .relayed_by(args.bind)
        .build();
    for i in 0..args.garbage {
        let bad: Vec<u8> = match i % 3 {
            0 => valid[..100].to_vec(),
            1 => {
                let mut b = valid[..240].to_vec();
                b.extend_from_slice(&[53, 1, 1, 60, 200, b'P', b'X']);
                b
            }
            _ => {
                let mut b = valid[..240].to_vec();
                b.extend_from_slice(&[53, 1, 1, 94, 2, 1, 2, 255]);
                b
            }
        };
        sock.send_to(&bad, server)?;
    }
    sock.send_to(&valid, server)?;
    let offer = wait(&sock, 0x1234, Duration::from_secs(args.timeout))?;
    println!("{}", line(&offer));
    if offer.kind != ReplyKind::Offer {
        bail!("expected an OFFER");
    }
    let server_id = offer.server_id.unwrap_or(args.server);
    let request = ClientPacket::request(args.mac, 0x1235, server_id, offer.yiaddr)
        .relayed_by(args.bind)
        .build();
    sock.send_to(&request, server)?;
    let ack = wait(&sock, 0x1235, Duration::from_secs(args.timeout))?;
    println!("{}", line(&ack));
    Ok(())
}

fn wait(sock: &UdpSocket, xid: u32, timeout: Duration) -> anyhow::Result<ParsedReply> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("no reply for xid {xid:#x}");
        }
        sock.set_read_timeout(Some(left))?;
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if let Some(r) = ParsedReply::parse(&buf[..n]).filter(|r| r.xid == xid) {
            return Ok(r);
        }
    }
}

fn line(r: &ParsedReply) -> String {
    format!(
        "{} yiaddr={} giaddr={} siaddr={} file={} server={}",
        match r.kind {
            ReplyKind::Offer => "OFFER",
            ReplyKind::Ack => "ACK",
            ReplyKind::Nak => "NAK",
        },
        r.yiaddr,
        r.giaddr,
        r.siaddr,
        r.file.as_deref().unwrap_or("-"),
        r.server_id.map_or("-".to_owned(), |s| s.to_string()),
    )
}
