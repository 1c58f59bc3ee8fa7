//! crowbar-dhcpd against real clients (udhcpc, dhclient, tftp-hpa, curl, atftp, QEMU's iPXE
//! ROM) in network namespaces these tests create. Every test builds its own pair of
//! namespaces joined by a veth, starts the daemon example in one and the clients in the
//! other, and tears everything down in `Drop`, even when an assertion fails. Not root: the test
//! prints that it is skipped (namespaces need root) and returns. A tool missing: the test fails
//! with the line that installs it (`./test.sh` as root installs them all).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crowbar::core::{Cluster, DeploymentId, NodeSpec, SqliteStore, Store};
use crowbar::net::{ClusterNetworks, NetworkSpec, RangeKind};
use serde_json::json;

const RESERVED_MAC: &str = "52:54:00:aa:bb:01";
const LOCAL_MAC: &str = "52:54:00:aa:bb:02";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Two namespaces (`srv`, `cli`) joined by a veth, a work directory and the daemon.
struct Lab {
    srv: String,
    cli: String,
    srv_if: String,
    cli_if: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn sh(args: &[&str]) {
    let out = run(Command::new(args[0]).args(&args[1..]));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn have(tool: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

fn daemon_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    path.exists().then_some(path)
}

/// Why a test cannot run here, if it cannot.
fn skip_reason(tools: &[&str]) -> Option<String> {
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some("not root: network namespaces need root".into());
    }
    for t in tools.iter().chain(&["ip"]) {
        if !have(t) {
            missing_tool(t);
        }
    }
    for b in ["crowbar-dhcpd", "dhcp-probe"] {
        if daemon_binary(b).is_none() {
            return Some(format!(
                "examples/{b} is not built (cargo test builds it; or cargo build --examples)"
            ));
        }
    }
    None
}

/// A tool the test needs is missing: fail, with the line that installs it. (Only a missing
/// root, which no install can give, skips a test.)
fn missing_tool(what: &str) -> ! {
    panic!(
        "{what} is not installed: run ./test.sh as root, which installs what the tests need, or \
         apt-get install -y --no-install-recommends iproute2 isc-dhcp-client udhcpc tftp-hpa \
         atftp curl tcpdump qemu-system-x86 ipxe-qemu ovmf ipxe"
    )
}

macro_rules! lab_or_skip {
    ($name:expr, $tools:expr) => {
        match skip_reason($tools) {
            Some(why) => {
                println!("skipped {}: {why}", $name);
                return;
            }
            None => match Lab::new() {
                Ok(lab) => lab,
                Err(why) => {
                    println!("skipped {}: {why}", $name);
                    return;
                }
            },
        }
    };
}

impl Lab {
    /// The lab, or why namespaces cannot be made here (root in a container without
    /// CAP_SYS_ADMIN, say).
    fn new() -> Result<Lab, String> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{}", std::process::id(), n);
        let lab = Lab {
            srv: format!("cbpxe{id}s"),
            cli: format!("cbpxe{id}c"),
            srv_if: format!("cbs{id}"),
            cli_if: format!("cbc{id}"),
            dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
        };
        let probe = run(Command::new("ip").args(["netns", "add", &lab.srv]));
        if !probe.status.success() {
            return Err(format!(
                "cannot create a network namespace: {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            ));
        }
        sh(&["ip", "netns", "add", &lab.cli]);
        sh(&[
            "ip",
            "link",
            "add",
            &lab.srv_if,
            "type",
            "veth",
            "peer",
            "name",
            &lab.cli_if,
        ]);
        sh(&["ip", "link", "set", &lab.srv_if, "netns", &lab.srv]);
        sh(&["ip", "link", "set", &lab.cli_if, "netns", &lab.cli]);
        sh(&[
            "ip",
            "-n",
            &lab.srv,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            &lab.srv_if,
        ]);
        for (ns, dev) in [(&lab.srv, &lab.srv_if), (&lab.cli, &lab.cli_if)] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // dhclient-script rewrites resolv.conf; give the client namespace its own.
        let etc = lab.netns_etc();
        fs::create_dir_all(&etc).unwrap();
        fs::copy("/etc/resolv.conf", etc.join("resolv.conf")).ok();
        fs::create_dir_all(lab.path("tftp/sub")).unwrap();
        Ok(lab)
    }

    fn netns_etc(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.cli)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes the daemon config (with the two reservations and a relayed subnet) and starts
    /// crowbar-dhcpd in the server namespace.
    fn start_daemon(&mut self) {
        fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pxe/hosts.toml"),
            self.path("hosts.toml"),
        )
        .unwrap();
        self.start_daemon_with("hosts_file = \"hosts.toml\"");
    }

