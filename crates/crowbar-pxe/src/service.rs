//! The tokio socket layer around the pure core.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::{
    CLIENT_PORT, Destination, HostIndex, LeaseWriter, Outcome, PxeError, SERVER_PORT, Server,
};

/// One interface the DHCP server listens on.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Listener {
    /// The interface name (bound with `SO_BINDTODEVICE`); `None` listens on all interfaces,
    /// which only suits relayed traffic.
    pub interface: Option<String>,
    /// Our address on that interface; it tells the core which subnet a broadcast came from.
    pub address: Ipv4Addr,
}

/// Socket-level settings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServiceConfig {
    /// Where to listen.
    pub listeners: Vec<Listener>,
    /// Server port (67).
    pub port: u16,
    /// Client port for broadcast and unicast replies (68).
    pub client_port: u16,
    /// Every reply goes back to the sender's address and port (tests on loopback with
    /// unprivileged ports, like dora's test mode).
    pub reply_to_source: bool,
}

impl ServiceConfig {
    /// Standard ports on the given listeners.
    pub fn new(listeners: Vec<Listener>) -> Self {
        ServiceConfig {
            listeners,
            port: SERVER_PORT,
            client_port: CLIENT_PORT,
            reply_to_source: false,
        }
    }
}

/// The DHCP server on real sockets: receives on every listener, hands packets to the
/// [`Server`] core, sends replies on the interface the request came in on (RFC 2131 §4.1),
/// expires leases once a second and queues lease changes to a [`LeaseWriter`].
///
/// Replies to a client without an address and without the broadcast flag
/// ([`Destination::Hardware`]) are broadcast: seeding the ARP cache needs an `ioctl` this
/// crate does not make (it forbids `unsafe`).
#[derive(Debug)]
pub struct DhcpService {
    sockets: Vec<(Arc<UdpSocket>, Ipv4Addr)>,
    config: ServiceConfig,
    hosts: Option<watch::Receiver<Arc<HostIndex>>>,
}

/// The next DHCP database snapshot from `rx`; pending forever once there is none (no
/// receiver, or every sender gone).
async fn next_hosts(rx: &mut Option<watch::Receiver<Arc<HostIndex>>>) -> Arc<HostIndex> {
    if let Some(r) = rx
        && r.changed().await.is_ok()
    {
        return r.borrow_and_update().clone();
    }
    *rx = None;
    std::future::pending().await
}

fn bind_socket(listener: &Listener, port: u16) -> Result<UdpSocket, PxeError> {
    let what = |step: &str| {
        format!(
            "{step} DHCP socket on {}:{port}",
            listener.interface.as_deref().unwrap_or("*")
        )
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| PxeError::io(what("creating"), e))?;
    s.set_reuse_address(true)
        .map_err(|e| PxeError::io(what("configuring"), e))?;
    s.set_broadcast(true)
        .map_err(|e| PxeError::io(what("configuring"), e))?;
    // Bursts of thousands of DISCOVERs must queue, not drop.
    let _ = s.set_recv_buffer_size(8 << 20);
    if let Some(dev) = &listener.interface {
        s.bind_device(Some(dev.as_bytes()))
            .map_err(|e| PxeError::io(what("binding device for"), e))?;
    }
    s.set_nonblocking(true)
        .map_err(|e| PxeError::io(what("configuring"), e))?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    s.bind(&addr.into())
        .map_err(|e| PxeError::io(what("binding"), e))?;
    UdpSocket::from_std(s.into()).map_err(|e| PxeError::io(what("registering"), e))
}

struct Inbound {
    listener: usize,
    from: SocketAddr,
    bytes: Vec<u8>,
}

impl DhcpService {
    /// Opens one socket per listener. Must be called inside a tokio runtime.
    pub fn bind(config: ServiceConfig) -> Result<Self, PxeError> {
        let mut sockets = Vec::new();
        for l in &config.listeners {
            sockets.push((Arc::new(bind_socket(l, config.port)?), l.address));
        }
        Ok(DhcpService {
            sockets,
            config,
            hosts: None,
        })
    }

    /// Takes new DHCP database snapshots from `hosts` while running (an adapter over the
    /// crowbar model, or a reload of the hosts file); the next packet sees them.
    pub fn watch_hosts(mut self, hosts: watch::Receiver<Arc<HostIndex>>) -> Self {
        self.hosts = Some(hosts);
        self
    }

