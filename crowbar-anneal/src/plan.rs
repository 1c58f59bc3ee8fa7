//! `plan`: what a commit would run, in what order, and what would stay blocked, without
//! running anything.

use std::collections::{BTreeSet, HashMap};

use crowbar_core::{DeploymentId, DeploymentPhase, NodeId, NodeRoleId, NodeRoleState};

use crate::Annealer;

/// What to plan for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PlanScope {
    /// The model as it is: nothing committed.
    Current,
    /// As if the node were committed (its PROPOSED noderoles).
    Node(NodeId),
    /// As if the deployment were committed (the deployment and its PROPOSED noderoles).
    Deployment(DeploymentId),
    /// As if everything PROPOSED were committed, in every deployment.
    Everything,
}

/// One run the plan expects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PlannedRun {
    /// The noderole.
    pub noderole: NodeRoleId,
    /// Its node.
    pub node: NodeId,
    /// The wave it starts in: runs of one wave go together (under the caps), each wave after
    /// the previous one ends, every run taking the same time.
    pub wave: u32,
    /// Whether it is running already (wave 0).
    pub running_now: bool,
}

/// Why the plan leaves a noderole out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StuckReason {
    /// Its node is not alive.
    NodeNotAlive(NodeId),
    /// Its node is not available.
    NodeNotAvailable(NodeId),
    /// Its deployment stays proposed.
    DeploymentProposed(DeploymentId),
    /// It is in ERROR itself.
    InError,
    /// It is PROPOSED and this plan does not commit it.
    Proposed,
    /// A noderole of its node is in ERROR, which freezes the node.
    NodeFrozen {
        /// The noderole in ERROR.
        by: NodeRoleId,
    },
    /// A parent never becomes ACTIVE; `root` is the first stuck ancestor on that chain.
    Waits {
        /// The direct parent.
        parent: NodeRoleId,
        /// The ancestor that is stuck for a reason of its own.
        root: NodeRoleId,
    },
}

/// A noderole the plan leaves out, and why.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stuck {
    /// The noderole.
    pub noderole: NodeRoleId,
    /// Why.
    pub reason: StuckReason,
}

/// The answer of [`Annealer::plan`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Plan {
    /// The runs, in the order they would start.
    pub runs: Vec<PlannedRun>,
    /// What would stay BLOCKED, TODO or ERROR, by id.
    pub stuck: Vec<Stuck>,
    /// How many waves: the critical path under the caps, in runs.
    pub waves: u32,
}

