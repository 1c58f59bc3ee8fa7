//! Neighbour (ARP) entries, so a reply can be unicast to a client that has no address yet.
//!
//! RFC 2131 §4.1: a reply to a client with `ciaddr` 0, no relay and the broadcast flag clear
//! goes to `yiaddr` at `chaddr`. The kernel cannot resolve `yiaddr` (the client does not answer
//! ARP before it is configured), so the socket layer first puts the entry in the neighbour
//! table itself. dnsmasq does it with the `SIOCSARP` ioctl; this crate forbids `unsafe`, so
//! [`NetlinkNeighbours`] sends `RTM_NEWNEIGH` over an rtnetlink socket instead.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_ROUTE};

use crate::{MacAddr, PxeError};

/// Writes entries into a neighbour (ARP) table. [`NetlinkNeighbours`] is the kernel's;
/// [`MemNeighbours`] keeps them in memory for tests.
///
/// Calls are synchronous and must be cheap: the DHCP task makes them on the packet path.
pub trait Neighbours: Send {
    /// The index of the interface called `name`.
    fn ifindex(&mut self, name: &str) -> Result<u32, PxeError>;

    /// Creates or replaces the entry `ip` → `mac` on interface `ifindex`.
    fn seed(&mut self, ifindex: u32, ip: Ipv4Addr, mac: MacAddr) -> Result<(), PxeError>;
}

/// The kernel's neighbour table over one rtnetlink socket, opened once.
///
/// An entry is written with `RTM_NEWNEIGH` (`NLM_F_CREATE | NLM_F_REPLACE`, state `STALE`: the
/// kernel uses it at once and revalidates it by unicast ARP later, as after an unsolicited ARP
/// reply). The kernel handles an rtnetlink request inside the `send` call, so its
/// acknowledgement is already queued when `send` returns: [`seed`](Neighbours::seed) reads it
/// without blocking and reports a refusal (`EPERM` without `CAP_NET_ADMIN`, `EINVAL` on an
/// interface without ARP) to the caller of that very call.
#[derive(Debug)]
pub struct NetlinkNeighbours {
    socket: Socket,
    seq: u32,
    /// Replies read.
    buf: Vec<u8>,
    /// The request being sent (kept: `seed` runs on the packet path).
    out: Vec<u8>,
}

impl NetlinkNeighbours {
    /// Opens the rtnetlink socket.
    pub fn open() -> Result<Self, PxeError> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| PxeError::io("opening rtnetlink socket", e))?;
        socket
            .bind_auto()
            .map_err(|e| PxeError::io("binding rtnetlink socket", e))?;
        socket
            .connect(&NetlinkAddr::new(0, 0))
            .map_err(|e| PxeError::io("connecting rtnetlink socket", e))?;
        socket
            .set_non_blocking(true)
            .map_err(|e| PxeError::io("configuring rtnetlink socket", e))?;
        Ok(NetlinkNeighbours {
            socket,
            seq: 0,
            buf: Vec::with_capacity(8192),
            out: Vec::new(),
        })
    }

    /// Sends one request; returns its sequence number.
    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::from(message);
        packet.header.flags = flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        self.out.clear();
        self.out.resize(packet.buffer_len(), 0);
        packet.serialize(&mut self.out);
        self.socket.send(&self.out, 0)?;
        Ok(self.seq)
    }

    /// Reads every queued reply without blocking. Returns the answer to request `seq`: its
    /// acknowledgement or error, and any link message it carried.
    fn collect(&mut self, seq: u32) -> Reply {
        let mut reply = Reply::default();
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(0) => break,
                Ok(_) => {}
                // Nothing queued; or a lost reply (ENOBUFS), which says nothing about `seq`.
                Err(_) => break,
            }
            parse(&self.buf, seq, &mut reply);
            if reply.done {
                break;
            }
        }
        reply
    }
}

impl NetlinkNeighbours {
    /// The IPv4 addresses on interface `ifindex` (an `RTM_GETADDR` dump; start-up only, it
    /// waits for the answer).
    pub fn addresses(&mut self, ifindex: u32) -> Result<Vec<Ipv4Addr>, PxeError> {
        let context = || format!("listing the addresses of interface {ifindex}");
        let mut request = AddressMessage::default();
        request.header.family = AddressFamily::Inet;
        self.socket
            .set_non_blocking(false)
            .map_err(|e| PxeError::io(context(), e))?;
        let result = self.dump_addresses(request, ifindex);
        self.socket
            .set_non_blocking(true)
            .map_err(|e| PxeError::io(context(), e))?;
        result.map_err(|e| PxeError::io(context(), e))
    }

