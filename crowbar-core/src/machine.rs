//! The operations on the model: creating nodes, roles and deployments, committing, and the
//! noderole state machine with its ripple rules (Crowbar Anvil, with the narrower OCB15 ripple
//! for `retry` and `block`).

use serde_json::Value;

use crate::cluster::{HookEvent, Slot};
use crate::fqdn::{check_alias, check_deployment_name, check_role_name};
use crate::{
    Bootenv, Cause, Cluster, CoreError, Deployment, DeploymentId, DeploymentPhase, Fqdn, Node,
    NodeHints, NodeId, NodeRole, NodeRoleId, NodeRoleState, NodeSpec, Role, RoleFlag, RoleId,
    RoleSpec, SYSTEM_DEPLOYMENT,
};

fn object(value: Option<Value>, what: &'static str) -> Result<Value, CoreError> {
    match value {
        None => Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(CoreError::NotAnObject { what }),
    }
}

/// How a run ended, as the annealer reports it to [`Cluster::finish_run`].
#[derive(Clone, PartialEq, Debug)]
pub enum RunResult {
    /// The jig succeeded; `wall` replaces the noderole's wall data when given.
    Succeeded {
        /// What the jig reported back.
        wall: Option<Value>,
        /// The run's log.
        runlog: String,
    },
    /// The jig failed.
    Failed {
        /// Why.
        message: String,
        /// The run's log.
        runlog: String,
    },
}

// Nodes.
impl Cluster {
    /// Creates a node. Its FQDN is validated and lower-cased; the alias defaults to the first
    /// label. Fires `on_node_create`.
    pub fn create_node(&mut self, spec: NodeSpec) -> Result<NodeId, CoreError> {
        self.txn(|c| {
            let name = Fqdn::new(&spec.name)?;
            let alias = spec
                .alias
                .unwrap_or_else(|| name.first_label().to_owned())
                .to_ascii_lowercase();
            check_alias(&alias)?;
            if c.find_node(name.as_str()).is_some() {
                return Err(CoreError::Duplicate {
                    what: "node",
                    name: name.to_string(),
                });
            }
            if c.find_node(&alias).is_some() {
                return Err(CoreError::Duplicate {
                    what: "alias",
                    name: alias,
                });
            }
            let deployment = spec.deployment.unwrap_or(SYSTEM_DEPLOYMENT);
            c.get_deployment(deployment)?;
            let node = Node {
                id: c.next_node_id(),
                name,
                alias,
                description: spec.description,
                deployment,
                admin: spec.admin,
                alive: spec.alive,
                available: spec.available,
                bootenv: spec.bootenv,
                hint: object(spec.hint, "node hint")?,
                discovery: object(spec.discovery, "node discovery data")?,
            };
            let id = node.id;
            c.insert_node(node);
            c.queue(HookEvent::NodeCreate(id));
            Ok(id)
        })
    }

    /// Applies `change` to a copy of the node, then the consequences: when `alive` goes from
    /// true to false every noderole on the node is deactivated (ascending cohort); while the node
    /// is available `on_node_change` fires.
    fn change_node(&mut self, id: NodeId, change: impl FnOnce(&mut Node)) -> Result<(), CoreError> {
        self.txn(|c| {
            let old = c.get_node(id)?.clone();
            let mut node = old.clone();
            change(&mut node);
            if node == old {
                return Ok(());
            }
            let died = old.alive && !node.alive;
            let available = node.available;
            c.replace_node(node);
            if died {
                let mut list: Vec<NodeRoleId> = c.noderoles_on(id).to_vec();
                list.sort_by_key(|nr| (c.nr(*nr).cohort, *nr));
                for nr in list {
                    c.deactivate_inner(nr, Cause::NodeDied);
                }
            }
            if available {
                c.queue(HookEvent::NodeChange(id));
            }
            Ok(())
        })
    }

    /// Sets the framework's `alive` flag. A node that dies has all its noderoles deactivated:
    /// they re-run when it comes back.
    pub fn set_node_alive(&mut self, id: NodeId, alive: bool) -> Result<(), CoreError> {
        self.change_node(id, |n| n.alive = alive)
    }

    /// Sets the operator's `available` flag. Nothing runs on an unavailable node; its noderole
    /// states are left alone.
    pub fn set_node_available(&mut self, id: NodeId, available: bool) -> Result<(), CoreError> {
        self.change_node(id, |n| n.available = available)
    }

    /// Sets what the node boots into.
    pub fn set_node_bootenv(&mut self, id: NodeId, bootenv: Bootenv) -> Result<(), CoreError> {
        self.change_node(id, |n| n.bootenv = bootenv)
    }

