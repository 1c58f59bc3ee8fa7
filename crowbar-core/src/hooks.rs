//! Hooks that roles register to react to the model: allocate an address when a network role is
//! proposed, rebuild the DHCP database when a node changes, switch a bootenv before an OS
//! install.

use crate::{Cluster, DeploymentId, NodeId, NodeRoleId, RoleId};

/// A hook's refusal. It aborts the operation that fired the hook, which is rolled back whole.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

impl HookError {
    /// A refusal with `message`.
    pub fn new(message: impl Into<String>) -> HookError {
        HookError(message.into())
    }
}

/// Callbacks a role registers with [`Cluster::register_hooks`]. Every method has a default that
/// does nothing, so an implementation overrides only what it needs.
///
/// Hooks run synchronously, after the operation that fired them and before that operation
/// returns, with the cluster passed in: what they change lands in the same batch. A hook that
/// returns an error rolls the whole operation back, and the operation returns
/// [`CoreError::Hook`](crate::CoreError::Hook).
///
/// State hooks (`on_todo`...) fire when a noderole of the role changes state in a committed
/// deployment, except for descendants that an ERROR blocked in bulk. Node hooks fan out to every
/// role with hooks, in ascending cohort then name order (`on_node_delete` descending).
/// `on_node_change` fires only while the node is available, as in Crowbar.
#[allow(unused_variables)]
pub trait RoleHooks: Send + Sync {
    /// A noderole of the role was created (bound) or proposed again.
    fn on_proposed(&self, cluster: &mut Cluster, noderole: NodeRoleId) -> Result<(), HookError> {
        Ok(())
    }

    /// A noderole of the role became TODO.
    fn on_todo(&self, cluster: &mut Cluster, noderole: NodeRoleId) -> Result<(), HookError> {
        Ok(())
    }

    /// A noderole of the role started its run.
    fn on_transition(&self, cluster: &mut Cluster, noderole: NodeRoleId) -> Result<(), HookError> {
        Ok(())
    }

    /// A noderole of the role became ACTIVE.
    fn on_active(&self, cluster: &mut Cluster, noderole: NodeRoleId) -> Result<(), HookError> {
        Ok(())
    }

    /// A noderole of the role failed.
    fn on_error(&self, cluster: &mut Cluster, noderole: NodeRoleId) -> Result<(), HookError> {
        Ok(())
    }

    /// A noderole of the role was blocked.
    fn on_blocked(&self, cluster: &mut Cluster, noderole: NodeRoleId) -> Result<(), HookError> {
        Ok(())
    }

    /// A node was created.
    fn on_node_create(&self, cluster: &mut Cluster, node: NodeId) -> Result<(), HookError> {
        Ok(())
    }

    /// An available node changed.
    fn on_node_change(&self, cluster: &mut Cluster, node: NodeId) -> Result<(), HookError> {
        Ok(())
    }

    /// A node is about to be deleted; it still exists while this runs. An error keeps it.
    fn on_node_delete(&self, cluster: &mut Cluster, node: NodeId) -> Result<(), HookError> {
        Ok(())
    }

    /// The role was added to a deployment (its first noderole there).
    fn on_deployment_create(
        &self,
        cluster: &mut Cluster,
        deployment: DeploymentId,
        role: RoleId,
    ) -> Result<(), HookError> {
        Ok(())
    }
}