    /// The local address of the first socket (for tests binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, PxeError> {
        match self.sockets.first() {
            Some((s, _)) => s
                .local_addr()
                .map_err(|e| PxeError::io("DHCP local address", e)),
            None => Err(PxeError::config("listeners", "none configured")),
        }
    }

    /// Runs until `shutdown` completes, then flushes and returns the core (with its leases
    /// and counters). The core has one owner, this task; receive tasks only forward bytes.
    pub async fn run(
        mut self,
        mut server: Server,
        writer: Option<LeaseWriter>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Server, PxeError> {
        if self.sockets.len() == 1 {
            return self.run_single(server, writer, shutdown).await;
        }
        let mut hosts_rx = self.hosts.take();
        let (tx, mut rx) = mpsc::channel::<Inbound>(16_384);
        let mut tasks = Vec::new();
        for (i, (sock, _)) in self.sockets.iter().enumerate() {
            let sock = sock.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, from)) => {
                            let msg = Inbound {
                                listener: i,
                                from,
                                bytes: buf[..n].to_vec(),
                            };
                            if tx.send(msg).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "DHCP receive failed"),
                    }
                }
            }));
        }
        drop(tx);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {
                    server.expire(SystemTime::now());
                }
                hosts = next_hosts(&mut hosts_rx) => {
                    tracing::info!(hosts = hosts.len(), "DHCP database updated");
                    server.set_hosts(hosts);
                }
                msg = rx.recv() => {
                    let Some(first) = msg else { break };
                    self.process(&mut server, first).await;
                    // Drain what is already queued before handing changes to the writer.
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Ok(m) => self.process(&mut server, m).await,
                            Err(_) => break,
                        }
                    }
                }
            }
            if let Some(w) = &writer {
                w.submit(server.take_changes());
            }
        }
        for t in tasks {
            t.abort();
        }
        if let Some(w) = writer {
            w.submit(server.take_changes());
            w.finish();
        }
        Ok(server)
    }

    async fn process(&self, server: &mut Server, msg: Inbound) {
        if let Some((bytes, to)) = self.answer(server, msg.listener, msg.from, &msg.bytes) {
            let sock = &self.sockets[msg.listener].0;
            if let Err(e) = sock.send_to(&bytes, to).await {
                tracing::warn!(error = %e, %to, "sending DHCP reply failed");
            }
        }
    }

    /// Runs the core on one packet; the reply and where it goes, if any.
    fn answer(
        &self,
        server: &mut Server,
        listener: usize,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Option<(Vec<u8>, SocketAddr)> {
        let ingress = self.sockets[listener].1;
        let outcome = server.handle(bytes, ingress, SystemTime::now());
        let Outcome::Reply(reply) = outcome else {
            if let Outcome::Dropped(reason) = outcome {
                tracing::info!(%from, %reason, "dropped malformed DHCP packet");
            }
            return None;
        };
        let to: SocketAddr = if self.config.reply_to_source {
            from
        } else {
            match reply.to {
                Destination::Relay(a) => {
                    SocketAddr::V4(SocketAddrV4::new(*a.ip(), self.config.port))
                }
                Destination::Unicast(a) => {
                    SocketAddr::V4(SocketAddrV4::new(*a.ip(), self.config.client_port))
                }
                Destination::Broadcast | Destination::Hardware { .. } => SocketAddr::V4(
                    SocketAddrV4::new(Ipv4Addr::BROADCAST, self.config.client_port),
                ),
            }
        };
        tracing::debug!(kind = ?reply.kind, yiaddr = %reply.yiaddr, %to, "DHCP reply");
        Some((reply.bytes, to))
    }

    /// One listener (the usual daemon): no receive task, no channel; read everything the
    /// socket has queued, answer it, then hand the lease changes over in one batch.
    async fn run_single(
        mut self,
        mut server: Server,
        writer: Option<LeaseWriter>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Server, PxeError> {
        let sock = self.sockets[0].0.clone();
        let mut hosts_rx = self.hosts.take();
        let mut buf = vec![0u8; 4096];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {
                    server.expire(SystemTime::now());
                }
                hosts = next_hosts(&mut hosts_rx) => {
                    tracing::info!(hosts = hosts.len(), "DHCP database updated");
                    server.set_hosts(hosts);
                }
                ready = sock.readable() => {
                    if let Err(e) = ready {
                        tracing::warn!(error = %e, "DHCP socket failed");
                        continue;
                    }
                    for _ in 0..512 {
                        let (n, from) = match sock.try_recv_from(&mut buf) {
                            Ok(r) => r,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "DHCP receive failed");
                                break;
                            }
                        };
                        if let Some((bytes, to)) = self.answer(&mut server, 0, from, &buf[..n]) {
                            let sent = match sock.try_send_to(&bytes, to) {
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                    sock.send_to(&bytes, to).await.map(|_| ())
                                }
                                other => other.map(|_| ()),
                            };
                            if let Err(e) = sent {
                                tracing::warn!(error = %e, %to, "sending DHCP reply failed");
                            }
                        }
                    }
                }
            }
            if let Some(w) = &writer {
                w.submit(server.take_changes());
            }
        }
        if let Some(w) = writer {
            w.submit(server.take_changes());
            w.finish();
        }
        Ok(server)
    }
}