    /// Replaces the node's hints (a JSON object).
    pub fn set_node_hint(&mut self, id: NodeId, hint: Value) -> Result<(), CoreError> {
        let hint = object(Some(hint), "node hint")?;
        self.change_node(id, |n| n.hint = hint)
    }

    /// Replaces the node's hints with typed ones.
    pub fn set_node_hints(&mut self, id: NodeId, hints: NodeHints) -> Result<(), CoreError> {
        self.set_node_hint(id, hints.into_value())
    }

    /// Changes the node's hints in place (the other keys kept).
    ///
    /// ```
    /// use crowbar_core::{Cluster, NodeSpec};
    /// let mut c = Cluster::new();
    /// let n = c.create_node(NodeSpec::new("d1.cr0wbar.com"))?;
    /// c.update_node_hints(n, |h| h.add_admin_mac("52:54:00:12:34:56"))?;
    /// c.update_node_hints(n, |h| h.set_v4addr("admin", "10.0.0.9".parse().unwrap()))?;
    /// let hints = c.node(n).unwrap().hints();
    /// assert_eq!(hints.admin_macs().count(), 1);
    /// assert_eq!(hints.management_address(), Some("10.0.0.9".parse().unwrap()));
    /// # Ok::<(), crowbar_core::CoreError>(())
    /// ```
    pub fn update_node_hints(
        &mut self,
        id: NodeId,
        change: impl FnOnce(&mut NodeHints),
    ) -> Result<(), CoreError> {
        let mut hints = NodeHints::from_value(self.get_node(id)?.hint.clone())?;
        change(&mut hints);
        self.set_node_hints(id, hints)
    }

    /// Replaces the node's discovery data (a JSON object).
    pub fn set_node_discovery(&mut self, id: NodeId, discovery: Value) -> Result<(), CoreError> {
        let discovery = object(Some(discovery), "node discovery data")?;
        self.change_node(id, |n| n.discovery = discovery)
    }

    /// Crowbar's node commit: marks the node available, then commits every PROPOSED noderole on
    /// it in ascending cohort.
    pub fn commit_node(&mut self, id: NodeId) -> Result<(), CoreError> {
        self.txn(|c| {
            c.change_node(id, |n| n.available = true)?;
            let mut list: Vec<NodeRoleId> = c
                .noderoles_on(id)
                .iter()
                .copied()
                .filter(|nr| c.nr(*nr).state == NodeRoleState::Proposed)
                .collect();
            list.sort_by_key(|nr| (c.nr(*nr).cohort, *nr));
            for nr in list {
                c.commit_inner(nr)?;
            }
            Ok(())
        })
    }

    /// Deletes a node and its noderoles. Refused while noderoles on other nodes depend on one of
    /// its noderoles. `on_node_delete` fires first (cohort descending) and can refuse.
    pub fn delete_node(&mut self, id: NodeId) -> Result<(), CoreError> {
        self.txn(|c| {
            let node = c.get_node(id)?.name.to_string();
            let mine = c.noderoles_on(id).to_vec();
            let mut dependents: Vec<NodeRoleId> = mine
                .iter()
                .flat_map(|nr| c.children(*nr).iter().copied())
                .filter(|child| c.nr(*child).node != id)
                .collect();
            dependents.sort();
            dependents.dedup();
            if !dependents.is_empty() {
                return Err(CoreError::NodeInUse { node, dependents });
            }
            for (role, hooks) in c.fan_out(true) {
                hooks.on_node_delete(c, id).map_err(|e| CoreError::Hook {
                    role: c.role(role).map_or_else(String::new, |r| r.name.clone()),
                    hook: "on_node_delete",
                    message: e.0,
                })?;
            }
            let mut mine = c.noderoles_on(id).to_vec();
            mine.sort_by_key(|nr| std::cmp::Reverse((c.nr(*nr).cohort, *nr)));
            for nr in mine {
                c.delete_noderole_final(nr);
            }
            c.remove_node_final(id);
            Ok(())
        })
    }
}

// Roles and deployments.
impl Cluster {
    /// Creates a role. Refused when the name is taken or malformed, or when its requirements
    /// would close a cycle in the role graph (the error lists the cycle). Requirements naming
    /// roles that do not exist yet are allowed: they resolve when those roles are created.
    pub fn create_role(&mut self, spec: RoleSpec) -> Result<RoleId, CoreError> {
        self.txn(|c| {
            check_role_name(&spec.name)?;
            for name in spec
                .requires
                .iter()
                .chain(&spec.provides)
                .chain(&spec.conflicts)
            {
                check_role_name(name)?;
            }
            if c.find_role(&spec.name).is_some() {
                return Err(CoreError::Duplicate {
                    what: "role",
                    name: spec.name,
                });
            }
            let template = object(Some(spec.template), "role template")?;
            let mut requires = spec.requires;
            requires.dedup();
            let role = Role {
                id: c.next_role_id(),
                name: spec.name,
                description: spec.description,
                jig: spec.jig,
                requires,
                flags: spec.flags,
                provides: spec.provides,
                conflicts: spec.conflicts,
                template,
                cohort: 0,
                retry: spec.retry,
                timeout_ms: spec.timeout_ms,
            };
            let id = role.id;
            c.insert_role(role);
            c.check_role_cycles(id)?;
            c.refresh_role_index();
            c.update_role_cohorts();
            Ok(id)
        })
    }

