//! A small DHCP client-side codec: build requests and read replies (tests, benches, probes).

use std::net::Ipv4Addr;

use dhcproto::v4::relay::{RelayAgentInformation, RelayCode, RelayInfo};
use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use crate::{MacAddr, ReplyKind};

/// Builds a client request the way DHCP clients and PXE firmware do.
#[derive(Clone, Debug)]
pub struct ClientPacket {
    msg: Message,
    archs: Vec<u16>,
}

impl ClientPacket {
    fn new(kind: MessageType, mac: MacAddr, xid: u32) -> Self {
        let mut msg = Message::default();
        msg.set_opcode(Opcode::BootRequest)
            .set_xid(xid)
            .set_chaddr(&mac.0);
        msg.opts_mut().insert(DhcpOption::MessageType(kind));
        ClientPacket {
            msg,
            archs: Vec::new(),
        }
    }

    /// DHCPDISCOVER.
    pub fn discover(mac: MacAddr, xid: u32) -> Self {
        Self::new(MessageType::Discover, mac, xid)
    }

    /// DHCPREQUEST in SELECTING state: server identifier and requested address.
    pub fn request(mac: MacAddr, xid: u32, server: Ipv4Addr, ip: Ipv4Addr) -> Self {
        let mut p = Self::new(MessageType::Request, mac, xid);
        p.msg
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(server));
        p.msg.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        p
    }

    /// DHCPREQUEST in INIT-REBOOT state: requested address, no server identifier.
    pub fn init_reboot(mac: MacAddr, xid: u32, ip: Ipv4Addr) -> Self {
        let mut p = Self::new(MessageType::Request, mac, xid);
        p.msg.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        p
    }

    /// DHCPREQUEST in RENEWING or REBINDING state: `ciaddr` set.
    pub fn renew(mac: MacAddr, xid: u32, ciaddr: Ipv4Addr) -> Self {
        let mut p = Self::new(MessageType::Request, mac, xid);
        p.msg.set_ciaddr(ciaddr);
        p
    }

    /// DHCPRELEASE of `ciaddr`.
    pub fn release(mac: MacAddr, xid: u32, server: Ipv4Addr, ciaddr: Ipv4Addr) -> Self {
        let mut p = Self::new(MessageType::Release, mac, xid);
        p.msg.set_ciaddr(ciaddr);
        p.msg
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(server));
        p
    }

    /// DHCPDECLINE of `ip`.
    pub fn decline(mac: MacAddr, xid: u32, server: Ipv4Addr, ip: Ipv4Addr) -> Self {
        let mut p = Self::new(MessageType::Decline, mac, xid);
        p.msg
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(server));
        p.msg.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        p
    }

    /// DHCPINFORM from a client configured with `ciaddr`.
    pub fn inform(mac: MacAddr, xid: u32, ciaddr: Ipv4Addr) -> Self {
        let mut p = Self::new(MessageType::Inform, mac, xid);
        p.msg.set_ciaddr(ciaddr);
        p
    }

    /// Sets the broadcast flag.
    pub fn broadcast(mut self) -> Self {
        self.msg.set_flags(Flags::default().set_broadcast());
        self
    }

    /// Adds a requested address (option 50).
    pub fn requested_ip(mut self, ip: Ipv4Addr) -> Self {
        self.msg
            .opts_mut()
            .insert(DhcpOption::RequestedIpAddress(ip));
        self
    }

    /// Sets `giaddr`, as a relay agent would.
    pub fn relayed_by(mut self, giaddr: Ipv4Addr) -> Self {
        self.msg.set_giaddr(giaddr).set_hops(1);
        self
    }

    /// Option 82 with an agent circuit id, as a relay agent adds it.
    pub fn circuit_id(mut self, id: &[u8]) -> Self {
        let mut info = RelayAgentInformation::default();
        info.insert(RelayInfo::AgentCircuitId(id.to_vec()));
        self.msg
            .opts_mut()
            .insert(DhcpOption::RelayAgentInformation(info));
        self
    }

    /// Option 93 with these architectures, in order.
    pub fn arch(mut self, archs: &[u16]) -> Self {
        self.archs = archs.to_vec();
        self
    }

    /// Option 60.
    pub fn vendor_class(mut self, class: &str) -> Self {
        self.msg
            .opts_mut()
            .insert(DhcpOption::ClassIdentifier(class.as_bytes().to_vec()));
        self
    }

    /// Option 77 `iPXE`.
    pub fn ipxe(mut self) -> Self {
        self.msg
            .opts_mut()
            .insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        self
    }

    /// What x86-64 UEFI PXE firmware sends: vendor class `PXEClient:Arch:00007…`, option 93 = 7
    /// and a parameter request list with options 66 and 67.
    pub fn pxe_uefi_x64(self) -> Self {
        self.vendor_class("PXEClient:Arch:00007:UNDI:003016")
            .arch(&[7])
            .request_options(&[1, 3, 66, 67])
    }

    /// Option 57: the largest DHCP message the client accepts.
    pub fn max_message_size(mut self, n: u16) -> Self {
        self.msg.opts_mut().insert(DhcpOption::MaxMessageSize(n));
        self
    }

    /// Option 55.
    pub fn request_options(mut self, codes: &[u8]) -> Self {
        self.msg.opts_mut().insert(DhcpOption::ParameterRequestList(
            codes.iter().map(|c| OptionCode::from(*c)).collect(),
        ));
        self
    }

    /// The encoded packet.
    pub fn build(mut self) -> Vec<u8> {
        if !self.archs.is_empty() {
            let data = self.archs.iter().flat_map(|a| a.to_be_bytes()).collect();
            self.msg
                .opts_mut()
                .insert(DhcpOption::Unknown(UnknownOption::new(
                    OptionCode::from(93),
                    data,
                )));
        }
        let mut buf = Vec::new();
        // Only fails for values the setters already bound.
        let _ = self.msg.encode(&mut Encoder::new(&mut buf));
        crate::wire::pad(&mut buf);
        buf
    }
}

