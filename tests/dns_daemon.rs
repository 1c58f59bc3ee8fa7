//! `crowbar-dnsd` against real clients: dig and kdig on loopback high ports, and a differential
//! test against NSD serving the same zones. Each test starts its own daemon and kills it.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A tool the test needs; CI installs it (see .ci/run).
fn tool(name: &str) -> PathBuf {
    for dir in [
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/bin",
        "/sbin",
    ] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} not found: run ./test.sh as root, which installs it, or \
         apt-get install -y --no-install-recommends bind9-dnsutils knot-dnsutils nsd"
    );
}

/// The `crowbar-dnsd` example binary, built on demand if `cargo test` did not build it.
fn daemon_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("examples").join("crowbar-dnsd");
    if !bin.exists() {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "crowbar", "--example", "crowbar-dnsd"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "building crowbar-dnsd failed");
    }
    bin
}

/// A port free for both UDP and TCP on 127.0.0.1 (and ::1 when asked).
fn free_port() -> u16 {
    for _ in 0..1000 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && (!has_ipv6()
                || UdpSocket::bind(("::1", port)).is_ok()
                    && TcpListener::bind(("::1", port)).is_ok())
        {
            return port;
        }
    }
    panic!("no free port on loopback");
}

/// Whether this machine has an IPv6 loopback (some containers do not).
fn has_ipv6() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

/// A running daemon in a temporary directory; killed on drop.
struct Daemon {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Writes `hosts` and a config (`extra` appended), starts the daemon, waits until the
    /// SOA answers.
    fn start(hosts: &str, extra: &str) -> Daemon {
        Daemon::start_with(
            "admin.lab.test",
            hosts,
            &format!(
                "reverse_zones = [\"198.18.0.0/16\", \"2001:db8::/32\", \"192.168.7.64/26\"]\n{extra}"
            ),
        )
    }

    /// Like [`Daemon::start`] with another admin FQDN (so another domain) and no default
    /// reverse zones.
    fn start_with(admin: &str, hosts: &str, extra: &str) -> Daemon {
        let mut dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hosts"), hosts).expect("write hosts");
        let zone = admin.split_once('.').map_or(admin, |(_, z)| z).to_owned();
        // A port found free may be taken before the daemon binds it: then try another.
        for _ in 0..5 {
            let port = free_port();
            let v6 = if has_ipv6() {
                format!(", \"[::1]:{port}\"")
            } else {
                String::new()
            };
            let config = format!(
                "admin_fqdn = \"{admin}\"\nhosts_file = \"hosts\"\n\
                 listen = [\"127.0.0.1:{port}\"{v6}]\n\
                 serial = 100\n{extra}\n"
            );
            std::fs::write(dir.path().join("dns.toml"), config).expect("write config");
            let log = std::fs::File::create(dir.path().join("dnsd.log")).expect("log file");
            let child = Command::new(daemon_binary())
                .arg("--config")
                .arg(dir.path().join("dns.toml"))
                .env("RUST_LOG", "warn")
                .env("NO_COLOR", "1")
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("start crowbar-dnsd");
            let mut d = Daemon { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if d.dig(&[&zone, "SOA"]).status == "NOERROR" {
                    return d;
                }
                if d.child.try_wait().expect("daemon status").is_some() {
                    break; // exited: most likely the port was taken
                }
                assert!(
                    Instant::now() < deadline,
                    "crowbar-dnsd did not answer within 10 s"
                );
            }
            dir = std::mem::replace(&mut d.dir, tempfile::tempdir().expect("tempdir"));
        }
        panic!("crowbar-dnsd did not start");
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `dig @127.0.0.1 -p PORT +norec ARGS`.
    fn dig(&self, args: &[&str]) -> Dig {
        dig_at("127.0.0.1", self.port, args)
    }

    /// Polls `cond` until it holds, for at most 10 s.
    fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "condition not met within 10 s");
            std::thread::yield_now();
        }
    }

    /// What the daemon wrote to stderr so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dnsd.log")).unwrap_or_default()
    }

    fn rewrite_hosts(&self, hosts: &str) {
        let tmp = self.dir.path().join("hosts.new");
        std::fs::write(&tmp, hosts).expect("write hosts");
        std::fs::rename(&tmp, self.dir.path().join("hosts")).expect("rename hosts");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parts of a dig answer the tests look at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Dig {
    status: String,
    flags: Vec<String>,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
    raw: String,
}

impl Dig {
    fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
    /// The answer's RDATA fields, e.g. `["198.18.1.1"]`.
    fn rdata(&self) -> Vec<String> {
        self.answer
            .iter()
            .map(|l| l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "))
            .collect()
    }
}

fn dig_at(server: &str, port: u16, args: &[&str]) -> Dig {
    let out = Command::new(tool("dig"))
        .arg(format!("@{server}"))
        .args(["-p", &port.to_string(), "+norec", "+tries=1", "+time=2"])
        .args(args)
        .output()
        .expect("run dig");
    parse_dig(&String::from_utf8_lossy(&out.stdout))
}

fn parse_dig(text: &str) -> Dig {
    let mut d = Dig {
        raw: text.to_owned(),
        ..Dig::default()
    };
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or("").to_owned();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            d.flags = rest
                .split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect();
        }
        if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = "additional";
        } else if line.trim().is_empty() || line.starts_with(';') {
            section = if line.trim().is_empty() { "" } else { section };
        } else {
            let norm = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match section {
                "answer" => d.answer.push(norm),
                "authority" => d.authority.push(norm),
                "additional" => d.additional.push(norm),
                _ => {}
            }
        }
    }
    d
}

