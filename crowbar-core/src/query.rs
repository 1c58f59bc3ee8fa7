//! Read-only queries over the model that the layers above need (the annealer's `explain`, for
//! one).

use crate::{Cluster, DeploymentId, NodeRoleId};

impl Cluster {
    /// The noderoles of a deployment, by id. O(roles + its noderoles): one index look-up per
    /// role, never a scan of other deployments.
    pub fn noderoles_in(&self, deployment: DeploymentId) -> Vec<NodeRoleId> {
        let mut out: Vec<NodeRoleId> = self
            .roles()
            .flat_map(|r| self.noderoles_of(deployment, r.id).iter().copied())
            .collect();
        out.sort_unstable();
        out
    }
}
