//! The pure DHCPv4 server core: bytes and the time in, a reply and lease changes out.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use ipnet::Ipv4Net;

use crate::pool::Pool;
use crate::pxe::{BootDecision, BootPolicy, ClientFacts, VendorClass};
use crate::wire::{self, DropReason};
use crate::{Bootenv, HostIndex, Lease, LeaseChange, LeaseState, MacAddr, PxeError};

/// UDP port of DHCP servers and relays.
pub const SERVER_PORT: u16 = 67;
/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;

/// One subnet the server answers for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SubnetConfig {
    /// The subnet, e.g. `10.77.0.0/24`.
    pub net: Ipv4Net,
    /// Our address for its clients: the server identifier and next-server. For a directly
    /// attached subnet it is our address on it; for a relayed subnet, the address the relay
    /// forwards to.
    pub server_ip: Ipv4Addr,
    /// Dynamic pool for unknown machines; `None` serves reservations only.
    pub pool: Option<RangeInclusive<Ipv4Addr>>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Lease time of pool addresses (short: discovery), seconds.
    pub pool_lease_secs: u32,
    /// Lease time of reserved addresses, seconds.
    pub reserved_lease_secs: u32,
}

/// Everything the core needs to know, validated by [`Server::new`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServerConfig {
    /// The subnets; they must not overlap.
    pub subnets: Vec<SubnetConfig>,
    /// NAK requests for addresses we do not know instead of staying silent.
    pub authoritative: bool,
    /// How long an offered address is held for the client, seconds.
    pub offer_hold_secs: u32,
    /// How long a declined address stays out of the pool, seconds.
    pub probation_secs: u32,
    /// The PXE decision table.
    pub boot: BootPolicy,
}

impl ServerConfig {
    /// A configuration with one subnet and the default boot policy, for quick starts and tests.
    pub fn single(subnet: SubnetConfig) -> Self {
        ServerConfig {
            subnets: vec![subnet],
            authoritative: true,
            offer_hold_secs: 30,
            probation_secs: 600,
            boot: BootPolicy::default_for("http://127.0.0.1:8091"),
        }
    }

    fn validate(&self) -> Result<(), PxeError> {
        for (i, s) in self.subnets.iter().enumerate() {
            if let Some(pool) = &s.pool {
                for (what, addr) in [("pool start", *pool.start()), ("pool end", *pool.end())] {
                    if !s.net.contains(&addr) {
                        return Err(PxeError::OutsideSubnet {
                            what,
                            addr,
                            subnet: s.net,
                        });
                    }
                }
                if s.net.prefix_len() < 31
                    && (pool.contains(&s.net.network()) || pool.contains(&s.net.broadcast()))
                {
                    return Err(PxeError::config(
                        format!("subnet {} pool", s.net),
                        "must not contain the network or broadcast address",
                    ));
                }
                if pool.start() > pool.end() {
                    return Err(PxeError::EmptyPool {
                        start: *pool.start(),
                        end: *pool.end(),
                    });
                }
            }
            if s.pool_lease_secs == 0 || s.reserved_lease_secs == 0 {
                return Err(PxeError::config(
                    format!("subnet {}", s.net),
                    "lease times must be positive",
                ));
            }
            for other in &self.subnets[..i] {
                if other.net.contains(&s.net.network()) || s.net.contains(&other.net.network()) {
                    return Err(PxeError::OverlappingSubnets {
                        first: other.net,
                        second: s.net,
                    });
                }
            }
        }
        Ok(())
    }
}

/// What the core decided about one packet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Send this reply.
    Reply(Reply),
    /// A valid packet that gets no reply.
    Silent(Silence),
    /// A malformed packet, dropped and counted.
    Dropped(DropReason),
}

