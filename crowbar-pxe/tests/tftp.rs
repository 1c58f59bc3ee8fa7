//! The TFTP server on loopback against a client socket the test drives packet by packet:
//! retries, transfer IDs, a client's new request, the cap on transfers, malformed requests.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crowbar_pxe::{GeneratedFiles, TftpConfig, TftpCounts, TftpService, TftpStats};

/// No generated files.
struct Nothing;

impl GeneratedFiles for Nothing {
    fn generate(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
}

/// A server on 127.0.0.1, its root holding `hello.txt` (700 bytes: two blocks) and
/// `big.bin` (74 KB).
struct Lab {
    addr: SocketAddr,
    stats: TftpStats,
    hello: Vec<u8>,
    big: Vec<u8>,
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

impl Lab {
    fn new(tune: impl FnOnce(&mut TftpConfig)) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let hello: Vec<u8> = b"hello, world\n"
            .iter()
            .copied()
            .cycle()
            .take(700)
            .collect();
        let big: Vec<u8> = (0..74_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        std::fs::write(dir.path().join("hello.txt"), &hello).unwrap();
        std::fs::write(dir.path().join("big.bin"), &big).unwrap();
        let mut config = TftpConfig::new(dir.path().to_owned(), "127.0.0.1:0".parse().unwrap());
        config.timeout = Duration::from_secs(1);
        tune(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let svc = rt
            .block_on(TftpService::bind(&config, Arc::new(Nothing)))
            .unwrap();
        let addr = svc.local_addr().unwrap();
        let stats = svc.stats();
        rt.spawn(svc.serve());
        Lab {
            addr,
            stats,
            hello,
            big,
            _dir: dir,
            _rt: rt,
        }
    }

    /// Polls the counters until `cond` holds (10 s at most).
    fn wait_stats(&self, cond: impl Fn(&TftpCounts) -> bool) -> TftpCounts {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.stats.read();
            if cond(&now) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "counters never got there: {now:?}"
            );
            std::thread::yield_now();
        }
    }
}

/// A packet as the client sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Packet {
    Data(u16, Vec<u8>),
    Oack(String),
    Error(u16, String),
    Other(Vec<u8>),
}

fn decode(buf: &[u8]) -> Packet {
    let op = u16::from_be_bytes([buf[0], buf[1]]);
    let rest = &buf[2..];
    match op {
        3 => Packet::Data(u16::from_be_bytes([rest[0], rest[1]]), rest[2..].to_vec()),
        5 => Packet::Error(
            u16::from_be_bytes([rest[0], rest[1]]),
            String::from_utf8_lossy(&rest[2..rest.len() - 1]).into_owned(),
        ),
        6 => Packet::Oack(String::from_utf8_lossy(rest).replace('\0', " ")),
        _ => Packet::Other(buf.to_vec()),
    }
}

fn request(opcode: u8, fields: &[&str]) -> Vec<u8> {
    let mut out = vec![0, opcode];
    for f in fields {
        out.extend_from_slice(f.as_bytes());
        out.push(0);
    }
    out
}

fn ack(block: u16) -> [u8; 4] {
    let b = block.to_be_bytes();
    [0, 4, b[0], b[1]]
}

/// A client socket on 127.0.0.1; each receive waits 10 s at most.
struct Client(UdpSocket);

impl Client {
    fn new() -> Client {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client(s)
    }

    fn send(&self, bytes: &[u8], to: SocketAddr) {
        self.0.send_to(bytes, to).unwrap();
    }

    fn recv(&self) -> (Packet, SocketAddr) {
        let mut buf = vec![0u8; 70_000];
        let (n, from) = self.0.recv_from(&mut buf).expect("a packet within 10 s");
        (decode(&buf[..n]), from)
    }

    /// Reads a whole file as RFC 1350 says: the first DATA 1 names the transfer ID; packets
    /// from any other get ERROR 5.
    fn fetch(&self, server: SocketAddr, name: &str, options: &[&str]) -> Vec<u8> {
        let mut fields = vec![name, "octet"];
        fields.extend_from_slice(options);
        self.send(&request(1, &fields), server);
        let block_size = options
            .iter()
            .position(|o| *o == "blksize")
            .map_or(512, |i| options[i + 1].parse().unwrap());
        let mut tid: Option<SocketAddr> = None;
        let mut data = Vec::new();
        let mut next: u16 = 1;
        loop {
            let (p, from) = self.recv();
            if tid.is_some_and(|t| t != from) {
                self.send(b"\x00\x05\x00\x05Unknown transfer ID\x00", from);
                continue;
            }
            match p {
                Packet::Oack(_) if tid.is_none() => {
                    tid = Some(from);
                    self.send(&ack(0), from);
                }
                Packet::Data(n, bytes) if n == next => {
                    tid = Some(from);
                    data.extend_from_slice(&bytes);
                    self.send(&ack(n), from);
                    next = next.wrapping_add(1);
                    if bytes.len() < block_size {
                        return data;
                    }
                }
                Packet::Data(..) => {}
                other => panic!("{other:?} from {from}"),
            }
        }
    }
}