    /// Adds a requirement to a role. Refused, with the cycle listed, when it would make the role
    /// graph cyclic.
    pub fn add_requirement(&mut self, role: RoleId, requires: &str) -> Result<(), CoreError> {
        self.txn(|c| {
            check_role_name(requires)?;
            let mut r = c.get_role(role)?.clone();
            if r.requires.iter().any(|x| x == requires) {
                return Ok(());
            }
            r.requires.push(requires.to_owned());
            c.replace_role(r);
            c.check_role_cycles(role)?;
            c.refresh_role_index();
            c.update_role_cohorts();
            Ok(())
        })
    }

    /// The resolved parent roles of a role (requirements that exist).
    pub fn parent_roles(&self, role: RoleId) -> &[RoleId] {
        self.role_index
            .parents
            .get(role.index())
            .map_or(&[], Vec::as_slice)
    }

    fn resolve_parents(&self, role: RoleId) -> Vec<RoleId> {
        self.role(role).map_or_else(Vec::new, |r| {
            r.requires
                .iter()
                .filter_map(|n| self.find_role(n))
                .collect()
        })
    }

    /// Rebuilds the derived role facts (parents, missing requirements, clashes, providers).
    pub(crate) fn refresh_role_index(&mut self) {
        let bound = self.roles.len();
        let mut index = crate::cluster::RoleIndex {
            parents: (0..bound)
                .map(|i| self.resolve_parents(RoleId(i as u64)))
                .collect(),
            ..Default::default()
        };
        for r in self.roles() {
            for p in &r.provides {
                index.providers.entry(p.clone()).or_default().push(r.id);
            }
        }
        let roles: Vec<&Role> = self.roles().collect();
        index.clashes = vec![Vec::new(); bound];
        for a in &roles {
            for b in &roles {
                let clash = a.conflicts.contains(&b.name)
                    || b.conflicts.contains(&a.name)
                    || b.provides.contains(&a.name)
                    || a.provides.contains(&b.name)
                    || a.provides.iter().any(|p| b.provides.contains(p));
                if clash && a.id != b.id {
                    index.clashes[a.id.index()].push(b.id);
                }
            }
        }
        self.role_index = index;
        let missing = (0..bound)
            .map(|i| self.compute_missing(RoleId(i as u64)))
            .collect();
        self.role_index.missing = missing;
    }

    fn check_role_cycles(&self, start: RoleId) -> Result<(), CoreError> {
        // Depth-first search from `start` along resolved requirements; reaching `start` again
        // closes a cycle, reported as the path of names.
        let mut path = vec![start];
        let mut iters = vec![self.resolve_parents(start).into_iter()];
        let mut seen = std::collections::HashSet::new();
        while let Some(it) = iters.last_mut() {
            match it.next() {
                Some(next) if next == start => {
                    let mut cycle: Vec<String> = path
                        .iter()
                        .map(|r| self.role(*r).map_or_else(String::new, |r| r.name.clone()))
                        .collect();
                    cycle.push(cycle[0].clone());
                    return Err(CoreError::RoleCycle { cycle });
                }
                Some(next) => {
                    if seen.insert(next) {
                        path.push(next);
                        iters.push(self.resolve_parents(next).into_iter());
                    }
                }
                None => {
                    iters.pop();
                    path.pop();
                }
            }
        }
        Ok(())
    }

    fn update_role_cohorts(&mut self) {
        // Roles are few; recompute every cohort from scratch in dependency order.
        let ids: Vec<RoleId> = self.roles().map(|r| r.id).collect();
        let mut memo: std::collections::HashMap<RoleId, u32> = Default::default();
        fn cohort(
            c: &Cluster,
            id: RoleId,
            memo: &mut std::collections::HashMap<RoleId, u32>,
        ) -> u32 {
            if let Some(v) = memo.get(&id) {
                return *v;
            }
            let v = c
                .parent_roles(id)
                .iter()
                .map(|p| cohort(c, *p, memo) + 1)
                .max()
                .unwrap_or(0);
            memo.insert(id, v);
            v
        }
        for id in ids {
            let v = cohort(self, id, &mut memo);
            if self.role(id).is_some_and(|r| r.cohort != v) {
                let mut r = self.role(id).expect("exists").clone();
                r.cohort = v;
                self.replace_role(r);
            }
        }
    }

