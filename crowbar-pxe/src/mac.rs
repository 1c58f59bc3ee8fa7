//! Ethernet hardware addresses.

use std::fmt;
use std::str::FromStr;

use crate::PxeError;

/// A 48-bit Ethernet MAC address, the key of every reservation and lease.
///
/// Parses `52:54:00:aa:bb:01` and `52-54-00-AA-BB-01`; displays lower-case with colons.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The address with dashes, as used in file names (`52-54-00-aa-bb-01`).
    pub fn dashed(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = PxeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PxeError::InvalidMac { text: s.to_owned() };
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_separators_and_prints_lower_case() {
        let a: MacAddr = "52:54:00:AA:bb:01".parse().unwrap();
        let b: MacAddr = "52-54-00-aa-BB-01".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "52:54:00:aa:bb:01");
        assert_eq!(a.dashed(), "52-54-00-aa-bb-01");
    }

    #[test]
    fn rejects_short_long_and_non_hex() {
        for bad in [
            "52:54:00:aa:bb",
            "52:54:00:aa:bb:01:02",
            "zz:54:00:aa:bb:01",
            "5:54:00:aa:bb:01",
        ] {
            assert!(
                matches!(bad.parse::<MacAddr>(), Err(PxeError::InvalidMac { .. })),
                "{bad}"
            );
        }
    }
}
