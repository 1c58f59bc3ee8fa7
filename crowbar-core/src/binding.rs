//! Role binding: creating a noderole and every missing parent, Crowbar's algorithm with the
//! cluster-role fix.

use crate::cluster::HookEvent;
use crate::{Cause, Cluster, CoreError, DeploymentId, NodeId, NodeRoleId, RoleFlag, RoleId};

impl Cluster {
    /// Binds `role` to `node` in `deployment` (the node's deployment when `None`), creating every
    /// missing parent, and returns the noderole. If the role is already bound to the node, in any
    /// deployment, that noderole is returned.
    ///
    /// Parents are found in this order, for each role the role requires: a noderole of it (or of
    /// a role that `provides` it) on the same node; for an `implicit` parent, a new one on the
    /// same node; else a noderole of it (or a provider) in the deployment, then in each parent
    /// deployment up to the system deployment; else a new one on the same node. A `cluster`
    /// parent links every noderole of that role in the deployment where it was found, and a new
    /// noderole of a `cluster` role also becomes a parent of its peers' children.
    ///
    /// Refused (with nothing changed): an abstract role, a role with requirements that do not
    /// exist (recursively), a role that conflicts with one on the node.
    pub fn bind(
        &mut self,
        role: RoleId,
        node: NodeId,
        deployment: Option<DeploymentId>,
    ) -> Result<NodeRoleId, CoreError> {
        self.txn(|c| {
            let deployment = match deployment {
                Some(d) => d,
                None => c.get_node(node)?.deployment,
            };
            c.bind_inner(role, node, deployment)
        })
    }

    /// Binds by names: a convenience for tools and tests.
    pub fn bind_by_name(
        &mut self,
        role: &str,
        node: &str,
        deployment: Option<&str>,
    ) -> Result<NodeRoleId, CoreError> {
        let unknown = |what, name: &str| CoreError::Unknown {
            what,
            name: name.to_owned(),
        };
        let r = self.find_role(role).ok_or_else(|| unknown("role", role))?;
        let n = self.find_node(node).ok_or_else(|| unknown("node", node))?;
        let d = match deployment {
            Some(d) => Some(
                self.find_deployment(d)
                    .ok_or_else(|| unknown("deployment", d))?,
            ),
            None => None,
        };
        self.bind(r, n, d)
    }

    fn bind_inner(
        &mut self,
        role: RoleId,
        node: NodeId,
        deployment: DeploymentId,
    ) -> Result<NodeRoleId, CoreError> {
        if let Some(existing) = self.noderole_for(role, node) {
            return Ok(existing);
        }
        self.check_bindable(role, node, deployment)?;
        let mut parents: Vec<NodeRoleId> = Vec::new();
        let parent_roles = self.parent_roles(role).to_vec();
        for parent_role in parent_roles {
            let found = match self.on_node(parent_role, node) {
                Some(nr) => nr,
                None if self.role_has(parent_role, RoleFlag::Implicit) => {
                    self.bind_inner(parent_role, node, deployment)?
                }
                None => match self.in_deployment_chain(parent_role, deployment) {
                    Some(nr) => nr,
                    None => self.bind_inner(parent_role, node, deployment)?,
                },
            };
            parents.push(found);
            let found_role = self.nr(found).role;
            if self.role_has(found_role, RoleFlag::Cluster) {
                let dep = self.nr(found).deployment;
                parents.extend_from_slice(self.noderoles_of(dep, found_role));
            }
        }
        let id = self.new_noderole(role, node, deployment);
        self.ensure_deployment_role(deployment, role);
        for p in parents {
            self.link(p, id);
        }
        if self.role_has(role, RoleFlag::Cluster) {
            let peers: Vec<NodeRoleId> = self
                .noderoles_of(deployment, role)
                .iter()
                .copied()
                .filter(|p| *p != id)
                .collect();
            for peer in peers {
                for child in self.children(peer).to_vec() {
                    self.link(id, child);
                    self.deactivate_inner(child, Cause::ClusterPeer { peer: id });
                }
            }
        }
        self.queue(HookEvent::Proposed(id));
        Ok(id)
    }

