//! Crowbar's `script` jig: runs a role's scripts in order on the node, with the staged data
//! laid out as files, and reads back what the scripts wrote.

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::time::Instant;

use crate::attrs::{read_walls, write_attrs};
use crate::{Jig, JigError, JigOutput, Outcome, RunContext};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the script jig reaches nodes over ssh.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SshConfig {
    /// The remote user (letters, digits, `_`, `-`, starting with a letter or `_`).
    pub user: String,
    /// The private key file (`ssh -i`).
    pub key: PathBuf,
    /// The ssh port.
    pub port: u16,
    /// The ssh program.
    pub ssh_program: PathBuf,
    /// The scp program.
    pub scp_program: PathBuf,
    /// The only host keys to trust: an absolute path, of plain characters, to a known-hosts
    /// file (`[address]:port key` lines for a port other than 22), passed as
    /// `UserKnownHostsFile` with `StrictHostKeyChecking=yes` and no global file, so that a
    /// node whose key is missing or changed fails the run as unreachable. Without it ssh's
    /// defaults apply (the user's `~/.ssh/known_hosts` and `/etc/ssh/ssh_known_hosts`; in
    /// batch mode an unknown key is refused too).
    pub known_hosts: Option<PathBuf>,
}

impl SshConfig {
    /// `user` with `key` on port 22, with the `ssh` and `scp` found on the PATH.
    pub fn new(user: impl Into<String>, key: impl Into<PathBuf>) -> SshConfig {
        SshConfig {
            user: user.into(),
            key: key.into(),
            port: 22,
            ssh_program: "ssh".into(),
            scp_program: "scp".into(),
            known_hosts: None,
        }
    }
}

/// The script jig's settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ScriptConfig {
    /// Where the scripts are: `<scripts_dir>/<role>/*.sh`, run in file-name order.
    pub scripts_dir: PathBuf,
    /// Where local runs get their temporary directory (`scriptjig-XXXXXX`).
    pub work_dir: PathBuf,
    /// The limit for a whole run (every script, and the copies over ssh).
    pub timeout: Duration,
    /// ssh settings; without them every run is local.
    pub ssh: Option<SshConfig>,
    /// The most output kept in the runlog per run, in bytes.
    pub max_log_bytes: usize,
}

impl ScriptConfig {
    /// Scripts from `scripts_dir`, local runs in `/tmp`, a 30-minute limit, 1 MiB of log.
    pub fn new(scripts_dir: impl Into<PathBuf>) -> ScriptConfig {
        ScriptConfig {
            scripts_dir: scripts_dir.into(),
            work_dir: PathBuf::from("/tmp"),
            timeout: Duration::from_secs(30 * 60),
            ssh: None,
            max_log_bytes: 1 << 20,
        }
    }
}

/// Crowbar's `script` jig.
///
/// For a run of role `r` it takes `<scripts_dir>/r/*.sh` in file-name order, makes a fresh
/// directory `scriptjig-XXXXXX` holding the staged data as `attrs/<path...>/attr` files
/// (arrays by index), and runs each script with that directory as its working directory. A
/// script reports results by writing `attrs/<path...>/wall` files; they are read back, coerced
/// (`true`/`false`, decimal, `0x`/`0o`/`0b`), and become the noderole's wall. The first script
/// that exits non-zero fails the run. Standard output and error go to the runlog through one
/// pipe, in the order they were written, up to [`ScriptConfig::max_log_bytes`] (a prefix, with
/// a count of what was dropped); a run killed at its time limit keeps what it wrote before. A
/// script's run ends when the script does, even if a background process it started still
/// holds its output (over ssh, that depends on the remote side closing the session).
///
/// **Where.** Locally, unless the node has an address ([`NodeInfo::address`](crate::NodeInfo))
/// and [`ScriptConfig::ssh`] is set: then the directory is made with `mktemp -d` on the node,
/// filled with `scp`, each script run with `ssh`, the `wall` files copied back, and the
/// directory removed.
///
/// **No injection.** Programs are started directly with argument vectors, never through a
/// local shell. What reaches the remote shell is built only from validated pieces: an IP
/// address, a checked user name, the remote directory `mktemp` returned (checked) and script
/// names of `[A-Za-z0-9._-]`. The local environment is cleared except `PATH`.
///
/// **Limits.** The whole run has [`ScriptConfig::timeout`]; at the limit the running child is
/// killed and the run fails with [`JigError::Timeout`]. Children are spawned with
/// `kill_on_drop`, so a run the annealer drops kills its child too.
#[derive(Clone, Debug)]
pub struct ScriptJig {
    config: ScriptConfig,
}