/// The fields of a server reply that tests and probes look at.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParsedReply {
    /// OFFER, ACK or NAK.
    pub kind: ReplyKind,
    /// Transaction id.
    pub xid: u32,
    /// Offered / acknowledged address.
    pub yiaddr: Ipv4Addr,
    /// next-server.
    pub siaddr: Ipv4Addr,
    /// `giaddr`.
    pub giaddr: Ipv4Addr,
    /// Option 67, else the header `file`.
    pub file: Option<String>,
    /// Option 66.
    pub tftp_server_name: Option<String>,
    /// Option 60.
    pub vendor_class: Option<String>,
    /// Option 51.
    pub lease_secs: Option<u32>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Whether the broadcast flag is set.
    pub broadcast: bool,
    /// Option 82's agent circuit id, echoed from a relayed request.
    pub circuit_id: Option<Vec<u8>>,
}

impl ParsedReply {
    /// Decodes a reply; `None` if it is not a DHCP reply.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let m = Message::decode(&mut Decoder::new(bytes)).ok()?;
        if m.opcode() != Opcode::BootReply {
            return None;
        }
        let kind = match m.opts().msg_type()? {
            MessageType::Offer => ReplyKind::Offer,
            MessageType::Ack => ReplyKind::Ack,
            MessageType::Nak => ReplyKind::Nak,
            _ => return None,
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned();
        let o = m.opts();
        Some(ParsedReply {
            kind,
            xid: m.xid(),
            yiaddr: m.yiaddr(),
            siaddr: m.siaddr(),
            giaddr: m.giaddr(),
            file: match o.get(OptionCode::BootfileName) {
                Some(DhcpOption::BootfileName(f)) => Some(text(f)),
                _ => m.fname().map(text).filter(|s| !s.is_empty()),
            },
            tftp_server_name: match o.get(OptionCode::TFTPServerName) {
                Some(DhcpOption::TFTPServerName(f)) => Some(text(f)),
                _ => None,
            },
            vendor_class: match o.get(OptionCode::ClassIdentifier) {
                Some(DhcpOption::ClassIdentifier(f)) => Some(text(f)),
                _ => None,
            },
            lease_secs: match o.get(OptionCode::AddressLeaseTime) {
                Some(DhcpOption::AddressLeaseTime(s)) => Some(*s),
                _ => None,
            },
            server_id: match o.get(OptionCode::ServerIdentifier) {
                Some(DhcpOption::ServerIdentifier(s)) => Some(*s),
                _ => None,
            },
            hostname: match o.get(OptionCode::Hostname) {
                Some(DhcpOption::Hostname(s)) => Some(s.clone()),
                _ => None,
            },
            broadcast: m.flags().broadcast(),
            circuit_id: match o.get(OptionCode::RelayAgentInformation) {
                Some(DhcpOption::RelayAgentInformation(info)) => {
                    match info.get(RelayCode::AgentCircuitId) {
                        Some(RelayInfo::AgentCircuitId(id)) => Some(id.clone()),
                        _ => None,
                    }
                }
                _ => None,
            },
        })
    }
}
