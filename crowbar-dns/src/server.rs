//! Sockets: a UDP loop per socket answering from pre-encoded snapshots, TCP through
//! hickory-server's `Server` with our own `RequestHandler`, forwarding, zone transfer and
//! NOTIFY.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, warn};

use crate::wire::{Outcome, QueryContext, Transport};
use crate::{DnsError, Zones};

/// How the server listens and whom it talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Addresses to bind, UDP and TCP each (explicit addresses: no wildcard bind is needed).
    /// Port 0 picks a free port; see [`DnsServer::udp_addrs`].
    pub listen: Vec<SocketAddr>,
    /// UDP sockets per address, bound with `SO_REUSEPORT` so the kernel spreads queries
    /// across them (one per core you want to use).
    pub udp_sockets: usize,
    /// Upstream servers for names outside our zones, asked in order when the query has
    /// RD=1. Empty (the default) means no recursion: such names are REFUSED.
    pub forwarders: Vec<SocketAddr>,
    /// How long to wait for one upstream before trying the next.
    pub forward_timeout: Duration,
    /// Networks allowed to transfer zones (AXFR, and IXFR answered as AXFR).
    pub allow_transfer: Vec<IpNet>,
    /// Secondaries sent a NOTIFY for every zone whenever the serial changes.
    pub notify: Vec<SocketAddr>,
    /// Idle timeout of a TCP connection.
    pub tcp_idle: Duration,
}

impl ServerConfig {
    /// Listen on `listen`, one UDP socket per address, no forwarding, no transfers, no
    /// NOTIFY.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        ServerConfig {
            listen,
            udp_sockets: 1,
            forwarders: Vec::new(),
            forward_timeout: Duration::from_secs(2),
            allow_transfer: Vec::new(),
            notify: Vec::new(),
            tcp_idle: Duration::from_secs(10),
        }
    }
}

/// A running DNS server. Dropping it does not stop it; call [`shutdown`](Self::shutdown).
pub struct DnsServer {
    udp_addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
    tasks: JoinSet<()>,
    tcp: Server<TcpHandler>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("udp_addrs", &self.udp_addrs)
            .field("tcp_addrs", &self.tcp_addrs)
            .finish_non_exhaustive()
    }
}

struct Shared {
    zones: Arc<Zones>,
    config: ServerConfig,
}

impl Shared {
    fn context(&self, src: IpAddr, transport: Transport) -> QueryContext {
        let src = canonical(src);
        QueryContext {
            src,
            transport,
            forwarding: !self.config.forwarders.is_empty(),
            transfer_allowed: self.config.allow_transfer.iter().any(|n| n.contains(&src)),
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl DnsServer {
    /// Binds every socket and starts serving `zones`. Must be called inside a tokio runtime.
    pub async fn start(zones: Arc<Zones>, config: ServerConfig) -> Result<DnsServer, DnsError> {
        let shared = Arc::new(Shared { zones, config });
        let mut tasks = JoinSet::new();
        let mut udp_addrs = Vec::new();
        let mut tcp_addrs = Vec::new();
        let mut tcp = Server::new(TcpHandler {
            shared: shared.clone(),
        });
        for &addr in &shared.config.listen {
            let mut bound = addr;
            for i in 0..shared.config.udp_sockets.max(1) {
                let sock = bind_udp(bound, shared.config.udp_sockets > 1)?;
                if i == 0 {
                    bound = sock.local_addr().map_err(|error| DnsError::Bind {
                        proto: "udp",
                        addr,
                        error,
                    })?;
                    udp_addrs.push(bound);
                }
                tasks.spawn(udp_loop(sock, shared.clone()));
            }
            let tcp_addr = SocketAddr::new(addr.ip(), bound.port());
            let listener = TcpListener::bind(tcp_addr)
                .await
                .map_err(|error| DnsError::Bind {
                    proto: "tcp",
                    addr: tcp_addr,
                    error,
                })?;
            tcp_addrs.push(listener.local_addr().map_err(|error| DnsError::Bind {
                proto: "tcp",
                addr: tcp_addr,
                error,
            })?);
            tcp.register_listener(listener, shared.config.tcp_idle, 32);
        }
        if !shared.config.notify.is_empty() {
            tasks.spawn(notify_loop(shared.clone()));
        }
        info!(?udp_addrs, ?tcp_addrs, "DNS server listening");
        Ok(DnsServer {
            udp_addrs,
            tcp_addrs,
            tasks,
            tcp,
        })
    }

    /// The bound UDP addresses, one per configured address (ports resolved).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The bound TCP addresses.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// Stops every socket and task.
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
        if let Err(error) = self.tcp.shutdown_gracefully().await {
            warn!(%error, "TCP server did not shut down cleanly");
        }
    }
}

fn bind_udp(addr: SocketAddr, reuse_port: bool) -> Result<UdpSocket, DnsError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |error| DnsError::Bind {
        proto: "udp",
        addr,
        error,
    };
    let sock =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true).map_err(err)?;
    }
    if reuse_port {
        sock.set_reuse_port(true).map_err(err)?;
    }
    // Room for bursts while the serving thread is descheduled; the kernel caps it.
    let _ = sock.set_recv_buffer_size(4 << 20);
    let _ = sock.set_send_buffer_size(1 << 20);
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(sock.into()).map_err(err)
}