/// Why a valid packet got no reply.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Silence {
    /// It came from a network we do not serve.
    NoSubnet,
    /// The client chose another server's offer (our offer, if any, was withdrawn).
    OtherServer,
    /// An unknown machine on a subnet without a pool.
    NotReserved,
    /// A reserved machine asked on a subnet that does not hold its reserved address (logged
    /// with both).
    ReservedElsewhere,
    /// The pool has no free address.
    PoolExhausted,
    /// We have no record of the client and are not authoritative.
    NoRecord,
    /// A RELEASE was processed.
    Released,
    /// A DECLINE was processed.
    Declined,
    /// A REQUEST without the addresses it must carry.
    MissingAddress,
}

/// A reply and where to send it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reply {
    /// OFFER, ACK or NAK.
    pub kind: ReplyKind,
    /// The encoded, padded packet.
    pub bytes: Vec<u8>,
    /// Where it goes (RFC 2131 §4.1).
    pub to: Destination,
    /// The address handed out (unspecified for NAK and INFORM).
    pub yiaddr: Ipv4Addr,
}

/// The kinds of reply the server sends.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReplyKind {
    /// DHCPOFFER.
    Offer,
    /// DHCPACK (also the answer to INFORM).
    Ack,
    /// DHCPNAK.
    Nak,
}

/// Where a reply is sent, per RFC 2131 §4.1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Destination {
    /// To the relay agent, `giaddr:67`.
    Relay(SocketAddrV4),
    /// Unicast to a configured client, `ciaddr:68`.
    Unicast(SocketAddrV4),
    /// `255.255.255.255:68` on the interface the request came in on.
    Broadcast,
    /// To a client without an address yet: unicast to `ip` at hardware address `mac`.
    /// A socket layer that cannot seed the ARP table broadcasts instead.
    Hardware {
        /// `yiaddr`.
        ip: Ipv4Addr,
        /// `chaddr`.
        mac: MacAddr,
    },
}

/// Counters since start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets handed to [`Server::handle`].
    pub received: u64,
    /// OFFERs sent.
    pub offers: u64,
    /// ACKs sent.
    pub acks: u64,
    /// NAKs sent.
    pub naks: u64,
    /// RELEASEs processed.
    pub releases: u64,
    /// DECLINEs processed.
    pub declines: u64,
    /// Packets dropped as malformed, by reason.
    pub dropped: HashMap<DropReason, u64>,
    /// Valid packets that got no reply, by reason.
    pub silent: HashMap<Silence, u64>,
    /// Leases that ran out.
    pub expired: u64,
    /// Replies to a client without an address ([`Destination::Hardware`]) sent by unicast
    /// to `yiaddr` after the socket layer seeded the neighbour table. Counted by that layer.
    pub hardware_unicast: u64,
    /// Such replies broadcast instead, because the neighbour entry could not be made (no
    /// privilege, no interface index) or the unicast could not be sent.
    pub hardware_fallback: u64,
}

impl Stats {
    /// Total malformed packets.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// The counters in the Prometheus text exposition format, for a daemon's `/metrics`.
    pub fn to_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for (name, help, value) in [
            ("received", "DHCP packets received", self.received),
            ("offers", "DHCPOFFERs sent", self.offers),
            ("acks", "DHCPACKs sent", self.acks),
            ("naks", "DHCPNAKs sent", self.naks),
            ("releases", "DHCPRELEASEs processed", self.releases),
            ("declines", "DHCPDECLINEs processed", self.declines),
            ("expired", "leases that ran out", self.expired),
            (
                "hardware_unicast",
                "replies unicast to a client without an address",
                self.hardware_unicast,
            ),
            (
                "hardware_fallback",
                "replies to a client without an address broadcast instead of unicast",
                self.hardware_fallback,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP crowbar_dhcp_{name}_total {help}\n# TYPE crowbar_dhcp_{name}_total counter\ncrowbar_dhcp_{name}_total {value}"
            );
        }
        let mut labelled = |name: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(
                out,
                "# HELP crowbar_dhcp_{name}_total {help}\n# TYPE crowbar_dhcp_{name}_total counter"
            );
            let mut rows = rows;
            rows.sort();
            for (reason, n) in rows {
                let _ = writeln!(out, "crowbar_dhcp_{name}_total{{reason=\"{reason}\"}} {n}");
            }
        };
        labelled(
            "dropped",
            "malformed packets dropped",
            self.dropped
                .iter()
                .map(|(r, n)| (format!("{r}"), *n))
                .collect(),
        );
        labelled(
            "silent",
            "valid packets that got no reply",
            self.silent
                .iter()
                .map(|(r, n)| (format!("{r:?}"), *n))
                .collect(),
        );
        out
    }
}