    /// Creates a proposed deployment under `parent` (the system deployment when `None`).
    pub fn create_deployment(
        &mut self,
        name: &str,
        parent: Option<DeploymentId>,
    ) -> Result<DeploymentId, CoreError> {
        self.txn(|c| {
            check_deployment_name(name)?;
            if c.find_deployment(name).is_some() {
                return Err(CoreError::Duplicate {
                    what: "deployment",
                    name: name.to_owned(),
                });
            }
            let parent = parent.unwrap_or(SYSTEM_DEPLOYMENT);
            c.get_deployment(parent)?;
            let d = Deployment {
                id: c.next_deployment_id(),
                name: name.to_owned(),
                description: String::new(),
                parent: Some(parent),
                system: false,
                phase: DeploymentPhase::Proposed,
            };
            let id = d.id;
            c.insert_deployment(d);
            Ok(id)
        })
    }

    /// Commits a deployment: commits every PROPOSED noderole in it (by id) and marks it
    /// committed, so its noderoles may run.
    pub fn commit_deployment(&mut self, id: DeploymentId) -> Result<(), CoreError> {
        self.txn(|c| {
            let mut d = c.get_deployment(id)?.clone();
            let mut list = c.noderoles_in(id);
            list.retain(|nr| c.nr(*nr).state == NodeRoleState::Proposed);
            if d.phase != DeploymentPhase::Committed {
                d.phase = DeploymentPhase::Committed;
                c.replace_deployment(d);
            }
            for nr in list {
                c.commit_inner(nr)?;
            }
            Ok(())
        })
    }

    /// Proposes a deployment again: its noderoles keep their states but stop being runnable.
    /// The system deployment cannot be proposed.
    pub fn propose_deployment(&mut self, id: DeploymentId) -> Result<(), CoreError> {
        self.txn(|c| {
            let mut d = c.get_deployment(id)?.clone();
            if d.system {
                return Err(CoreError::SystemDeployment {
                    operation: "proposed",
                });
            }
            if d.phase != DeploymentPhase::Proposed {
                d.phase = DeploymentPhase::Proposed;
                c.replace_deployment(d);
            }
            Ok(())
        })
    }

    /// Replaces a role's user data in a deployment (a JSON object), adding the role to the
    /// deployment if needed.
    pub fn set_deployment_role_data(
        &mut self,
        deployment: DeploymentId,
        role: RoleId,
        data: Value,
    ) -> Result<(), CoreError> {
        self.txn(|c| {
            c.get_deployment(deployment)?;
            c.get_role(role)?;
            let data = object(Some(data), "deployment role data")?;
            c.ensure_deployment_role(deployment, role);
            let mut dr = c.deployment_roles[&(deployment, role)].clone();
            dr.data = data;
            c.replace_deployment_role(dr);
            Ok(())
        })
    }
}

// Noderole data.
impl Cluster {
    /// Replaces a noderole's user data. Only while it is PROPOSED.
    pub fn set_noderole_data(&mut self, id: NodeRoleId, data: Value) -> Result<(), CoreError> {
        self.txn(|c| {
            let nr = c.get_noderole(id)?;
            if nr.state != NodeRoleState::Proposed {
                return Err(CoreError::NotProposed {
                    noderole: id,
                    state: nr.state,
                });
            }
            let data = object(Some(data), "noderole data")?;
            c.set_data(id, Slot::Proposed, data);
            Ok(())
        })
    }

    /// Replaces a noderole's system data (framework-written, any state).
    pub fn set_sysdata(&mut self, id: NodeRoleId, data: Value) -> Result<(), CoreError> {
        self.txn(|c| {
            c.get_noderole(id)?;
            let data = object(Some(data), "noderole sysdata")?;
            c.set_data(id, Slot::Sysdata, data);
            Ok(())
        })
    }

    /// Replaces a noderole's wall data (what its jig reported; any state).
    pub fn set_wall(&mut self, id: NodeRoleId, data: Value) -> Result<(), CoreError> {
        self.txn(|c| {
            c.get_noderole(id)?;
            let data = object(Some(data), "noderole wall")?;
            c.set_data(id, Slot::Wall, data);
            Ok(())
        })
    }
}

// The state machine.
impl Cluster {
    fn invalid(&self, id: NodeRoleId, operation: &'static str, reason: &'static str) -> CoreError {
        CoreError::InvalidTransition {
            noderole: id,
            operation,
            from: self.state_of(id),
            reason,
        }
    }

