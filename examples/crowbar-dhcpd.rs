//! `crowbar-dhcpd`: the DHCPv4 + PXE + TFTP daemon of crowbar-pxe, standalone from a TOML file.
//!
//! ```sh
//! crowbar-dhcpd --config /etc/crowbar/dhcpd.toml
//! ```
//!
//! See `start_daemon` in `tests/pxe_netns.rs` for a configuration. Reservations come from one
//! of: a hosts file (`hosts_file = "hosts.toml"`), `[[host]]` entries in the configuration, or
//! a crowbar store, the SQLite file the crowbar library writes:
//!
//! ```toml
//! [crowbar_store]
//! path = "/var/lib/crowbar/crowbar.sqlite"
//! poll_ms = 2000   # how often to look for a new revision (default 2000)
//! ```
//!
//! With a store the daemon loads the cluster at start and serves its DHCP database
//! (`crowbar::provision::dhcp_hosts`: every non-admin node with an admin-network IPv4 address
//! and a MAC, with its bootenv). Every `poll_ms` it reads the store's revision; when it moved,
//! it reloads the cluster and swaps the reservations in if they changed. A store path that does
//! not exist or is not a crowbar store stops the daemon at start-up.
//!
//! iPXE clients get `ipxe/<mac>.ipxe`, generated per machine; `[boot] ipxe_script = "boot.ipxe"`
//! (or a URL) sends them all one script instead. The generated scripts fetch kernels from
//! `http://<server_ip>:8091/` (`[boot] http_base`), which nothing in this project serves yet:
//! see the crowbar-pxe crate docs. `[tftp]` takes `root`, `bind`, `block_size_limit` (8-65464),
//! `window_size_limit` (default 16), `timeout_secs` (default 3), `retries` (default 5),
//! `idle_timeout_secs` (default 30) and `max_transfers` (default 50).
//!
//! SIGHUP re-reads the hosts file (with a store: checks the revision now); SIGINT or SIGTERM
//! stop it cleanly, flushing leases to the database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use crowbar::core::{Cluster, Snapshot, SqliteStore, Store, SystemClock};
use crowbar::net::ClusterNetworks;
use crowbar::provision::ModelHosts;
use crowbar::pxe::{HostIndex, HostSource, HostsConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(about = "Crowbar DHCPv4/PXE/TFTP server")]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crowbar-dhcpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = crowbar_pxe::DaemonConfig::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        // SIGHUP re-reads the hosts file (e.g. after a node's bootenv changed).
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let (reload_tx, reload_rx) = mpsc::channel(1);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if reload_tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        if let HostsConfig::Store { path, poll } = &config.hosts {
            let feed = StoreFeed::open(path).await?;
            let (hosts_tx, hosts_rx) = watch::channel(feed.index()?);
            tracing::info!(store = %path.display(), revision = feed.revision, "serving reservations from the crowbar store");
            tokio::spawn(feed.follow(*poll, reload_rx, hosts_tx));
            crowbar_pxe::run_daemon_with_hosts(config, hosts_rx, shutdown).await?;
        } else {
            crowbar_pxe::run_daemon(config, reload_rx, shutdown).await?;
        }
        Ok(())
    })
}

/// The DHCP database of a crowbar store, followed by polling its revision.
struct StoreFeed {
    store: SqliteStore,
    revision: u64,
    hosts: ModelHosts,
}

impl StoreFeed {
    /// Opens an existing crowbar store and reads its DHCP database.
    async fn open(path: &Path) -> anyhow::Result<StoreFeed> {
        if !path.is_file() {
            bail!("crowbar store {} does not exist", path.display());
        }
        // Refuses a file without the crowbar schema before writing anything to it.
        let store = SqliteStore::open_existing(path)
            .with_context(|| format!("opening the crowbar store {}", path.display()))?;
        let snapshot = store.load().await.context("loading the crowbar store")?;
        let revision = snapshot.revision;
        let hosts = ModelHosts::new(&cluster_of(snapshot)?);
        Ok(StoreFeed {
            store,
            revision,
            hosts,
        })
    }

    fn index(&self) -> anyhow::Result<Arc<HostIndex>> {
        Ok(Arc::new(HostIndex::new(self.hosts.hosts()?)?))
    }

    /// Every `poll` (or SIGHUP), reloads the cluster if the store's revision moved and sends
    /// the reservations on if they changed. Errors are logged; the old reservations stay.
    async fn follow(
        mut self,
        poll: Duration,
        mut reload: mpsc::Receiver<()>,
        hosts_tx: watch::Sender<Arc<HostIndex>>,
    ) {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = reload.recv() => {}
            }
            match self.refresh().await {
                Ok(Some(index)) => {
                    tracing::info!(
                        revision = self.revision,
                        hosts = index.len(),
                        "crowbar store changed"
                    );
                    if hosts_tx.send(index).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "reading the crowbar store failed; keeping the old reservations")
                }
            }
        }
    }

    /// New reservations, if the store moved and they changed.
    async fn refresh(&mut self) -> anyhow::Result<Option<Arc<HostIndex>>> {
        let revision = self.store.revision().await?;
        if revision == self.revision {
            return Ok(None);
        }
        let snapshot = self.store.load().await?;
        let revision = snapshot.revision;
        let changed = self.hosts.refresh(&cluster_of(snapshot)?);
        let index = if changed { Some(self.index()?) } else { None };
        // Only now: a database that does not validate is retried at the next revision.
        self.revision = revision;
        Ok(index)
    }
}

/// The cluster, with its networks, as stored.
fn cluster_of(snapshot: Snapshot) -> anyhow::Result<Cluster> {
    let mut cluster = if snapshot.revision == 0 {
        Cluster::new()
    } else {
        Cluster::from_snapshot(snapshot, Arc::new(SystemClock))?
    };
    // The site id is only drawn when the store has none; this process never writes it back.
    ClusterNetworks::install(&mut cluster, 0)?;
    Ok(cluster)
}