struct SubnetState {
    cfg: SubnetConfig,
    pool: Option<Pool>,
}

/// The DHCPv4 server state machine. It owns the lease table and does no I/O: feed it packets
/// with the current time, send what it returns, persist what [`Server::take_changes`] hands
/// out.
pub struct Server {
    subnets: Vec<SubnetState>,
    server_ips: HashSet<Ipv4Addr>,
    authoritative: bool,
    offer_hold: u64,
    probation: u64,
    boot: BootPolicy,
    hosts: Arc<HostIndex>,
    leases: HashMap<Ipv4Addr, Lease>,
    by_mac: HashMap<MacAddr, Ipv4Addr>,
    expiry: BTreeSet<(u64, Ipv4Addr)>,
    changes: Vec<LeaseChange>,
    stats: Stats,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("subnets", &self.subnets.len())
            .field("leases", &self.leases.len())
            .finish_non_exhaustive()
    }
}

struct Request {
    msg: Message,
    kind: MessageType,
    mac: MacAddr,
    facts: ClientFacts,
}

fn secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Server {
    /// Builds a server over a snapshot of the DHCP database.
    pub fn new(config: ServerConfig, hosts: Arc<HostIndex>) -> Result<Self, PxeError> {
        config.validate()?;
        let server_ips = config.subnets.iter().map(|s| s.server_ip).collect();
        let subnets = config
            .subnets
            .into_iter()
            .map(|cfg| SubnetState {
                pool: cfg.pool.as_ref().map(|r| Pool::new(*r.start(), *r.end())),
                cfg,
            })
            .collect();
        Ok(Server {
            subnets,
            server_ips,
            authoritative: config.authoritative,
            offer_hold: config.offer_hold_secs.into(),
            probation: config.probation_secs.into(),
            boot: config.boot,
            hosts,
            leases: HashMap::new(),
            by_mac: HashMap::new(),
            expiry: BTreeSet::new(),
            changes: Vec::new(),
            stats: Stats::default(),
        })
    }

    /// Replaces the DHCP database snapshot (the next packets see the new reservations).
    pub fn set_hosts(&mut self, hosts: Arc<HostIndex>) {
        self.hosts = hosts;
    }

    /// Restores leases from a store at start. Expired leases are dropped, and so are leases
    /// outside every subnet.
    pub fn load_leases(&mut self, leases: Vec<Lease>, now: SystemTime) {
        let now = secs(now);
        for lease in leases {
            if lease.expires <= now || self.subnet_of(lease.ip).is_none() {
                self.changes.push(LeaseChange::Remove(lease.ip));
                continue;
            }
            if let Some(mac) = lease.mac
                && let Some(old) = self.by_mac.insert(mac, lease.ip)
            {
                self.remove_lease(old);
            }
            self.expiry.insert((lease.expires, lease.ip));
            if let Some(i) = self.subnet_of(lease.ip)
                && let Some(pool) = &mut self.subnets[i].pool
            {
                pool.take(lease.ip);
            }
            self.leases.insert(lease.ip, lease);
        }
    }

    /// The lease on `ip`.
    pub fn lease(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.leases.get(&ip)
    }

    /// The lease held by `mac`.
    pub fn lease_of(&self, mac: MacAddr) -> Option<&Lease> {
        self.by_mac.get(&mac).and_then(|ip| self.leases.get(ip))
    }

    /// Every lease, in no particular order.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The counters, for the socket layer's own (`hardware_unicast`, `hardware_fallback`).
    pub(crate) fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// The lease changes since the last call, in order, for the store.
    pub fn take_changes(&mut self) -> Vec<LeaseChange> {
        std::mem::take(&mut self.changes)
    }

    /// Ends every lease whose time is up (also done at the start of every `handle`).
    /// Returns how many ended.
    pub fn expire(&mut self, now: SystemTime) -> usize {
        self.expire_secs(secs(now))
    }

    /// Handles one packet that arrived on the interface whose address (in the served subnet)
    /// is `ingress`.
    pub fn handle(&mut self, packet: &[u8], ingress: Ipv4Addr, now: SystemTime) -> Outcome {
        let now = secs(now);
        self.stats.received += 1;
        self.expire_secs(now);
        let outcome = match self.parse(packet) {
            Ok(req) => self.dispatch(req, ingress, now),
            Err(reason) => Outcome::Dropped(reason),
        };
        match &outcome {
            Outcome::Reply(r) => match r.kind {
                ReplyKind::Offer => self.stats.offers += 1,
                ReplyKind::Ack => self.stats.acks += 1,
                ReplyKind::Nak => self.stats.naks += 1,
            },
            Outcome::Silent(s) => *self.stats.silent.entry(*s).or_default() += 1,
            Outcome::Dropped(d) => {
                *self.stats.dropped.entry(*d).or_default() += 1;
                tracing::debug!(reason = %d, len = packet.len(), "dropped malformed DHCP packet");
            }
        }
        outcome
    }

    fn parse(&self, packet: &[u8]) -> Result<Request, DropReason> {
        let raw = wire::precheck(packet)?;
        // The precheck rejects the lengths the decoder asserts on; the unwind guard is a
        // second line of defence for decoder bugs we have not seen yet.
        let msg = catch_unwind(AssertUnwindSafe(|| {
            Message::decode(&mut Decoder::new(packet))
        }))
        .map_err(|_| DropReason::Undecodable)?
        .map_err(|_| DropReason::Undecodable)?;
        if msg.opcode() != Opcode::BootRequest {
            return Err(DropReason::NotRequest);
        }
        let kind = msg.opts().msg_type().ok_or(DropReason::NoMessageType)?;
        let vendor = match msg.opts().get(OptionCode::ClassIdentifier) {
            Some(DhcpOption::ClassIdentifier(v)) => VendorClass::classify(v),
            _ => VendorClass::Absent,
        };
        Ok(Request {
            msg,
            kind,
            mac: raw.mac,
            facts: ClientFacts {
                archs: raw.archs,
                ipxe: raw.ipxe,
                vendor,
            },
        })
    }

    fn subnet_of(&self, ip: Ipv4Addr) -> Option<usize> {
        self.subnets.iter().position(|s| s.cfg.net.contains(&ip))
    }

    fn dispatch(&mut self, req: Request, ingress: Ipv4Addr, now: u64) -> Outcome {
        let giaddr = req.msg.giaddr();
        let anchor = if giaddr.is_unspecified() {
            ingress
        } else {
            giaddr
        };
        let Some(subnet) = self.subnet_of(anchor) else {
            if let Some(host) = self.hosts.by_mac(&req.mac) {
                tracing::info!(
                    mac = %req.mac,
                    fqdn = %host.fqdn,
                    from = %anchor,
                    "DHCP request from a reserved MAC dropped: it came from a network no subnet serves"
                );
            }
            return Outcome::Silent(Silence::NoSubnet);
        };
        match req.kind {
            MessageType::Discover => self.discover(&req, subnet, now),
            MessageType::Request => self.request(&req, subnet, now),
            MessageType::Release => self.release(&req),
            MessageType::Decline => self.decline(&req, now),
            MessageType::Inform => self.inform(&req, subnet),
            _ => Outcome::Dropped(DropReason::UnexpectedType),
        }
    }

    fn requested_ip(msg: &Message) -> Option<Ipv4Addr> {
        match msg.opts().get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
            _ => None,
        }
    }

    fn server_id(msg: &Message) -> Option<Ipv4Addr> {
        match msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        }
    }

    /// The address this client should have on `subnet`: its reservation, else its lease.
    fn binding(&self, mac: MacAddr, subnet: usize) -> Option<(Ipv4Addr, bool)> {
        let net = self.subnets[subnet].cfg.net;
        if let Some(host) = self.hosts.by_mac(&mac) {
            let ip = host.address.addr();
            return net.contains(&ip).then_some((ip, true));
        }
        let ip = *self.by_mac.get(&mac)?;
        let lease = self.leases.get(&ip)?;
        (net.contains(&ip) && lease.state != LeaseState::Probation).then_some((ip, false))
    }

    fn is_taken(&self, ip: Ipv4Addr) -> bool {
        self.leases.contains_key(&ip)
            || self.hosts.by_addr(ip).is_some()
            || self.server_ips.contains(&ip)
    }

    fn discover(&mut self, req: &Request, subnet: usize, now: u64) -> Outcome {
        let mac = req.mac;
        let (ip, reserved) = match self.binding(mac, subnet) {
            Some(b) => b,
            None if let Some(host) = self.hosts.by_mac(&mac) => {
                tracing::info!(
                    %mac,
                    fqdn = %host.fqdn,
                    reserved = %host.address,
                    subnet = %self.subnets[subnet].cfg.net,
                    "DHCP request from a reserved MAC dropped: its reserved address is not on the subnet it asked from"
                );
                return Outcome::Silent(Silence::ReservedElsewhere);
            }
            None => {
                if self.subnets[subnet].pool.is_none() {
                    return Outcome::Silent(Silence::NotReserved);
                }
                let wanted = Self::requested_ip(&req.msg).filter(|ip| {
                    self.subnets[subnet]
                        .pool
                        .as_ref()
                        .is_some_and(|p| p.is_unused(*ip))
                        && !self.is_taken(*ip)
                });
                let ip = match wanted {
                    Some(ip) => Some(ip),
                    None => {
                        let Server {
                            subnets,
                            leases,
                            hosts,
                            server_ips,
                            ..
                        } = self;
                        subnets[subnet].pool.as_mut().and_then(|p| {
                            p.allocate(|ip| {
                                leases.contains_key(&ip)
                                    || hosts.by_addr(ip).is_some()
                                    || server_ips.contains(&ip)
                            })
                        })
                    }
                };
                match ip {
                    Some(ip) => (ip, false),
                    None => return Outcome::Silent(Silence::PoolExhausted),
                }
            }
        };
        let keep_bound = self
            .leases
            .get(&ip)
            .is_some_and(|l| l.state == LeaseState::Bound && l.mac == Some(mac));
        if !keep_bound {
            self.assign(mac, ip, LeaseState::Offered, now + self.offer_hold);
        }
        let lease_secs = self.lease_secs(subnet, reserved);
        self.reply(req, subnet, ReplyKind::Offer, ip, Some(lease_secs))
    }

    fn lease_secs(&self, subnet: usize, reserved: bool) -> u32 {
        let cfg = &self.subnets[subnet].cfg;
        if reserved {
            cfg.reserved_lease_secs
        } else {
            cfg.pool_lease_secs
        }
    }

    fn request(&mut self, req: &Request, subnet: usize, now: u64) -> Outcome {
        let mac = req.mac;
        let ciaddr = req.msg.ciaddr();
        let requested = Self::requested_ip(&req.msg);
        let net = self.subnets[subnet].cfg.net;
        let ip = if let Some(sid) = Self::server_id(&req.msg) {
            // SELECTING.
            if !self.server_ips.contains(&sid) {
                if let Some(ip) = self.by_mac.get(&mac).copied()
                    && self
                        .leases
                        .get(&ip)
                        .is_some_and(|l| l.state == LeaseState::Offered)
                {
                    self.remove_lease(ip);
                }
                return Outcome::Silent(Silence::OtherServer);
            }
            match requested.or((!ciaddr.is_unspecified()).then_some(ciaddr)) {
                Some(ip) => ip,
                None => return Outcome::Silent(Silence::MissingAddress),
            }
        } else if let Some(ip) = requested.filter(|_| ciaddr.is_unspecified()) {
            // INIT-REBOOT.
            ip
        } else if !ciaddr.is_unspecified() {
            // RENEWING (unicast) or REBINDING (broadcast).
            ciaddr
        } else {
            return Outcome::Silent(Silence::MissingAddress);
        };
        if !net.contains(&ip) {
            return self.nak(req, subnet, "address not on this network");
        }
        match self.binding(mac, subnet) {
            Some((bound, reserved)) if bound == ip => {
                let lease_secs = self.lease_secs(subnet, reserved);
                self.assign(mac, ip, LeaseState::Bound, now + u64::from(lease_secs));
                self.reply(req, subnet, ReplyKind::Ack, ip, Some(lease_secs))
            }
            Some(_) => self.nak(req, subnet, "address not assigned to this client"),
            None if self.authoritative => self.nak(req, subnet, "no lease for this client"),
            None => Outcome::Silent(Silence::NoRecord),
        }
    }

    fn release(&mut self, req: &Request) -> Outcome {
        let ours = Self::server_id(&req.msg).is_none_or(|sid| self.server_ips.contains(&sid));
        let ip = req.msg.ciaddr();
        if ours && self.by_mac.get(&req.mac) == Some(&ip) {
            self.remove_lease(ip);
            self.stats.releases += 1;
            tracing::debug!(mac = %req.mac, %ip, "released");
        }
        Outcome::Silent(Silence::Released)
    }

    fn decline(&mut self, req: &Request, now: u64) -> Outcome {
        let ours = Self::server_id(&req.msg).is_none_or(|sid| self.server_ips.contains(&sid));
        if let Some(ip) = Self::requested_ip(&req.msg)
            && ours
            && self.by_mac.get(&req.mac) == Some(&ip)
        {
            self.by_mac.remove(&req.mac);
            let lease = Lease {
                ip,
                mac: None,
                state: LeaseState::Probation,
                expires: now + self.probation,
            };
            self.put_lease(lease);
            self.stats.declines += 1;
            tracing::warn!(mac = %req.mac, %ip, "address declined, on probation");
        }
        Outcome::Silent(Silence::Declined)
    }

    fn inform(&mut self, req: &Request, subnet: usize) -> Outcome {
        self.reply(req, subnet, ReplyKind::Ack, Ipv4Addr::UNSPECIFIED, None)
    }

    fn nak(&mut self, req: &Request, subnet: usize, why: &str) -> Outcome {
        tracing::debug!(mac = %req.mac, why, "NAK");
        let mut m = self.skeleton(req, subnet, MessageType::Nak);
        m.opts_mut().insert(DhcpOption::Message(why.to_owned()));
        let giaddr = req.msg.giaddr();
        let to = if giaddr.is_unspecified() {
            Destination::Broadcast
        } else {
            m.set_flags(Flags::default().set_broadcast());
            Destination::Relay(SocketAddrV4::new(giaddr, SERVER_PORT))
        };
        Outcome::Reply(Reply {
            kind: ReplyKind::Nak,
            bytes: encode(&m),
            to,
            yiaddr: Ipv4Addr::UNSPECIFIED,
        })
    }

    fn skeleton(&self, req: &Request, subnet: usize, kind: MessageType) -> Message {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootReply)
            .set_htype(req.msg.htype())
            .set_xid(req.msg.xid())
            .set_flags(req.msg.flags())
            .set_giaddr(req.msg.giaddr())
            .set_chaddr(&req.mac.0);
        let opts = m.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ServerIdentifier(
            self.subnets[subnet].cfg.server_ip,
        ));
        if let Some(relay @ DhcpOption::RelayAgentInformation(_)) =
            req.msg.opts().get(OptionCode::RelayAgentInformation)
        {
            opts.insert(relay.clone());
        }
        if let Some(id @ DhcpOption::ClientIdentifier(_)) =
            req.msg.opts().get(OptionCode::ClientIdentifier)
        {
            opts.insert(id.clone());
        }
        m
    }

    fn reply(
        &mut self,
        req: &Request,
        subnet: usize,
        kind: ReplyKind,
        yiaddr: Ipv4Addr,
        lease_secs: Option<u32>,
    ) -> Outcome {
        let msg_type = match kind {
            ReplyKind::Offer => MessageType::Offer,
            ReplyKind::Ack => MessageType::Ack,
            ReplyKind::Nak => MessageType::Nak,
        };
        let mut m = self.skeleton(req, subnet, msg_type);
        let cfg = &self.subnets[subnet].cfg;
        m.set_yiaddr(yiaddr);
        if req.kind != MessageType::Discover {
            m.set_ciaddr(req.msg.ciaddr());
        }
        let requested: Vec<OptionCode> = match req.msg.opts().get(OptionCode::ParameterRequestList)
        {
            Some(DhcpOption::ParameterRequestList(list)) => list.clone(),
            _ => Vec::new(),
        };
        let host = self.hosts.by_mac(&req.mac).cloned();
        {
            let opts = m.opts_mut();
            if let Some(secs) = lease_secs {
                opts.insert(DhcpOption::AddressLeaseTime(secs));
                opts.insert(DhcpOption::Renewal(secs / 2));
                opts.insert(DhcpOption::Rebinding(secs / 8 * 7));
            }
            opts.insert(DhcpOption::SubnetMask(cfg.net.netmask()));
            opts.insert(DhcpOption::BroadcastAddr(cfg.net.broadcast()));
            if !cfg.routers.is_empty() {
                opts.insert(DhcpOption::Router(cfg.routers.clone()));
            }
            if !cfg.dns_servers.is_empty() {
                opts.insert(DhcpOption::DomainNameServer(cfg.dns_servers.clone()));
            }
            if let Some(domain) = &cfg.domain {
                opts.insert(DhcpOption::DomainName(domain.clone()));
            }
            if let Some(h) = &host {
                opts.insert(DhcpOption::Hostname(h.hostname().to_owned()));
            }
        }
        let bootenv = host
            .as_ref()
            .map_or(Bootenv::Sledgehammer, |h| h.bootenv.clone());
        if let Some(boot) = self
            .boot
            .decide(&req.facts, &bootenv, req.mac, cfg.server_ip)
        {
            apply_boot(&mut m, &boot, &requested);
        }
        let giaddr = req.msg.giaddr();
        let ciaddr = req.msg.ciaddr();
        let to = if !giaddr.is_unspecified() {
            Destination::Relay(SocketAddrV4::new(giaddr, SERVER_PORT))
        } else if !ciaddr.is_unspecified() {
            Destination::Unicast(SocketAddrV4::new(ciaddr, CLIENT_PORT))
        } else if req.msg.flags().broadcast() || yiaddr.is_unspecified() {
            Destination::Broadcast
        } else {
            Destination::Hardware {
                ip: yiaddr,
                mac: req.mac,
            }
        };
        let limit = match req.msg.opts().get(OptionCode::MaxMessageSize) {
            Some(DhcpOption::MaxMessageSize(n)) => usize::from(*n).max(MIN_MAX_MESSAGE),
            _ => MIN_MAX_MESSAGE,
        };
        Outcome::Reply(Reply {
            kind,
            bytes: encode_within(&mut m, limit),
            to,
            yiaddr,
        })
    }

    fn put_lease(&mut self, lease: Lease) {
        if let Some(old) = self.leases.get(&lease.ip) {
            self.expiry.remove(&(old.expires, old.ip));
            if old.mac != lease.mac
                && let Some(m) = old.mac
            {
                self.by_mac.remove(&m);
            }
        }
        self.expiry.insert((lease.expires, lease.ip));
        self.changes.push(LeaseChange::Upsert(lease.clone()));
        self.leases.insert(lease.ip, lease);
    }

    fn assign(&mut self, mac: MacAddr, ip: Ipv4Addr, state: LeaseState, expires: u64) {
        if let Some(old) = self.by_mac.get(&mac).copied()
            && old != ip
        {
            self.remove_lease(old);
        }
        if let Some(i) = self.subnet_of(ip)
            && let Some(pool) = &mut self.subnets[i].pool
        {
            pool.take(ip);
        }
        self.put_lease(Lease {
            ip,
            mac: Some(mac),
            state,
            expires,
        });
        self.by_mac.insert(mac, ip);
    }

    fn remove_lease(&mut self, ip: Ipv4Addr) {
        if let Some(old) = self.leases.remove(&ip) {
            self.expiry.remove(&(old.expires, ip));
            if let Some(m) = old.mac
                && self.by_mac.get(&m) == Some(&ip)
            {
                self.by_mac.remove(&m);
            }
            self.changes.push(LeaseChange::Remove(ip));
            if let Some(i) = self.subnet_of(ip)
                && let Some(pool) = &mut self.subnets[i].pool
            {
                pool.give_back(ip);
            }
        }
    }

    fn expire_secs(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(&(when, ip)) = self.expiry.first() {
            if when > now {
                break;
            }
            self.remove_lease(ip);
            n += 1;
        }
        self.stats.expired += n as u64;
        n
    }
}