    fn todo_or_blocked(&self, id: NodeRoleId) -> NodeRoleState {
        if self.is_activatable(id) {
            NodeRoleState::Todo
        } else {
            NodeRoleState::Blocked
        }
    }

    /// Commits a PROPOSED noderole: its proposed data becomes committed, and it becomes TODO if
    /// every parent is ACTIVE, else BLOCKED. Its children are not touched.
    pub fn commit_noderole(&mut self, id: NodeRoleId) -> Result<(), CoreError> {
        self.txn(|c| {
            c.get_noderole(id)?;
            c.commit_inner(id)
        })
    }

    fn commit_inner(&mut self, id: NodeRoleId) -> Result<(), CoreError> {
        if self.nr(id).state != NodeRoleState::Proposed {
            return Err(self.invalid(id, "commit", "only a PROPOSED noderole can be committed"));
        }
        let data = self.nr(id).proposed_data.clone();
        self.set_committed(id, Some(data));
        let to = self.todo_or_blocked(id);
        self.set_state(id, to, false, Cause::Commit, true);
        Ok(())
    }

    /// Proposes a noderole again so its data can be edited; its children are untouched until it
    /// leaves PROPOSED. Fires `on_proposed`.
    pub fn propose_noderole(&mut self, id: NodeRoleId) -> Result<(), CoreError> {
        self.txn(|c| {
            let nr = c.get_noderole(id)?;
            if nr.state == NodeRoleState::Transition {
                return Err(c.invalid(id, "propose", "a run is in progress"));
            }
            c.set_state(id, NodeRoleState::Proposed, false, Cause::Propose, false);
            c.queue(HookEvent::Proposed(id));
            Ok(())
        })
    }

    /// Starts a run (Crowbar's `transition!`): from TODO, ACTIVE or TRANSITION; clears the
    /// runlog.
    pub fn start_run(&mut self, id: NodeRoleId) -> Result<(), CoreError> {
        if self.start_lean(id, false) {
            return Ok(());
        }
        self.start_run_general(id)
    }

    /// [`Cluster::start_run`] for the follower of the change journal
    /// ([`Cluster::track_changes`]) that starts the run itself and accounts for its change (the
    /// annealer): when the start takes the lean path (a TODO noderole with no runlog to clear,
    /// and no hook registered) the noderole is not journaled and `Ok(true)` is returned. Any
    /// other start goes through [`Cluster::start_run`]'s general path, journaled as usual
    /// (hooks may change more), and returns `Ok(false)`.
    ///
    /// ```
    /// use crowbar_core::{Cluster, NodeRoleState, NodeSpec, RoleSpec};
    ///
    /// let mut c = Cluster::new();
    /// let role = c.create_role(RoleSpec::new("base"))?;
    /// let node = c.create_node(NodeSpec::new("n1.example.com").alive(true))?;
    /// let nr = c.bind(role, node, None)?;
    /// c.commit_node(node)?;
    /// c.track_changes(true);
    /// assert!(c.start_run_quietly(nr)?);
    /// assert_eq!(c.noderole(nr).unwrap().state, NodeRoleState::Transition);
    /// assert!(!c.has_changes(), "the caller accounts for its own start");
    /// # Ok::<(), crowbar_core::CoreError>(())
    /// ```
    pub fn start_run_quietly(&mut self, id: NodeRoleId) -> Result<bool, CoreError> {
        if self.start_lean(id, true) {
            return Ok(true);
        }
        self.start_run_general(id).map(|()| false)
    }

    /// The annealer's case of a start (a TODO noderole with no runlog to clear, no hooks)
    /// without the general machinery, which gives the same result; false when it does not
    /// apply. Journals the noderole unless `quiet`.
    #[inline(always)]
    fn start_lean(&mut self, id: NodeRoleId, quiet: bool) -> bool {
        let lean = self
            .hot
            .get(id.index())
            .is_some_and(|h| h.present && h.state == NodeRoleState::Todo && !h.has_runlog)
            && self.begin_lean();
        if lean {
            self.step_lean(
                id,
                NodeRoleState::Todo,
                NodeRoleState::Transition,
                false,
                Cause::JigStarted,
                quiet,
            );
            self.end_lean();
        }
        lean
    }