const HOSTS: &str = "\
198.18.0.1 admin.lab.test
2001:db8::1 admin.lab.test
198.18.1.1 node1.lab.test node1 www
2001:db8:100::1 node1.lab.test
198.18.1.2 node2.lab.test
192.168.7.70 small.lab.test
";

#[test]
fn every_record_type_forward_and_reverse() {
    let d = Daemon::start(HOSTS, "");
    let a = d.dig(&["node1.lab.test", "A"]);
    assert_eq!(a.status, "NOERROR");
    assert!(a.has_flag("aa"), "{}", a.raw);
    assert_eq!(a.answer, ["node1.lab.test. 60 IN A 198.18.1.1"]);
    assert_eq!(
        d.dig(&["node1.lab.test", "AAAA"]).rdata(),
        ["2001:db8:100::1"]
    );
    assert_eq!(d.dig(&["-x", "198.18.1.2"]).rdata(), ["node2.lab.test."]);
    let v6 = d.dig(&["-x", "2001:db8:100::1"]);
    assert_eq!(
        v6.answer,
        [
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.8.b.d.0.1.0.0.2.ip6.arpa. 60 IN PTR node1.lab.test."
        ]
    );
    // An alias is a CNAME, chased to the host's address in the same answer.
    assert_eq!(
        d.dig(&["www.lab.test", "A"]).rdata(),
        ["node1.lab.test.", "198.18.1.1"]
    );
    assert_eq!(
        d.dig(&["www.lab.test", "CNAME"]).rdata(),
        ["node1.lab.test."]
    );
    assert_eq!(
        d.dig(&["lab.test", "SOA"]).rdata(),
        ["admin.lab.test. hostmaster.lab.test. 100 3600 600 604800 60"]
    );
    assert_eq!(
        d.dig(&["18.198.in-addr.arpa", "SOA"]).rdata(),
        ["admin.lab.test. hostmaster.lab.test. 100 3600 600 604800 60"]
    );
    let ns = d.dig(&["lab.test", "NS"]);
    assert_eq!(ns.rdata(), ["admin.lab.test."]);
    assert_eq!(
        ns.additional,
        [
            "admin.lab.test. 60 IN A 198.18.0.1",
            "admin.lab.test. 60 IN AAAA 2001:db8::1"
        ]
    );
    // RFC 2317: a /26 is its own zone; the natural name is a CNAME into it.
    assert_eq!(
        d.dig(&["-x", "192.168.7.70"]).answer,
        [
            "70.7.168.192.in-addr.arpa. 60 IN CNAME 70.64-26.7.168.192.in-addr.arpa.",
            "70.64-26.7.168.192.in-addr.arpa. 60 IN PTR small.lab.test."
        ]
    );
}