    fn dump_addresses(
        &mut self,
        request: AddressMessage,
        ifindex: u32,
    ) -> io::Result<Vec<Ipv4Addr>> {
        let seq = self.send(
            RouteNetlinkMessage::GetAddress(request),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        let mut found = Vec::new();
        loop {
            self.buf.clear();
            self.socket.recv(&mut self.buf, 0)?;
            let mut offset = 0;
            while offset < self.buf.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(found),
                        NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a))
                            if a.header.index == ifindex =>
                        {
                            for attr in a.attributes {
                                if let AddressAttribute::Address(std::net::IpAddr::V4(ip))
                                | AddressAttribute::Local(std::net::IpAddr::V4(ip)) = attr
                                    && !found.contains(&ip)
                                {
                                    found.push(ip);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
            }
        }
    }
}

#[derive(Default)]
struct Reply {
    done: bool,
    error: Option<io::Error>,
    link: Option<LinkMessage>,
}

impl Neighbours for NetlinkNeighbours {
    fn ifindex(&mut self, name: &str) -> Result<u32, PxeError> {
        let context = || format!("looking up interface {name}");
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.to_owned()));
        // Start-up only: wait for the answer.
        self.socket
            .set_non_blocking(false)
            .map_err(|e| PxeError::io(context(), e))?;
        let mut reply = Reply::default();
        match self.send(
            RouteNetlinkMessage::GetLink(link),
            NLM_F_REQUEST | NLM_F_ACK,
        ) {
            // The link message, then the acknowledgement (or the error alone).
            Ok(seq) => {
                while !reply.done && reply.error.is_none() {
                    self.buf.clear();
                    match self.socket.recv(&mut self.buf, 0) {
                        Ok(_) => parse(&self.buf, seq, &mut reply),
                        Err(e) => reply.error = Some(e),
                    }
                }
            }
            Err(e) => reply.error = Some(e),
        }
        self.socket
            .set_non_blocking(true)
            .map_err(|e| PxeError::io(context(), e))?;
        if let Some(e) = reply.error {
            return Err(PxeError::io(context(), e));
        }
        reply
            .link
            .map(|l| l.header.index)
            .ok_or_else(|| PxeError::config("interface", format!("no interface called {name}")))
    }

    fn seed(&mut self, ifindex: u32, ip: Ipv4Addr, mac: MacAddr) -> Result<(), PxeError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = ifindex;
        msg.header.state = NeighbourState::Stale;
        msg.header.kind = RouteType::Unspec;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        let refused = |error| PxeError::Neighbour {
            ifindex,
            ip,
            mac,
            error,
        };
        let seq = self
            .send(
                RouteNetlinkMessage::NewNeighbour(msg),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            )
            .map_err(refused)?;
        // Already queued (see the type's docs); an answer not there yet counts as success.
        match self.collect(seq).error {
            Some(e) => Err(refused(e)),
            None => Ok(()),
        }
    }
}

/// Notes in `reply` what the datagram `buf` says about request `seq`.
fn parse(buf: &[u8], seq: u32, reply: &mut Reply) {
    let mut offset = 0;
    while offset < buf.len() {
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..]) else {
            return;
        };
        let len = msg.header.length as usize;
        if msg.header.sequence_number == seq {
            match msg.payload {
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    reply.error = Some(e.to_io());
                    reply.done = true;
                }
                NetlinkPayload::Error(_) => reply.done = true,
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    reply.link = Some(link);
                }
                _ => {}
            }
        }
        if len == 0 {
            return;
        }
        offset += (len + 3) & !3;
    }
}

/// A neighbour table in memory: what a test can inspect. Clones share one table.
///
/// Interfaces are made up: each new name gets the next index from 1. It does no I/O, so
/// nothing it records reaches the kernel; [`refusing`](Self::refusing) makes every `seed` fail
/// like an unprivileged process's would.
#[derive(Clone, Debug, Default)]
pub struct MemNeighbours(Arc<Mutex<MemTable>>);

#[derive(Debug, Default)]
struct MemTable {
    interfaces: Vec<String>,
    entries: HashMap<(u32, Ipv4Addr), MacAddr>,
    writes: u64,
    refuse: bool,
}

impl MemNeighbours {
    /// An empty table that accepts every entry.
    pub fn new() -> Self {
        MemNeighbours::default()
    }

    /// A table that refuses every entry with `EPERM`.
    pub fn refusing() -> Self {
        let n = MemNeighbours::default();
        n.table().refuse = true;
        n
    }

    /// The MAC recorded for `ip` on `ifindex`.
    pub fn get(&self, ifindex: u32, ip: Ipv4Addr) -> Option<MacAddr> {
        self.table().entries.get(&(ifindex, ip)).copied()
    }

    /// Drops the entry for `ip` on `ifindex`, as the kernel does on a carrier loss.
    pub fn remove(&self, ifindex: u32, ip: Ipv4Addr) {
        self.table().entries.remove(&(ifindex, ip));
    }

    /// How many entries were written (or refused), replacements included.
    pub fn writes(&self) -> u64 {
        self.table().writes
    }

    fn table(&self) -> std::sync::MutexGuard<'_, MemTable> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Neighbours for MemNeighbours {
    fn ifindex(&mut self, name: &str) -> Result<u32, PxeError> {
        let mut t = self.table();
        let i = match t.interfaces.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                t.interfaces.push(name.to_owned());
                t.interfaces.len() - 1
            }
        };
        Ok(i as u32 + 1)
    }

    fn seed(&mut self, ifindex: u32, ip: Ipv4Addr, mac: MacAddr) -> Result<(), PxeError> {
        let mut t = self.table();
        t.writes += 1;
        if t.refuse {
            return Err(PxeError::Neighbour {
                ifindex,
                ip,
                mac,
                error: io::Error::from(io::ErrorKind::PermissionDenied),
            });
        }
        t.entries.insert((ifindex, ip), mac);
        Ok(())
    }
}