impl ScriptJig {
    /// A script jig; refuses an ssh user name that is not a plain name, and a known-hosts
    /// path that ssh would not take as one file.
    pub fn new(config: ScriptConfig) -> Result<ScriptJig, JigError> {
        if let Some(ssh) = &config.ssh {
            check_user(&ssh.user)?;
            if let Some(k) = &ssh.known_hosts {
                check_known_hosts(k)?;
            }
        }
        Ok(ScriptJig { config })
    }

    /// The settings.
    pub fn config(&self) -> &ScriptConfig {
        &self.config
    }

    /// The scripts of `role`, in the order they run.
    pub fn scripts_for(&self, role: &str) -> Result<Vec<PathBuf>, JigError> {
        if !crate::attrs::safe_component(role) {
            return Err(invalid("role name", role, "not a single path component"));
        }
        let dir = self.config.scripts_dir.join(role);
        let no_scripts = || JigError::NoScripts {
            role: role.to_owned(),
            dir: dir.clone(),
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_scripts()),
            Err(e) => {
                return Err(JigError::Io {
                    operation: "list",
                    path: dir,
                    message: e.to_string(),
                });
            }
        };
        let mut scripts = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".sh") && entry.file_type().is_ok_and(|t| t.is_file()) {
                check_script_name(&name)?;
                scripts.push(entry.path());
            }
        }
        scripts.sort();
        if scripts.is_empty() {
            return Err(no_scripts());
        }
        Ok(scripts)
    }

    async fn run_local(
        &self,
        scripts: &[PathBuf],
        dir: &Path,
        log: &mut Runlog,
        deadline: Instant,
    ) -> Result<(), JigError> {
        for script in scripts {
            let name = file_name(script);
            log.line(&format!("== {name}"));
            let status = exec(
                script.as_os_str(),
                &[],
                Some(dir),
                Stdout::Log,
                deadline,
                log,
            )
            .await?;
            if status.code != Some(0) {
                return Err(JigError::Script {
                    script: name,
                    status: status.code,
                    runlog: log.take(),
                });
            }
        }
        Ok(())
    }

    async fn run_remote(
        &self,
        target: &SshTarget,
        scripts: &[PathBuf],
        dir: &Path,
        log: &mut Runlog,
        deadline: Instant,
    ) -> Result<(), JigError> {
        let ssh = target.ssh.as_os_str();
        let scp = target.scp.as_os_str();
        // What mktemp prints is the directory's name, not the run's output: kept out of the log.
        let mkdir = target.command(&MKTEMP);
        let made = exec_checked(target, ssh, &mkdir, Stdout::Keep, deadline, log).await?;
        let remote = made.stdout.trim().to_owned();
        check_remote_dir(&remote)?;
        let result = async {
            let mut local: Vec<PathBuf> = vec![dir.join("attrs")];
            local.extend(scripts.iter().cloned());
            let to = target.copy_to(&local, &remote);
            exec_checked(target, scp, &to, Stdout::Log, deadline, log).await?;
            for script in scripts {
                let name = file_name(script);
                log.line(&format!("== {name} on {}", target.destination()));
                let args = target.command(&["cd", &remote, "&&", &format!("./{name}")]);
                let status = exec(ssh, &args, None, Stdout::Log, deadline, log).await?;
                match status.code {
                    Some(0) => {}
                    Some(255) => return Err(target.unreachable("script run", log)),
                    code => {
                        return Err(JigError::Script {
                            script: name,
                            status: code,
                            runlog: log.take(),
                        });
                    }
                }
            }
            let back = dir.join("back");
            std::fs::create_dir_all(&back).map_err(|e| JigError::Io {
                operation: "create",
                path: back.clone(),
                message: e.to_string(),
            })?;
            let from = target.copy_from(&format!("{remote}/attrs"), &back);
            exec_checked(target, scp, &from, Stdout::Log, deadline, log).await?;
            Ok(())
        }
        .await;
        // Best effort: the directory is the node's to clean if this fails.
        let cleanup = target.command(&["rm", "-rf", "--", &remote]);
        let _ = exec(ssh, &cleanup, None, Stdout::Log, deadline, log).await;
        result
    }
}