/// Whether anything still listens at `tid`: an ACK sent from a socket connected to it is
/// answered by ICMP port unreachable (connection refused) once the transfer's port is closed.
fn wait_closed(tid: SocketAddr) {
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.connect(tid).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    loop {
        let refused = match probe.send(&ack(1)) {
            Err(e) => e.kind() == ErrorKind::ConnectionRefused,
            Ok(_) => {
                matches!(probe.recv(&mut buf), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
            }
        };
        if refused {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the transfer at {tid} is still there"
        );
    }
}

#[test]
fn issue_24_tftp_wrong_file() {
    let lab = Lab::new(|_| {});
    let client = Client::new();
    // The client asks for hello.txt, takes the first block and goes away.
    client.send(&request(1, &["hello.txt", "octet"]), lab.addr);
    let (first, stale) = client.recv();
    assert_eq!(first, Packet::Data(1, lab.hello[..512].to_vec()));
    // A retransmission timeout later the server sends it again: the transfer is alive.
    let (again, from) = client.recv();
    assert_eq!((again, from), (first, stale));
    // The same source port now asks for another file: the old transfer stops at once, the
    // new one delivers exactly that file.
    let got = client.fetch(lab.addr, "big.bin", &[]);
    assert!(got == lab.big, "got {} bytes, not big.bin", got.len());
    wait_closed(stale);
    let c = lab.wait_stats(|c| c.completed == 1);
    assert_eq!((c.superseded, c.started, c.active), (1, 2, 0), "{c:?}");
}

#[test]
fn issue_24_tftp_an_abandoned_transfer_gives_up_after_its_retries() {
    let lab = Lab::new(|c| c.retries = 2);
    let client = Client::new();
    client.send(&request(1, &["hello.txt", "octet"]), lab.addr);
    // The first DATA and two retransmissions, then an ERROR saying why, then nothing.
    let mut seen = Vec::new();
    loop {
        let (p, _) = client.recv();
        let end = matches!(p, Packet::Error(..));
        seen.push(p);
        if end {
            break;
        }
    }
    let data = Packet::Data(1, lab.hello[..512].to_vec());
    assert_eq!(
        seen,
        vec![
            data.clone(),
            data.clone(),
            data,
            Packet::Error(0, "timed out waiting for an ACK".into())
        ]
    );
    let c = lab.wait_stats(|c| c.active == 0);
    assert_eq!((c.timed_out, c.completed), (1, 0), "{c:?}");
}

#[test]
fn issue_24_tftp_an_unknown_tid_gets_error_5_and_never_feeds_the_transfer() {
    let lab = Lab::new(|_| {});
    let client = Client::new();
    client.send(&request(1, &["hello.txt", "octet"]), lab.addr);
    let (first, tid) = client.recv();
    assert_eq!(first, Packet::Data(1, lab.hello[..512].to_vec()));
    // Another port acknowledges block 1: it is told off, and the transfer does not move.
    let intruder = Client::new();
    intruder.send(&ack(1), tid);
    assert_eq!(
        intruder.recv(),
        (Packet::Error(5, "Unknown transfer ID".into()), tid)
    );
    assert_eq!(client.recv(), (first, tid), "block 1 again, not block 2");
    // The real client goes on and gets the rest.
    client.send(&ack(1), tid);
    assert_eq!(
        client.recv(),
        (Packet::Data(2, lab.hello[512..].to_vec()), tid)
    );
    client.send(&ack(2), tid);
    let c = lab.wait_stats(|c| c.completed == 1);
    assert_eq!(c.unknown_tid, 1, "{c:?}");
}

#[test]
fn issue_24_tftp_an_error_from_the_client_stops_its_transfer_at_once() {
    let lab = Lab::new(|_| {});
    let client = Client::new();
    // EDK2's probe: ask for tsize, then decline with ERROR 8.
    client.send(&request(1, &["big.bin", "octet", "tsize", "0"]), lab.addr);
    let (oack, tid) = client.recv();
    assert_eq!(oack, Packet::Oack("tsize 74000 ".into()));
    client.send(b"\x00\x05\x00\x08no thanks\x00", tid);
    wait_closed(tid);
    let c = lab.wait_stats(|c| c.active == 0);
    assert_eq!((c.client_errors, c.timed_out), (1, 0), "{c:?}");
}

#[test]
fn issue_24_tftp_transfers_past_the_cap_are_refused_with_an_error() {
    let lab = Lab::new(|c| c.max_transfers = 2);
    let (a, b, c) = (Client::new(), Client::new(), Client::new());
    for cl in [&a, &b] {
        cl.send(&request(1, &["hello.txt", "octet"]), lab.addr);
        assert!(matches!(cl.recv().0, Packet::Data(1, _)));
    }
    c.send(&request(1, &["hello.txt", "octet"]), lab.addr);
    assert_eq!(
        c.recv(),
        (
            Packet::Error(0, "server busy, try again later".into()),
            lab.addr
        )
    );
    assert_eq!(lab.stats.read().busy, 1);
    // Once one of them is done there is room again.
    let (p, tid) = a.recv();
    assert!(matches!(p, Packet::Data(1, _)));
    a.send(&ack(1), tid);
    a.recv();
    a.send(&ack(2), tid);
    lab.wait_stats(|c| c.completed == 1 && c.active == 1);
    assert!(c.fetch(lab.addr, "hello.txt", &[]) == lab.hello);
}

#[test]
fn issue_24_tftp_malformed_requests_are_answered_and_counted() {
    let lab = Lab::new(|_| {});
    let client = Client::new();
    let mut no_nul = vec![0, 1];
    no_nul.extend_from_slice(b"hello.txt");
    let mut not_utf8 = vec![0, 1, b'h', 0xff, 0];
    not_utf8.extend_from_slice(b"octet\0");
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (no_nul, 4, "field not terminated by NUL"),
        (request(1, &["hello.txt"]), 4, "missing transfer mode"),
        (
            request(1, &["hello.txt", "mail"]),
            4,
            "unknown transfer mode (octet or netascii)",
        ),
        (
            request(1, &["hello.txt", "octet", "blksize"]),
            4,
            "option without a value",
        ),
        (not_utf8, 0, "file name is not UTF-8"),
        (ack(1).to_vec(), 4, "not a read or write request"),
    ];
    let n = cases.len() as u64;
    for (packet, code, message) in cases {
        client.send(&packet, lab.addr);
        assert_eq!(
            client.recv(),
            (Packet::Error(code, message.into()), lab.addr),
            "{packet:?}"
        );
    }
    // A write is refused: the server is read-only.
    client.send(&request(2, &["new.txt", "octet"]), lab.addr);
    assert!(matches!(client.recv().0, Packet::Error(2, _)));
    let c = lab.stats.read();
    assert_eq!((c.malformed, c.refused, c.started), (n, 1, 0), "{c:?}");
}

