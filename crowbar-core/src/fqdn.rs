//! Node names: fully qualified domain names, validated and lower-cased as Crowbar did.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A validated, lower-cased fully qualified domain name.
///
/// The rule is Crowbar's (Anvil): two or more labels of `[A-Za-z0-9_-]{1,63}`, each followed by a
/// dot, then an alphabetic top-level label of at least two letters; at most 253 characters. A
/// single trailing dot is accepted and dropped.
///
/// ```
/// use crowbar_core::Fqdn;
/// let name: Fqdn = "Node1.Rack2.Example.COM".parse().unwrap();
/// assert_eq!(name.as_str(), "node1.rack2.example.com");
/// assert_eq!(name.first_label(), "node1");
/// assert!("example.com".parse::<Fqdn>().is_err()); // needs three labels
/// ```
///
/// The name is shared: cloning an `Fqdn` (as every run's view of its node does) counts a
/// reference instead of copying the string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Fqdn(Arc<str>);

impl Fqdn {
    /// Validates `name` and lower-cases it.
    pub fn new(name: &str) -> Result<Fqdn, CoreError> {
        let bad = |reason: &'static str| CoreError::InvalidFqdn {
            name: name.to_owned(),
            reason,
        };
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        if trimmed.is_empty() {
            return Err(bad("empty name"));
        }
        if trimmed.len() > 253 {
            return Err(bad("longer than 253 characters"));
        }
        let labels: Vec<&str> = trimmed.split('.').collect();
        if labels.len() < 3 {
            return Err(bad("needs at least three labels (host.domain.tld)"));
        }
        let (tld, rest) = labels.split_last().expect("at least three labels");
        for label in rest {
            if label.is_empty() {
                return Err(bad("empty label"));
            }
            if label.len() > 63 {
                return Err(bad("label longer than 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad(
                    "label has a character other than letters, digits, '-' or '_'",
                ));
            }
        }
        if tld.len() < 2 || tld.len() > 63 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad("top-level label must be two or more letters"));
        }
        Ok(Fqdn(Arc::from(trimmed.to_ascii_lowercase())))
    }

    /// The name as a string, lower-cased, without a trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label (the default alias).
    pub fn first_label(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }

    /// Everything after the first label: the DNS domain.
    pub fn domain(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, d)| d)
    }
}

impl std::str::FromStr for Fqdn {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fqdn::new(s)
    }
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Fqdn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Fqdn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Fqdn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Fqdn::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Checks a node alias: letters, digits and hyphens, ending with a letter or digit, at most 100
/// characters.
pub(crate) fn check_alias(alias: &str) -> Result<(), CoreError> {
    let ok = !alias.is_empty()
        && alias.len() <= 100
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && alias
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidAlias {
            alias: alias.to_owned(),
        })
    }
}

/// Checks a role name: a letter, then letters, digits, `-` and `_`.
pub(crate) fn check_role_name(name: &str) -> Result<(), CoreError> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && name.len() <= 255;
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidName {
            what: "role",
            name: name.to_owned(),
        })
    }
}

/// Checks a deployment name: same rule as roles.
pub(crate) fn check_deployment_name(name: &str) -> Result<(), CoreError> {
    check_role_name(name).map_err(|_| CoreError::InvalidName {
        what: "deployment",
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_lowercases() {
        let f = Fqdn::new("D52-54-00-12-34-56.Cr0wbar.COM.").unwrap();
        assert_eq!(f.as_str(), "d52-54-00-12-34-56.cr0wbar.com");
        assert_eq!(f.domain(), "cr0wbar.com");
    }

    #[test]
    fn rejects_with_reason() {
        for (name, reason) in [
            ("foo.com", "needs at least three labels (host.domain.tld)"),
            ("a.b.c1", "top-level label must be two or more letters"),
            ("a..b.com", "empty label"),
            (
                "a b.c.com",
                "label has a character other than letters, digits, '-' or '_'",
            ),
            ("", "empty name"),
        ] {
            match Fqdn::new(name) {
                Err(CoreError::InvalidFqdn { name: n, reason: r }) => {
                    assert_eq!((n.as_str(), r), (name, reason));
                }
                other => panic!("{name}: expected InvalidFqdn, got {other:?}"),
            }
        }
        let long = format!("{}.b.com", "a".repeat(64));
        assert!(matches!(
            Fqdn::new(&long),
            Err(CoreError::InvalidFqdn {
                reason: "label longer than 63 characters",
                ..
            })
        ));
    }

    #[test]
    fn aliases_and_role_names() {
        assert!(check_alias("node-1").is_ok());
        assert!(check_alias("node-").is_err());
        assert!(check_alias("no_de").is_err());
        assert!(check_role_name("network-admin").is_ok());
        assert!(check_role_name("1role").is_err());
    }
}
