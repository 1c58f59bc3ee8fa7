//! TFTP packets (RFC 1350, options of RFC 2347): a parser for what clients send and encoders
//! for what the server sends. Pure: no sockets.

/// Opcodes (RFC 1350 §5, RFC 2347).
const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

/// The transfer mode of a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// Bytes as they are.
    Octet,
    /// Text, lines ending in CR LF, a lone CR sent as CR NUL.
    Netascii,
}

/// A read or write request that parsed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Request {
    /// A write request (refused: the server is read-only).
    pub(crate) write: bool,
    /// The file name as sent.
    pub(crate) filename: String,
    /// The mode.
    pub(crate) mode: Mode,
    /// Options in the client's order, names lower-cased (RFC 2347 says case does not matter).
    pub(crate) options: Vec<(String, String)>,
}

/// Why a packet sent to the server port is not a request it can serve.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum MalformedRequest {
    /// Shorter than an opcode.
    TooShort,
    /// An opcode other than RRQ or WRQ (DATA, ACK, OACK or unknown) at the server port.
    NotARequest,
    /// The file name or the last field is not terminated by a NUL.
    NoNul,
    /// No mode after the file name.
    MissingMode,
    /// A mode other than `octet` or `netascii` (`mail` included: RFC 1350 deprecates it).
    UnknownMode,
    /// An option name without its value.
    OptionWithoutValue,
    /// The file name is not UTF-8 (RFC 1350 names are netascii).
    NotUtf8,
}

impl MalformedRequest {
    /// The TFTP error code to answer with (RFC 1350 §5): 4, illegal TFTP operation, for a
    /// packet that breaks the protocol; 0, not defined (see the message), for a name the
    /// server cannot take.
    pub fn error_code(self) -> u16 {
        match self {
            MalformedRequest::NotUtf8 => 0,
            _ => 4,
        }
    }

    /// The message of the ERROR packet (also the log's reason).
    pub fn message(self) -> &'static str {
        match self {
            MalformedRequest::TooShort => "packet too short",
            MalformedRequest::NotARequest => "not a read or write request",
            MalformedRequest::NoNul => "field not terminated by NUL",
            MalformedRequest::MissingMode => "missing transfer mode",
            MalformedRequest::UnknownMode => "unknown transfer mode (octet or netascii)",
            MalformedRequest::OptionWithoutValue => "option without a value",
            MalformedRequest::NotUtf8 => "file name is not UTF-8",
        }
    }
}

impl std::fmt::Display for MalformedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Whether `buf` is an ERROR packet (never answered: two peers must not trade errors).
pub(crate) fn is_error(buf: &[u8]) -> bool {
    opcode(buf) == Some(ERROR)
}

fn opcode(buf: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.first()?, *buf.get(1)?]))
}

/// Parses a packet received on the server port.
pub(crate) fn parse_request(buf: &[u8]) -> Result<Request, MalformedRequest> {
    let write = match opcode(buf) {
        None => return Err(MalformedRequest::TooShort),
        Some(RRQ) => false,
        Some(WRQ) => true,
        Some(_) => return Err(MalformedRequest::NotARequest),
    };
    let body = &buf[2..];
    if !body.ends_with(&[0]) {
        return Err(MalformedRequest::NoNul);
    }
    let mut fields: Vec<&[u8]> = body[..body.len() - 1].split(|b| *b == 0).collect();
    if fields.len() < 2 {
        return Err(MalformedRequest::MissingMode);
    }
    // Some PXE ROMs pad their request with NULs: empty fields at the end are not options.
    while fields.len() > 2 && fields.last().is_some_and(|f| f.is_empty()) {
        fields.pop();
    }
    let filename = std::str::from_utf8(fields[0])
        .map_err(|_| MalformedRequest::NotUtf8)?
        .to_owned();
    let mode = match fields[1].to_ascii_lowercase().as_slice() {
        b"octet" => Mode::Octet,
        b"netascii" => Mode::Netascii,
        b"" => return Err(MalformedRequest::MissingMode),
        _ => return Err(MalformedRequest::UnknownMode),
    };
    let rest = &fields[2..];
    if !rest.len().is_multiple_of(2) {
        return Err(MalformedRequest::OptionWithoutValue);
    }
    let options = rest
        .chunks(2)
        .map(|kv| {
            (
                String::from_utf8_lossy(kv[0]).to_ascii_lowercase(),
                String::from_utf8_lossy(kv[1]).into_owned(),
            )
        })
        .collect();
    Ok(Request {
        write,
        filename,
        mode,
        options,
    })
}

/// What a client sends on a transfer's port.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum ClientPacket {
    /// Acknowledges a block (0: the OACK).
    Ack(u16),
    /// Ends the transfer.
    Error {
        /// The code.
        code: u16,
        /// The message, lossily decoded.
        message: String,
    },
    /// Anything else.
    Other,
}

