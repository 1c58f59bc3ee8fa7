//! What a node boots into.

use std::fmt;
use std::str::FromStr;

use crate::PxeError;

/// A node's boot environment, as in Crowbar's `node.bootenv`.
///
/// `sledgehammer` and `discovery` both mean the discovery image; `<os>-install` installs that
/// OS; `local` boots from disk and gets no boot options from DHCP.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Bootenv {
    /// The discovery image (Sledgehammer); also what unknown machines get.
    Sledgehammer,
    /// Install an operating system, e.g. `ubuntu-12.04-install` → `Install { os: "ubuntu-12.04" }`.
    Install {
        /// The OS name without the `-install` suffix.
        os: String,
    },
    /// Boot from the local disk: no PXE options at all.
    Local,
}

impl fmt::Display for Bootenv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bootenv::Sledgehammer => f.write_str("sledgehammer"),
            Bootenv::Install { os } => write!(f, "{os}-install"),
            Bootenv::Local => f.write_str("local"),
        }
    }
}

impl FromStr for Bootenv {
    type Err = PxeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sledgehammer" | "discovery" => Ok(Bootenv::Sledgehammer),
            "local" => Ok(Bootenv::Local),
            _ => match s.strip_suffix("-install") {
                Some(os)
                    if !os.is_empty()
                        && os
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) =>
                {
                    Ok(Bootenv::Install { os: os.to_owned() })
                }
                _ => Err(PxeError::InvalidBootenv { text: s.to_owned() }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        for text in [
            "sledgehammer",
            "local",
            "ubuntu-12.04-install",
            "centos-6.5-install",
        ] {
            let env: Bootenv = text.parse().unwrap();
            assert_eq!(env.to_string(), text);
        }
        assert_eq!(
            "discovery".parse::<Bootenv>().unwrap(),
            Bootenv::Sledgehammer
        );
    }

    #[test]
    fn rejects_unknown_names() {
        for bad in ["", "-install", "windows", "a/b-install", "ubuntu install"] {
            assert!(
                matches!(bad.parse::<Bootenv>(), Err(PxeError::InvalidBootenv { .. })),
                "{bad}"
            );
        }
    }
}
