//! One read transfer: option negotiation (RFC 2347/2348/2349/7440), then DATA blocks in
//! windows, each retransmitted on timeout a bounded number of times.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::packet::{self, ClientPacket, Mode, code};
use super::{Counters, Limits};

/// Where a transfer's bytes come from.
pub(crate) enum Source {
    /// A file under the root.
    File(tokio::fs::File),
    /// A generated file.
    Memory(std::io::Cursor<Vec<u8>>),
}

impl Source {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::File(f) => f.read(buf).await,
            Source::Memory(c) => std::io::Read::read(c, buf),
        }
    }
}

/// Reads blocks from a [`Source`], converting to netascii on the way when asked.
pub(crate) struct Reader {
    source: Source,
    mode: Mode,
    /// Converted bytes not yet handed out (netascii).
    pending: VecDeque<u8>,
    raw: Vec<u8>,
    eof: bool,
}

impl Reader {
    pub(crate) fn new(source: Source, mode: Mode) -> Self {
        Reader {
            source,
            mode,
            pending: VecDeque::new(),
            raw: vec![0; 8192],
            eof: false,
        }
    }

    /// The next block: `size` bytes, fewer only at the end.
    async fn block(&mut self, size: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            if let Mode::Netascii = self.mode {
                while out.len() < size {
                    match self.pending.pop_front() {
                        Some(b) => out.push(b),
                        None => break,
                    }
                }
                if out.len() == size || self.eof {
                    break;
                }
                let n = self.source.read(&mut self.raw).await?;
                if n == 0 {
                    self.eof = true;
                }
                for &b in &self.raw[..n] {
                    match b {
                        b'\n' => self.pending.extend([b'\r', b'\n']),
                        b'\r' => self.pending.extend([b'\r', 0]),
                        _ => self.pending.push_back(b),
                    }
                }
            } else {
                let start = out.len();
                out.resize(size, 0);
                let n = self.source.read(&mut out[start..]).await?;
                out.truncate(start + n);
                if n == 0 {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// What was agreed with the client.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Negotiated {
    /// Bytes per DATA block.
    pub(crate) block_size: u16,
    /// Blocks sent before waiting for an ACK.
    pub(crate) window_size: u16,
    /// Retransmission timeout.
    pub(crate) timeout: Duration,
    /// The options to acknowledge (empty: no OACK, DATA 1 at once).
    pub(crate) oack: Vec<(String, String)>,
}

/// Largest block size of RFC 2348.
pub(crate) const MAX_BLOCK_SIZE: u16 = 65464;

/// Agrees on the options the client asked for: unknown options and values out of range are
/// left out of the OACK (RFC 2347 lets a server ignore them); sizes are capped by `limits`.
pub(crate) fn negotiate(
    options: &[(String, String)],
    size: Option<u64>,
    limits: &Limits,
) -> Negotiated {
    let mut n = Negotiated {
        block_size: 512,
        window_size: 1,
        timeout: limits.timeout,
        oack: Vec::new(),
    };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in options {
        if seen.contains(&name.as_str()) {
            continue;
        }
        seen.push(name);
        let number = value.trim().parse::<u64>().ok();
        let granted = match (name.as_str(), number) {
            ("blksize", Some(v @ 8..=65464)) => {
                let b = (v as u16).min(limits.block_size);
                n.block_size = b;
                Some(b.to_string())
            }
            ("windowsize", Some(v @ 1..=65535)) => {
                let w = (v as u16).min(limits.window_size);
                n.window_size = w;
                Some(w.to_string())
            }
            ("timeout", Some(v @ 1..=255)) => {
                n.timeout = Duration::from_secs(v);
                Some(v.to_string())
            }
            ("tsize", Some(_)) => size.map(|s| s.to_string()),
            _ => None,
        };
        if let Some(v) = granted {
            n.oack.push((name.clone(), v));
        }
    }
    n
}

/// How a transfer ended.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum Ending {
    /// The last block was acknowledged.
    Complete {
        /// Bytes sent.
        bytes: u64,
    },
    /// The client sent an ERROR.
    ClientError {
        /// Its code.
        code: u16,
        /// Its message.
        message: String,
    },
    /// No acknowledgement after every retry, or nothing acknowledged for the idle limit.
    TimedOut,
    /// Reading the file or using the socket failed.
    Failed(String),
}

/// Sends `reader`'s bytes to `client` from `sock` (the transfer's own port, its TID).
///
/// Only packets from `client` feed the transfer; anything else gets ERROR 5 and is dropped.
/// Each window is retransmitted on timeout, at most `limits.retries` times, and the whole
/// transfer gives up when nothing was acknowledged for `limits.idle`; it then tells the
/// client with an ERROR.
pub(crate) async fn run(
    sock: UdpSocket,
    client: SocketAddr,
    mut reader: Reader,
    agreed: Negotiated,
    limits: Limits,
    counters: &Counters,
) -> Ending {
    let block_size = usize::from(agreed.block_size);
    let window_size = usize::from(agreed.window_size);
    // Blocks sent and not yet acknowledged; the first is block `acked + 1`.
    let mut window: VecDeque<Vec<u8>> = VecDeque::new();
    let mut acked: u64 = 0;
    let mut last_read_short = false;
    let mut awaiting_oack_ack = !agreed.oack.is_empty();
    let oack = packet::oack(&agreed.oack);
    let mut out = Vec::with_capacity(block_size + 4);
    let mut buf = vec![0u8; 2048];
    let mut retries = 0u32;
    let mut last_progress = Instant::now();
    let mut bytes: u64 = 0;

    'send: loop {
        if !awaiting_oack_ack {
            // Top the window up, then (re)send all of it.
            while window.len() < window_size && !last_read_short {
                let block = match reader.block(block_size).await {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = sock
                            .send_to(&packet::error(code::UNDEFINED, "read error"), client)
                            .await;
                        return Ending::Failed(format!("reading: {e}"));
                    }
                };
                last_read_short = block.len() < block_size;
                window.push_back(block);
            }
            if window.is_empty() {
                return Ending::Complete { bytes };
            }
        }
        let sent = if awaiting_oack_ack {
            sock.send_to(&oack, client).await.map(|_| ())
        } else {
            let mut r = Ok(());
            for (i, block) in window.iter().enumerate() {
                packet::data(&mut out, (acked + 1 + i as u64) as u16, block);
                if let Err(e) = sock.send_to(&out, client).await {
                    r = Err(e);
                    break;
                }
            }
            r
        };
        if let Err(e) = sent {
            return Ending::Failed(format!("sending: {e}"));
        }
        let deadline = Instant::now() + agreed.timeout;
        loop {
            let received = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await;
            let (n, from) = match received {
                Err(_) => {
                    retries += 1;
                    if retries > limits.retries || last_progress.elapsed() >= limits.idle {
                        let _ = sock
                            .send_to(
                                &packet::error(code::UNDEFINED, "timed out waiting for an ACK"),
                                client,
                            )
                            .await;
                        return Ending::TimedOut;
                    }
                    continue 'send;
                }
                Ok(Err(e)) => return Ending::Failed(format!("receiving: {e}")),
                Ok(Ok(r)) => r,
            };
            if from != client {
                counters.bump(&counters.unknown_tid);
                tracing::debug!(%from, %client, "TFTP packet from an unknown transfer ID");
                let _ = sock
                    .send_to(
                        &packet::error(code::UNKNOWN_TID, "Unknown transfer ID"),
                        from,
                    )
                    .await;
                continue;
            }
            match packet::parse_client(&buf[..n]) {
                ClientPacket::Error { code, message } => {
                    return Ending::ClientError { code, message };
                }
                ClientPacket::Ack(0) if awaiting_oack_ack => {
                    awaiting_oack_ack = false;
                    retries = 0;
                    last_progress = Instant::now();
                    continue 'send;
                }
                ClientPacket::Ack(number) if !awaiting_oack_ack => {
                    // Which block of the window it names, if any (block numbers wrap).
                    let Some(k) = (1..=window.len() as u64).find(|k| (acked + k) as u16 == number)
                    else {
                        // A duplicate of an older ACK: never answered (Sorcerer's Apprentice).
                        continue;
                    };
                    for _ in 0..k {
                        if let Some(b) = window.pop_front() {
                            bytes += b.len() as u64;
                        }
                    }
                    acked += k;
                    retries = 0;
                    last_progress = Instant::now();
                    // A partial window ACK (RFC 7440): resend from the block after it.
                    continue 'send;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            block_size: 1468,
            window_size: 16,
            timeout: Duration::from_secs(3),
            retries: 5,
            idle: Duration::from_secs(30),
        }
    }

    fn opts(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn issue_24_options_are_capped_and_bad_values_left_out() {
        let n = negotiate(
            &opts(&[
                ("blksize", "65464"),
                ("windowsize", "1000"),
                ("tsize", "0"),
                ("timeout", "2"),
                ("blksize", "512"),
                ("utimeout", "1000"),
            ]),
            Some(4096),
            &limits(),
        );
        assert_eq!(
            n,
            Negotiated {
                block_size: 1468,
                window_size: 16,
                timeout: Duration::from_secs(2),
                oack: opts(&[
                    ("blksize", "1468"),
                    ("windowsize", "16"),
                    ("tsize", "4096"),
                    ("timeout", "2")
                ]),
            }
        );
        let n = negotiate(
            &opts(&[
                ("blksize", "7"),
                ("timeout", "0"),
                ("windowsize", "x"),
                ("tsize", "0"),
            ]),
            None,
            &limits(),
        );
        assert_eq!((n.block_size, n.window_size), (512, 1));
        assert!(n.oack.is_empty(), "{n:?}");
    }

    #[tokio::test]
    async fn netascii_turns_lf_into_cr_lf_and_cr_into_cr_nul() {
        let source = Source::Memory(std::io::Cursor::new(b"a\nb\rc".to_vec()));
        let mut r = Reader::new(source, Mode::Netascii);
        assert_eq!(r.block(4).await.unwrap(), b"a\r\nb");
        assert_eq!(r.block(4).await.unwrap(), b"\r\0c");
        assert_eq!(r.block(4).await.unwrap(), b"");
    }
}