impl Annealer {
    /// What committing `scope` would run, wave by wave under the per-node rule and the global
    /// cap, assuming every run succeeds and takes the same time; and what would stay stuck,
    /// with why. Nothing changes. Costs O(n log n) over the noderoles that are not ACTIVE.
    pub fn plan(&mut self, scope: PlanScope) -> Plan {
        self.absorb();
        let c = self.cluster();
        let cap = self.config().max_running;
        let committed = |d: DeploymentId| {
            scope == PlanScope::Deployment(d)
                || c.deployment(d)
                    .is_some_and(|d| d.phase == DeploymentPhase::Committed)
        };
        let in_scope = |nr: crowbar_core::NodeRoleRef<'_>| match scope {
            PlanScope::Current => false,
            PlanScope::Node(n) => nr.node == n,
            PlanScope::Deployment(d) => nr.deployment == d,
            PlanScope::Everything => true,
        };
        // Hypothetical states of the noderoles that matter: not ACTIVE, not (still) PROPOSED.
        let mut hyp: HashMap<NodeRoleId, NodeRoleState> = HashMap::new();
        let mut frozen: HashMap<NodeId, NodeRoleId> = HashMap::new();
        // Committing a node marks it available.
        let mut made_available: BTreeSet<NodeId> = BTreeSet::new();
        if let PlanScope::Node(n) = scope {
            made_available.insert(n);
        }
        for nr in c.noderoles() {
            let s = match nr.state {
                NodeRoleState::Active => continue,
                NodeRoleState::Proposed if in_scope(nr) => {
                    if scope == PlanScope::Everything {
                        made_available.insert(nr.node);
                    }
                    NodeRoleState::Blocked
                }
                NodeRoleState::Proposed => continue,
                s => s,
            };
            if s == NodeRoleState::Error {
                frozen.entry(nr.node).or_insert(nr.id);
            }
            hyp.insert(nr.id, s);
        }
        let node_ok = |n: NodeId| {
            c.node(n)
                .is_some_and(|x| x.alive && (x.available || made_available.contains(&n)))
        };
        // Parents not yet done, for each noderole that may run.
        let mut need: HashMap<NodeRoleId, u32> = HashMap::new();
        let mut queues: HashMap<NodeId, BTreeSet<(u32, NodeRoleId)>> = HashMap::new();
        let mut running: Vec<NodeRoleId> = Vec::new();
        let eligible = |id: NodeRoleId| {
            let nr = c.noderole(id).expect("exists");
            committed(nr.deployment) && node_ok(nr.node) && !frozen.contains_key(&nr.node)
        };
        for (&id, &s) in &hyp {
            match s {
                NodeRoleState::Transition => running.push(id),
                NodeRoleState::Todo | NodeRoleState::Blocked => {
                    let n = c
                        .parents(id)
                        .iter()
                        .filter(|p| {
                            c.noderole(**p)
                                .is_some_and(|p| p.state != NodeRoleState::Active)
                        })
                        .count() as u32;
                    need.insert(id, n);
                    if n == 0 && eligible(id) {
                        let nr = c.noderole(id).expect("exists");
                        queues.entry(nr.node).or_default().insert((nr.cohort, id));
                    }
                }
                _ => {}
            }
        }
        running.sort();
        let mut plan = Plan::default();
        let mut busy: BTreeSet<NodeId> = running
            .iter()
            .map(|id| c.noderole(*id).expect("exists").node)
            .collect();
        for &id in &running {
            plan.runs.push(PlannedRun {
                noderole: id,
                node: c.noderole(id).expect("exists").node,
                wave: 0,
                running_now: true,
            });
        }
        let mut done: BTreeSet<NodeRoleId> = BTreeSet::new();
        let mut in_flight = running;
        let mut wave = 0u32;
        loop {
            let mut heads: BTreeSet<(u32, NodeRoleId, NodeId)> = queues
                .iter()
                .filter(|(n, _)| !busy.contains(n))
                .filter_map(|(n, q)| q.first().map(|k| (k.0, k.1, *n)))
                .collect();
            while in_flight.len() < cap {
                let Some((cohort, id, node)) = heads.pop_first() else {
                    break;
                };
                queues
                    .get_mut(&node)
                    .expect("has a queue")
                    .remove(&(cohort, id));
                busy.insert(node);
                in_flight.push(id);
                plan.runs.push(PlannedRun {
                    noderole: id,
                    node,
                    wave,
                    running_now: false,
                });
            }
            if in_flight.is_empty() {
                break;
            }
            plan.waves = wave + 1;
            for id in std::mem::take(&mut in_flight) {
                done.insert(id);
                for &child in c.children(id) {
                    let Some(n) = need.get_mut(&child) else {
                        continue;
                    };
                    *n -= 1;
                    if *n == 0 && eligible(child) {
                        let nr = c.noderole(child).expect("exists");
                        queues
                            .entry(nr.node)
                            .or_default()
                            .insert((nr.cohort, child));
                    }
                }
            }
            busy.clear();
            wave += 1;
        }
        // What never ran, and why.
        let mut stuck: Vec<NodeRoleId> = hyp
            .keys()
            .copied()
            .filter(|id| !done.contains(id))
            .collect();
        stuck.sort();
        for id in stuck {
            let reason = self.stuck_reason(id, &hyp, &done, &frozen, &committed, &made_available);
            plan.stuck.push(Stuck {
                noderole: id,
                reason,
            });
        }
        plan
    }

    fn stuck_reason(
        &self,
        id: NodeRoleId,
        hyp: &HashMap<NodeRoleId, NodeRoleState>,
        done: &BTreeSet<NodeRoleId>,
        frozen: &HashMap<NodeId, NodeRoleId>,
        committed: &dyn Fn(DeploymentId) -> bool,
        made_available: &BTreeSet<NodeId>,
    ) -> StuckReason {
        let c = self.cluster();
        let mut cur = id;
        let mut first_parent = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let own = self.own_stuck_reason(cur, hyp, frozen, committed, made_available);
            if let Some(r) = own {
                return match first_parent {
                    None => r,
                    Some(parent) => StuckReason::Waits { parent, root: cur },
                };
            }
            let next = c.parents(cur).iter().copied().find(|p| {
                !done.contains(p)
                    && c.noderole(*p)
                        .is_some_and(|n| n.state != NodeRoleState::Active)
            });
            match next {
                Some(p) if seen.insert(p) => {
                    first_parent.get_or_insert(p);
                    cur = p;
                }
                _ => {
                    let parent = first_parent.unwrap_or(cur);
                    return StuckReason::Waits { parent, root: cur };
                }
            }
        }
    }

    fn own_stuck_reason(
        &self,
        id: NodeRoleId,
        hyp: &HashMap<NodeRoleId, NodeRoleState>,
        frozen: &HashMap<NodeId, NodeRoleId>,
        committed: &dyn Fn(DeploymentId) -> bool,
        made_available: &BTreeSet<NodeId>,
    ) -> Option<StuckReason> {
        let c = self.cluster();
        let nr = c.noderole(id)?;
        if !hyp.contains_key(&id) {
            // PROPOSED and not committed by this plan: it never becomes ACTIVE.
            return Some(StuckReason::Proposed);
        }
        if hyp[&id] == NodeRoleState::Error {
            return Some(StuckReason::InError);
        }
        if !committed(nr.deployment) {
            return Some(StuckReason::DeploymentProposed(nr.deployment));
        }
        let node = c.node(nr.node)?;
        if !node.alive {
            return Some(StuckReason::NodeNotAlive(nr.node));
        }
        if !node.available && !made_available.contains(&nr.node) {
            return Some(StuckReason::NodeNotAvailable(nr.node));
        }
        if let Some(by) = frozen.get(&nr.node) {
            return Some(StuckReason::NodeFrozen { by: *by });
        }
        None
    }
}