#[test]
fn issue_24_tftp_windowsize_is_capped_when_the_config_sets_no_limit() {
    let lab = Lab::new(|_| {});
    let client = Client::new();
    client.send(
        &request(
            1,
            &["big.bin", "octet", "windowsize", "65535", "blksize", "1468"],
        ),
        lab.addr,
    );
    let (oack, tid) = client.recv();
    assert_eq!(oack, Packet::Oack("windowsize 16 blksize 1468 ".into()));
    client.send(&ack(0), tid);
    // One window: 16 blocks, then the server waits.
    for block in 1..=16u16 {
        let (p, _) = client.recv();
        let start = usize::from(block - 1) * 1468;
        assert_eq!(
            p,
            Packet::Data(block, lab.big[start..start + 1468].to_vec())
        );
    }
    // A partial acknowledgement (block 10) resends from block 11 (RFC 7440).
    client.send(&ack(10), tid);
    let (p, _) = client.recv();
    assert_eq!(p, Packet::Data(11, lab.big[10 * 1468..11 * 1468].to_vec()));
}

#[test]
fn block_numbers_roll_over_in_a_long_transfer() {
    // 592,000 bytes in 8-byte blocks: 74,000 blocks, so the block number wraps past 65535;
    // a 16-block window keeps it quick.
    let lab = Lab::new(|_| {});
    std::fs::write(lab._dir.path().join("long.bin"), lab.big.repeat(8)).unwrap();
    let client = Client::new();
    let got = client.fetch(lab.addr, "long.bin", &["blksize", "8", "windowsize", "16"]);
    assert!(got == lab.big.repeat(8), "{} bytes", got.len());
}
