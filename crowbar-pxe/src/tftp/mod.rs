//! A read-only TFTP server (RFC 1350 with the options of RFC 2347, 2348, 2349 and 7440): a
//! root directory plus generated files (per-node iPXE scripts).
//!
//! Our own, not a library's, for guarantees a provisioning network needs: a transfer whose
//! client went away gives up after a few retries; a transfer stops at once when its client
//! sends an ERROR or a new request from the same address and port (so a stale transfer never
//! feeds a new one); a packet from an unexpected transfer ID gets ERROR 5 and never feeds a
//! transfer; concurrent transfers are capped; malformed requests are answered and counted.

mod packet;
mod transfer;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use packet::MalformedRequest;
use packet::{Mode, code};
use transfer::{Ending, Reader, Source};

use crate::pxe::script_path;
use crate::{HostIndex, MacAddr, PxeError, ScriptConfig};

/// Files that exist only in memory, generated per request.
///
/// Called on the TFTP task; implementations must be quick and must not block.
pub trait GeneratedFiles: Send + Sync + 'static {
    /// The content of `path` (relative, `/`-separated, already checked not to escape), or
    /// `None` if this source does not generate it.
    fn generate(&self, path: &str) -> Option<Vec<u8>>;
}

/// Generates `ipxe/<mac>.ipxe` for every MAC: the script of its bootenv, or the discovery
/// script for machines not in the DHCP database.
#[derive(Debug)]
pub struct IpxeScripts {
    hosts: watch::Receiver<Arc<HostIndex>>,
    config: ScriptConfig,
}

impl IpxeScripts {
    /// Scripts for the machines in `hosts`, a fixed snapshot.
    pub fn new(hosts: Arc<HostIndex>, config: ScriptConfig) -> Self {
        Self::watching(watch::channel(hosts).1, config)
    }

    /// Scripts that follow the latest snapshot sent on `hosts` (bootenv changes show at once).
    pub fn watching(hosts: watch::Receiver<Arc<HostIndex>>, config: ScriptConfig) -> Self {
        IpxeScripts { hosts, config }
    }
}

impl GeneratedFiles for IpxeScripts {
    fn generate(&self, path: &str) -> Option<Vec<u8>> {
        let name = path.strip_prefix("ipxe/")?.strip_suffix(".ipxe")?;
        let mac: MacAddr = name.parse().ok()?;
        if script_path(mac) != path {
            return None;
        }
        let hosts = self.hosts.borrow().clone();
        let host = hosts.by_mac(&mac).map(|h| h.as_ref());
        Some(self.config.render(mac, host).into_bytes())
    }
}

/// Why a TFTP path was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PathRefusal {
    /// The path contains `..` or is not valid text.
    Escape,
    /// The file does not exist (or is not a regular file).
    NotFound,
    /// The file (after following symlinks) is outside the root.
    OutsideRoot,
}

/// Maps a requested path to a file under `root` (which must be canonical), or refuses.
///
/// A leading `/` is taken relative to the root (clients send `/pxelinux.0`); any `..`
/// component is refused; symlinks are followed and the target must still be under the root.
pub fn resolve(root: &Path, requested: &str) -> Result<PathBuf, PathRefusal> {
    let relative = normalize(requested)?;
    let candidate = root.join(&relative);
    let real = candidate
        .canonicalize()
        .map_err(|_| PathRefusal::NotFound)?;
    if !real.starts_with(root) {
        return Err(PathRefusal::OutsideRoot);
    }
    if !real.is_file() {
        return Err(PathRefusal::NotFound);
    }
    Ok(real)
}

fn normalize(requested: &str) -> Result<String, PathRefusal> {
    let trimmed = requested.trim_start_matches(['/', '\\']);
    let mut parts = Vec::new();
    for c in Path::new(trimmed).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or(PathRefusal::Escape)?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(PathRefusal::Escape);
            }
        }
    }
    if parts.is_empty() || requested.contains('\\') {
        return Err(PathRefusal::Escape);
    }
    Ok(parts.join("/"))
}