#[test]
fn negative_answers_carry_the_soa() {
    let d = Daemon::start(HOSTS, "");
    let soa = "lab.test. 60 IN SOA admin.lab.test. hostmaster.lab.test. 100 3600 600 604800 60";
    let nx = d.dig(&["nohost.lab.test", "A"]);
    assert_eq!((nx.status.as_str(), nx.answer.len()), ("NXDOMAIN", 0));
    assert!(nx.has_flag("aa"));
    assert_eq!(nx.authority, [soa]);
    let nodata = d.dig(&["node2.lab.test", "AAAA"]);
    assert_eq!(
        (nodata.status.as_str(), nodata.answer.len()),
        ("NOERROR", 0)
    );
    assert_eq!(nodata.authority, [soa]);
    // An empty non-terminal is NODATA, not NXDOMAIN.
    let ent = d.dig(&["1.18.198.in-addr.arpa", "PTR"]);
    assert_eq!(ent.status, "NOERROR");
    assert_eq!(ent.authority.len(), 1);
    let rev_nx = d.dig(&["-x", "198.18.9.9"]);
    assert_eq!(rev_nx.status, "NXDOMAIN");
    assert!(rev_nx.authority[0].starts_with("18.198.in-addr.arpa. 60 IN SOA"));
    // Names are case-insensitive, and the question keeps the client's spelling.
    let mixed = d.dig(&["NoDe1.LAB.test", "A"]);
    assert_eq!(mixed.answer, ["NoDe1.LAB.test. 60 IN A 198.18.1.1"]);
    // Outside our zones, with recursion off: REFUSED, with or without RD.
    assert_eq!(d.dig(&["example.com", "A"]).status, "REFUSED");
    assert_eq!(d.dig(&["+rec", "example.com", "A"]).status, "REFUSED");
    assert_eq!(d.dig(&["-x", "10.1.2.3"]).status, "REFUSED");
}

#[test]
fn edns_truncation_and_tcp() {
    let mut hosts = String::from(HOSTS);
    for i in 1..=60 {
        hosts.push_str(&format!("198.18.50.{i} big.lab.test\n"));
    }
    let d = Daemon::start(&hosts, "");
    // 60 A records do not fit in 512 bytes: an empty answer with TC, not a partial RRset.
    let plain = d.dig(&["+noedns", "+ignore", "big.lab.test", "A"]);
    assert!(plain.has_flag("tc"), "{}", plain.raw);
    assert_eq!(plain.answer.len(), 0);
    // They fit in 1232 bytes with EDNS, and over TCP; dig falls back to TCP by itself.
    assert_eq!(
        d.dig(&["+bufsize=1232", "big.lab.test", "A"]).answer.len(),
        60
    );
    assert_eq!(d.dig(&["+tcp", "big.lab.test", "A"]).answer.len(), 60);
    assert_eq!(d.dig(&["+noedns", "big.lab.test", "A"]).answer.len(), 60);
    // EDNS version 1 is answered BADVERS.
    assert_eq!(
        d.dig(&["+edns=1", "+noednsneg", "node1.lab.test"]).status,
        "BADVERS"
    );
    // kdig over TCP, several queries on one connection.
    let out = std::process::Command::new(tool("kdig"))
        .args([
            "@127.0.0.1",
            "-p",
            &d.port.to_string(),
            "+tcp",
            "+keepopen",
            "+short",
        ])
        .args([
            "node1.lab.test",
            "A",
            "node2.lab.test",
            "A",
            "-x",
            "198.18.1.1",
        ])
        .output()
        .expect("run kdig");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["198.18.1.1", "198.18.1.2", "node1.lab.test."]);
    // Over IPv6 too.
    if has_ipv6() {
        let v6 = dig_at("::1", d.port, &["+tcp", "node1.lab.test", "AAAA"]);
        assert_eq!(v6.rdata(), ["2001:db8:100::1"]);
    }
}