    fn check_bindable(
        &self,
        role: RoleId,
        node: NodeId,
        deployment: DeploymentId,
    ) -> Result<(), CoreError> {
        let r = self.get_role(role)?;
        let n = self.get_node(node)?;
        self.get_deployment(deployment)?;
        if r.has(RoleFlag::Abstract) {
            return Err(CoreError::AbstractRole {
                role: r.name.clone(),
            });
        }
        let missing = self.missing_requirements(role);
        if !missing.is_empty() {
            return Err(CoreError::UnresolvedRequirements {
                role: r.name.clone(),
                missing: missing.to_vec(),
            });
        }
        let clashes = &self.role_index.clashes[role.index()];
        if !clashes.is_empty() {
            for existing in self.noderoles_on(node) {
                let e = self.nr(*existing).role;
                if clashes.contains(&e) {
                    let existing = self.get_role(e)?;
                    return Err(clash_error(r, existing, n.name.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Required role names that do not exist, following requirements transitively, sorted.
    pub fn missing_requirements(&self, role: RoleId) -> &[String] {
        self.role_index
            .missing
            .get(role.index())
            .map_or(&[], Vec::as_slice)
    }

    pub(crate) fn compute_missing(&self, role: RoleId) -> Vec<String> {
        let mut missing = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![role];
        while let Some(r) = stack.pop() {
            if !seen.insert(r) {
                continue;
            }
            let Some(role) = self.role(r) else { continue };
            for name in &role.requires {
                match self.find_role(name) {
                    Some(p) => stack.push(p),
                    None if !missing.contains(name) => missing.push(name.clone()),
                    None => {}
                }
            }
        }
        missing.sort();
        missing
    }

    /// The roles that provide `role`'s name.
    fn providers(&self, role: RoleId) -> &[RoleId] {
        self.role(role)
            .and_then(|r| self.role_index.providers.get(&r.name))
            .map_or(&[], Vec::as_slice)
    }

    /// A noderole on `node` of `role`, or of a role that provides it.
    fn on_node(&self, role: RoleId, node: NodeId) -> Option<NodeRoleId> {
        self.noderole_for(role, node).or_else(|| {
            self.providers(role)
                .iter()
                .find_map(|p| self.noderole_for(*p, node))
        })
    }

    /// The first noderole of `role` (or of a provider of `name`) found walking up the deployment
    /// tree from `deployment`.
    fn in_deployment_chain(&self, role: RoleId, deployment: DeploymentId) -> Option<NodeRoleId> {
        let providers = self.providers(role);
        let mut dep = Some(deployment);
        while let Some(d) = dep {
            if let Some(nr) = self.noderoles_of(d, role).first() {
                return Some(*nr);
            }
            for p in providers {
                if let Some(nr) = self.noderoles_of(d, *p).first() {
                    return Some(*nr);
                }
            }
            dep = self.deployment(d).and_then(|x| x.parent);
        }
        None
    }
}

/// Why `new` cannot join `existing` on a node (the two clash, see `refresh_role_index`):
/// a declared conflict wins over a shared `provides`.
fn clash_error(new: &crate::Role, existing: &crate::Role, node: String) -> CoreError {
    if new.conflicts.contains(&existing.name) || existing.conflicts.contains(&new.name) {
        return CoreError::Conflict {
            role: new.name.clone(),
            node,
            existing: existing.name.clone(),
        };
    }
    let provided = if existing.provides.contains(&new.name) {
        new.name.clone()
    } else if new.provides.contains(&existing.name) {
        existing.name.clone()
    } else {
        new.provides
            .iter()
            .find(|p| existing.provides.contains(p))
            .cloned()
            .unwrap_or_default()
    };
    CoreError::AlreadyProvided {
        role: new.name.clone(),
        node,
        existing: existing.name.clone(),
        provided,
    }
}
