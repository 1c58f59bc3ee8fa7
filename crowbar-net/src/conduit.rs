//! Conduits: the abstract interfaces (`1g0`, `+10g1`, ...) a network runs over.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::NetError;

/// How a conduit member may fall back to another link speed when resolved on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpeedFlag {
    /// No flag: this speed only.
    Exact,
    /// `+`: this speed, then faster ones.
    Faster,
    /// `-`: this speed, then slower ones.
    Slower,
    /// `?`: this speed, then faster, then slower.
    Any,
}

impl SpeedFlag {
    fn as_str(self) -> &'static str {
        match self {
            SpeedFlag::Exact => "",
            SpeedFlag::Faster => "+",
            SpeedFlag::Slower => "-",
            SpeedFlag::Any => "?",
        }
    }
}

/// One member of a conduit, `[-+?]<speed><index>`, e.g. `1g0` or `+10g1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConduitMember {
    flag: SpeedFlag,
    speed: String,
    index: u32,
}

impl ConduitMember {
    /// The fallback flag.
    pub fn flag(&self) -> SpeedFlag {
        self.flag
    }

    /// The wanted speed as written: one to three digits then `m` or `g` (`10m`, `1g`, `10g`).
    pub fn speed(&self) -> &str {
        &self.speed
    }

    /// Which NIC of that speed, in the node's sorted interface order.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Parses one member; `None` when it does not match `^([-+?]?)(\d{1,3}[mg])(\d+)$`.
    fn parse(text: &str) -> Option<Self> {
        let (flag, rest) = match text.as_bytes().first()? {
            b'+' => (SpeedFlag::Faster, &text[1..]),
            b'-' => (SpeedFlag::Slower, &text[1..]),
            b'?' => (SpeedFlag::Any, &text[1..]),
            _ => (SpeedFlag::Exact, text),
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=3).contains(&digits) {
            return None;
        }
        let unit = *rest.as_bytes().get(digits)?;
        if unit != b'm' && unit != b'g' {
            return None;
        }
        let index_text = &rest[digits + 1..];
        if index_text.is_empty() || !index_text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(ConduitMember {
            flag,
            speed: rest[..=digits].to_owned(),
            index: index_text.parse().ok()?,
        })
    }
}

impl fmt::Display for ConduitMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.flag.as_str(), self.speed, self.index)
    }
}

/// The conduit of a network: one or more members sharing one flag and one speed, written
/// comma-separated (`1g0` or `+1g0,+1g1`).
///
/// ```
/// use crowbar_net::Conduit;
///
/// let conduit: Conduit = "+1g0,+1g1".parse().unwrap();
/// assert_eq!(conduit.len(), 2);
/// assert_eq!(conduit.to_string(), "+1g0,+1g1");
/// assert!("1g0,10g1".parse::<Conduit>().is_err()); // two speeds
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Conduit {
    members: Vec<ConduitMember>,
}

impl Conduit {
    /// Parses and checks a conduit, naming `network` in the error.
    pub(crate) fn parse_for(network: &str, text: &str) -> Result<Self, NetError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(NetError::EmptyConduit {
                network: network.to_owned(),
            });
        }
        let mut members = Vec::new();
        let mut seen = BTreeSet::new();
        for part in text.split(',') {
            let part = part.trim();
            let member =
                ConduitMember::parse(part).ok_or_else(|| NetError::InvalidConduitMember {
                    network: network.to_owned(),
                    member: part.to_owned(),
                })?;
            if !seen.insert(member.clone()) {
                return Err(NetError::DuplicateConduitMember {
                    network: network.to_owned(),
                    member: member.to_string(),
                });
            }
            members.push(member);
        }
        let first = &members[0];
        if members
            .iter()
            .any(|m| m.flag != first.flag || m.speed != first.speed)
        {
            return Err(NetError::MixedConduit {
                network: network.to_owned(),
                conduit: text.to_owned(),
            });
        }
        Ok(Conduit { members })
    }

    /// The members, in the order written.
    pub fn members(&self) -> &[ConduitMember] {
        &self.members
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a conduit has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether the two conduits have the same members, in any order.
    pub fn same_set(&self, other: &Conduit) -> bool {
        self.member_set() == other.member_set()
    }

    /// Whether the two conduits share at least one member.
    pub fn intersects(&self, other: &Conduit) -> bool {
        let mine = self.member_set();
        other.members.iter().any(|m| mine.contains(m))
    }

    fn member_set(&self) -> BTreeSet<&ConduitMember> {
        self.members.iter().collect()
    }
}

impl FromStr for Conduit {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Conduit::parse_for("", s)
    }
}

impl TryFrom<String> for Conduit {
    type Error = NetError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Conduit> for String {
    fn from(value: Conduit) -> Self {
        value.to_string()
    }
}

impl fmt::Display for Conduit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Conduit, NetError> {
        Conduit::parse_for("n", text)
    }

    #[test]
    fn accepts_the_reference_pattern() {
        for ok in [
            "1g0",
            "+1g0",
            "-10g12",
            "?100m3",
            "10m0,10m1",
            " 1g0 , 1g1 ",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        let c = parse("?100m3").unwrap();
        assert_eq!(c.members()[0].flag(), SpeedFlag::Any);
        assert_eq!(c.members()[0].speed(), "100m");
        assert_eq!(c.members()[0].index(), 3);
    }

    #[test]
    fn rejects_bad_members_by_name() {
        for bad in ["eth0", "1000g0", "1x0", "1g", "g0", "*1g0", "1g0x", "bmc"] {
            assert_eq!(
                parse(bad),
                Err(NetError::InvalidConduitMember {
                    network: "n".into(),
                    member: bad.into()
                }),
                "{bad}"
            );
        }
        assert_eq!(
            parse(""),
            Err(NetError::EmptyConduit {
                network: "n".into()
            })
        );
        assert_eq!(
            parse("1g0,"),
            Err(NetError::InvalidConduitMember {
                network: "n".into(),
                member: String::new()
            })
        );
    }

    #[test]
    fn members_share_flag_and_speed() {
        assert_eq!(
            parse("1g0,+1g1"),
            Err(NetError::MixedConduit {
                network: "n".into(),
                conduit: "1g0,+1g1".into()
            })
        );
        assert!(matches!(
            parse("1g0,10g1"),
            Err(NetError::MixedConduit { .. })
        ));
        assert_eq!(
            parse("1g0,1g0"),
            Err(NetError::DuplicateConduitMember {
                network: "n".into(),
                member: "1g0".into()
            })
        );
    }

    #[test]
    fn set_relations() {
        let a = parse("1g0,1g1").unwrap();
        let b = parse("1g1,1g0").unwrap();
        let c = parse("1g1,1g2").unwrap();
        let d = parse("1g2").unwrap();
        assert!(a.same_set(&b) && a.intersects(&b));
        assert!(!a.same_set(&c) && a.intersects(&c));
        assert!(!a.intersects(&d));
    }

    #[test]
    fn serde_round_trip_as_string() {
        let c = parse("+1g0,+1g1").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"+1g0,+1g1\"");
        assert_eq!(serde_json::from_str::<Conduit>(&json).unwrap(), c);
        assert!(serde_json::from_str::<Conduit>("\"eth0\"").is_err());
    }
}
