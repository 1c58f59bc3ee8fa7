//! Validated, lower-cased domain names in wire form.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::DnsError;

/// A fully qualified domain name, stored lower-cased in DNS wire form (length-prefixed labels
/// ending with the root label).
///
/// Names compare case-insensitively because they are lower-cased on construction.
///
/// ```
/// use crowbar_dns::DnsName;
/// let n: DnsName = "Node1.Lab.TEST.".parse().unwrap();
/// assert_eq!(n.to_string(), "node1.lab.test.");
/// assert_eq!(n, "node1.lab.test".parse().unwrap());
/// assert!(n.is_subdomain_of(&"lab.test".parse().unwrap()));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(Box<[u8]>);

impl DnsName {
    /// The root name `.`.
    pub fn root() -> Self {
        DnsName(Box::new([0]))
    }

    /// Parses a presentation-form name (`a.b.c` or `a.b.c.`), lower-casing it.
    pub fn new(text: &str) -> Result<Self, DnsError> {
        let bad = |reason| DnsError::InvalidName {
            name: text.to_owned(),
            reason,
        };
        let trimmed = text.strip_suffix('.').unwrap_or(text);
        if trimmed.is_empty() {
            return if text == "." {
                Ok(Self::root())
            } else {
                Err(bad("empty name"))
            };
        }
        let mut wire = Vec::with_capacity(trimmed.len() + 2);
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(bad("empty label"));
            }
            if label.len() > 63 {
                return Err(bad("label longer than 63 bytes"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'/')
            {
                return Err(bad("only letters, digits, '-', '_' and '/' are allowed"));
            }
            wire.push(label.len() as u8);
            wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
        wire.push(0);
        if wire.len() > 255 {
            return Err(bad("name longer than 255 bytes"));
        }
        Ok(DnsName(wire.into_boxed_slice()))
    }

    /// The name in wire form, lower-cased.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// Builds a name from lower-cased wire bytes the caller has already validated.
    pub(crate) fn from_wire_unchecked(wire: &[u8]) -> Self {
        DnsName(wire.into())
    }

    /// Whether `self` equals `zone` or lies below it.
    pub fn is_subdomain_of(&self, zone: &DnsName) -> bool {
        let (me, z) = (self.wire(), zone.wire());
        if z.len() > me.len() || !me.ends_with(z) {
            return false;
        }
        let cut = me.len() - z.len();
        label_starts(me).any(|i| i == cut)
    }

    /// The number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        label_starts(self.wire()).count() - 1
    }

    /// The name one label up, or `None` for the root.
    pub fn parent(&self) -> Option<DnsName> {
        let w = self.wire();
        if w == [0] {
            None
        } else {
            Some(DnsName(w[1 + w[0] as usize..].into()))
        }
    }

    /// The first label as text (empty for the root).
    pub fn first_label(&self) -> &str {
        let w = self.wire();
        std::str::from_utf8(&w[1..1 + w[0] as usize]).unwrap_or("")
    }

    /// Prepends labels (given in presentation form, e.g. `"4.3"`) to this name.
    pub fn prepend(&self, labels: &str) -> Result<DnsName, DnsError> {
        let me = self.to_string();
        DnsName::new(&format!("{labels}.{me}"))
    }

    /// The `in-addr.arpa.` name of an IPv4 address.
    pub fn reverse_v4(addr: Ipv4Addr) -> DnsName {
        let [a, b, c, d] = addr.octets();
        DnsName::new(&format!("{d}.{c}.{b}.{a}.in-addr.arpa")).expect("valid reverse name")
    }

    /// The `ip6.arpa.` nibble name of an IPv6 address.
    pub fn reverse_v6(addr: Ipv6Addr) -> DnsName {
        DnsName::new(&nibbles(&addr.octets(), 32)).expect("valid reverse name")
    }
}

/// The reversed nibble labels of the first `count` nibbles of `octets`, under `ip6.arpa`.
pub(crate) fn nibbles(octets: &[u8; 16], count: usize) -> String {
    let mut s = String::with_capacity(count * 2 + 9);
    for i in (0..count).rev() {
        let byte = octets[i / 2];
        let nib = if i % 2 == 0 { byte >> 4 } else { byte & 0xf };
        s.push(char::from_digit(u32::from(nib), 16).unwrap_or('0'));
        s.push('.');
    }
    s.push_str("ip6.arpa");
    s
}

/// Offsets of the label-length bytes of a wire name, root label included.
pub(crate) fn label_starts(wire: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = Some(0usize);
    std::iter::from_fn(move || {
        let p = pos?;
        let len = *wire.get(p)? as usize;
        pos = if len == 0 { None } else { Some(p + 1 + len) };
        Some(p)
    })
}

impl FromStr for DnsName {
    type Err = DnsError;
    fn from_str(s: &str) -> Result<Self, DnsError> {
        DnsName::new(s)
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.wire();
        if w == [0] {
            return f.write_str(".");
        }
        let mut p = 0;
        while w[p] != 0 {
            let len = w[p] as usize;
            for &b in &w[p + 1..p + 1 + len] {
                fmt::Write::write_char(f, char::from(b))?;
            }
            f.write_str(".")?;
            p += 1 + len;
        }
        Ok(())
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DnsName({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            DnsName::reverse_v4(Ipv4Addr::new(198, 18, 1, 2)).to_string(),
            "2.1.18.198.in-addr.arpa."
        );
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            DnsName::reverse_v6(v6).to_string(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "a..b", &"x".repeat(64), "a b.c"] {
            assert!(
                matches!(DnsName::new(bad), Err(DnsError::InvalidName { .. })),
                "{bad}"
            );
        }
        assert_eq!(DnsName::new(".").unwrap(), DnsName::root());
    }

    #[test]
    fn subdomain_respects_label_boundaries() {
        let zone: DnsName = "lab.test".parse().unwrap();
        assert!(
            "a.lab.test"
                .parse::<DnsName>()
                .unwrap()
                .is_subdomain_of(&zone)
        );
        assert!(
            !"alab.test"
                .parse::<DnsName>()
                .unwrap()
                .is_subdomain_of(&zone)
        );
        assert_eq!(
            "a.lab.test".parse::<DnsName>().unwrap().parent(),
            Some(zone)
        );
    }
}