#[test]
fn live_update_changes_forward_reverse_and_serial_together() {
    let d = Daemon::start(HOSTS, "reload_interval_ms = 20");
    assert_eq!(d.dig(&["node3.lab.test", "A"]).status, "NXDOMAIN");
    let serial = |d: &Daemon| -> u32 {
        d.dig(&["lab.test", "SOA"]).rdata()[0]
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .expect("serial")
    };
    let before = serial(&d);
    // Node added, address allocated, node deleted: one rewrite of the hosts file.
    let changed = HOSTS.replace("198.18.1.2 node2.lab.test\n", "198.18.1.3 node3.lab.test\n");
    d.rewrite_hosts(&changed);
    d.wait_until(|| d.dig(&["node3.lab.test", "A"]).status == "NOERROR");
    assert_eq!(d.dig(&["node3.lab.test", "A"]).rdata(), ["198.18.1.3"]);
    assert_eq!(d.dig(&["-x", "198.18.1.3"]).rdata(), ["node3.lab.test."]);
    assert_eq!(d.dig(&["node2.lab.test", "A"]).status, "NXDOMAIN");
    assert_eq!(d.dig(&["-x", "198.18.1.2"]).status, "NXDOMAIN");
    let after = serial(&d);
    assert!(after > before, "serial {before} -> {after}");
    let ptr_zone = d.dig(&["18.198.in-addr.arpa", "SOA"]).rdata()[0].clone();
    assert!(ptr_zone.contains(&format!(" {after} ")), "{ptr_zone}");
}

#[test]
fn issue_24_a_bad_hosts_file_on_sighup_is_logged_with_its_file_line_and_reason() {
    let d = Daemon::start(HOSTS, "");
    // Line 3 is broken; the old zones stay.
    d.rewrite_hosts("198.18.0.1 admin.lab.test\n198.18.1.1 node1.lab.test\nnot-an-address node9\n");
    let status = Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    d.wait_until(|| d.log().contains("hosts file not reloaded"));
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("hosts file not reloaded"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!(
            "error=parsing {}: hosts file line 3: bad address: ",
            d.dir.path().join("hosts").display()
        )),
        "{log}"
    );
    assert_eq!(d.dig(&["node2.lab.test", "A"]).rdata(), ["198.18.1.2"]);
    // At start-up the same file stops the daemon with the same file, line and reason.
    let out = Command::new(daemon_binary())
        .arg("--config")
        .arg(d.dir.path().join("dns.toml"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run crowbar-dnsd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("parsing {}", d.dir.path().join("hosts").display())),
        "{err}"
    );
    assert!(err.contains("hosts file line 3: bad address: "), "{err}");
}

