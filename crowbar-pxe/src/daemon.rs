//! Wiring for a standalone daemon: configuration → hosts, leases, DHCP and TFTP services.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};

use crate::config::{HostsConfig, check_reservations};
use crate::{
    DaemonConfig, DhcpService, HostIndex, HostSource, IpxeScripts, LeaseStore, LeaseWriter,
    MemLeaseStore, PxeError, Server, SqliteLeaseStore, StaticHosts, Stats, SubnetConfig,
    TftpService,
};

fn load_hosts(config: &HostsConfig, subnets: &[SubnetConfig]) -> Result<Arc<HostIndex>, PxeError> {
    let entries = match config {
        HostsConfig::File(path) => {
            let entries = StaticHosts::load(path)?.hosts()?;
            check_reservations(&entries, subnets, |_, h| {
                format!("hosts_file {}: host {}", path.display(), h.fqdn)
            })?;
            entries
        }
        HostsConfig::Inline(list) => list.clone(),
        HostsConfig::Store { .. } => {
            return Err(PxeError::config(
                "crowbar_store",
                "this program cannot read a crowbar store; load the cluster and call \
                 run_daemon_with_hosts (crowbar-dhcpd does)",
            ));
        }
    };
    Ok(Arc::new(HostIndex::new(entries)?))
}

/// Warns about every reservation outside every subnet (reservations from a feed, such as a
/// crowbar store, which cannot be refused at start like a file's).
fn warn_unreachable(hosts: &HostIndex, subnets: &[SubnetConfig]) {
    for h in hosts.entries() {
        let ip = h.address.addr();
        if !subnets.iter().any(|s| s.net.contains(&ip)) {
            tracing::warn!(fqdn = %h.fqdn, address = %ip, "reservation outside every subnet: that machine will get no answer");
        }
    }
}

/// Runs DHCP (and TFTP if configured) until `shutdown` completes; returns the counters.
///
/// Leases are loaded from the store at start and written back in batches while running.
/// Every message on `reload` re-reads the hosts file; a file that does not validate is
/// logged and the previous reservations stay in force. For reservations from somewhere this
/// crate cannot read ([`HostsConfig::Store`]) use [`run_daemon_with_hosts`].
pub async fn run_daemon(
    config: DaemonConfig,
    mut reload: mpsc::Receiver<()>,
    shutdown: impl Future<Output = ()>,
) -> Result<Stats, PxeError> {
    let hosts = load_hosts(&config.hosts, &config.server.subnets)?;
    let (hosts_tx, hosts_rx) = watch::channel(hosts);
    let hosts_config = config.hosts.clone();
    let subnets = config.server.subnets.clone();
    let reloader = tokio::spawn(async move {
        while reload.recv().await.is_some() {
            match load_hosts(&hosts_config, &subnets) {
                Ok(index) => {
                    tracing::info!(hosts = index.len(), "hosts reloaded");
                    if hosts_tx.send(index).is_err() {
                        break;
                    }
                }
                Err(e) => tracing::error!(error = %e, "hosts reload failed; keeping the old ones"),
            }
        }
    });
    let result = run_daemon_with_hosts(config, hosts_rx, shutdown).await;
    reloader.abort();
    result
}

/// [`run_daemon`] with reservations fed by the caller: the current value of `hosts` at start,
/// then every new one sent on it (an adapter over the crowbar model, say). `config.hosts` is
/// not read.
pub async fn run_daemon_with_hosts(
    config: DaemonConfig,
    hosts_rx: watch::Receiver<Arc<HostIndex>>,
    shutdown: impl Future<Output = ()>,
) -> Result<Stats, PxeError> {
    let hosts = hosts_rx.borrow().clone();
    warn_unreachable(&hosts, &config.server.subnets);
    let mut store: Box<dyn LeaseStore> = match &config.lease_db {
        Some(path) => Box::new(SqliteLeaseStore::open(path)?),
        None => Box::new(MemLeaseStore::new()),
    };
    let mut server = Server::new(config.server.clone(), hosts.clone())?;
    server.load_leases(store.load()?, SystemTime::now());
    store.apply(&server.take_changes())?;
    let writer = LeaseWriter::spawn(store);

    let tftp = match &config.tftp {
        Some(t) => {
            let scripts = Arc::new(IpxeScripts::watching(
                hosts_rx.clone(),
                config.scripts.clone(),
            ));
            let svc = TftpService::bind(t, scripts).await?;
            tracing::info!(addr = %svc.local_addr()?, root = %t.root.display(), "TFTP listening");
            Some(tokio::spawn(svc.serve()))
        }
        None => None,
    };
    let dhcp = DhcpService::bind(config.service.clone())?.watch_hosts(hosts_rx);
    tracing::info!(
        listeners = config.service.listeners.len(),
        hosts = hosts.len(),
        port = config.service.port,
        "DHCP listening"
    );
    let server = dhcp.run(server, Some(writer), shutdown).await?;
    if let Some(t) = tftp {
        t.abort();
    }
    let stats = server.stats().clone();
    tracing::info!(
        received = stats.received,
        offers = stats.offers,
        acks = stats.acks,
        naks = stats.naks,
        dropped = stats.dropped_total(),
        hardware_unicast = stats.hardware_unicast,
        hardware_fallback = stats.hardware_fallback,
        "DHCP stopped"
    );
    Ok(stats)
}
