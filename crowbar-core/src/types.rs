//! Closed enums and small value types shared by the model: states, flags, boot environments,
//! causes and timestamps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::NodeRoleId;

/// The state of a noderole. The numeric codes are Crowbar's and are what the stores persist.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeRoleState {
    /// The last jig run failed.
    Error,
    /// The last run succeeded; the desired state is achieved.
    Active,
    /// Committed and every direct parent is ACTIVE: ready to run.
    Todo,
    /// A jig run is in progress.
    Transition,
    /// Committed but waiting on a parent that is not ACTIVE (or on an errored ancestor).
    Blocked,
    /// Newly bound or being edited; the annealer ignores it.
    Proposed,
}

impl NodeRoleState {
    /// Every state, in code order (-1 to 4).
    pub const ALL: [NodeRoleState; 6] = [
        NodeRoleState::Error,
        NodeRoleState::Active,
        NodeRoleState::Todo,
        NodeRoleState::Transition,
        NodeRoleState::Blocked,
        NodeRoleState::Proposed,
    ];

    /// Crowbar's numeric code: ERROR=-1, ACTIVE=0, TODO=1, TRANSITION=2, BLOCKED=3, PROPOSED=4.
    pub const fn code(self) -> i8 {
        match self {
            NodeRoleState::Error => -1,
            NodeRoleState::Active => 0,
            NodeRoleState::Todo => 1,
            NodeRoleState::Transition => 2,
            NodeRoleState::Blocked => 3,
            NodeRoleState::Proposed => 4,
        }
    }

    /// The state for a numeric code, if it is one.
    pub const fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            -1 => NodeRoleState::Error,
            0 => NodeRoleState::Active,
            1 => NodeRoleState::Todo,
            2 => NodeRoleState::Transition,
            3 => NodeRoleState::Blocked,
            4 => NodeRoleState::Proposed,
            _ => return None,
        })
    }

    pub(crate) const fn slot(self) -> usize {
        (self.code() + 1) as usize
    }

    /// The upper-case name Crowbar used.
    pub const fn name(self) -> &'static str {
        match self {
            NodeRoleState::Error => "ERROR",
            NodeRoleState::Active => "ACTIVE",
            NodeRoleState::Todo => "TODO",
            NodeRoleState::Transition => "TRANSITION",
            NodeRoleState::Blocked => "BLOCKED",
            NodeRoleState::Proposed => "PROPOSED",
        }
    }
}

impl fmt::Display for NodeRoleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The derived state of a deployment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentState {
    /// Some noderole of a committed deployment is in ERROR.
    Error,
    /// The deployment is being edited; its noderoles do not run.
    Proposed,
    /// Committed, not every noderole ACTIVE yet, none in ERROR.
    Committed,
    /// Committed and every noderole is ACTIVE (also when it has none).
    Active,
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeploymentState::Error => "ERROR",
            DeploymentState::Proposed => "PROPOSED",
            DeploymentState::Committed => "COMMITTED",
            DeploymentState::Active => "ACTIVE",
        })
    }
}

/// What a node PXE/UEFI-boots into.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub enum Bootenv {
    /// The discovery image (Crowbar's `sledgehammer`).
    #[default]
    Discovery,
    /// An operating-system installer, e.g. `ubuntu-22.04-install` holds `ubuntu-22.04`.
    Install(String),
    /// Boot from the local disk: no PXE options at all.
    Local,
}

impl fmt::Display for Bootenv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bootenv::Discovery => f.write_str("sledgehammer"),
            Bootenv::Install(os) => write!(f, "{os}-install"),
            Bootenv::Local => f.write_str("local"),
        }
    }
}

impl FromStr for Bootenv {
    type Err = crate::CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sledgehammer" | "discovery" => Ok(Bootenv::Discovery),
            "local" => Ok(Bootenv::Local),
            _ => match s.strip_suffix("-install") {
                Some(os)
                    if !os.is_empty()
                        && os
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
                {
                    Ok(Bootenv::Install(os.to_owned()))
                }
                _ => Err(crate::CoreError::InvalidBootenv {
                    value: s.to_owned(),
                }),
            },
        }
    }
}