#[test]
fn issue_24_an_os_error_is_printed_once() {
    // The port is taken: the daemon stops with the bind error, its OS reason said once.
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hosts"), HOSTS).expect("write hosts");
    std::fs::write(
        dir.path().join("dns.toml"),
        format!(
            "admin_fqdn = \"admin.lab.test\"\nhosts_file = \"hosts\"\nlisten = [\"127.0.0.1:{port}\"]\n"
        ),
    )
    .expect("write config");
    let out = Command::new(daemon_binary())
        .arg("--config")
        .arg(dir.path().join("dns.toml"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run crowbar-dnsd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
}

#[test]
fn zone_transfer_only_to_allowed_addresses() {
    let allowed = Daemon::start(HOSTS, "allow_transfer = [\"127.0.0.0/8\"]");
    let axfr = allowed.dig(&["lab.test", "AXFR"]);
    let records: Vec<&str> = axfr
        .raw
        .lines()
        .filter(|l| !l.starts_with(';') && !l.is_empty())
        .collect();
    assert!(
        records.first().is_some_and(|r| r.contains("SOA")),
        "{}",
        axfr.raw
    );
    assert!(records.last().is_some_and(|r| r.contains("SOA")));
    assert!(
        records
            .iter()
            .any(|r| r.starts_with("www.lab.test.") && r.contains("CNAME"))
    );
    assert_eq!(records.len(), 2 + 1 + 2 + 2 + 1 + 1 + 1, "{records:#?}");
    // Over UDP an allowed client is told to use TCP; a client outside the ACL is refused.
    let refused = Daemon::start(HOSTS, "allow_transfer = [\"10.0.0.0/8\"]");
    let out = std::process::Command::new(tool("kdig"))
        .args([
            "@127.0.0.1",
            "-p",
            &refused.port.to_string(),
            "lab.test",
            "AXFR",
        ])
        .output()
        .expect("run kdig");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("REFUSED"), "{text}");
}

#[test]
fn notify_reaches_a_secondary_when_the_serial_changes() {
    let secondary = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = secondary.local_addr().expect("addr").port();
    secondary
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let d = Daemon::start(
        HOSTS,
        &format!("notify = [\"127.0.0.1:{port}\"]\nreload_interval_ms = 20"),
    );
    d.rewrite_hosts(&format!("{HOSTS}198.18.1.9 node9.lab.test\n"));
    let mut zones = Vec::new();
    let mut buf = [0u8; 512];
    let all = [
        "18.198.in-addr.arpa",
        "64-26.7.168.192.in-addr.arpa",
        "8.b.d.0.1.0.0.2.ip6.arpa",
        "lab.test",
    ];
    while !all.iter().all(|z| zones.iter().any(|x: &String| x == z)) {
        let (n, from) = secondary.recv_from(&mut buf).expect("a NOTIFY within 10 s");
        assert_eq!((buf[2] >> 3) & 0x0f, 4, "opcode NOTIFY");
        let mut p = 12;
        let mut labels = Vec::new();
        while buf[p] != 0 {
            let l = buf[p] as usize;
            labels.push(String::from_utf8_lossy(&buf[p + 1..p + 1 + l]).into_owned());
            p += 1 + l;
        }
        assert_eq!(&buf[p + 1..p + 3], &[0, 6], "question type SOA");
        zones.push(labels.join("."));
        // Acknowledge: same id, QR set.
        let mut ack = buf[..n].to_vec();
        ack[2] |= 0x80;
        secondary.send_to(&ack, from).expect("ack");
    }
    zones.sort();
    zones.dedup();
    assert!(zones.contains(&"lab.test".to_owned()), "{zones:?}");
    assert!(
        zones.contains(&"18.198.in-addr.arpa".to_owned()),
        "{zones:?}"
    );
}

#[test]
fn malformed_queries_get_formerr_or_nothing() {
    let d = Daemon::start(HOSTS, "");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    sock.connect(d.addr()).expect("connect");
    let mut buf = [0u8; 2048];
    // A header whose question is cut short: FORMERR with the same id.
    let mut q = vec![0xab, 0xcd, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x05node1\x03la");
    sock.send(&q).expect("send");
    let n = sock.recv(&mut buf).expect("FORMERR answer");
    assert_eq!((&buf[..2], buf[3] & 0x0f, n), (&[0xab, 0xcd][..], 1, 12));
    // Too short for a header, a response, garbage, and an oversized datagram: no crash.
    for junk in [
        vec![1, 2, 3],
        vec![0x80; 40],
        vec![0xff; 300],
        vec![0; 65_000],
    ] {
        let _ = sock.send(&junk);
        let _ = sock.recv(&mut buf);
    }
    // Still serving.
    assert_eq!(d.dig(&["node1.lab.test", "A"]).rdata(), ["198.18.1.1"]);
}

#[test]
fn forwards_other_names_only_when_configured_and_asked() {
    let up = Daemon::start_with("ns.upstream.test", "198.51.100.7 web.upstream.test\n", "");
    let d = Daemon::start(HOSTS, &format!("forwarders = [\"127.0.0.1:{}\"]", up.port));
    assert_eq!(
        d.dig(&["+rec", "web.upstream.test", "A"]).rdata(),
        ["198.51.100.7"]
    );
    assert_eq!(
        d.dig(&["+rec", "+tcp", "web.upstream.test", "A"]).rdata(),
        ["198.51.100.7"]
    );
    assert_eq!(d.dig(&["web.upstream.test", "A"]).status, "REFUSED");
    // Our own names are still answered authoritatively.
    assert!(d.dig(&["+rec", "node1.lab.test"]).has_flag("aa"));
}

/// NSD serving the zone files `crowbar-dnsd --write-zones` generated; killed on drop.
struct Nsd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nsd(d: &Daemon) -> Nsd {
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = dir.path().join("zones");
    let out = Command::new(daemon_binary())
        .arg("--config")
        .arg(d.dir.path().join("dns.toml"))
        .arg("--write-zones")
        .arg(&zones)
        .output()
        .expect("crowbar-dnsd --write-zones");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let p = dir.path().display();
    let mut conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n\
         zonesdir: \"{p}/zones\"\n  database: \"\"\n  pidfile: \"{p}/nsd.pid\"\n\
         xfrdfile: \"{p}/xfrd.state\"\n  zonelistfile: \"{p}/zone.list\"\n\
         logfile: \"{p}/nsd.log\"\n  hide-version: yes\n  rrl-ratelimit: 0\n  minimal-responses: yes\n\
         remote-control:\n  control-enable: no\n"
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (origin, file) = line.split_once(' ').expect("ORIGIN PATH");
        conf.push_str(&format!(
            "zone:\n  name: \"{origin}\"\n  zonefile: \"{file}\"\n"
        ));
    }
    std::fs::write(dir.path().join("nsd.conf"), conf).expect("write nsd.conf");
    let child = Command::new(tool("nsd"))
        .args(["-d", "-c"])
        .arg(dir.path().join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nsd");
    let nsd = Nsd {
        child,
        port,
        _dir: dir,
    };
    d.wait_until(|| dig_at("127.0.0.1", nsd.port, &["lab.test", "SOA"]).status == "NOERROR");
    nsd
}

#[test]
fn same_answers_as_nsd_on_the_same_zones() {
    let d = Daemon::start(HOSTS, "");
    let nsd = start_nsd(&d);
    let probes: &[&[&str]] = &[
        &["node1.lab.test", "A"],
        &["node1.lab.test", "AAAA"],
        &["NODE1.Lab.Test", "A"],
        &["node2.lab.test", "AAAA"],
        &["node2.lab.test", "MX"],
        &["nohost.lab.test", "A"],
        &["deep.nohost.lab.test", "AAAA"],
        &["www.lab.test", "A"],
        &["www.lab.test", "CNAME"],
        &["lab.test", "SOA"],
        &["lab.test", "NS"],
        &["lab.test", "A"],
        &["-x", "198.18.1.1"],
        &["-x", "198.18.1.200"],
        &["-x", "2001:db8:100::1"],
        &["-x", "2001:db8:100::2"],
        &["1.18.198.in-addr.arpa", "PTR"],
        &["18.198.in-addr.arpa", "SOA"],
        &["18.198.in-addr.arpa", "NS"],
        &["8.b.d.0.1.0.0.2.ip6.arpa", "SOA"],
        &["70.64-26.7.168.192.in-addr.arpa", "PTR"],
        &["71.64-26.7.168.192.in-addr.arpa", "PTR"],
        &["64-26.7.168.192.in-addr.arpa", "SOA"],
    ];
    let mut diffs = Vec::new();
    for probe in probes {
        let normal = |mut x: Dig| {
            x.answer.sort();
            x.authority.sort();
            x.additional.sort();
            let aa = x.has_flag("aa");
            (x.status, aa, x.answer, x.authority, x.additional)
        };
        let ours = normal(d.dig(probe));
        let theirs = normal(dig_at("127.0.0.1", nsd.port, probe));
        if ours != theirs {
            diffs.push(format!(
                "{probe:?}\n  crowbar: {ours:?}\n  nsd:     {theirs:?}"
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "answers differ from NSD:\n{}",
        diffs.join("\n")
    );
}