async fn udp_loop(sock: UdpSocket, shared: Arc<Shared>) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(2048);
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(error) => {
                debug!(%error, "UDP receive failed");
                continue;
            }
        };
        if src.port() == 0 {
            continue;
        }
        // A span per query (entered only around the synchronous part, never across an
        // await); when trace level is off this costs one relaxed atomic load.
        let outcome =
            tracing::trace_span!("dns_query", %src, transport = "udp", len = n).in_scope(|| {
                let ctx = shared.context(src.ip(), Transport::Udp);
                let outcome = shared.zones.load().respond(&buf[..n], &ctx, &mut out);
                tracing::trace!(?outcome, reply_len = out.len(), "answered");
                outcome
            });
        match outcome {
            Outcome::Reply => {
                if let Err(error) = sock.send_to(&out, src).await {
                    debug!(%error, %src, "UDP send failed");
                }
            }
            Outcome::Forward => {
                let (sock, shared, query) = (sock.clone(), shared.clone(), buf[..n].to_vec());
                tokio::spawn(async move {
                    if let Some(answer) = forward_udp(&query, &shared.config).await {
                        let _ = sock.send_to(&answer, src).await;
                    }
                });
            }
            Outcome::Drop | Outcome::Transfer(_) => {}
        }
    }
}

/// Relays a query to the upstreams in order; returns the first answer with a matching id.
async fn forward_udp(query: &[u8], config: &ServerConfig) -> Option<Vec<u8>> {
    for &up in &config.forwarders {
        let local: SocketAddr = if up.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(sock) = UdpSocket::bind(local).await else {
            continue;
        };
        if sock.connect(up).await.is_err() || sock.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65_535];
        let deadline = tokio::time::Instant::now() + config.forward_timeout;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            if n >= 12 && buf[..2] == query[..2] {
                buf.truncate(n);
                return Some(buf);
            }
        }
        debug!(upstream = %up, "forwarder did not answer");
    }
    None
}

async fn forward_tcp(query: &[u8], config: &ServerConfig) -> Option<Vec<u8>> {
    for &up in &config.forwarders {
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect(up).await.ok()?;
            let mut framed = (query.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(query);
            s.write_all(&framed).await.ok()?;
            let len = s.read_u16().await.ok()?;
            let mut buf = vec![0u8; usize::from(len)];
            s.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        if let Ok(Some(answer)) = tokio::time::timeout(config.forward_timeout, attempt).await {
            return Some(answer);
        }
    }
    None
}

/// Our handler behind hickory-server's TCP listener: the same query path as UDP, re-encoded
/// through hickory's response builder.
struct TcpHandler {
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let span = tracing::trace_span!("dns_query", src = %request.src(), transport = "tcp");
        self.handle(request, response_handle).instrument(span).await
    }
}