/// Parses a packet received on a transfer's port.
pub(crate) fn parse_client(buf: &[u8]) -> ClientPacket {
    match opcode(buf) {
        Some(ACK) if buf.len() >= 4 => ClientPacket::Ack(u16::from_be_bytes([buf[2], buf[3]])),
        Some(ERROR) if buf.len() >= 4 => {
            let text = &buf[4..];
            let end = text.iter().position(|b| *b == 0).unwrap_or(text.len());
            ClientPacket::Error {
                code: u16::from_be_bytes([buf[2], buf[3]]),
                message: String::from_utf8_lossy(&text[..end]).into_owned(),
            }
        }
        _ => ClientPacket::Other,
    }
}

/// Writes a DATA packet for `block` into `out`.
pub(crate) fn data(out: &mut Vec<u8>, block: u16, payload: &[u8]) {
    out.clear();
    out.extend_from_slice(&DATA.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An ERROR packet.
pub(crate) fn error(code: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.extend_from_slice(&ERROR.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out.push(0);
    out
}

/// An OACK packet acknowledging `options`.
pub(crate) fn oack(options: &[(String, String)]) -> Vec<u8> {
    let mut out = OACK.to_be_bytes().to_vec();
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

/// TFTP error codes (RFC 1350 §5, RFC 2347).
pub(crate) mod code {
    /// Not defined, see the message.
    pub(crate) const UNDEFINED: u16 = 0;
    /// File not found.
    pub(crate) const NOT_FOUND: u16 = 1;
    /// Access violation.
    pub(crate) const ACCESS: u16 = 2;
    /// Unknown transfer ID.
    pub(crate) const UNKNOWN_TID: u16 = 5;
    /// Option negotiation refused (RFC 2347).
    pub(crate) const OPTIONS_REFUSED: u16 = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(fields: &[&[u8]]) -> Vec<u8> {
        let mut out = RRQ.to_be_bytes().to_vec();
        for f in fields {
            out.extend_from_slice(f);
            out.push(0);
        }
        out
    }

    #[test]
    fn requests_parse_with_options_in_any_case() {
        let r = parse_request(&rrq(&[
            b"pxelinux.0",
            b"OCTET",
            b"BlkSize",
            b"1468",
            b"tsize",
            b"0",
        ]))
        .unwrap();
        assert_eq!(
            r,
            Request {
                write: false,
                filename: "pxelinux.0".into(),
                mode: Mode::Octet,
                options: vec![
                    ("blksize".into(), "1468".into()),
                    ("tsize".into(), "0".into())
                ],
            }
        );
        // NUL padding after the mode is not an option.
        let mut padded = rrq(&[b"a", b"netascii"]);
        padded.extend_from_slice(&[0, 0, 0]);
        assert_eq!(parse_request(&padded).unwrap().mode, Mode::Netascii);
        assert!(
            parse_request(&rrq(&[b"a", b"octet"]))
                .unwrap()
                .options
                .is_empty()
        );
    }

    #[test]
    fn issue_24_malformed_requests_have_a_reason_and_an_error_code() {
        let mut no_nul = RRQ.to_be_bytes().to_vec();
        no_nul.extend_from_slice(b"file");
        let mut unterminated_mode = rrq(&[b"file"]);
        unterminated_mode.extend_from_slice(b"octet");
        let cases: Vec<(Vec<u8>, MalformedRequest, u16)> = vec![
            (vec![0], MalformedRequest::TooShort, 4),
            (no_nul, MalformedRequest::NoNul, 4),
            (unterminated_mode, MalformedRequest::NoNul, 4),
            (rrq(&[b"file"]), MalformedRequest::MissingMode, 4),
            (rrq(&[b"file", b""]), MalformedRequest::MissingMode, 4),
            (rrq(&[b"file", b"mail"]), MalformedRequest::UnknownMode, 4),
            (rrq(&[b"file", b"binary"]), MalformedRequest::UnknownMode, 4),
            (
                rrq(&[b"file", b"octet", b"blksize"]),
                MalformedRequest::OptionWithoutValue,
                4,
            ),
            (rrq(&[b"f\xffile", b"octet"]), MalformedRequest::NotUtf8, 0),
            (vec![0, 4, 0, 1], MalformedRequest::NotARequest, 4),
        ];
        for (packet, why, code) in cases {
            assert_eq!(parse_request(&packet), Err(why), "{packet:?}");
            assert_eq!(why.error_code(), code, "{why:?}");
        }
        assert!(is_error(&error(0, "x")));
    }

    #[test]
    fn server_packets_encode_as_the_rfcs_say() {
        let mut out = Vec::new();
        data(&mut out, 258, b"hi");
        assert_eq!(out, [0, 3, 1, 2, b'h', b'i']);
        assert_eq!(error(5, "Unknown transfer ID")[..4], [0, 5, 0, 5]);
        assert_eq!(
            oack(&[("blksize".into(), "1468".into())]),
            b"\x00\x06blksize\x001468\x00"
        );
        assert_eq!(parse_client(&[0, 4, 1, 0]), ClientPacket::Ack(256));
        assert_eq!(
            parse_client(b"\x00\x05\x00\x08no\x00"),
            ClientPacket::Error {
                code: 8,
                message: "no".into()
            }
        );
        assert_eq!(parse_client(&[0, 3, 0, 1]), ClientPacket::Other);
    }
}
