//! Raw checks on a packet before `dhcproto` sees it, and reply framing.

use std::fmt;

use crate::MacAddr;

/// Why a packet was dropped without a reply. Every drop is counted and logged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DropReason {
    /// Shorter than the fixed BOOTP header plus the magic cookie.
    Truncated,
    /// `op` is not BOOTREQUEST.
    NotRequest,
    /// Not Ethernet (`htype` 1, `hlen` 6).
    UnsupportedHardware,
    /// The DHCP magic cookie is missing.
    BadMagic,
    /// An option's length runs past the end of the packet, or `END` is missing.
    OptionPastEnd {
        /// The option code.
        code: u8,
    },
    /// An option has a length its type does not allow.
    BadOption {
        /// The option code.
        code: u8,
    },
    /// The options could not be decoded.
    Undecodable,
    /// No DHCP message type (53): plain BOOTP is not served.
    NoMessageType,
    /// A message type a server never receives (OFFER, ACK, ...).
    UnexpectedType,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Truncated => f.write_str("truncated packet"),
            DropReason::NotRequest => f.write_str("not a BOOTREQUEST"),
            DropReason::UnsupportedHardware => f.write_str("hardware type is not Ethernet"),
            DropReason::BadMagic => f.write_str("bad magic cookie"),
            DropReason::OptionPastEnd { code } => write!(f, "option {code} runs past the end"),
            DropReason::BadOption { code } => write!(f, "option {code} has a bad length"),
            DropReason::Undecodable => f.write_str("options cannot be decoded"),
            DropReason::NoMessageType => f.write_str("no DHCP message type"),
            DropReason::UnexpectedType => f.write_str("message type a server does not accept"),
        }
    }
}

/// What the raw scan learned: the MAC, every option-93 entry and the iPXE user class.
#[derive(Debug)]
pub(crate) struct RawFacts {
    pub(crate) mac: MacAddr,
    pub(crate) archs: Vec<u16>,
    pub(crate) ipxe: bool,
}

const HEADER: usize = 236;
const MAGIC: [u8; 4] = [99, 130, 83, 99];

/// Minimum length of a reply (RFC 1542 §2.1 / BOOTP): pad after `END` up to this.
pub(crate) const MIN_REPLY: usize = 300;

/// Validates the framing and option lengths so that no malformed packet reaches the decoder.
pub(crate) fn precheck(buf: &[u8]) -> Result<RawFacts, DropReason> {
    if buf.len() < HEADER + 4 {
        return Err(DropReason::Truncated);
    }
    if buf[0] != 1 {
        return Err(DropReason::NotRequest);
    }
    if buf[1] != 1 || buf[2] != 6 {
        return Err(DropReason::UnsupportedHardware);
    }
    if buf[HEADER..HEADER + 4] != MAGIC {
        return Err(DropReason::BadMagic);
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&buf[28..34]);
    let mut facts = RawFacts {
        mac: MacAddr(mac),
        archs: Vec::new(),
        ipxe: false,
    };
    let mut i = HEADER + 4;
    loop {
        let Some(&code) = buf.get(i) else {
            return Err(DropReason::OptionPastEnd { code: 255 });
        };
        match code {
            0 => {
                i += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let Some(&len) = buf.get(i + 1) else {
            return Err(DropReason::OptionPastEnd { code });
        };
        let len = usize::from(len);
        let Some(data) = buf.get(i + 2..i + 2 + len) else {
            return Err(DropReason::OptionPastEnd { code });
        };
        let ok = match code {
            // Fixed-size options whose wrong size the decoder would trip on.
            53 | 52 | 46 | 19 | 20 | 23 | 27 | 29 | 30 | 31 | 34 | 36 | 37 | 39 => len == 1,
            13 | 22 | 26 | 57 => len == 2,
            1 | 16 | 28 | 32 | 50 | 54 | 118 | 150 => len == 4,
            2 | 24 | 35 | 38 | 51 | 58 | 59 | 91 | 108 | 152 | 153 | 154 => len == 4,
            94 => len == 3,
            80 => len == 0,
            93 => len >= 2 && len % 2 == 0,
            3..=11 | 41 | 42 | 44 | 45 | 48 | 49 | 65 | 68..=76 | 89 | 92 => len % 4 == 0,
            21 | 33 => len % 8 == 0,
            25 => len % 2 == 0,
            _ => true,
        };
        if !ok {
            return Err(DropReason::BadOption { code });
        }
        match code {
            93 => facts.archs.extend(
                data.chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]])),
            ),
            77 => facts.ipxe |= data.windows(4).any(|w| w == b"iPXE"),
            _ => {}
        }
        i += 2 + len;
    }
    Ok(facts)
}

/// Pads an encoded reply with zeros after `END` up to [`MIN_REPLY`] bytes.
pub(crate) fn pad(buf: &mut Vec<u8>) {
    if buf.len() < MIN_REPLY {
        buf.resize(MIN_REPLY, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(opts: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(opts);
        b
    }

    #[test]
    fn reads_every_option_93_entry_and_ipxe_user_class() {
        let f = precheck(&packet(&[
            53, 1, 1, 93, 4, 0, 7, 0, 9, 77, 4, b'i', b'P', b'X', b'E', 255,
        ]))
        .unwrap();
        assert_eq!(f.archs, vec![7, 9]);
        assert!(f.ipxe);
        assert_eq!(f.mac, MacAddr([2, 0, 0, 0, 0, 9]));
    }

    #[test]
    fn malformed_packets_have_a_reason() {
        assert_eq!(precheck(&[1, 1, 6]).unwrap_err(), DropReason::Truncated);
        let mut reply = packet(&[255]);
        reply[0] = 2;
        assert_eq!(precheck(&reply).unwrap_err(), DropReason::NotRequest);
        assert_eq!(
            precheck(&packet(&[53, 1, 1, 60, 9, b'P'])).unwrap_err(),
            DropReason::OptionPastEnd { code: 60 }
        );
        assert_eq!(
            precheck(&packet(&[53, 1, 1])).unwrap_err(),
            DropReason::OptionPastEnd { code: 255 }
        );
        assert_eq!(
            precheck(&packet(&[53, 1, 1, 94, 2, 1, 2, 255])).unwrap_err(),
            DropReason::BadOption { code: 94 }
        );
        assert_eq!(
            precheck(&packet(&[53, 1, 1, 93, 3, 0, 7, 0, 255])).unwrap_err(),
            DropReason::BadOption { code: 93 }
        );
        let mut bad_magic = packet(&[255]);
        bad_magic[HEADER] = 0;
        assert_eq!(precheck(&bad_magic).unwrap_err(), DropReason::BadMagic);
    }
}