    /// [`Cluster::start_run`] through the general machinery, out of line so that the lean
    /// path's frame stays small.
    #[inline(never)]
    fn start_run_general(&mut self, id: NodeRoleId) -> Result<(), CoreError> {
        self.txn_checked(
            |c| {
                if !matches!(
                    c.get_hot(id)?.state,
                    NodeRoleState::Todo | NodeRoleState::Active | NodeRoleState::Transition
                ) {
                    return Err(c.invalid(
                        id,
                        "start a run",
                        "only TODO, ACTIVE or TRANSITION can run",
                    ));
                }
                Ok(())
            },
            |c, ()| {
                c.set_runlog(id, String::new());
                c.set_state(
                    id,
                    NodeRoleState::Transition,
                    false,
                    Cause::JigStarted,
                    true,
                );
            },
        )
    }

    /// Applies the end of a run. Success (`active!`): the run count rises; on a node that is no
    /// longer alive the noderole goes back to TODO or BLOCKED, else it becomes ACTIVE and every
    /// BLOCKED child whose parents are now all ACTIVE becomes TODO. Failure (`error!`): ERROR,
    /// and every descendant not PROPOSED or TRANSITION becomes BLOCKED.
    pub fn finish_run(&mut self, id: NodeRoleId, result: RunResult) -> Result<(), CoreError> {
        self.finish_run_with(id, result, None).map(|_| ())
    }

    /// [`Cluster::finish_run`] for the follower of the change journal
    /// ([`Cluster::track_changes`]) that applies the result itself and accounts for its change
    /// (the annealer). When the finish takes the lean path (a success with no wall and no
    /// runlog, on an alive node, no hook registered), `Ok(true)` is returned and nothing is
    /// journaled: the noderole is ACTIVE, and the children whose parents are now all ACTIVE,
    /// which [`Cluster::finish_run`] would journal, are appended to `unblocked` instead (those
    /// that were BLOCKED are TODO). Any other finish goes through the general path, journaled
    /// as usual, and returns `Ok(false)`.
    ///
    /// ```
    /// use crowbar_core::{Cluster, NodeRoleState, NodeSpec, RoleFlag, RoleSpec, RunResult};
    ///
    /// let mut c = Cluster::new();
    /// let base = c.create_role(RoleSpec::new("base").flag(RoleFlag::Implicit))?;
    /// let top = c.create_role(RoleSpec::new("top").requires(["base"]))?;
    /// let node = c.create_node(NodeSpec::new("n1.example.com").alive(true))?;
    /// let top_nr = c.bind(top, node, None)?;
    /// let base_nr = c.noderole_for(base, node).unwrap();
    /// c.commit_node(node)?;
    /// c.track_changes(true);
    /// c.start_run_quietly(base_nr)?;
    /// let mut unblocked = Vec::new();
    /// let done = RunResult::Succeeded { wall: None, runlog: String::new() };
    /// assert!(c.finish_run_quietly(base_nr, done, &mut unblocked)?);
    /// assert_eq!(unblocked, [top_nr]);
    /// assert_eq!(c.noderole(top_nr).unwrap().state, NodeRoleState::Todo);
    /// assert!(!c.has_changes());
    /// # Ok::<(), crowbar_core::CoreError>(())
    /// ```
    pub fn finish_run_quietly(
        &mut self,
        id: NodeRoleId,
        result: RunResult,
        unblocked: &mut Vec<NodeRoleId>,
    ) -> Result<bool, CoreError> {
        self.finish_run_with(id, result, Some(unblocked))
    }

    /// [`Cluster::finish_run`], quiet when `quiet` is given; `Ok(true)` on the lean path.
    #[inline(always)]
    fn finish_run_with(
        &mut self,
        id: NodeRoleId,
        result: RunResult,
        quiet: Option<&mut Vec<NodeRoleId>>,
    ) -> Result<bool, CoreError> {
        // The annealer's case (success with no wall and no runlog, on an alive node, no
        // hooks) without the general machinery; the general path gives the same result.
        // Matched by value, so that the lean case drops its (empty) runlog in place rather than
        // calling the whole result's drop.
        match result {
            RunResult::Succeeded { wall: None, runlog }
                if runlog.is_empty()
                    && let Some(h) = self.hot.get(id.index())
                    && h.present
                    && h.state == NodeRoleState::Transition
                    && !h.has_runlog
                    && self.node_index[h.node.index()].alive
                    && self.begin_lean() =>
            {
                drop(runlog);
                let lean = quiet.is_some();
                self.activate_lean(id, quiet);
                self.end_lean();
                Ok(lean)
            }
            result => self.finish_run_general(id, result).map(|()| false),
        }
    }