/// TFTP settings. [`TftpConfig::new`] gives the defaults, close to tftp-hpa's.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TftpConfig {
    /// The directory served read-only.
    pub root: PathBuf,
    /// Where to listen (`0.0.0.0:69`).
    pub bind: SocketAddr,
    /// Largest block size granted (RFC 2348, 8 to 65464); clients asking more get this.
    pub block_size_limit: u16,
    /// Largest window granted (RFC 7440); clients asking more get this. Default 16.
    pub window_size_limit: u16,
    /// Retransmission timeout when the client does not ask for one (RFC 2349). Default 3 s.
    pub timeout: Duration,
    /// Retransmissions of one window before the transfer is abandoned. Default 5.
    pub retries: u32,
    /// A transfer with nothing acknowledged for this long is abandoned, whatever the retries
    /// (a client may ask for a 255 s timeout). Default 30 s.
    pub idle_timeout: Duration,
    /// Transfers at once; a request past it is answered with an ERROR. Default 50.
    pub max_transfers: usize,
}

impl TftpConfig {
    /// The defaults: blocks up to 65464 bytes, windows up to 16 blocks, a 3 s timeout, 5
    /// retries, 30 s without progress, 50 transfers at once.
    pub fn new(root: PathBuf, bind: SocketAddr) -> Self {
        TftpConfig {
            root,
            bind,
            block_size_limit: transfer::MAX_BLOCK_SIZE,
            window_size_limit: 16,
            timeout: Duration::from_secs(3),
            retries: 5,
            idle_timeout: Duration::from_secs(30),
            max_transfers: 50,
        }
    }
}

/// What one transfer may use.
#[derive(Clone, Copy, Debug)]
struct Limits {
    block_size: u16,
    window_size: u16,
    timeout: Duration,
    retries: u32,
    idle: Duration,
}

/// The server's counters, shared with the tasks that bump them.
#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    timed_out: AtomicU64,
    client_errors: AtomicU64,
    superseded: AtomicU64,
    busy: AtomicU64,
    unknown_tid: AtomicU64,
    malformed: AtomicU64,
    not_found: AtomicU64,
    refused: AtomicU64,
    active: AtomicU64,
}

impl Counters {
    fn bump(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of a [`TftpService`]'s counters ([`TftpStats::read`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct TftpCounts {
    /// Transfers started.
    pub started: u64,
    /// Transfers whose last block was acknowledged.
    pub completed: u64,
    /// Transfers abandoned: no acknowledgement after every retry, or idle too long.
    pub timed_out: u64,
    /// Transfers ended by an ERROR from their client.
    pub client_errors: u64,
    /// Transfers stopped because their client sent a new request from the same port.
    pub superseded: u64,
    /// Requests refused because [`TftpConfig::max_transfers`] were running (or no socket
    /// could be opened for them).
    pub busy: u64,
    /// Packets from an unknown transfer ID, answered with ERROR 5.
    pub unknown_tid: u64,
    /// Malformed requests, answered with ERROR 4 or 0.
    pub malformed: u64,
    /// Requests for files that do not exist.
    pub not_found: u64,
    /// Requests refused: a path escaping the root, or a write.
    pub refused: u64,
    /// Transfers running now.
    pub active: u64,
}

/// The live counters of a [`TftpService`]; [`read`](Self::read) takes a snapshot.
#[derive(Clone, Debug)]
pub struct TftpStats(Arc<Counters>);

impl TftpStats {
    /// The counters now.
    pub fn read(&self) -> TftpCounts {
        let c = &*self.0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TftpCounts {
            started: get(&c.started),
            completed: get(&c.completed),
            timed_out: get(&c.timed_out),
            client_errors: get(&c.client_errors),
            superseded: get(&c.superseded),
            busy: get(&c.busy),
            unknown_tid: get(&c.unknown_tid),
            malformed: get(&c.malformed),
            not_found: get(&c.not_found),
            refused: get(&c.refused),
            active: get(&c.active),
        }
    }
}

/// A warning that is logged at most once per interval, with the count of those held back.
struct RateLimited {
    last: Option<Instant>,
    held: u64,
}

impl RateLimited {
    const EVERY: Duration = Duration::from_secs(10);

    fn new() -> Self {
        RateLimited {
            last: None,
            held: 0,
        }
    }