impl Serialize for Bootenv {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bootenv {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One flag a role can carry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleFlag {
    /// A parent with this flag is always satisfied on the same node as the child.
    Implicit,
    /// A child binds to every noderole of this role in the deployment.
    Cluster,
    /// The jig runs only once (while `run_count` is 0).
    Destructive,
    /// Cannot be bound; exists to be provided by other roles.
    Abstract,
    /// Bound to admin nodes.
    Bootstrap,
    /// Bound to discovered (non-admin) nodes.
    Discovery,
    /// A checkpoint role, for display.
    Milestone,
}

impl RoleFlag {
    const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// Every flag.
    pub const ALL: [RoleFlag; 7] = [
        RoleFlag::Implicit,
        RoleFlag::Cluster,
        RoleFlag::Destructive,
        RoleFlag::Abstract,
        RoleFlag::Bootstrap,
        RoleFlag::Discovery,
        RoleFlag::Milestone,
    ];
}

impl FromStr for RoleFlag {
    type Err = crate::CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "implicit" => RoleFlag::Implicit,
            "cluster" => RoleFlag::Cluster,
            "destructive" => RoleFlag::Destructive,
            "abstract" => RoleFlag::Abstract,
            "bootstrap" => RoleFlag::Bootstrap,
            "discovery" => RoleFlag::Discovery,
            "milestone" => RoleFlag::Milestone,
            _ => {
                return Err(crate::CoreError::UnknownRoleFlag { flag: s.to_owned() });
            }
        })
    }
}

/// A set of [`RoleFlag`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct RoleFlags(u16);

impl RoleFlags {
    /// No flags.
    pub const NONE: RoleFlags = RoleFlags(0);

    /// Whether `flag` is set.
    pub const fn contains(self, flag: RoleFlag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// This set with `flag` added.
    #[must_use]
    pub const fn with(self, flag: RoleFlag) -> RoleFlags {
        RoleFlags(self.0 | flag.bit())
    }

    /// The flags in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = RoleFlag> {
        RoleFlag::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<RoleFlag> for RoleFlags {
    fn from_iter<I: IntoIterator<Item = RoleFlag>>(iter: I) -> Self {
        iter.into_iter().fold(RoleFlags::NONE, RoleFlags::with)
    }
}

impl Serialize for RoleFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for RoleFlags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<RoleFlag>::deserialize(d)?.into_iter().collect())
    }
}

/// Milliseconds since the Unix epoch, as the [`Clock`](crate::Clock) reports them.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

/// Why a noderole changed state: recorded with every entry of the history.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// The role was bound to the node.
    Bind,
    /// The noderole, its node or its deployment was committed.
    Commit,
    /// The noderole was proposed again for editing.
    Propose,
    /// The annealer started its jig.
    JigStarted,
    /// Its jig reported success.
    JigSucceeded,
    /// Its jig reported failure.
    JigFailed {
        /// The failure message.
        message: String,
    },
    /// A parent became ACTIVE and this one was unblocked.
    ParentActive {
        /// The parent whose activation unblocked it.
        parent: NodeRoleId,
    },
    /// An ancestor failed or was blocked, and blocked this one.
    Ripple {
        /// The noderole whose change rippled here.
        origin: NodeRoleId,
    },
    /// Its node stopped being alive.
    NodeDied,
    /// A retry: by an operator, or by the annealer's retry policy.
    Retry,
    /// A run exceeded its role's timeout.
    Timeout,
    /// Found in TRANSITION after a restart.
    Recovery,
    /// Another cluster member joined, so this noderole waits for it.
    ClusterPeer {
        /// The new peer.
        peer: NodeRoleId,
    },
    /// An operator's direct request.
    Operator,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Bind => f.write_str("bind"),
            Cause::Commit => f.write_str("commit"),
            Cause::Propose => f.write_str("propose"),
            Cause::JigStarted => f.write_str("jig started"),
            Cause::JigSucceeded => f.write_str("jig succeeded"),
            Cause::JigFailed { message } => write!(f, "jig failed: {message}"),
            Cause::ParentActive { parent } => write!(f, "parent {parent} active"),
            Cause::Ripple { origin } => write!(f, "ripple from {origin}"),
            Cause::NodeDied => f.write_str("node died"),
            Cause::Retry => f.write_str("retry"),
            Cause::Timeout => f.write_str("timeout"),
            Cause::Recovery => f.write_str("recovery"),
            Cause::ClusterPeer { peer } => write!(f, "cluster peer {peer} joined"),
            Cause::Operator => f.write_str("operator"),
        }
    }
}