const MKTEMP: [&str; 3] = ["mktemp", "-d", "/tmp/scriptjig-XXXXXX"];

#[async_trait]
impl Jig for ScriptJig {
    async fn run(&self, cx: RunContext) -> Outcome {
        let deadline = Instant::now() + self.config.timeout;
        let scripts = self.scripts_for(&cx.role)?;
        let tmp = tempfile::Builder::new()
            .prefix("scriptjig-")
            .tempdir_in(&self.config.work_dir)
            .map_err(|e| JigError::Io {
                operation: "create a run directory in",
                path: self.config.work_dir.clone(),
                message: e.to_string(),
            })?;
        let mut notes = Vec::new();
        write_attrs(&tmp.path().join("attrs"), &cx.data, &mut notes)?;
        let mut log = Runlog::new(self.config.max_log_bytes);
        for n in notes {
            log.line(&n);
        }
        let target = match (&self.config.ssh, cx.node.address) {
            (Some(ssh), Some(address)) => Some(SshTarget::new(ssh, address)?),
            _ => None,
        };
        let ran = match &target {
            None => {
                self.run_local(&scripts, tmp.path(), &mut log, deadline)
                    .await
            }
            Some(t) => {
                self.run_remote(t, &scripts, tmp.path(), &mut log, deadline)
                    .await
            }
        };
        if let Err(e) = ran {
            return Err(match e {
                JigError::Timeout { runlog, .. } => JigError::Timeout {
                    after_ms: self.config.timeout.as_millis() as u64,
                    runlog,
                },
                e => e,
            });
        }
        let walls_dir = match target {
            None => tmp.path().join("attrs"),
            Some(_) => tmp.path().join("back").join("attrs"),
        };
        let wall = read_walls(&walls_dir)?;
        Ok(JigOutput {
            wall,
            runlog: log.take(),
        })
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.config.timeout)
    }
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> JigError {
    JigError::Invalid {
        what,
        value: value.to_owned(),
        reason,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn check_user(user: &str) -> Result<(), JigError> {
    let mut bytes = user.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if !first_ok
        || user.len() > 32
        || !user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(invalid(
            "ssh user",
            user,
            "lower-case letters, digits, '_' and '-', starting with a letter or '_'",
        ));
    }
    Ok(())
}

/// A known-hosts path ssh reads as the one file it names: absolute, and free of what its
/// option parser would split, unquote or expand (white space, quotes, `%` tokens, `~`).
fn check_known_hosts(path: &Path) -> Result<&str, JigError> {
    let lossy = || path.to_string_lossy().into_owned();
    let Some(s) = path.to_str() else {
        return Err(JigError::Invalid {
            what: "known_hosts path",
            value: lossy(),
            reason: "not UTF-8",
        });
    };
    let plain = s.starts_with('/')
        && s.bytes().all(|b| {
            (b.is_ascii_graphic() || b >= 0x80) && !matches!(b, b'"' | b'\'' | b'\\' | b'%' | b'~')
        });
    if !plain {
        return Err(invalid(
            "known_hosts path",
            s,
            "an absolute path without white space, quotes, '\\', '%' or '~'",
        ));
    }
    Ok(s)
}

fn check_script_name(name: &str) -> Result<(), JigError> {
    if name.starts_with(['-', '.'])
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(invalid(
            "script name",
            name,
            "letters, digits, '.', '_' and '-', not starting with '-' or '.'",
        ));
    }
    Ok(())
}