    /// `Some(held back since the last one)` when this one may be logged.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < Self::EVERY => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

/// A running transfer, by client address.
struct Running {
    serial: u64,
    task: JoinHandle<()>,
}

/// The running transfers; dropping it (the server's future dropped) stops them all.
#[derive(Default)]
struct Transfers(HashMap<SocketAddr, Running>);

impl Drop for Transfers {
    fn drop(&mut self) {
        for r in self.0.values() {
            r.task.abort();
        }
    }
}

/// The TFTP server, bound and ready to [`serve`](TftpService::serve).
pub struct TftpService {
    socket: UdpSocket,
    root: PathBuf,
    generated: Arc<dyn GeneratedFiles>,
    limits: Limits,
    max_transfers: usize,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for TftpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpService")
            .field("socket", &self.socket)
            .field("root", &self.root)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl TftpService {
    /// Checks the settings and binds the socket (inside a tokio runtime).
    pub async fn bind(
        config: &TftpConfig,
        generated: Arc<dyn GeneratedFiles>,
    ) -> Result<Self, PxeError> {
        if !(8..=transfer::MAX_BLOCK_SIZE).contains(&config.block_size_limit) {
            return Err(PxeError::config(
                "tftp.block_size_limit",
                format!("must be 8 to 65464, not {}", config.block_size_limit),
            ));
        }
        if config.window_size_limit == 0 {
            return Err(PxeError::config(
                "tftp.window_size_limit",
                "must be at least 1",
            ));
        }
        if config.max_transfers == 0 {
            return Err(PxeError::config("tftp.max_transfers", "must be at least 1"));
        }
        if config.timeout.is_zero() {
            return Err(PxeError::config("tftp.timeout_secs", "must be at least 1"));
        }
        let root = config
            .root
            .canonicalize()
            .map_err(|e| PxeError::io(format!("TFTP root {}", config.root.display()), e))?;
        let socket = UdpSocket::bind(config.bind)
            .await
            .map_err(|e| PxeError::io(format!("binding TFTP on {}", config.bind), e))?;
        Ok(TftpService {
            socket,
            root,
            generated,
            limits: Limits {
                block_size: config.block_size_limit,
                window_size: config.window_size_limit,
                timeout: config.timeout,
                retries: config.retries,
                idle: config.idle_timeout,
            },
            max_transfers: config.max_transfers,
            counters: Arc::default(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, PxeError> {
        self.socket
            .local_addr()
            .map_err(|e| PxeError::io("TFTP local address", e))
    }

    /// The counters, live while the server runs.
    pub fn stats(&self) -> TftpStats {
        TftpStats(self.counters.clone())
    }

    /// Serves until the future is dropped (cancel-safe: dropping it stops the server and
    /// every transfer).
    pub async fn serve(self) -> Result<(), PxeError> {
        let mut transfers = Transfers::default();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
        let mut serial = 0u64;
        let mut buf = vec![0u8; 4096];
        let mut busy_log = RateLimited::new();
        let mut malformed_log = RateLimited::new();
        loop {
            tokio::select! {
                Some((client, done)) = done_rx.recv() => {
                    if transfers.0.get(&client).is_some_and(|r| r.serial == done) {
                        transfers.0.remove(&client);
                    }
                }
                received = self.socket.recv_from(&mut buf) => {
                    let (n, client) = match received {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(error = %e, "TFTP receive failed");
                            continue;
                        }
                    };
                    // Whatever it is, a new packet from this address and port at the server
                    // port means its client gave up the old transfer: stop it now, so no
                    // stale block reaches the port afterwards.
                    if let Some(old) = transfers.0.remove(&client) {
                        old.task.abort();
                        let _ = old.task.await;
                        self.counters.bump(&self.counters.superseded);
                        tracing::info!(%client, "TFTP transfer stopped: its client sent a new request");
                    }
                    if packet::is_error(&buf[..n]) {
                        continue;
                    }
                    let request = match packet::parse_request(&buf[..n]) {
                        Ok(r) => r,
                        Err(why) => {
                            self.counters.bump(&self.counters.malformed);
                            if let Some(held) = malformed_log.allow(Instant::now()) {
                                tracing::info!(%client, reason = %why, held_back = held, "malformed TFTP request");
                            }
                            self.reply_error(client, why.error_code(), why.message()).await;
                            continue;
                        }
                    };
                    if request.write {
                        self.counters.bump(&self.counters.refused);
                        tracing::warn!(%client, path = %request.filename, "TFTP write refused (read-only)");
                        self.reply_error(client, code::ACCESS, "Access violation: read-only server").await;
                        continue;
                    }
                    if transfers.0.len() >= self.max_transfers {
                        self.busy(client, &mut busy_log, format!("{} transfers running", transfers.0.len())).await;
                        continue;
                    }
                    let Some((source, size)) = self.open(client, &request.filename, request.mode).await else {
                        continue;
                    };
                    let local = SocketAddr::new(self.socket.local_addr().map_or(Ipv4Addr::UNSPECIFIED.into(), |a| a.ip()), 0);
                    let sock = match UdpSocket::bind(local).await {
                        Ok(s) => s,
                        Err(e) => {
                            self.busy(client, &mut busy_log, format!("no socket for the transfer: {e}")).await;
                            continue;
                        }
                    };
                    let agreed = transfer::negotiate(&request.options, size, &self.limits);
                    serial += 1;
                    let task = tokio::spawn(run_one(
                        sock,
                        client,
                        request.filename,
                        Reader::new(source, request.mode),
                        agreed,
                        self.limits,
                        self.counters.clone(),
                        (done_tx.clone(), serial),
                    ));
                    transfers.0.insert(client, Running { serial, task });
                }
            }
        }
    }

    async fn reply_error(&self, to: SocketAddr, code: u16, message: &str) {
        if let Err(e) = self.socket.send_to(&packet::error(code, message), to).await {
            tracing::debug!(error = %e, %to, "sending TFTP error failed");
        }
    }

    /// Refuses a request the server has no room for, logging it at most every 10 s.
    async fn busy(&self, client: SocketAddr, log: &mut RateLimited, why: String) {
        self.counters.bump(&self.counters.busy);
        if let Some(held) = log.allow(Instant::now()) {
            tracing::warn!(%client, held_back = held, "TFTP request refused, server busy: {why}");
        }
        self.reply_error(client, code::UNDEFINED, "server busy, try again later")
            .await;
    }

    /// Opens the requested file (generated first, then under the root), or answers the
    /// client with the reason it cannot have it. Returns the bytes and their size, if known.
    async fn open(
        &self,
        client: SocketAddr,
        text: &str,
        mode: Mode,
    ) -> Option<(Source, Option<u64>)> {
        let refused = |why: PathRefusal, path: &str| {
            tracing::warn!(%client, path, ?why, "TFTP path refused");
        };
        let relative = match normalize(text) {
            Ok(r) => r,
            Err(why) => {
                refused(why, text);
                self.counters.bump(&self.counters.refused);
                self.reply_error(client, code::ACCESS, "Permission denied")
                    .await;
                return None;
            }
        };
        // The size in netascii is not the size on disk: no tsize then.
        let sized = |n: u64| (mode == Mode::Octet).then_some(n);
        if let Some(bytes) = self.generated.generate(&relative) {
            tracing::info!(%client, path = %relative, "TFTP generated file");
            let len = bytes.len() as u64;
            return Some((Source::Memory(std::io::Cursor::new(bytes)), sized(len)));
        }
        match resolve(&self.root, &relative) {
            Ok(real) => match tokio::fs::File::open(&real).await {
                Ok(file) => {
                    let len = file.metadata().await.ok().map(|m| m.len());
                    tracing::info!(%client, path = %relative, "TFTP file");
                    Some((Source::File(file), len.and_then(sized)))
                }
                Err(e) => {
                    tracing::error!(%client, path = %relative, error = %e, "TFTP file cannot be opened");
                    self.reply_error(client, code::UNDEFINED, "cannot open the file")
                        .await;
                    None
                }
            },
            Err(PathRefusal::NotFound) => {
                self.counters.bump(&self.counters.not_found);
                tracing::info!(%client, path = %relative, "TFTP file not found");
                self.reply_error(client, code::NOT_FOUND, "File not found")
                    .await;
                None
            }
            Err(why) => {
                refused(why, &relative);
                self.counters.bump(&self.counters.refused);
                self.reply_error(client, code::ACCESS, "Permission denied")
                    .await;
                None
            }
        }
    }
}

/// One transfer's task: runs it, counts and logs how it ended, tells the server it is done.
#[allow(clippy::too_many_arguments)]
async fn run_one(
    sock: UdpSocket,
    client: SocketAddr,
    path: String,
    reader: Reader,
    agreed: transfer::Negotiated,
    limits: Limits,
    counters: Arc<Counters>,
    (done, serial): (mpsc::UnboundedSender<(SocketAddr, u64)>, u64),
) {
    counters.bump(&counters.started);
    counters.active.fetch_add(1, Ordering::Relaxed);
    // Counted down however the task ends, aborted included.
    struct Active(Arc<Counters>);
    impl Drop for Active {
        fn drop(&mut self) {
            self.0.active.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _active = Active(counters.clone());
    let ending = transfer::run(sock, client, reader, agreed, limits, &counters).await;
    match &ending {
        Ending::Complete { bytes } => {
            counters.bump(&counters.completed);
            tracing::debug!(%client, path, bytes, "TFTP transfer complete");
        }
        Ending::ClientError { code, message } => {
            counters.bump(&counters.client_errors);
            // EDK2 asks for tsize and then declines with code 8: routine.
            if *code == code::OPTIONS_REFUSED {
                tracing::debug!(%client, path, message, "TFTP client declined the options");
            } else {
                tracing::info!(%client, path, code, message, "TFTP client ended the transfer");
            }
        }
        Ending::TimedOut => {
            counters.bump(&counters.timed_out);
            tracing::info!(%client, path, retries = limits.retries, "TFTP transfer abandoned: no acknowledgement");
        }
        Ending::Failed(why) => {
            tracing::warn!(%client, path, error = %why, "TFTP transfer failed");
        }
    }
    let _ = done.send((client, serial));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_logged_at_most_every_ten_seconds_with_the_count_held_back() {
        let mut r = RateLimited::new();
        let t0 = Instant::now();
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(r.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(r.allow(t0 + Duration::from_secs(10)), Some(2));
    }

    #[test]
    fn paths_never_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/ok.bin"), b"ok").unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link-out")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/ok.bin"), root.join("link-in")).unwrap();

        assert_eq!(
            resolve(&root, "sub/ok.bin").unwrap(),
            root.join("sub/ok.bin")
        );
        assert_eq!(
            resolve(&root, "/sub/ok.bin").unwrap(),
            root.join("sub/ok.bin")
        );
        assert_eq!(
            resolve(&root, "./sub/./ok.bin").unwrap(),
            root.join("sub/ok.bin")
        );
        assert_eq!(resolve(&root, "link-in").unwrap(), root.join("sub/ok.bin"));
        assert_eq!(resolve(&root, "../etc/passwd"), Err(PathRefusal::Escape));
        assert_eq!(
            resolve(&root, "sub/../../etc/passwd"),
            Err(PathRefusal::Escape)
        );
        assert_eq!(resolve(&root, "sub\\..\\..\\x"), Err(PathRefusal::Escape));
        assert_eq!(resolve(&root, "/etc/passwd"), Err(PathRefusal::NotFound));
        assert_eq!(resolve(&root, "link-out"), Err(PathRefusal::OutsideRoot));
        assert_eq!(resolve(&root, "sub"), Err(PathRefusal::NotFound));
        assert_eq!(resolve(&root, ""), Err(PathRefusal::Escape));
    }

    #[test]
    fn scripts_are_generated_for_canonical_mac_paths_only() {
        let scripts = IpxeScripts::new(
            Arc::new(HostIndex::default()),
            ScriptConfig {
                http_base: "http://h".into(),
                extra_args: String::new(),
            },
        );
        let s = scripts.generate("ipxe/52-54-00-aa-bb-01.ipxe").unwrap();
        assert!(String::from_utf8(s).unwrap().starts_with("#!ipxe\n"));
        assert!(scripts.generate("ipxe/52:54:00:aa:bb:01.ipxe").is_none());
        assert!(scripts.generate("ipxe/nonsense.ipxe").is_none());
        assert!(scripts.generate("other/52-54-00-aa-bb-01.ipxe").is_none());
    }
}
