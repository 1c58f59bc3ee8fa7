//! Typed identifiers for every entity of the model.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw number, as stored.
            pub const fn get(self) -> u64 {
                self.0
            }

            pub(crate) fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "#{}"), self.0)
            }
        }
    };
}

id_type!(
    /// Identifies a [`Node`](crate::Node).
    NodeId,
    "node"
);
id_type!(
    /// Identifies a [`Role`](crate::Role).
    RoleId,
    "role"
);
id_type!(
    /// Identifies a [`Deployment`](crate::Deployment).
    DeploymentId,
    "deployment"
);
id_type!(
    /// Identifies a [`NodeRole`](crate::NodeRole).
    NodeRoleId,
    "noderole"
);

/// The system deployment, created with every cluster; the root of the deployment tree.
pub const SYSTEM_DEPLOYMENT: DeploymentId = DeploymentId(1);