    /// Starts crowbar-dhcpd with `hosts` as the configuration's source of reservations.
    fn start_daemon_with(&mut self, hosts: &str) {
        let config = format!(
            r#"lease_db = "leases.sqlite"
{hosts}

[[interface]]
name = "{srv_if}"
address = "10.77.0.1"

[[subnet]]
cidr = "10.77.0.0/24"
server_ip = "10.77.0.1"
pool = {{ start = "10.77.0.100", end = "10.77.0.199" }}
routers = ["10.77.0.1"]
domain = "pxe.test"
pool_lease_secs = 120

[[subnet]]
cidr = "10.88.0.0/24"
server_ip = "10.77.0.1"
pool = {{ start = "10.88.0.10", end = "10.88.0.20" }}
routers = ["10.88.0.1"]

[boot]
http_base = "http://10.77.0.1:8091"

[tftp]
root = "tftp"
bind = "10.77.0.1:69"
block_size_limit = 1468
window_size_limit = 16
"#,
            srv_if = self.srv_if
        );
        fs::write(self.path("dhcpd.toml"), config).unwrap();
        let log = fs::File::create(self.path("dhcpd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.srv])
            .arg(daemon_binary("crowbar-dhcpd").unwrap())
            .arg("--config")
            .arg(self.path("dhcpd.toml"))
            .args(["--log", "info,crowbar_pxe=debug"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
        self.wait_log("DHCP listening", 1, Duration::from_secs(20));
    }

    fn log(&self) -> String {
        let raw = fs::read_to_string(self.path("dhcpd.log")).unwrap_or_default();
        strip_ansi(&raw)
    }

    /// Polls the daemon log until `needle` appears `count` times, or fails at the deadline.
    fn wait_log(&self, needle: &str, count: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log();
            if log.matches(needle).count() >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} did not appear {count} times in the daemon log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn in_cli(&self, args: &[&str]) -> Output {
        run(Command::new("ip")
            .args(["netns", "exec", &self.cli])
            .args(args))
    }

    fn set_cli_mac(&self, mac: &str) {
        sh(&["ip", "-n", &self.cli, "addr", "flush", "dev", &self.cli_if]);
        sh(&[
            "ip",
            "-n",
            &self.cli,
            "link",
            "set",
            &self.cli_if,
            "address",
            mac,
        ]);
    }

    /// Runs udhcpc once in the client namespace and returns what its script saw when bound.
    /// The script also configures the address, as a real client does (so it answers ARP).
    fn udhcpc(&self, mac: &str, extra: &[&str]) -> String {
        self.set_cli_mac(mac);
        let script = self.path("udhcpc.sh");
        let out_file = self.path("udhcpc.out");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nif [ \"$1\" = bound ]; then\n echo \"ip=$ip siaddr=$siaddr boot_file=$boot_file \
                 bootfile=$bootfile tftp=$tftp serverid=$serverid lease=$lease hostname=$hostname\" > {}\n \
                 ip addr add \"$ip/${{mask:-24}}\" dev \"$interface\"\nfi\nexit 0\n",
                out_file.display()
            ),
        )
        .unwrap();
        sh(&["chmod", "+x", script.to_str().unwrap()]);
        let _ = fs::remove_file(&out_file);
        let mut args = vec![
            "timeout",
            "30",
            "udhcpc",
            "-i",
            &self.cli_if,
            "-f",
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "2",
            "-s",
        ];
        let script = script.to_str().unwrap().to_owned();
        args.push(&script);
        args.extend_from_slice(extra);
        let out = self.in_cli(&args);
        assert!(
            out.status.success(),
            "udhcpc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::read_to_string(&out_file)
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Starts tcpdump on the client's veth (every UDP frame to port 68, link-level headers
    /// and decoded BOOTP) and waits until it captures.
    fn start_capture(&mut self) {
        let out = fs::File::create(self.path("capture.txt")).unwrap();
        let err = fs::File::create(self.path("capture.err")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.cli])
            .args([
                "tcpdump",
                "-i",
                &self.cli_if,
                "-n",
                "-e",
                "-l",
                "-v",
                "udp",
                "port",
                "68",
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !fs::read_to_string(self.path("capture.err"))
            .unwrap_or_default()
            .contains("listening on")
        {
            assert!(Instant::now() < deadline, "tcpdump did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The captured DHCP replies for `chaddr`, as (message type, destination MAC,
    /// destination IP), polling until there are at least `count` of them.
    fn captured_replies(&self, chaddr: &str, count: usize) -> Vec<(String, String, String)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = fs::read_to_string(self.path("capture.txt")).unwrap_or_default();
            let replies: Vec<_> = bootp_frames(&text)
                .into_iter()
                .filter(|f| f.reply && f.chaddr == chaddr)
                .map(|f| (f.kind, f.dst_mac, f.dst_ip))
                .collect();
            if replies.len() >= count {
                return replies;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {count} replies to {chaddr} captured:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn server_neighbours(&self) -> String {
        let out =
            run(Command::new("ip").args(["-n", &self.srv, "neigh", "show", "dev", &self.srv_if]));
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// One BOOTP frame in `tcpdump -e -v` output.
#[derive(Debug)]
struct BootpFrame {
    dst_mac: String,
    dst_ip: String,
    reply: bool,
    chaddr: String,
    kind: String,
}

/// Splits `tcpdump -n -e -v` output into frames: a frame starts with an unindented line
/// `time src_mac > dst_mac, ...`; its IP/UDP line is `src.port > dst.port: BOOTP/DHCP, Reply`.
fn bootp_frames(text: &str) -> Vec<BootpFrame> {
    let mut frames: Vec<BootpFrame> = Vec::new();
    for line in text.lines() {
        if !line.starts_with([' ', '\t']) {
            let mut words = line.split_whitespace();
            let dst_mac = words
                .nth(3)
                .unwrap_or_default()
                .trim_end_matches(',')
                .to_owned();
            frames.push(BootpFrame {
                dst_mac,
                dst_ip: String::new(),
                reply: false,
                chaddr: String::new(),
                kind: String::new(),
            });
            continue;
        }
        let Some(f) = frames.last_mut() else { continue };
        let line = line.trim();
        if line.contains("BOOTP/DHCP") {
            f.reply = line.contains("Reply");
            if let Some(dst) = line.split_whitespace().nth(2) {
                let dst = dst.trim_end_matches(':');
                f.dst_ip = dst
                    .rsplit_once('.')
                    .map_or(dst, |(ip, _port)| ip)
                    .to_owned();
            }
        } else if let Some(mac) = line.strip_prefix("Client-Ethernet-Address ") {
            f.chaddr = mac.trim().to_owned();
        } else if let Some(kind) =
            line.strip_prefix("DHCP-Message (53), length 1: ")
                .or_else(|| {
                    line.split_once("DHCP-Message Option 53, length 1: ")
                        .map(|(_, k)| k)
                })
        {
            f.kind = kind.trim().to_owned();
        }
    }
    frames
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            // `ip netns exec` execs the daemon, so this is the daemon's own pid.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Leftover client processes (dhclient forks a daemon on failure paths).
        for pid_file in ["dhclient.pid"] {
            if let Ok(pid) = fs::read_to_string(self.path(pid_file)) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.srv])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.cli])
            .status();
        let _ = fs::remove_dir_all(self.netns_etc());
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or("")
}

#[test]
fn udhcpc_gets_the_reservation_and_pxe_options_per_architecture() {
    let mut lab = lab_or_skip!("udhcpc", &["udhcpc"]);
    lab.start_daemon();
    // x86-64 UEFI firmware asking for options 66 and 67.
    let uefi = lab.udhcpc(
        RESERVED_MAC,
        &[
            "-V",
            "PXEClient:Arch:00007:UNDI:003016",
            "-x",
            "0x5d:0007",
            "-O",
            "bootfile",
            "-O",
            "tftp",
        ],
    );
    assert_eq!(field(&uefi, "ip"), "10.77.0.50", "{uefi}");
    assert_eq!(field(&uefi, "siaddr"), "10.77.0.1");
    assert_eq!(field(&uefi, "bootfile"), "ipxe.efi");
    assert_eq!(field(&uefi, "boot_file"), "ipxe.efi");
    assert_eq!(field(&uefi, "tftp"), "10.77.0.1");
    assert_eq!(field(&uefi, "lease"), "3600");
    assert_eq!(field(&uefi, "hostname"), "node1");
    // BIOS firmware: header file only.
    let bios = lab.udhcpc(
        RESERVED_MAC,
        &["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"],
    );
    assert_eq!(field(&bios, "boot_file"), "undionly.kpxe", "{bios}");
    // Option 93 is a list: an unknown first entry falls through to ARM64.
    let arm = lab.udhcpc(RESERVED_MAC, &["-V", "PXEClient", "-x", "0x5d:00ff000b"]);
    assert_eq!(field(&arm, "boot_file"), "ipxe-arm64.efi", "{arm}");
    // UEFI HTTP boot (arch 16): a URL, and vendor class HTTPClient echoed.
    let http = lab.udhcpc(
        RESERVED_MAC,
        &[
            "-V",
            "HTTPClient:Arch:00016:UNDI:003001",
            "-x",
            "0x5d:0010",
            "-O",
            "bootfile",
        ],
    );
    assert_eq!(
        field(&http, "bootfile"),
        "http://10.77.0.1:8091/ipxe.efi",
        "{http}"
    );
    // iPXE gets its per-node script.
    let ipxe = lab.udhcpc(
        RESERVED_MAC,
        &["-V", "PXEClient", "-x", "0x5d:0000", "-x", "0x4d:69505845"],
    );
    assert_eq!(
        field(&ipxe, "boot_file"),
        "ipxe/52-54-00-aa-bb-01.ipxe",
        "{ipxe}"
    );
    // bootenv local: the address, and no boot options at all.
    let local = lab.udhcpc(
        LOCAL_MAC,
        &["-V", "PXEClient", "-x", "0x5d:0007", "-O", "bootfile"],
    );
    assert_eq!(field(&local, "ip"), "10.77.0.51", "{local}");
    assert_eq!(
        (field(&local, "boot_file"), field(&local, "bootfile")),
        ("", "")
    );
    assert_eq!(
        field(&local, "siaddr"),
        "",
        "udhcpc exports siaddr only when it is set"
    );

    // node1's OS is installed: its bootenv becomes local; SIGHUP makes the daemon re-read the
    // hosts file and the next boot gets the same address and no boot options.
    let hosts = fs::read_to_string(lab.path("hosts.toml")).unwrap();
    let hosts = hosts.replacen("bootenv = \"sledgehammer\"", "bootenv = \"local\"", 1);
    fs::write(lab.path("hosts.toml"), hosts).unwrap();
    sh(&["kill", "-HUP", &lab.children[0].id().to_string()]);
    lab.wait_log("DHCP database updated", 1, Duration::from_secs(10));
    let installed = lab.udhcpc(
        RESERVED_MAC,
        &["-V", "PXEClient", "-x", "0x5d:0007", "-O", "bootfile"],
    );
    assert_eq!(field(&installed, "ip"), "10.77.0.50", "{installed}");
    assert_eq!(field(&installed, "boot_file"), "", "{installed}");
}

#[test]
fn replies_to_a_client_without_the_broadcast_flag_are_unicast_at_its_mac() {
    let mut lab = lab_or_skip!("unicast", &["udhcpc", "tcpdump"]);
    lab.start_daemon();
    lab.start_capture();
    // udhcpc without -B leaves the broadcast flag clear: RFC 2131 §4.1 says unicast to
    // yiaddr at chaddr, which the server can only do after writing the neighbour entry.
    let plain = lab.udhcpc(RESERVED_MAC, &[]);
    assert_eq!(field(&plain, "ip"), "10.77.0.50", "{plain}");
    let replies = lab.captured_replies(RESERVED_MAC, 2);
    assert_eq!(
        replies,
        vec![
            ("Offer".into(), RESERVED_MAC.into(), "10.77.0.50".into()),
            ("ACK".into(), RESERVED_MAC.into(), "10.77.0.50".into()),
        ],
        "OFFER and ACK unicast at the client's MAC and yiaddr; daemon log:\n{}\ncapture:\n{}",
        lab.log(),
        fs::read_to_string(lab.path("capture.txt")).unwrap_or_default()
    );
    let neigh = lab.server_neighbours();
    assert!(
        neigh
            .lines()
            .any(|l| l.starts_with("10.77.0.50 ") && l.contains(&format!("lladdr {RESERVED_MAC}"))),
        "no neighbour entry for the client on the server:\n{neigh}"
    );
    // udhcpc -B sets the broadcast flag: OFFER and ACK are broadcast.
    let flagged = lab.udhcpc(LOCAL_MAC, &["-B"]);
    assert_eq!(field(&flagged, "ip"), "10.77.0.51", "{flagged}");
    let replies = lab.captured_replies(LOCAL_MAC, 2);
    assert_eq!(
        replies,
        vec![
            (
                "Offer".into(),
                "ff:ff:ff:ff:ff:ff".into(),
                "255.255.255.255".into()
            ),
            (
                "ACK".into(),
                "ff:ff:ff:ff:ff:ff".into(),
                "255.255.255.255".into()
            ),
        ]
    );
    lab.wait_log(
        "DHCP reply kind=Ack yiaddr=10.77.0.51 to=255.255.255.255:68",
        1,
        Duration::from_secs(5),
    );
    lab.wait_log(
        "DHCP reply kind=Ack yiaddr=10.77.0.50 to=10.77.0.50:68",
        1,
        Duration::from_secs(5),
    );
}

const STORE_MAC_1: &str = "52:54:00:cb:00:01";
const STORE_MAC_2: &str = "52:54:00:cb:00:02";

/// A crowbar store with the admin network (host range 10.77.0.60-69), the admin node and d1,
/// whose MAC hint is `STORE_MAC_1`; written with the library as crowbar writes it.
fn write_store(path: &Path) -> (SqliteStore, Cluster) {
    let net = |s: &str| s.parse::<ipnet::IpNet>().unwrap();
    let store = SqliteStore::open(path).unwrap();
    let mut c = Cluster::new();
    ClusterNetworks::install(&mut c, 0x12_3456_789a).unwrap();
    ClusterNetworks::create_network(
        &mut c,
        NetworkSpec::new("admin", DeploymentId(1), "1g0")
            .range(RangeKind::Admin, net("10.77.0.10/24"), net("10.77.0.11/24"))
            .range(RangeKind::Host, net("10.77.0.60/24"), net("10.77.0.69/24")),
    )
    .unwrap();
    c.create_node(NodeSpec::new("admin.pxe.test").admin(true).alive(true))
        .unwrap();
    c.bind_by_name("network-admin", "admin", None).unwrap();
    c.create_node(NodeSpec::new("d1.pxe.test").hint(json!({"admin_macs": [STORE_MAC_1]})))
        .unwrap();
    c.bind_by_name("network-admin", "d1", None).unwrap();
    block_on(store.apply(c.take_batch())).unwrap();
    (store, c)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn reservations_come_from_a_crowbar_store_and_follow_its_changes() {
    let mut lab = lab_or_skip!("store", &["udhcpc"]);
    let (store, mut cluster) = write_store(&lab.path("crowbar.sqlite"));
    lab.start_daemon_with("[crowbar_store]\npath = \"crowbar.sqlite\"\npoll_ms = 200");
    let d1 = lab.udhcpc(STORE_MAC_1, &[]);
    assert_eq!(field(&d1, "ip"), "10.77.0.60", "{d1}");
    assert_eq!(field(&d1, "hostname"), "d1", "{d1}");
    assert_eq!(
        field(&d1, "lease"),
        "3600",
        "a reservation, not a pool lease: {d1}"
    );

    // A second node is added to the store while the daemon runs: it follows the revision.
    cluster
        .create_node(NodeSpec::new("d2.pxe.test").hint(json!({"admin_macs": [STORE_MAC_2]})))
        .unwrap();
    cluster.bind_by_name("network-admin", "d2", None).unwrap();
    block_on(store.apply(cluster.take_batch())).unwrap();
    lab.wait_log("crowbar store changed", 1, Duration::from_secs(20));
    let d2 = lab.udhcpc(STORE_MAC_2, &[]);
    assert_eq!(field(&d2, "ip"), "10.77.0.61", "{d2}");
    assert_eq!(field(&d2, "hostname"), "d2", "{d2}");
    // d1 keeps its reservation.
    let again = lab.udhcpc(STORE_MAC_1, &[]);
    assert_eq!(field(&again, "ip"), "10.77.0.60", "{again}");
}

#[test]
fn a_missing_or_foreign_store_stops_the_daemon_at_start_up() {
    let Some(daemon) = daemon_binary("crowbar-dhcpd") else {
        println!("skipped store start-up: examples/crowbar-dhcpd is not built");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let start = |store: &str| {
        let config = format!(
            "[crowbar_store]\npath = \"{store}\"\n\n[[interface]]\nname = \"cbnosuchif0\"\n\
             address = \"10.77.0.1\"\n\n[[subnet]]\ncidr = \"10.77.0.0/24\"\nserver_ip = \"10.77.0.1\"\n"
        );
        fs::write(dir.path().join("dhcpd.toml"), config).unwrap();
        let out = run(Command::new(&daemon)
            .arg("--config")
            .arg(dir.path().join("dhcpd.toml"))
            .env("NO_COLOR", "1"));
        assert!(
            !out.status.success(),
            "the daemon started with store {store}"
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = start("missing.sqlite");
    assert!(
        err.contains(&format!(
            "crowbar store {}/missing.sqlite does not exist",
            dir.path().display()
        )),
        "{err}"
    );
    assert!(
        !dir.path().join("missing.sqlite").exists(),
        "nothing is created"
    );

    fs::write(dir.path().join("text.sqlite"), "not a database at all\n").unwrap();
    let err = start("text.sqlite");
    assert!(err.contains("text.sqlite is not a crowbar store"), "{err}");

    // An SQLite file of something else: refused, and left as it was.
    let other = dir.path().join("other.sqlite");
    {
        let conn = rusqlite::Connection::open(&other).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER);").unwrap();
    }
    let err = start("other.sqlite");
    assert!(err.contains("other.sqlite is not a crowbar store"), "{err}");
    let conn = rusqlite::Connection::open(&other).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1, "the file was changed");
}

#[test]
fn issue_24_offers_reach_the_client_after_the_kernel_drops_its_neighbour_entry() {
    let mut lab = lab_or_skip!("neighbour", &["udhcpc", "tcpdump"]);
    lab.start_daemon();
    lab.start_capture();
    let unicast = |kind: &str| {
        (
            kind.to_owned(),
            RESERVED_MAC.to_owned(),
            "10.77.0.50".to_owned(),
        )
    };
    let got = lab.udhcpc(RESERVED_MAC, &[]);
    assert_eq!(field(&got, "ip"), "10.77.0.50", "{got}");
    let has_entry = |lab: &Lab| {
        lab.server_neighbours()
            .lines()
            .any(|l| l.starts_with("10.77.0.50 "))
    };
    assert!(has_entry(&lab));

    // 1. The client's link goes down and up: the server's end loses carrier and the kernel
    // flushes the entry the daemon wrote moments ago.
    sh(&["ip", "-n", &lab.cli, "link", "set", &lab.cli_if, "down"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while has_entry(&lab) {
        assert!(Instant::now() < deadline, "{}", lab.server_neighbours());
        std::thread::sleep(Duration::from_millis(20));
    }
    sh(&["ip", "-n", &lab.cli, "link", "set", &lab.cli_if, "up"]);
    let got = lab.udhcpc(RESERVED_MAC, &[]);
    assert_eq!(field(&got, "ip"), "10.77.0.50", "{got}\n{}", lab.log());

    // 2. What the kernel does after its unanswered ARP (FAILED, then collected), without
    // waiting for it: the entry is deleted between two DISCOVERs.
    sh(&[
        "ip",
        "-n",
        &lab.srv,
        "neigh",
        "del",
        "10.77.0.50",
        "dev",
        &lab.srv_if,
    ]);
    let got = lab.udhcpc(RESERVED_MAC, &[]);
    assert_eq!(field(&got, "ip"), "10.77.0.50", "{got}\n{}", lab.log());

    // 3. And an entry left in FAILED state.
    sh(&[
        "ip",
        "-n",
        &lab.srv,
        "neigh",
        "replace",
        "10.77.0.50",
        "lladdr",
        RESERVED_MAC,
        "nud",
        "failed",
        "dev",
        &lab.srv_if,
    ]);
    let got = lab.udhcpc(RESERVED_MAC, &[]);
    assert_eq!(field(&got, "ip"), "10.77.0.50", "{got}\n{}", lab.log());

    // Every OFFER and ACK went to the client's MAC: none was lost and none broadcast.
    let replies = lab.captured_replies(RESERVED_MAC, 8);
    let expected: Vec<_> = (0..4)
        .flat_map(|_| [unicast("Offer"), unicast("ACK")])
        .collect();
    assert_eq!(replies, expected);
}

#[test]
fn issue_24_a_misplaced_reservation_and_interface_address_are_logged() {
    let mut lab = lab_or_skip!("misplaced", &["udhcpc"]);
    // A machine reserved on the relayed subnet boots on the local one; and a second listener
    // claims an address its interface (lo) does not have.
    lab.start_daemon_with(
        "[[host]]\nfqdn = \"far.pxe.test\"\nmacs = [\"52:54:00:aa:bb:09\"]\n\
         address = \"10.88.0.9/24\"\n\n[[interface]]\nname = \"lo\"\naddress = \"10.77.5.5\"\n",
    );
    lab.wait_log(
        "interface.address is not an address of the interface interface=\"lo\" address=10.77.5.5",
        1,
        Duration::from_secs(5),
    );
    lab.set_cli_mac("52:54:00:aa:bb:09");
    let cli_if = lab.cli_if.clone();
    // One DISCOVER; it gets no answer, and the log says why.
    let _ = lab.in_cli(&[
        "timeout", "10", "udhcpc", "-i", &cli_if, "-f", "-q", "-n", "-t", "1", "-T", "1",
    ]);
    lab.wait_log(
        "DHCP request from a reserved MAC dropped: its reserved address is not on the subnet it asked from \
         mac=52:54:00:aa:bb:09 fqdn=far.pxe.test reserved=10.88.0.9/24 subnet=10.77.0.0/24",
        1,
        Duration::from_secs(10),
    );
}

#[test]
fn issue_24_configurations_that_cannot_work_stop_the_daemon_naming_the_key() {
    let Some(daemon) = daemon_binary("crowbar-dhcpd") else {
        println!("skipped config refusals: examples/crowbar-dhcpd is not built");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let start = |extra: &str, server_ip: &str| {
        let config = format!(
            "{extra}\n[[interface]]\nname = \"cbnosuchif0\"\naddress = \"10.77.0.1\"\n\n\
             [[subnet]]\ncidr = \"10.77.0.0/24\"\nserver_ip = \"{server_ip}\"\n\n\
             [tftp]\nroot = \".\"\nblock_size_limit = 0\n"
        );
        fs::write(dir.path().join("dhcpd.toml"), config).unwrap();
        let out = run(Command::new(&daemon)
            .arg("--config")
            .arg(dir.path().join("dhcpd.toml"))
            .env("NO_COLOR", "1"));
        assert!(!out.status.success(), "the daemon started");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = start("", "10.77.0.1");
    assert!(
        err.contains("tftp.block_size_limit: must be 8 to 65464"),
        "{err}"
    );
    let err = start("", "10.99.0.1");
    assert!(
        err.contains("subnet[0].server_ip: 10.99.0.1 is outside 10.77.0.0/24"),
        "{err}"
    );
    fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nfqdn = \"lost.pxe.test\"\nmacs = [\"52:54:00:aa:bb:0a\"]\naddress = \"10.99.0.5/24\"\n",
    )
    .unwrap();
    let config = fs::read_to_string(dir.path().join("dhcpd.toml")).unwrap();
    let fixed = config
        .replace("block_size_limit = 0", "block_size_limit = 1468")
        .replace("10.99.0.1", "10.77.0.1");
    fs::write(
        dir.path().join("dhcpd.toml"),
        format!("hosts_file = \"hosts.toml\"\n{fixed}"),
    )
    .unwrap();
    let out = run(Command::new(&daemon)
        .arg("--config")
        .arg(dir.path().join("dhcpd.toml"))
        .env("NO_COLOR", "1"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "hosts_file {}/hosts.toml: host lost.pxe.test: 10.99.0.5 (reserved for lost.pxe.test) is outside every [[subnet]]",
            dir.path().display()
        )),
        "{err}"
    );
}

#[test]
fn dhclient_gets_reservation_pool_address_and_release_frees_it() {
    let mut lab = lab_or_skip!("dhclient", &["dhclient"]);
    lab.start_daemon();
    let pid = lab.path("dhclient.pid");
    let leases = lab.path("dhclient.leases");
    let (pid, leases) = (pid.to_str().unwrap(), leases.to_str().unwrap());
    let dhclient = |lab: &Lab, release: bool| {
        let mut args = vec![
            "timeout", "30", "dhclient", "-v", "-1", "-pf", pid, "-lf", leases,
        ];
        if release {
            args.push("-r");
        }
        args.push(&lab.cli_if);
        let out = lab.in_cli(&args);
        assert!(
            out.status.success(),
            "dhclient: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let addr_of = |lab: &Lab| {
        let out = lab.in_cli(&["ip", "-4", "-o", "addr", "show", "dev", &lab.cli_if]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };

    // The reserved MAC gets its address, boot file and next-server.
    lab.set_cli_mac(RESERVED_MAC);
    dhclient(&lab, false);
    assert!(addr_of(&lab).contains("10.77.0.50/24"), "{}", addr_of(&lab));
    let lease_file = fs::read_to_string(leases).unwrap();
    assert!(
        lease_file.contains("filename \"undionly.kpxe\""),
        "{lease_file}"
    );
    assert!(
        lease_file.contains("option dhcp-server-identifier 10.77.0.1"),
        "{lease_file}"
    );
    dhclient(&lab, true);
    let _ = fs::remove_file(leases);

    // An unknown MAC gets the first pool address; RELEASE frees it for the next machine.
    lab.set_cli_mac("52:54:00:00:00:71");
    dhclient(&lab, false);
    assert!(
        addr_of(&lab).contains("10.77.0.100/24"),
        "{}",
        addr_of(&lab)
    );
    dhclient(&lab, true);
    lab.wait_log(
        "released mac=52:54:00:00:00:71 ip=10.77.0.100",
        1,
        Duration::from_secs(10),
    );
    let _ = fs::remove_file(leases);
    lab.set_cli_mac("52:54:00:00:00:72");
    dhclient(&lab, false);
    assert!(
        addr_of(&lab).contains("10.77.0.100/24"),
        "{}",
        addr_of(&lab)
    );
    dhclient(&lab, true);
}

#[test]
fn relayed_request_is_answered_at_giaddr_and_malformed_packets_are_dropped() {
    let mut lab = lab_or_skip!("relay", &[]);
    // The client namespace plays a relay agent: 10.77.0.2 towards the server, giaddr
    // 10.88.0.1 on its loopback, routed back by the server.
    sh(&[
        "ip",
        "-n",
        &lab.cli,
        "addr",
        "add",
        "10.77.0.2/24",
        "dev",
        &lab.cli_if,
    ]);
    sh(&[
        "ip",
        "-n",
        &lab.cli,
        "addr",
        "add",
        "10.88.0.1/32",
        "dev",
        "lo",
    ]);
    sh(&[
        "ip",
        "-n",
        &lab.srv,
        "route",
        "add",
        "10.88.0.0/24",
        "via",
        "10.77.0.2",
    ]);
    lab.start_daemon();
    let probe = daemon_binary("dhcp-probe").unwrap();
    let out = lab.in_cli(&[
        probe.to_str().unwrap(),
        "--bind",
        "10.88.0.1",
        "--server",
        "10.77.0.1",
        "--mac",
        "52:54:00:00:00:09",
        "--garbage",
        "3",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        vec![
            "OFFER yiaddr=10.88.0.10 giaddr=10.88.0.1 siaddr=10.77.0.1 file=undionly.kpxe server=10.77.0.1",
            "ACK yiaddr=10.88.0.10 giaddr=10.88.0.1 siaddr=10.77.0.1 file=undionly.kpxe server=10.77.0.1",
        ]
    );
    lab.wait_log("dropped malformed DHCP packet", 3, Duration::from_secs(5));
    let log = lab.log();
    assert!(
        log.contains("reason=truncated packet") || log.contains("runs past the end"),
        "{log}"
    );
    assert!(log.contains("option 94 has a bad length"), "{log}");
}

#[test]
fn tftp_clients_fetch_files_with_options_and_cannot_escape_the_root() {
    let mut lab = lab_or_skip!("tftp", &["tftp", "curl", "atftp"]);
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(lab.path("tftp/sub/big.bin"), &big).unwrap();
    fs::write(lab.dir.path().join("secret.txt"), b"outside the root").unwrap();
    std::os::unix::fs::symlink(lab.dir.path().join("secret.txt"), lab.path("tftp/escape")).unwrap();
    lab.start_daemon();
    sh(&[
        "ip",
        "-n",
        &lab.cli,
        "addr",
        "add",
        "10.77.0.2/24",
        "dev",
        &lab.cli_if,
    ]);
    let got = |name: &str| fs::read(lab.path(name)).unwrap_or_default();

    // tftp-hpa: plain RFC 1350, 512-byte blocks.
    let o = lab.path("hpa.bin");
    let out = lab.in_cli(&[
        "tftp",
        "-m",
        "binary",
        "10.77.0.1",
        "-c",
        "get",
        "sub/big.bin",
        o.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(got("hpa.bin") == big, "tftp-hpa copy differs");
    // curl with blksize.
    let o = lab.path("curl.bin");
    let out = lab.in_cli(&[
        "curl",
        "-sS",
        "--tftp-blksize",
        "1468",
        "-o",
        o.to_str().unwrap(),
        "tftp://10.77.0.1/sub/big.bin",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(got("curl.bin") == big, "curl copy differs");
    // atftp with blksize, windowsize, tsize and timeout: the server acknowledges all four.
    let o = lab.path("atftp.bin");
    let out = lab.in_cli(&[
        "atftp",
        "--trace",
        "--option",
        "blksize 1468",
        "--option",
        "windowsize 16",
        "--option",
        "tsize 0",
        "--option",
        "timeout 2",
        "-g",
        "-r",
        "sub/big.bin",
        "-l",
        o.to_str().unwrap(),
        "10.77.0.1",
    ]);
    let trace =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(got("atftp.bin") == big, "atftp copy differs: {trace}");
    let oack = trace
        .lines()
        .find(|l| l.contains("OACK"))
        .unwrap_or_default();
    assert!(
        oack.contains("windowsize: 16")
            && oack.contains("blksize: 1468")
            && oack.contains("tsize: 3000000")
            && oack.contains("timeout: 2"),
        "{trace}"
    );

    // The generated per-node iPXE script.
    let o = lab.path("node.ipxe");
    let out = lab.in_cli(&[
        "curl",
        "-sS",
        "-o",
        o.to_str().unwrap(),
        "tftp://10.77.0.1/ipxe/52-54-00-aa-bb-01.ipxe",
    ]);
    assert!(out.status.success());
    let script = String::from_utf8(got("node.ipxe")).unwrap();
    assert!(
        script.starts_with("#!ipxe\n") && script.contains("crowbar.fqdn=node1.pxe.test"),
        "{script}"
    );

    // Escapes: .. and a symlink pointing out are refused; an absolute path stays in the root.
    for (path, why) in [("../secret.txt", "Escape"), ("escape", "OutsideRoot")] {
        let o = lab.path("stolen");
        let out = lab.in_cli(&[
            "tftp",
            "-m",
            "binary",
            "10.77.0.1",
            "-c",
            "get",
            path,
            o.to_str().unwrap(),
        ]);
        let msg = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(msg.contains("Permission denied"), "{path}: {msg}");
        assert!(got("stolen").is_empty(), "{path} leaked");
        lab.wait_log(&format!("why={why}"), 1, Duration::from_secs(5));
    }
    let o = lab.path("stolen");
    let out = lab.in_cli(&[
        "tftp",
        "-m",
        "binary",
        "10.77.0.1",
        "-c",
        "get",
        "/etc/passwd",
        o.to_str().unwrap(),
    ]);
    let msg =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("File not found"), "{msg}");
    assert!(got("stolen").is_empty());
}

impl Lab {
    /// A bridge in the client namespace joining the veth and a tap for a VM.
    fn bridge_tap(&self) {
        for args in [
            vec!["link", "add", "br0", "type", "bridge"],
            vec!["link", "set", &self.cli_if, "master", "br0"],
            vec!["tuntap", "add", "dev", "tap0", "mode", "tap"],
            vec!["link", "set", "tap0", "master", "br0"],
            vec!["link", "set", "tap0", "up"],
            vec!["link", "set", "br0", "up"],
        ] {
            let mut full = vec!["ip", "-n", &self.cli];
            full.extend(args);
            sh(&full);
        }
    }

    /// Starts QEMU (TCG, no KVM) on the tap with an e1000 NIC at `RESERVED_MAC`, network boot.
    fn spawn_vm(&mut self, machine: &[&str]) {
        let serial = fs::File::create(self.path("qemu.log")).unwrap();
        let vm = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.cli,
                "qemu-system-x86_64",
                "-accel",
                "tcg",
            ])
            .args(machine)
            .args([
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-boot",
                "n",
            ])
            .args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"])
            .args(["-device", &format!("e1000,netdev=n0,mac={RESERVED_MAC}")])
            .stdin(Stdio::null())
            .stdout(serial.try_clone().unwrap())
            .stderr(serial)
            .spawn()
            .unwrap();
        self.children.push(vm);
    }
}

#[test]
fn qemu_ipxe_rom_pxe_boots_and_fetches_its_per_node_script() {
    let mut lab = lab_or_skip!("qemu", &["qemu-system-x86_64"]);
    if !Path::new("/usr/lib/ipxe/qemu/pxe-e1000.rom").exists() {
        missing_tool("ipxe-qemu (/usr/lib/ipxe/qemu/pxe-e1000.rom)");
    }
    lab.bridge_tap();
    lab.start_daemon();
    lab.spawn_vm(&["-m", "256"]);
    // Firmware DHCP with user class iPXE → our script over TFTP. TCG is slow; iPXE also
    // waits for IPv6 autoconfiguration first.
    lab.wait_log(
        "TFTP generated file client=10.77.0.50",
        1,
        Duration::from_secs(150),
    );
    let log = lab.log();
    assert!(log.contains("path=ipxe/52-54-00-aa-bb-01.ipxe"), "{log}");
    assert!(log.contains("kind=Ack yiaddr=10.77.0.50"), "{log}");
}

#[test]
fn qemu_uefi_firmware_loads_ipxe_efi_which_fetches_its_script() {
    let mut lab = lab_or_skip!("qemu-uefi", &["qemu-system-x86_64"]);
    let code = Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd");
    let vars = Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd");
    let ipxe_efi = Path::new("/usr/lib/ipxe/ipxe.efi");
    if !code.exists() {
        missing_tool("ovmf (/usr/share/OVMF/OVMF_CODE_4M.fd)");
    }
    if !ipxe_efi.exists() {
        missing_tool("ipxe (/usr/lib/ipxe/ipxe.efi)");
    }
    fs::copy(ipxe_efi, lab.path("tftp/ipxe.efi")).unwrap();
    fs::copy(vars, lab.path("vars.fd")).unwrap();
    lab.bridge_tap();
    lab.start_daemon();
    let code_drive = format!("if=pflash,format=raw,readonly=on,file={}", code.display());
    let vars_drive = format!(
        "if=pflash,format=raw,file={}",
        lab.path("vars.fd").display()
    );
    lab.spawn_vm(&[
        "-machine",
        "q35",
        "-m",
        "512",
        "-drive",
        &code_drive,
        "-drive",
        &vars_drive,
    ]);
    // EDK2's own PXE client (arch 7, no iPXE user class) is told ipxe.efi and downloads it
    // (after its tsize probe); the chainloaded iPXE asks again, now as iPXE, and gets its
    // script. The NIC's iPXE EFI ROM may fetch the script first.
    lab.wait_log("path=ipxe.efi", 1, Duration::from_secs(240));
    let after = lab.log().matches("TFTP generated file").count();
    lab.wait_log("TFTP generated file", after + 1, Duration::from_secs(120));
    let log = lab.log();
    assert!(log.contains("path=ipxe/52-54-00-aa-bb-01.ipxe"), "{log}");
}
