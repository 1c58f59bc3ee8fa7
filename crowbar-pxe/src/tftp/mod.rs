//! A read-only TFTP server: a root directory plus generated files (per-node iPXE scripts).

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_tftp::packet;
use async_tftp::server::{Handler, TftpServer, TftpServerBuilder};
use futures_lite::io::{AssertAsync, BoxedReader, Cursor, Sink};
use tokio::sync::watch;

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

/// TFTP settings.
#[derive(Clone, Debug)]
pub struct TftpConfig {
    /// The directory served read-only.
    pub root: PathBuf,
    /// Where to listen (`0.0.0.0:69`).
    pub bind: SocketAddr,
    /// Largest block size granted (RFC 2348); clients asking more get this.
    pub block_size_limit: Option<u16>,
    /// Largest window granted (RFC 7440).
    pub window_size_limit: Option<u16>,
    /// Retransmission timeout when the client does not ask for one (RFC 2349).
    pub timeout: Duration,
}

struct RootHandler {
    root: PathBuf,
    generated: Arc<dyn GeneratedFiles>,
}

impl Handler for RootHandler {
    type Reader = BoxedReader;
    type Writer = Sink;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Self::Reader, Option<u64>), packet::Error> {
        let Some(text) = path.to_str() else {
            return Err(packet::Error::FileNotFound);
        };
        let relative = match normalize(text) {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(%client, path = text, ?why, "TFTP path refused");
                return Err(packet::Error::PermissionDenied);
            }
        };
        if let Some(bytes) = self.generated.generate(&relative) {
            tracing::info!(%client, path = %relative, "TFTP generated file");
            let len = bytes.len() as u64;
            return Ok((Box::pin(Cursor::new(bytes)), Some(len)));
        }
        match resolve(&self.root, &relative) {
            Ok(real) => {
                let file = std::fs::File::open(&real).map_err(|_| packet::Error::FileNotFound)?;
                let len = file.metadata().ok().map(|m| m.len());
                tracing::info!(%client, path = %relative, "TFTP file");
                Ok((
                    Box::pin(AssertAsync::new(std::io::BufReader::new(file))),
                    len,
                ))
            }
            Err(PathRefusal::NotFound) => Err(packet::Error::FileNotFound),
            Err(why) => {
                tracing::warn!(%client, path = %relative, ?why, "TFTP path refused");
                Err(packet::Error::PermissionDenied)
            }
        }
    }

    async fn write_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
        _size: Option<u64>,
    ) -> Result<Self::Writer, packet::Error> {
        tracing::warn!(%client, path = %path.display(), "TFTP write refused (read-only)");
        Err(packet::Error::IllegalOperation)
    }
}

/// The TFTP server, bound and ready to [`serve`](TftpService::serve).
pub struct TftpService {
    inner: TftpServer<RootHandler>,
}

impl std::fmt::Debug for TftpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpService").finish_non_exhaustive()
    }
}

impl TftpService {
    /// Binds the socket.
    pub async fn bind(
        config: &TftpConfig,
        generated: Arc<dyn GeneratedFiles>,
    ) -> Result<Self, PxeError> {
        let root = config
            .root
            .canonicalize()
            .map_err(|e| PxeError::io(format!("TFTP root {}", config.root.display()), e))?;
        let mut builder = TftpServerBuilder::with_handler(RootHandler { root, generated })
            .bind(config.bind)
            .timeout(config.timeout);
        if let Some(b) = config.block_size_limit {
            builder = builder.block_size_limit(b);
        }
        if let Some(w) = config.window_size_limit {
            builder = builder.window_size_limit(w);
        }
        let inner = builder.build().await.map_err(|e| {
            PxeError::io(
                format!("binding TFTP on {}", config.bind),
                std::io::Error::other(e.to_string()),
            )
        })?;
        Ok(TftpService { inner })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, PxeError> {
        self.inner
            .listen_addr()
            .map_err(|e| PxeError::io("TFTP local address", std::io::Error::other(e.to_string())))
    }

    /// Serves until the future is dropped (cancel-safe: dropping it stops the server).
    pub async fn serve(self) -> Result<(), PxeError> {
        self.inner
            .serve()
            .await
            .map_err(|e| PxeError::io("TFTP server", std::io::Error::other(e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
