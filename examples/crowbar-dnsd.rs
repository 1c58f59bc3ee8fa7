//! `crowbar-dnsd`: the cluster's authoritative DNS server, standalone from a hosts-style file.
//!
//! ```text
//! crowbar-dnsd --config dns.toml
//! ```
//!
//! The config (TOML; paths are relative to the config file):
//!
//! ```toml
//! admin_fqdn = "admin.lab.test"        # the domain is this name minus its first label
//! hosts_file = "hosts"                  # ADDRESS NAME [ALIAS...] per line
//! listen = ["127.0.0.1:5353", "[::1]:5353"]
//! reverse_zones = ["198.18.0.0/16", "2001:db8::/32"]   # default: a /24 or /64 per address
//! # ttl = 60, udp_sockets = 1, worker_threads = 1, serial = <unix time>
//! # forwarders = ["127.0.0.1:5301"], allow_transfer = ["127.0.0.0/8"], notify = ["127.0.0.1:5399"]
//! # reload_interval_ms = 200           # also re-read the hosts file when it changes
//! ```
//!
//! `--write-zones DIR` writes the zones as master files and exits.
//!
//! SIGHUP re-reads the hosts file; SIGINT or SIGTERM stop the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use crowbar_dns::{DnsName, DnsServer, ServerConfig, ZoneConfig, Zones, parse_hosts};
use serde::Deserialize;

#[derive(Parser)]
#[command(about = "Authoritative DNS for a crowbar cluster")]
struct Args {
    /// The TOML configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Write the zones as master files (`<origin>zone`) into this directory and exit, e.g.
    /// to serve the same data from NSD.
    #[arg(long)]
    write_zones: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    admin_fqdn: Option<String>,
    domain: Option<String>,
    nameserver: Option<String>,
    hosts_file: PathBuf,
    listen: Vec<SocketAddr>,
    #[serde(default)]
    reverse_zones: Vec<String>,
    ttl: Option<u32>,
    #[serde(default = "one")]
    udp_sockets: usize,
    #[serde(default = "one")]
    worker_threads: usize,
    serial: Option<u32>,
    #[serde(default)]
    forwarders: Vec<SocketAddr>,
    #[serde(default)]
    allow_transfer: Vec<String>,
    #[serde(default)]
    notify: Vec<SocketAddr>,
    reload_interval_ms: Option<u64>,
}

fn one() -> usize {
    1
}

/// The validated configuration.
struct Config {
    zone: ZoneConfig,
    server: ServerConfig,
    hosts_file: PathBuf,
    worker_threads: usize,
    serial: u32,
    reload_interval: Option<Duration>,
}

impl RawConfig {
    fn validate(self, dir: &Path) -> anyhow::Result<Config> {
        let mut zone = match (&self.admin_fqdn, &self.domain, &self.nameserver) {
            (Some(admin), None, None) => ZoneConfig::from_admin_fqdn(admin.parse()?)?,
            (None, Some(domain), Some(ns)) => ZoneConfig::new(domain.parse()?, ns.parse()?),
            _ => bail!("set either admin_fqdn, or both domain and nameserver"),
        };
        if let Some(ttl) = self.ttl {
            zone.ttl = ttl;
        }
        zone.reverse = self
            .reverse_zones
            .iter()
            .map(|s| s.parse().with_context(|| format!("reverse zone {s}")))
            .collect::<anyhow::Result<_>>()?;
        if self.listen.is_empty() {
            bail!("listen must name at least one address");
        }
        let mut server = ServerConfig::new(self.listen);
        server.udp_sockets = self.udp_sockets.max(1);
        server.forwarders = self.forwarders;
        server.notify = self.notify;
        server.allow_transfer = self
            .allow_transfer
            .iter()
            .map(|s| s.parse().with_context(|| format!("allow_transfer {s}")))
            .collect::<anyhow::Result<_>>()?;
        let serial = match self.serial {
            Some(s) => s,
            None => SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as u32,
        };
        Ok(Config {
            zone,
            server,
            hosts_file: dir.join(self.hosts_file),
            worker_threads: self.worker_threads.max(1),
            serial,
            reload_interval: self
                .reload_interval_ms
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
        })
    }
}

fn read_hosts(path: &Path, domain: &DnsName) -> anyhow::Result<Vec<crowbar_dns::Host>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_hosts(&text, domain).with_context(|| format!("parsing {}", path.display()))
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn")),
        )
        .init();
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let raw: RawConfig = toml::from_str(&text).context("parsing the config")?;
    let dir = args.config.parent().unwrap_or(Path::new("."));
    let config = raw.validate(dir)?;
    if let Some(out) = args.write_zones {
        let hosts = read_hosts(&config.hosts_file, &config.zone.domain)?;
        let snapshot = crowbar_dns::Snapshot::build(config.zone, &hosts, config.serial)?;
        std::fs::create_dir_all(&out)?;
        for zone in snapshot.zone_files() {
            let path = out.join(format!("{}zone", zone.origin));
            std::fs::write(&path, zone.text)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("{} {}", zone.origin, path.display());
        }
        return Ok(());
    }
    let runtime = if config.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Before the server answers: a SIGHUP that arrives once it does must not kill the
    // process (the default action) but reload.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let domain = config.zone.domain.clone();
    let hosts = read_hosts(&config.hosts_file, &domain)?;
    let zones = Arc::new(Zones::new(config.zone, hosts, config.serial)?);
    let server = DnsServer::start(zones.clone(), config.server).await?;
    tracing::info!(serial = zones.serial(), udp = ?server.udp_addrs(), "ready");

    let mut last_mtime = mtime(&config.hosts_file);
    let poll = config.reload_interval.unwrap_or(Duration::from_secs(3600));
    let reload = |why: &str| match read_hosts(&config.hosts_file, &domain)
        .and_then(|h| Ok(zones.replace(h)?))
    {
        Ok(serial) => tracing::info!(serial, why, "hosts file reloaded"),
        // The whole chain (`{:#}`): the file, the line and the reason, as at start-up.
        Err(error) => tracing::error!(
            error = %format!("{error:#}"),
            "hosts file not reloaded; still serving the old zones"
        ),
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => reload("SIGHUP"),
            _ = tokio::time::sleep(poll), if config.reload_interval.is_some() => {
                let now = mtime(&config.hosts_file);
                if now != last_mtime {
                    last_mtime = now;
                    reload("changed");
                }
            }
        }
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}