impl TcpHandler {
    async fn handle<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let ctx = self.shared.context(request.src().ip(), Transport::Tcp);
        let raw = request.as_slice();
        let snap = self.shared.zones.snapshot();
        let mut out = Vec::new();
        let messages = match snap.respond(raw, &ctx, &mut out) {
            Outcome::Reply => vec![out],
            Outcome::Drop => Vec::new(),
            Outcome::Forward => forward_tcp(raw, &self.shared.config)
                .await
                .into_iter()
                .collect(),
            Outcome::Transfer(zone) => {
                info!(src = %ctx.src, zone = %snap.zones[zone].apex, "zone transfer");
                snap.transfer(zone, raw)
            }
        };
        let mut info = None;
        for m in messages {
            match send_wire(request, &m, &mut response_handle).await {
                Ok(i) => info = Some(i),
                Err(error) => {
                    debug!(%error, "TCP send failed");
                    break;
                }
            }
        }
        info.unwrap_or_else(|| {
            let mut metadata = Metadata::new(
                request.metadata.id,
                MessageType::Response,
                request.metadata.op_code,
            );
            metadata.response_code = hickory_proto::op::ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        })
    }
}

async fn send_wire<R: ResponseHandler>(
    request: &Request,
    wire: &[u8],
    handle: &mut R,
) -> Result<ResponseInfo, String> {
    let msg = Message::from_vec(wire).map_err(|e| e.to_string())?;
    let builder = MessageResponseBuilder::new(&request.queries, msg.edns.as_ref());
    let response = builder.build(
        msg.metadata,
        msg.answers.iter(),
        msg.authorities.iter(),
        std::iter::empty(),
        msg.additionals.iter(),
    );
    handle
        .send_response(response)
        .await
        .map_err(|e| e.to_string())
}

/// Sends NOTIFY (RFC 1996) for every zone to every secondary after each serial change.
async fn notify_loop(shared: Arc<Shared>) {
    let mut rx = shared.zones.subscribe();
    rx.mark_unchanged();
    while rx.changed().await.is_ok() {
        let serial = *rx.borrow_and_update();
        let snap = shared.zones.snapshot();
        for apex in snap.origins() {
            let Ok(zone) = Name::from_ascii(apex.to_string()) else {
                continue;
            };
            for &secondary in &shared.config.notify {
                tokio::spawn(send_notify(zone.clone(), secondary, serial));
            }
        }
    }
}

async fn send_notify(zone: Name, secondary: SocketAddr, serial: u32) {
    let mut msg = Message::new(
        rand_id(serial, secondary),
        MessageType::Query,
        OpCode::Notify,
    );
    msg.metadata.authoritative = true;
    msg.add_query(Query::query(zone.clone(), RecordType::SOA));
    let Ok(bytes) = msg.to_vec() else { return };
    let local: SocketAddr = if secondary.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let Ok(sock) = UdpSocket::bind(local).await else {
        return;
    };
    if sock.connect(secondary).await.is_err() {
        return;
    }
    let mut buf = [0u8; 512];
    for attempt in 0..5 {
        if sock.send(&bytes).await.is_err() {
            return;
        }
        let wait = Duration::from_millis(500 << attempt);
        if let Ok(Ok(n)) = tokio::time::timeout(wait, sock.recv(&mut buf)).await
            && n >= 12
            && buf[..2] == bytes[..2]
            && buf[2] & 0x80 != 0
        {
            debug!(%zone, %secondary, serial, "NOTIFY acknowledged");
            return;
        }
    }
    warn!(%zone, %secondary, serial, "NOTIFY not acknowledged");
}

/// A message id; it only has to match the answer, so it need not be random.
fn rand_id(serial: u32, secondary: SocketAddr) -> u16 {
    let mut h = u32::from(secondary.port()) ^ serial.rotate_left(7);
    if let IpAddr::V4(v4) = secondary.ip() {
        h ^= u32::from(v4);
    }
    (h ^ (h >> 16)) as u16
}