fn check_remote_dir(dir: &str) -> Result<(), JigError> {
    let ok = dir
        .strip_prefix("/tmp/scriptjig-")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "remote directory",
            dir,
            "mktemp returned something other than /tmp/scriptjig-XXXXXX",
        ))
    }
}

/// A node reached over ssh: builds the argument vectors of `ssh` and `scp`.
#[derive(Clone, Debug)]
pub(crate) struct SshTarget {
    user: String,
    address: IpAddr,
    key: PathBuf,
    port: u16,
    ssh: PathBuf,
    scp: PathBuf,
    known_hosts: Option<String>,
}

impl SshTarget {
    pub(crate) fn new(config: &SshConfig, address: IpAddr) -> Result<SshTarget, JigError> {
        check_user(&config.user)?;
        let known_hosts = match &config.known_hosts {
            Some(k) => Some(check_known_hosts(k)?.to_owned()),
            None => None,
        };
        Ok(SshTarget {
            user: config.user.clone(),
            address,
            key: config.key.clone(),
            port: config.port,
            ssh: config.ssh_program.clone(),
            scp: config.scp_program.clone(),
            known_hosts,
        })
    }

    /// `user@address`.
    pub(crate) fn destination(&self) -> String {
        format!("{}@{}", self.user, self.address)
    }

    fn options(&self, port_flag: &str) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "-i".into(),
            self.key.clone().into_os_string(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "ConnectTimeout=30".into(),
        ];
        if let Some(k) = &self.known_hosts {
            for o in [
                "StrictHostKeyChecking=yes",
                "GlobalKnownHostsFile=/dev/null",
                &format!("UserKnownHostsFile={k}"),
            ] {
                args.push("-o".into());
                args.push(o.into());
            }
        }
        args.push(port_flag.into());
        args.push(self.port.to_string().into());
        args
    }

    /// The arguments of `ssh` running `remote` (words the remote shell joins) on the node.
    pub(crate) fn command(&self, remote: &[&str]) -> Vec<OsString> {
        let mut args = self.options("-p");
        args.push("--".into());
        args.push(self.destination().into());
        args.extend(remote.iter().map(OsString::from));
        args
    }

    fn remote_spec(&self, path: &str) -> String {
        match self.address {
            IpAddr::V4(a) => format!("{}@{a}:{path}", self.user),
            IpAddr::V6(a) => format!("{}@[{a}]:{path}", self.user),
        }
    }

    /// The arguments of `scp` copying `local` files and directories into `remote_dir`.
    pub(crate) fn copy_to(&self, local: &[PathBuf], remote_dir: &str) -> Vec<OsString> {
        let mut args = self.options("-P");
        args.push("-r".into());
        args.push("--".into());
        args.extend(local.iter().map(|p| p.clone().into_os_string()));
        args.push(format!("{}/", self.remote_spec(remote_dir)).into());
        args
    }

    /// The arguments of `scp` copying `remote` (recursively) into the local directory `local`.
    pub(crate) fn copy_from(&self, remote: &str, local: &Path) -> Vec<OsString> {
        let mut args = self.options("-P");
        args.push("-r".into());
        args.push("--".into());
        args.push(self.remote_spec(remote).into());
        args.push(local.to_owned().into_os_string());
        args
    }

    fn unreachable(&self, step: &str, log: &mut Runlog) -> JigError {
        JigError::Unreachable {
            target: self.destination(),
            message: format!("{step} failed with exit status 255"),
            runlog: log.take(),
        }
    }
}

/// A runlog with a size cap: it keeps a prefix of the output, and counts what went past the
/// cap; the jig's own closing notes (why a run ended) are kept whatever the cap.
#[derive(Debug)]
pub(crate) struct Runlog {
    text: String,
    max: usize,
    dropped: usize,
    notes: String,
}

impl Runlog {
    pub(crate) fn new(max: usize) -> Runlog {
        Runlog {
            text: String::new(),
            max,
            dropped: 0,
            notes: String::new(),
        }
    }