    /// [`Cluster::finish_run`] through the general machinery, out of line so that the lean
    /// path's frame stays small.
    #[inline(never)]
    fn finish_run_general(&mut self, id: NodeRoleId, result: RunResult) -> Result<(), CoreError> {
        // The rule of `object`, checked here by reference (`result` moves into the apply
        // step) and kept to a flag: a `Result` carried into the check costs 2 % of an anneal.
        let wall_ok = match &result {
            RunResult::Succeeded { wall: Some(w), .. } => w.is_object(),
            _ => true,
        };
        self.txn_checked(
            |c| {
                if c.get_hot(id)?.state != NodeRoleState::Transition {
                    return Err(c.invalid(id, "finish a run", "no run is in progress"));
                }
                if !wall_ok {
                    return Err(CoreError::NotAnObject {
                        what: "jig wall data",
                    });
                }
                Ok(())
            },
            |c, ()| match result {
                RunResult::Succeeded { wall, runlog } => {
                    if let Some(wall) = wall {
                        c.set_data(id, Slot::Wall, wall);
                    }
                    c.set_runlog(id, runlog);
                    c.active_inner(id, Cause::JigSucceeded);
                }
                RunResult::Failed { message, runlog } => {
                    c.set_runlog(id, runlog);
                    c.error_inner(id, Cause::JigFailed { message });
                }
            },
        )
    }

    pub(crate) fn active_inner(&mut self, id: NodeRoleId, cause: Cause) {
        let node = self.hot[id.index()].node;
        if !self.node_index[node.index()].alive {
            let to = self.todo_or_blocked(id);
            self.set_state(id, to, true, cause, true);
            return;
        }
        self.set_state(id, NodeRoleState::Active, true, cause, true);
        self.unblock_children(id);
    }

    /// Makes TODO every BLOCKED child of `id` (just made ACTIVE) whose parents are now all
    /// ACTIVE.
    #[inline]
    fn unblock_children(&mut self, id: NodeRoleId) {
        // Unblocking a child changes only that child's subtree, never this list.
        for i in 0..self.links[id.index()].children().len() {
            let child = self.links[id.index()].child(i);
            let h = &self.hot[child.index()];
            if h.state == NodeRoleState::Blocked && h.present && h.inactive_parents == 0 {
                let cause = Cause::ParentActive { parent: id };
                if self.undo_on {
                    self.todo_inner(child, cause);
                } else {
                    self.unblock_lean(child, id, false);
                }
            }
        }
    }

    /// In a lean operation (no hooks), makes TODO the BLOCKED `child` whose last inactive
    /// parent, `parent`, just became ACTIVE: [`Cluster::todo_inner`]'s change with its checks
    /// known. `child` is journaled unless `quiet`.
    #[inline(always)]
    pub(crate) fn unblock_lean(&mut self, child: NodeRoleId, parent: NodeRoleId, quiet: bool) {
        self.step_lean(
            child,
            NodeRoleState::Blocked,
            NodeRoleState::Todo,
            false,
            Cause::ParentActive { parent },
            quiet,
        );
        self.block_children(child);
    }

    /// Fails a noderole (`error!`) for a reason other than a jig result (a timeout, a crash).
    /// Ignored when it is BLOCKED, as in Crowbar.
    pub fn fail(
        &mut self,
        id: NodeRoleId,
        cause: Cause,
        runlog: Option<String>,
    ) -> Result<(), CoreError> {
        self.txn(|c| {
            c.get_noderole(id)?;
            if let Some(runlog) = runlog {
                c.set_runlog(id, runlog);
            }
            c.error_inner(id, cause);
            Ok(())
        })
    }

    pub(crate) fn error_inner(&mut self, id: NodeRoleId, cause: Cause) {
        if self.state_of(id) == NodeRoleState::Blocked {
            return;
        }
        self.set_state(id, NodeRoleState::Error, false, cause, true);
        // Bulk-block every descendant not PROPOSED or TRANSITION, without hooks.
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<NodeRoleId> = self.children(id).to_vec();
        while let Some(d) = stack.pop() {
            if !seen.insert(d) {
                continue;
            }
            let s = self.state_of(d);
            if !matches!(
                s,
                NodeRoleState::Proposed | NodeRoleState::Transition | NodeRoleState::Blocked
            ) {
                self.set_state(
                    d,
                    NodeRoleState::Blocked,
                    false,
                    Cause::Ripple { origin: id },
                    false,
                );
            }
            stack.extend_from_slice(self.children(d));
        }
    }

    /// Retries a noderole (Crowbar's `todo!`, the API's retry): refused unless every parent is
    /// ACTIVE, and for a PROPOSED noderole (commit it instead). It becomes TODO; children in
    /// ERROR or TODO are blocked, recursively (OCB15's narrower ripple: ACTIVE children stay
    /// ACTIVE).
    pub fn retry(&mut self, id: NodeRoleId, cause: Cause) -> Result<(), CoreError> {
        self.txn(|c| {
            let nr = c.get_noderole(id)?;
            if nr.state == NodeRoleState::Proposed {
                return Err(c.invalid(id, "retry", "a PROPOSED noderole must be committed"));
            }
            if nr.state == NodeRoleState::Transition {
                return Err(c.invalid(id, "retry", "a run is in progress"));
            }
            if !c.is_activatable(id) {
                return Err(c.invalid(id, "retry", "not all parents are ACTIVE"));
            }
            c.todo_inner(id, cause);
            Ok(())
        })
    }

