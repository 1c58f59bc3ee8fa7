//! The script jig over ssh against a real OpenSSH server: `sshd` started by the test on
//! 127.0.0.1 (a free port, its own host key, an authorized key made for the test), reached
//! with the real `ssh` and `scp`, the host key checked against a known-hosts file.
//!
//! Needs `sshd` (openssh-server; `.ci/run` installs it) and root, as the server switches to
//! the logged-in user.

mod common;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::script;
use crowbar_core::{Fqdn, NodeId, NodeRoleId};
use crowbar_jig::{Jig, JigError, NodeInfo, RunContext, ScriptConfig, ScriptJig, SshConfig};
use serde_json::json;

/// A running `sshd`, killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} not found: run ./test.sh as root, which installs it, or \
         apt-get install -y --no-install-recommends openssh-server openssh-client"
    );
}

fn keygen(path: &Path) {
    let status = Command::new(program("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "crowbar-test", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen {}", path.display());
}

fn login_name() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Sshd {
    /// Keys, configuration and a server accepting connections on 127.0.0.1.
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sftp = ["/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sftp-server (openssh-server)");
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\n\
             HostKey {host}\n\
             AuthorizedKeysFile {keys}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             StrictModes no\n\
             UsePAM no\n\
             PidFile none\n\
             Subsystem sftp {sftp}\n",
            host = d.join("host_key").display(),
            keys = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let child = Command::new(program("sshd"))
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let mut sshd = Sshd { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Some(status) = sshd.child.try_wait().unwrap() {
                panic!("sshd exited ({status}): {}", sshd.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd not listening: {}",
                sshd.log()
            );
            std::thread::yield_now();
        }
        sshd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// A known-hosts file trusting `key_file` (a public key) for this server.
    fn known_hosts(&self, name: &str, key_file: &str) -> PathBuf {
        let key = std::fs::read_to_string(self.path(key_file)).unwrap();
        let path = self.path(name);
        std::fs::write(&path, format!("[127.0.0.1]:{} {key}", self.port)).unwrap();
        path
    }

    /// A script jig reaching this server with the client key, trusting `known_hosts`.
    fn jig(&self, scripts: &Path, known_hosts: PathBuf) -> ScriptJig {
        let mut ssh = SshConfig::new(login_name(), self.path("client_key"));
        ssh.port = self.port;
        ssh.known_hosts = Some(known_hosts);
        let mut config = ScriptConfig::new(scripts.join("scripts"));
        config.work_dir = scripts.to_owned();
        config.timeout = Duration::from_secs(120);
        config.ssh = Some(ssh);
        ScriptJig::new(config).unwrap()
    }
}

fn node() -> NodeInfo {
    NodeInfo::new(NodeId(7), Fqdn::new("n7.example.com").unwrap())
        .with_address(Ipv4Addr::LOCALHOST.into())
}

/// Checks the run directory a script reported (with `pwd`) was made by `mktemp` on the node
/// (this machine) and is gone after the run.
fn assert_made_and_removed(remote: &str) {
    assert!(
        remote.starts_with("/tmp/scriptjig-"),
        "ran in the directory mktemp made on the node: {remote}"
    );
    assert!(
        !Path::new(remote).exists(),
        "the node's run directory {remote} is removed"
    );
}

#[tokio::test]
async fn scripts_run_on_the_node_over_real_ssh_and_their_walls_come_back() {
    let sshd = Sshd::start();
    let work = tempfile::tempdir().unwrap();
    script(
        work.path(),
        "ntp",
        "01-first.sh",
        "set -e\nmkdir -p attrs/ntp/count attrs/ntp/where\n\
         ls attrs/ntp/servers | wc -l | tr -d ' ' > attrs/ntp/count/wall\n\
         pwd > attrs/ntp/where/wall\necho first on $(hostname) >&2",
    );
    script(
        work.path(),
        "ntp",
        "02-second.sh",
        "set -e\nmkdir -p attrs/ntp/second\necho true > attrs/ntp/second/wall\necho second ran",
    );
    let jig = sshd.jig(work.path(), sshd.known_hosts("known_hosts", "host_key.pub"));
    let cx = RunContext::new(NodeRoleId(70), "ntp", node())
        .with_data(json!({"ntp": {"servers": ["a.pool", "b.pool"]}}));
    let out = jig
        .run(cx)
        .await
        .unwrap_or_else(|e| panic!("{e}; sshd: {}", sshd.log()));
    let wall = out.wall.expect("walls came back");
    assert_eq!(wall["ntp"]["count"], json!(2));
    assert_eq!(wall["ntp"]["second"], json!(true));
    assert_made_and_removed(wall["ntp"]["where"].as_str().unwrap());
    let user = login_name();
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    assert_eq!(
        out.runlog,
        format!(
            "== 01-first.sh on {user}@127.0.0.1\nfirst on {}\n== 02-second.sh on {user}@127.0.0.1\nsecond ran\n",
            host.trim()
        )
    );
}

#[tokio::test]
async fn a_failing_script_over_ssh_fails_the_run_with_its_status_and_output() {
    let sshd = Sshd::start();
    let work = tempfile::tempdir().unwrap();
    script(work.path(), "db", "01-ok.sh", "pwd");
    script(work.path(), "db", "02-bad.sh", "echo broken >&2\nexit 3");
    script(work.path(), "db", "03-never.sh", "echo never");
    let jig = sshd.jig(work.path(), sshd.known_hosts("known_hosts", "host_key.pub"));
    let err = jig
        .run(RunContext::new(NodeRoleId(71), "db", node()))
        .await
        .unwrap_err();
    let user = login_name();
    match err {
        JigError::Script {
            script,
            status,
            runlog,
        } => {
            assert_eq!(script, "02-bad.sh");
            assert_eq!(status, Some(3));
            let remote = runlog.lines().nth(1).unwrap_or_default().to_owned();
            assert_eq!(
                runlog,
                format!(
                    "== 01-ok.sh on {user}@127.0.0.1\n{remote}\n== 02-bad.sh on {user}@127.0.0.1\nbroken\n"
                )
            );
            assert_made_and_removed(&remote);
        }
        other => panic!(
            "expected a script failure, got {other}; sshd: {}",
            sshd.log()
        ),
    }
}

#[tokio::test]
async fn a_node_whose_host_key_is_not_the_known_one_is_unreachable_and_nothing_runs() {
    let sshd = Sshd::start();
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("ran");
    script(
        work.path(),
        "ntp",
        "01-first.sh",
        &format!("touch {}", marker.display()),
    );
    // Trust some other key for this address and port: a node that was reinstalled, or a
    // machine pretending to be it.
    let jig = sshd.jig(
        work.path(),
        sshd.known_hosts("wrong_hosts", "client_key.pub"),
    );
    let err = jig
        .run(RunContext::new(NodeRoleId(72), "ntp", node()))
        .await
        .unwrap_err();
    match &err {
        JigError::Unreachable {
            target, message, ..
        } => {
            assert_eq!(target, &format!("{}@127.0.0.1", login_name()));
            assert!(message.contains("255"), "{message}");
        }
        other => panic!("expected unreachable, got {other}"),
    }
    assert!(
        err.retryable(),
        "a node that cannot be reached may come back"
    );
    assert!(!marker.exists(), "no script ran");
}