    pub(crate) fn push(&mut self, s: &str) {
        if self.dropped > 0 {
            // Past the cap: nothing more is kept, not even what would still fit.
            self.dropped += s.len();
            return;
        }
        let room = self.max.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
        } else {
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.push_str(&s[..cut]);
            self.dropped += s.len() - cut;
        }
    }

    /// Output bytes: counted as dropped without being decoded once the log is full.
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) {
        if self.dropped > 0 || self.text.len() >= self.max {
            self.dropped += bytes.len();
        } else {
            self.push(&String::from_utf8_lossy(bytes));
        }
    }

    pub(crate) fn line(&mut self, s: &str) {
        self.push(s);
        self.push("\n");
    }

    /// A line of the jig's own, kept at the end whatever the cap.
    pub(crate) fn note(&mut self, s: &str) {
        self.notes.push_str(s);
        self.notes.push('\n');
    }

    pub(crate) fn take(&mut self) -> String {
        let mut out = std::mem::take(&mut self.text);
        if self.dropped > 0 {
            out.push_str(&format!("\n[{} bytes of output dropped]\n", self.dropped));
            self.dropped = 0;
        }
        out.push_str(&self.notes);
        self.notes.clear();
        out
    }
}

struct Exit {
    code: Option<i32>,
    /// Standard output, when asked for with [`Stdout::Keep`] (else empty).
    stdout: String,
}

/// Where a child's standard output goes (its standard error always goes to the log).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stdout {
    /// Into the runlog: a script's output.
    Log,
    /// Back to the caller in [`Exit::stdout`], not logged: a step's answer.
    Keep,
}

/// Runs `program` with `args` (no shell), killed at `deadline`. Its standard error, and its
/// standard output unless `stdout` keeps it, go to the log through one pipe, so they stay in
/// the order the child wrote them (as `2>&1` would); the log takes them as they come, up to
/// its cap (the rest is read and counted, never held), so what a child wrote before it was
/// killed stays in the log too.
async fn exec(
    program: &OsStr,
    args: &[OsString],
    cwd: Option<&Path>,
    stdout: Stdout,
    deadline: Instant,
    log: &mut Runlog,
) -> Result<Exit, JigError> {
    let spawn_error = |e: std::io::Error| JigError::Spawn {
        program: program.to_string_lossy().into_owned(),
        message: e.to_string(),
    };
    let (reader, writer) = std::io::pipe().map_err(spawn_error)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    match stdout {
        Stdout::Log => cmd.stdout(writer.try_clone().map_err(spawn_error)?),
        Stdout::Keep => cmd.stdout(Stdio::piped()),
    };
    cmd.stderr(writer);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let spawned = cmd.spawn();
    // The command holds the pipe's write end: closed here, so that only the child (and what it
    // starts) holds it, and the read below sees the end when they close it.
    drop(cmd);
    let mut child = spawned.map_err(spawn_error)?;
    let output =
        tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into()).map_err(spawn_error)?;
    let answer = child.stdout.take();
    let ran = tokio::time::timeout_at(deadline, async {
        let mut kept = Vec::new();
        let keep = async {
            match answer {
                Some(mut out) => out.read_to_end(&mut kept).await.map(drop),
                None => Ok(()),
            }
        };
        let (logged, answered) = tokio::join!(copy_until_exit(output, &mut child, log), keep);
        answered?;
        Ok::<_, std::io::Error>((logged?, kept))
    })
    .await;
    match ran {
        Ok(Ok((status, kept))) => Ok(Exit {
            code: status.code(),
            stdout: String::from_utf8_lossy(&kept).into_owned(),
        }),
        Ok(Err(e)) => Err(spawn_error(e)),
        // The child is dropped with `child` here, and `kill_on_drop` kills it.
        Err(_) => {
            log.note(&format!(
                "== killed: {} ran out of time",
                program.to_string_lossy()
            ));
            Err(JigError::Timeout {
                after_ms: 0,
                runlog: log.take(),
            })
        }
    }
}