fn apply_boot(m: &mut Message, boot: &BootDecision, requested: &[OptionCode]) {
    m.set_siaddr(boot.next_server);
    let file = boot.file.as_bytes();
    if file.len() < 128 {
        m.set_fname(file);
    }
    let opts = m.opts_mut();
    if requested.contains(&OptionCode::BootfileName) || file.len() >= 128 {
        opts.insert(DhcpOption::BootfileName(file.to_vec()));
    }
    if requested.contains(&OptionCode::TFTPServerName) {
        opts.insert(DhcpOption::TFTPServerName(
            boot.tftp_server_name.as_bytes().to_vec(),
        ));
    }
    match boot.vendor_class {
        Some(VendorClass::PxeClient) => {
            opts.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
            // PXE discovery control: boot the file we name, no boot-server discovery.
            opts.insert(DhcpOption::VendorExtensions(vec![6, 1, 8, 255]));
        }
        Some(VendorClass::HttpClient) => {
            opts.insert(DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()));
        }
        _ => {}
    }
}

/// RFC 2131 §2: every client accepts 576-byte messages (IP and UDP headers included).
const MIN_MAX_MESSAGE: usize = 576;
const IP_UDP_HEADERS: usize = 28;

/// Encodes `m` so that, with IP and UDP headers, it fits the client's maximum message size
/// (option 57): optional options are shed in this order until it does.
fn encode_within(m: &mut Message, limit: usize) -> Vec<u8> {
    let shed = [
        OptionCode::DomainName,
        OptionCode::Hostname,
        OptionCode::DomainNameServer,
        OptionCode::BroadcastAddr,
        OptionCode::TFTPServerName,
        OptionCode::VendorExtensions,
    ];
    let mut bytes = encode(m);
    for code in shed {
        if bytes.len() + IP_UDP_HEADERS <= limit {
            break;
        }
        if m.opts_mut().remove(code).is_some() {
            tracing::debug!(?code, limit, "reply too large, dropping an option");
            bytes = encode(m);
        }
    }
    bytes
}

fn encode(m: &Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(wire::MIN_REPLY);
    // Encoding a message we built ourselves only fails on values the setters already bound.
    if m.encode(&mut Encoder::new(&mut buf)).is_err() {
        tracing::error!("encoding a DHCP reply failed");
    }
    wire::pad(&mut buf);
    buf
}
