//! The tokio socket layer around the pure core.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::{
    CLIENT_PORT, Destination, HostIndex, LeaseWriter, MacAddr, Neighbours, NetlinkNeighbours,
    Outcome, PxeError, SERVER_PORT, Server,
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
/// ([`Destination::Hardware`]) are unicast to `yiaddr` at `chaddr`: the service first writes
/// that neighbour entry on the ingress interface ([`NetlinkNeighbours`], one rtnetlink socket
/// opened at [`bind`](Self::bind)), for every such reply, whatever the kernel did to the
/// entry since the last one (flushed on a carrier loss, FAILED after unanswered ARP). When it cannot (no `CAP_NET_ADMIN`, a listener without an interface, an interface
/// without ARP) the reply is broadcast, as RFC 2131 allows, counted in
/// [`Stats::hardware_fallback`](crate::Stats::hardware_fallback) and warned about once.
pub struct DhcpService {
    sockets: Vec<(Arc<UdpSocket>, Ipv4Addr)>,
    /// Interface index of each listener, when it names an interface that was found.
    ifindexes: Vec<Option<u32>>,
    config: ServiceConfig,
    hosts: Option<watch::Receiver<Arc<HostIndex>>>,
    unicaster: Unicaster,
}

impl std::fmt::Debug for DhcpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhcpService")
            .field("sockets", &self.sockets)
            .field("ifindexes", &self.ifindexes)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Decides, per [`Destination::Hardware`] reply, between unicast (after writing the neighbour
/// entry) and broadcast.
///
/// The entry is written again for every such reply, never remembered: the kernel flushes
/// entries when the link loses carrier and marks an unanswered one FAILED after a few
/// seconds (a client without an address never answers ARP), and a reply sent while the entry
/// is gone reaches nobody. One rtnetlink request per reply is cheap next to losing it.
struct Unicaster {
    neighbours: Option<Box<dyn Neighbours>>,
    warned: bool,
}

impl Unicaster {
    fn new(neighbours: Option<Box<dyn Neighbours>>) -> Self {
        Unicaster {
            neighbours,
            warned: false,
        }
    }

    /// Whether a reply for `ip` at `mac` on interface `ifindex` can be unicast now: the
    /// neighbour entry has just been written. `false` means broadcast it.
    fn prepare(&mut self, ifindex: Option<u32>, ip: Ipv4Addr, mac: MacAddr) -> bool {
        let Some(ifindex) = ifindex else {
            self.warn_once(format_args!(
                "listener has no interface index; replies to clients without an address are broadcast"
            ));
            return false;
        };
        let Some(neighbours) = self.neighbours.as_mut() else {
            self.warn_once(format_args!(
                "no neighbour table; replies to clients without an address are broadcast"
            ));
            return false;
        };
        match neighbours.seed(ifindex, ip, mac) {
            Ok(()) => true,
            Err(e) => {
                let denied = matches!(
                    &e,
                    PxeError::Neighbour { error, .. }
                        if error.kind() == std::io::ErrorKind::PermissionDenied
                );
                self.warn_once(format_args!(
                    "{e}; replies to clients without an address are broadcast instead"
                ));
                if denied {
                    // It will not change while we run; stop paying for the attempt.
                    self.neighbours = None;
                }
                false
            }
        }
    }

    fn warn_once(&mut self, what: std::fmt::Arguments<'_>) {
        if !self.warned {
            self.warned = true;
            tracing::warn!("{what} (said once)");
        } else {
            tracing::debug!("{what}");
        }
    }
}

/// A reply ready to send.
struct Outgoing {
    bytes: Vec<u8>,
    to: SocketAddr,
    /// A [`Destination::Hardware`] reply being unicast: broadcast it if the send fails.
    hardware_unicast: bool,
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

/// Warns about a listener whose address is not on its interface: broadcasts from there are
/// then matched to the subnet of an address the clients cannot reach.
fn warn_foreign_addresses(n: &mut NetlinkNeighbours, listeners: &[Listener]) {
    for l in listeners {
        let Some(name) = l.interface.as_deref() else {
            continue;
        };
        let Ok(index) = n.ifindex(name) else {
            continue; // said when the index is looked up again
        };
        match n.addresses(index) {
            Ok(list) if !list.contains(&l.address) => tracing::warn!(
                interface = name,
                address = %l.address,
                on_interface = ?list,
                "interface.address is not an address of the interface"
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot check the interface's addresses"),
        }
    }
}

struct Inbound {
    listener: usize,
    from: SocketAddr,
    bytes: Vec<u8>,
}

impl DhcpService {
    /// Opens one socket per listener and the rtnetlink socket for neighbour entries. Must be
    /// called inside a tokio runtime.
    pub fn bind(config: ServiceConfig) -> Result<Self, PxeError> {
        let mut sockets = Vec::new();
        for l in &config.listeners {
            sockets.push((Arc::new(bind_socket(l, config.port)?), l.address));
        }
        let neighbours: Option<Box<dyn Neighbours>> = if config.reply_to_source {
            None
        } else {
            match NetlinkNeighbours::open() {
                Ok(mut n) => {
                    warn_foreign_addresses(&mut n, &config.listeners);
                    Some(Box::new(n))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no neighbour table; replies to clients without an address will be broadcast");
                    None
                }
            }
        };
        let mut service = DhcpService {
            sockets,
            ifindexes: Vec::new(),
            config,
            hosts: None,
            unicaster: Unicaster::new(None),
        };
        service.set_neighbours(neighbours);
        Ok(service)
    }

    /// Writes neighbour entries into `neighbours` instead of the kernel's table (a
    /// [`MemNeighbours`](crate::MemNeighbours) in tests). Interface indexes are looked up again
    /// through it.
    pub fn with_neighbours(mut self, neighbours: impl Neighbours + 'static) -> Self {
        self.set_neighbours(Some(Box::new(neighbours)));
        self
    }

    fn set_neighbours(&mut self, mut neighbours: Option<Box<dyn Neighbours>>) {
        self.ifindexes = self
            .config
            .listeners
            .iter()
            .map(|l| {
                let (Some(n), Some(name)) = (neighbours.as_mut(), l.interface.as_deref()) else {
                    return None;
                };
                n.ifindex(name)
                    .map_err(|e| tracing::warn!(error = %e, "no interface index; replies to clients without an address on it will be broadcast"))
                    .ok()
            })
            .collect();
        self.unicaster = Unicaster::new(neighbours);
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
                _ = tick.tick() => self.housekeeping(&mut server),
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

    /// Once a second: expire leases.
    fn housekeeping(&mut self, server: &mut Server) {
        server.expire(SystemTime::now());
    }

    async fn process(&mut self, server: &mut Server, msg: Inbound) {
        if let Some(out) = self.answer(server, msg.listener, msg.from, &msg.bytes) {
            self.send(&self.sockets[msg.listener].0, server, out).await;
        }
    }

    /// The limited broadcast address at the client port.
    fn broadcast(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::BROADCAST,
            self.config.client_port,
        ))
    }

    /// Sends a reply; a failed unicast to a client without an address goes out as broadcast.
    async fn send(&self, sock: &UdpSocket, server: &mut Server, out: Outgoing) {
        let sent = match sock.try_send_to(&out.bytes, out.to) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                sock.send_to(&out.bytes, out.to).await.map(|_| ())
            }
            other => other.map(|_| ()),
        };
        match sent {
            Ok(()) if out.hardware_unicast => server.stats_mut().hardware_unicast += 1,
            Ok(()) => {}
            Err(e) if out.hardware_unicast => {
                tracing::debug!(error = %e, to = %out.to, "unicast DHCP reply failed; broadcasting it");
                server.stats_mut().hardware_fallback += 1;
                let to = self.broadcast();
                if let Err(e) = sock.send_to(&out.bytes, to).await {
                    tracing::warn!(error = %e, %to, "sending DHCP reply failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, to = %out.to, "sending DHCP reply failed"),
        }
    }

    /// Runs the core on one packet; the reply and where it goes, if any.
    fn answer(
        &mut self,
        server: &mut Server,
        listener: usize,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Option<Outgoing> {
        let ingress = self.sockets[listener].1;
        let outcome = server.handle(bytes, ingress, SystemTime::now());
        let Outcome::Reply(reply) = outcome else {
            if let Outcome::Dropped(reason) = outcome {
                tracing::info!(%from, %reason, "dropped malformed DHCP packet");
            }
            return None;
        };
        let port = self.config.client_port;
        let broadcast = self.broadcast();
        let mut hardware_unicast = false;
        let to: SocketAddr = if self.config.reply_to_source {
            from
        } else {
            match reply.to {
                Destination::Relay(a) => {
                    SocketAddr::V4(SocketAddrV4::new(*a.ip(), self.config.port))
                }
                Destination::Unicast(a) => SocketAddr::V4(SocketAddrV4::new(*a.ip(), port)),
                Destination::Broadcast => broadcast,
                Destination::Hardware { ip, mac } => {
                    let ifindex = self.ifindexes.get(listener).copied().flatten();
                    if self.unicaster.prepare(ifindex, ip, mac) {
                        hardware_unicast = true;
                        SocketAddr::V4(SocketAddrV4::new(ip, port))
                    } else {
                        server.stats_mut().hardware_fallback += 1;
                        broadcast
                    }
                }
            }
        };
        tracing::debug!(kind = ?reply.kind, yiaddr = %reply.yiaddr, %to, "DHCP reply");
        Some(Outgoing {
            bytes: reply.bytes,
            to,
            hardware_unicast,
        })
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
                _ = tick.tick() => self.housekeeping(&mut server),
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
                        if let Some(out) = self.answer(&mut server, 0, from, &buf[..n]) {
                            self.send(&sock, &mut server, out).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemNeighbours;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0xaa, 0xbb, last])
    }

    #[test]
    fn issue_24_every_unicast_reply_writes_the_neighbour_entry_again() {
        let table = MemNeighbours::new();
        let mut u = Unicaster::new(Some(Box::new(table.clone())));
        // OFFER then ACK: written for each.
        assert!(u.prepare(Some(3), IP, mac(1)));
        assert!(u.prepare(Some(3), IP, mac(1)));
        assert_eq!((table.writes(), table.get(3, IP)), (2, Some(mac(1))));
        // The kernel drops the entry (carrier loss, or FAILED after unanswered ARP): the
        // next reply puts it back before it is sent.
        table.remove(3, IP);
        assert!(u.prepare(Some(3), IP, mac(1)));
        assert_eq!((table.writes(), table.get(3, IP)), (3, Some(mac(1))));
        // The address now goes to another machine: replaced.
        assert!(u.prepare(Some(3), IP, mac(2)));
        assert_eq!(table.get(3, IP), Some(mac(2)));
        // Same address on another interface: its own entry.
        assert!(u.prepare(Some(4), IP, mac(2)));
        assert_eq!((table.writes(), table.get(4, IP)), (5, Some(mac(2))));
    }

    #[test]
    fn refusals_and_missing_interfaces_fall_back_to_broadcast() {
        let table = MemNeighbours::refusing();
        let mut u = Unicaster::new(Some(Box::new(table.clone())));
        assert!(!u.prepare(Some(3), IP, mac(1)));
        assert!(u.warned);
        // Permission denied: never tried again.
        assert!(!u.prepare(Some(3), IP, mac(1)));
        assert!(!u.prepare(Some(3), IP, mac(9)));
        assert_eq!(table.writes(), 1);
        // No interface index (a listener on all interfaces): nothing written.
        let table = MemNeighbours::new();
        let mut u = Unicaster::new(Some(Box::new(table.clone())));
        assert!(!u.prepare(None, IP, mac(1)));
        assert_eq!(table.writes(), 0);
    }

    #[test]
    fn issue_24_the_kernel_lists_an_interfaces_addresses() {
        // RTM_GETADDR needs no privilege; every namespace's `lo` has 127.0.0.1.
        let mut n = NetlinkNeighbours::open().unwrap();
        let lo = n.addresses(1).unwrap();
        assert!(lo.contains(&Ipv4Addr::LOCALHOST), "{lo:?}");
        assert!(!lo.contains(&Ipv4Addr::new(10, 99, 0, 1)));
        // The socket still answers requests afterwards.
        assert_eq!(n.ifindex("lo").unwrap(), 1);
    }

    #[test]
    fn the_kernel_names_its_interfaces() {
        // RTM_GETLINK needs no privilege; `lo` is index 1 in every namespace.
        let mut n = NetlinkNeighbours::open().unwrap();
        assert_eq!(n.ifindex("lo").unwrap(), 1);
        assert!(matches!(
            n.ifindex("cbnosuchif0"),
            Err(PxeError::Io { .. } | PxeError::InvalidConfig { .. })
        ));
        // The socket still answers after an error.
        assert_eq!(n.ifindex("lo").unwrap(), 1);
    }
}