/// Reads `output` into `log` until `child` has exited and what it wrote is read: whole lines
/// as they come (a character is never cut in two), the rest at the end. Once the child is gone
/// the pipe is emptied and left: a background process it started that still holds the pipe
/// (a daemon that kept its output) does not keep the run open.
async fn copy_until_exit(
    mut output: tokio::net::unix::pipe::Receiver,
    child: &mut tokio::process::Child,
    log: &mut Runlog,
) -> std::io::Result<std::process::ExitStatus> {
    enum Step {
        Read(std::io::Result<usize>),
        Exited(std::io::Result<std::process::ExitStatus>),
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = 0;
    let status = loop {
        let step = tokio::select! {
            read = output.read(&mut buf[pending..]) => Step::Read(read),
            status = child.wait() => Step::Exited(status),
        };
        match step {
            Step::Read(read) => match read? {
                // Every writer closed the pipe: the child has ended, or is about to.
                0 => break child.wait().await?,
                n => pending = log_lines(&mut buf, pending + n, log),
            },
            Step::Exited(status) => {
                let status = status?;
                // What the child wrote is in the pipe: read it with plain non-blocking reads
                // (the reactor may not have seen it yet), up to the first empty read, and no
                // more than a pipe can hold, so that a process still writing cannot keep this
                // loop (which does not yield) going.
                let mut rest = std::fs::File::from(output.into_nonblocking_fd()?);
                let mut left = MAX_PIPE_BYTES;
                while left > 0 {
                    let room = (buf.len() - pending).min(left);
                    match std::io::Read::read(&mut rest, &mut buf[pending..pending + room]) {
                        Ok(0) => break,
                        Ok(n) => {
                            left -= n;
                            pending = log_lines(&mut buf, pending + n, log);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                break status;
            }
        }
    };
    log.push_bytes(&buf[..pending]);
    Ok(status)
}

/// The most a pipe holds on Linux unless raised (`/proc/sys/fs/pipe-max-size`): all a child
/// can have written before it exited and nobody read.
const MAX_PIPE_BYTES: usize = 1 << 20;

/// Logs the whole lines of `buf[..end]` and moves the rest to the front; returns its length,
/// always below `buf.len()`: a line longer than the buffer is logged as far as it goes.
fn log_lines(buf: &mut [u8], end: usize, log: &mut Runlog) -> usize {
    match buf[..end].iter().rposition(|b| *b == b'\n') {
        Some(last) => {
            log.push_bytes(&buf[..=last]);
            buf.copy_within(last + 1..end, 0);
            end - last - 1
        }
        None if end == buf.len() => {
            log.push_bytes(buf);
            0
        }
        None => end,
    }
}

/// Like [`exec`] for ssh/scp steps that must succeed: 255 is unreachable, other failures an
/// error of the step.
async fn exec_checked(
    target: &SshTarget,
    program: &OsStr,
    args: &[OsString],
    stdout: Stdout,
    deadline: Instant,
    log: &mut Runlog,
) -> Result<Exit, JigError> {
    let exit = exec(program, args, None, stdout, deadline, log).await?;
    match exit.code {
        Some(0) => Ok(exit),
        Some(255) => Err(target.unreachable(&program.to_string_lossy(), log)),
        code => Err(JigError::Script {
            script: program.to_string_lossy().into_owned(),
            status: code,
            runlog: log.take(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn ssh_commands_are_argument_vectors_with_an_end_of_options() {
        let cfg = SshConfig::new("crowbar", "/etc/crowbar/id_ed25519");
        let t = SshTarget::new(&cfg, "192.168.124.81".parse().unwrap()).unwrap();
        assert_eq!(
            strings(&t.command(&MKTEMP)).join(" "),
            "-i /etc/crowbar/id_ed25519 -o BatchMode=yes -o ConnectTimeout=30 -p 22 -- \
             crowbar@192.168.124.81 mktemp -d /tmp/scriptjig-XXXXXX"
        );
        let to = t.copy_to(
            &[PathBuf::from("/w/attrs"), PathBuf::from("/s/01-a.sh")],
            "/tmp/scriptjig-AbC123",
        );
        assert_eq!(
            strings(&to).join(" "),
            "-i /etc/crowbar/id_ed25519 -o BatchMode=yes -o ConnectTimeout=30 -P 22 -r -- \
             /w/attrs /s/01-a.sh crowbar@192.168.124.81:/tmp/scriptjig-AbC123/"
        );
        let v6 = SshTarget::new(&cfg, "fd00::5".parse().unwrap()).unwrap();
        let from = v6.copy_from("/tmp/scriptjig-x1/attrs", Path::new("/w/back"));
        assert_eq!(
            strings(&from)[8..].join(" "),
            "-r -- crowbar@[fd00::5]:/tmp/scriptjig-x1/attrs /w/back"
        );
    }

    #[test]
    fn hostile_names_are_refused() {
        for user in ["root;reboot", "-oProxyCommand=x", "", "Root", "a b"] {
            let err = SshTarget::new(&SshConfig::new(user, "/k"), "10.0.0.1".parse().unwrap());
            assert!(
                matches!(
                    err,
                    Err(JigError::Invalid {
                        what: "ssh user",
                        ..
                    })
                ),
                "{user}"
            );
        }
        assert!(check_script_name("01-install.sh").is_ok());
        for name in ["-rf.sh", "a;b.sh", "$(x).sh", ".hidden.sh", "a b.sh"] {
            assert!(check_script_name(name).is_err(), "{name}");
        }
        assert!(check_remote_dir("/tmp/scriptjig-Ab12xZ").is_ok());
        for dir in [
            "/tmp/scriptjig-",
            "/tmp/scriptjig-a;rm",
            "/home/x",
            "/tmp/scriptjig-a/../b",
        ] {
            assert!(check_remote_dir(dir).is_err(), "{dir}");
        }
        let cfg = ScriptConfig {
            ssh: Some(SshConfig::new("bad user", "/k")),
            ..ScriptConfig::new("/s")
        };
        assert!(ScriptJig::new(cfg).is_err());
        for path in [
            "known_hosts",
            "~/.ssh/known_hosts",
            "/a b",
            "/a\tb",
            "/a\"b",
            "/x/%h",
            "/a\\b",
        ] {
            let mut ssh = SshConfig::new("crowbar", "/k");
            ssh.known_hosts = Some(path.into());
            let err = ScriptJig::new(ScriptConfig {
                ssh: Some(ssh),
                ..ScriptConfig::new("/s")
            });
            assert!(
                matches!(
                    err,
                    Err(JigError::Invalid {
                        what: "known_hosts path",
                        ..
                    })
                ),
                "{path}: {err:?}"
            );
        }
    }

    #[test]
    fn a_known_hosts_file_is_the_only_trust() {
        let mut cfg = SshConfig::new("crowbar", "/k");
        cfg.known_hosts = Some("/etc/crowbar/known_hosts".into());
        cfg.port = 2222;
        let t = SshTarget::new(&cfg, "10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            strings(&t.command(&["true"])).join(" "),
            "-i /k -o BatchMode=yes -o ConnectTimeout=30 -o StrictHostKeyChecking=yes \
             -o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile=/etc/crowbar/known_hosts \
             -p 2222 -- crowbar@10.0.0.1 true"
        );
    }

    #[test]
    fn whole_lines_go_to_the_log_and_a_line_longer_than_the_buffer_as_far_as_it_goes() {
        let mut log = Runlog::new(100);
        let mut buf = *b"ab\ncd\nef";
        assert_eq!(log_lines(&mut buf, 8, &mut log), 2);
        assert_eq!(&buf[..2], b"ef");
        let mut full = *b"ghijklmn";
        assert_eq!(log_lines(&mut full, 8, &mut log), 0);
        assert_eq!(log.take(), "ab\ncd\nghijklmn");
    }

    #[test]
    fn runlog_is_capped() {
        let mut log = Runlog::new(5);
        log.push("abc");
        log.push("défg");
        // A prefix of the output: what comes after the cut is dropped even if it would fit.
        log.push("h");
        log.push_bytes(b"ij");
        log.note("== killed: x ran out of time");
        assert_eq!(
            log.take(),
            "abcd\n[7 bytes of output dropped]\n== killed: x ran out of time\n"
        );
        log.push_bytes("k\u{e9}".as_bytes());
        assert_eq!(log.take(), "k\u{e9}", "a taken log starts again");
    }
}