    fn todo_inner(&mut self, id: NodeRoleId, cause: Cause) {
        self.set_state(id, NodeRoleState::Todo, false, cause, true);
        self.block_children(id);
    }

    /// Blocks a noderole (`block!`); children in ERROR or TODO are blocked recursively.
    pub fn block(&mut self, id: NodeRoleId, cause: Cause) -> Result<(), CoreError> {
        self.txn(|c| {
            c.get_noderole(id)?;
            c.set_state(id, NodeRoleState::Blocked, false, cause, true);
            c.block_children(id);
            Ok(())
        })
    }

    /// Blocks the children of `origin` (just made TODO or BLOCKED) that are in ERROR or TODO,
    /// and theirs, recursively.
    #[inline]
    fn block_children(&mut self, origin: NodeRoleId) {
        // `origin` is not ACTIVE, so a blockable child would be a stray: with none in the
        // graph (the rule once ripples have run) there is nothing to walk.
        if self.strays != 0 {
            self.block_stray_children(origin);
        } else {
            debug_assert!(self.children(origin).iter().all(|d| !matches!(
                self.state_of(*d),
                NodeRoleState::Error | NodeRoleState::Todo
            )));
        }
    }

    fn block_stray_children(&mut self, origin: NodeRoleId) {
        let blockable = |c: &Cluster, d: NodeRoleId| {
            matches!(c.state_of(d), NodeRoleState::Error | NodeRoleState::Todo)
        };
        debug_assert_ne!(self.state_of(origin), NodeRoleState::Active);
        // The common case even with strays about, no child in ERROR or TODO, allocates nothing.
        if !self.children(origin).iter().any(|d| blockable(self, *d)) {
            return;
        }
        let mut stack = std::mem::take(&mut self.scratch);
        stack.clear();
        stack.extend_from_slice(self.children(origin));
        while let Some(d) = stack.pop() {
            if blockable(self, d) {
                self.set_state(
                    d,
                    NodeRoleState::Blocked,
                    false,
                    Cause::Ripple { origin },
                    true,
                );
                stack.extend_from_slice(self.children(d));
            }
        }
        self.scratch = stack;
    }

    /// Puts a noderole back to TODO (every parent ACTIVE) or BLOCKED, without ripple; PROPOSED
    /// noderoles are left alone. Used when a node dies and when a cluster peer joins.
    pub fn deactivate(&mut self, id: NodeRoleId, cause: Cause) -> Result<(), CoreError> {
        self.txn(|c| {
            c.get_noderole(id)?;
            c.deactivate_inner(id, cause);
            Ok(())
        })
    }

    pub(crate) fn deactivate_inner(&mut self, id: NodeRoleId, cause: Cause) {
        if self.state_of(id) == NodeRoleState::Proposed {
            return;
        }
        let to = self.todo_or_blocked(id);
        self.set_state(id, to, false, cause, true);
    }

    /// Crowbar's `rerun`: an ERROR noderole goes straight back to TODO, without ripple.
    pub fn rerun(&mut self, id: NodeRoleId, cause: Cause) -> Result<(), CoreError> {
        self.txn(|c| {
            if c.get_noderole(id)?.state != NodeRoleState::Error {
                return Err(c.invalid(id, "rerun", "only an ERROR noderole can be rerun"));
            }
            c.set_state(id, NodeRoleState::Todo, false, cause, true);
            Ok(())
        })
    }

    /// Creates the noderole row itself (used by binding).
    pub(crate) fn new_noderole(
        &mut self,
        role: RoleId,
        node: NodeId,
        deployment: DeploymentId,
    ) -> NodeRoleId {
        let empty = Value::Object(Default::default());
        let nr = NodeRole {
            id: self.next_noderole_id(),
            node,
            role,
            deployment,
            state: NodeRoleState::Proposed,
            cohort: 0,
            run_count: 0,
            proposed_data: empty.clone(),
            committed_data: None,
            sysdata: empty.clone(),
            wall: empty,
            runlog: String::new(),
        };
        let id = nr.id;
        self.insert_noderole(nr);
        id
    }

    /// Whether a role has `flag` (false for unknown roles).
    pub(crate) fn role_has(&self, role: RoleId, flag: RoleFlag) -> bool {
        self.role(role).is_some_and(|r| r.has(flag))
    }
}
