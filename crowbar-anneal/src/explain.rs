//! `explain`: why a noderole is not running now.

use std::fmt;

use crowbar_core::{DeploymentId, DeploymentPhase, NodeId, NodeRoleId, NodeRoleState, Timestamp};

use crate::{AnnealError, Annealer, RunId};

/// One reason a noderole is not running (or the fact that it is).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reason {
    /// It is running.
    Running {
        /// The run.
        run: RunId,
        /// Since when.
        since: Timestamp,
    },
    /// In TRANSITION, but not by a run of this annealer (set by hand): it holds its node until
    /// someone finishes or fails it.
    TransitionWithoutRun,
    /// It is ACTIVE: nothing to run.
    Active,
    /// It is PROPOSED: it must be committed first.
    Proposed,
    /// It is in ERROR; `retry_at` is when the retry policy retries it (else an operator must).
    Error {
        /// The scheduled retry.
        retry_at: Option<Timestamp>,
    },
    /// Its deployment is proposed, so none of its noderoles run.
    DeploymentProposed {
        /// The deployment.
        deployment: DeploymentId,
    },
    /// A direct parent is not ACTIVE. `root` is where the chain of BLOCKED ancestors ends:
    /// the ancestor that is itself the cause (in ERROR, TODO, TRANSITION or PROPOSED).
    Parent {
        /// The direct parent.
        parent: NodeRoleId,
        /// Its state.
        state: NodeRoleState,
        /// The ancestor at the end of the BLOCKED chain through `parent`.
        root: NodeRoleId,
        /// That ancestor's state.
        root_state: NodeRoleState,
    },
    /// Its node is not alive.
    NodeNotAlive {
        /// The node.
        node: NodeId,
    },
    /// Its node is not available.
    NodeNotAvailable {
        /// The node.
        node: NodeId,
    },
    /// Another noderole of its node is in TRANSITION or ERROR (one run per node; an ERROR
    /// freezes the node until it is retried).
    NodeBusy {
        /// The node.
        node: NodeId,
        /// The noderole holding it.
        holder: NodeRoleId,
        /// That noderole's state.
        state: NodeRoleState,
    },
    /// A noderole of a lower (cohort, id) on the same node goes first.
    QueuedBehind {
        /// The noderole ahead.
        ahead: NodeRoleId,
    },
    /// The global cap is reached.
    CapReached {
        /// Runs in progress.
        running: usize,
        /// The cap.
        cap: usize,
    },
    /// Nothing stops it: it starts at the next [`Annealer::ready`].
    Ready,
}

/// The answer of [`Annealer::explain`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Explanation {
    /// The noderole.
    pub noderole: NodeRoleId,
    /// Its `role@node` label.
    pub label: String,
    /// Its state.
    pub state: NodeRoleState,
    /// Every reason that applies, most fundamental first.
    pub reasons: Vec<Reason>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) is {}", self.label, self.noderole, self.state)?;
        for r in &self.reasons {
            write!(f, "\n  - ")?;
            match r {
                Reason::Running { run, since } => write!(f, "running as {run} since {}", since.0)?,
                Reason::TransitionWithoutRun => {
                    write!(f, "in TRANSITION without a run of this annealer")?
                }
                Reason::Active => write!(f, "active: nothing to do")?,
                Reason::Proposed => write!(f, "proposed: commit it first")?,
                Reason::Error { retry_at: Some(t) } => write!(f, "failed; retry at {}", t.0)?,
                Reason::Error { retry_at: None } => write!(f, "failed; waits for a retry")?,
                Reason::DeploymentProposed { deployment } => write!(f, "{deployment} is proposed")?,
                Reason::Parent {
                    parent,
                    state,
                    root,
                    root_state,
                } => {
                    write!(f, "parent {parent} is {state}")?;
                    if root != parent {
                        write!(f, " because of {root} ({root_state})")?;
                    }
                }
                Reason::NodeNotAlive { node } => write!(f, "{node} is not alive")?,
                Reason::NodeNotAvailable { node } => write!(f, "{node} is not available")?,
                Reason::NodeBusy {
                    node,
                    holder,
                    state,
                } => write!(f, "{node} is held by {holder} ({state})")?,
                Reason::QueuedBehind { ahead } => write!(f, "{ahead} goes first on its node")?,
                Reason::CapReached { running, cap } => {
                    write!(f, "cap reached: {running}/{cap} runs")?
                }
                Reason::Ready => write!(f, "ready: starts at the next step")?,
            }
        }
        Ok(())
    }
}

impl Annealer {
    /// Why `noderole` is not running now: its state, the parents that hold it (with the
    /// ancestor at the root of a BLOCKED chain), its node's flags and holder, its place in the
    /// node's queue, the global cap. Costs O(parents + chain length + noderoles on its node).
    pub fn explain(&mut self, noderole: NodeRoleId) -> Result<Explanation, AnnealError> {
        self.absorb();
        let c = self.cluster();
        let nr = c
            .noderole(noderole)
            .ok_or(AnnealError::UnknownNodeRole(noderole))?;
        let mut reasons = Vec::new();
        let (state, node, deployment) = (nr.state, nr.node, nr.deployment);
        match state {
            NodeRoleState::Transition => {
                match self.run_for(noderole) {
                    Some(run) => reasons.push(Reason::Running {
                        run,
                        since: self.run_started(run).unwrap_or_default(),
                    }),
                    None => reasons.push(Reason::TransitionWithoutRun),
                }
                return Ok(self.explanation(noderole, state, reasons));
            }
            NodeRoleState::Active => reasons.push(Reason::Active),
            NodeRoleState::Proposed => reasons.push(Reason::Proposed),
            NodeRoleState::Error => reasons.push(Reason::Error {
                retry_at: self.retry_pending(noderole),
            }),
            NodeRoleState::Todo | NodeRoleState::Blocked => {}
        }
        if c.deployment(deployment)
            .is_some_and(|d| d.phase != DeploymentPhase::Committed)
        {
            reasons.push(Reason::DeploymentProposed { deployment });
        }
        for &p in c.parents(noderole) {
            let ps = c.noderole(p).map_or(NodeRoleState::Proposed, |n| n.state);
            if ps != NodeRoleState::Active {
                let (root, root_state) = self.blocking_root(p);
                reasons.push(Reason::Parent {
                    parent: p,
                    state: ps,
                    root,
                    root_state,
                });
            }
        }
        if let Some(n) = c.node(node) {
            if !n.alive {
                reasons.push(Reason::NodeNotAlive { node });
            }
            if !n.available {
                reasons.push(Reason::NodeNotAvailable { node });
            }
        }
        if c.node_is_busy(node) {
            let holder = c.noderoles_on(node).iter().copied().find(|h| {
                *h != noderole
                    && c.noderole(*h).is_some_and(|n| {
                        matches!(n.state, NodeRoleState::Transition | NodeRoleState::Error)
                    })
            });
            if let Some(holder) = holder {
                let hs = c.noderole(holder).map_or(NodeRoleState::Error, |n| n.state);
                reasons.push(Reason::NodeBusy {
                    node,
                    holder,
                    state: hs,
                });
            }
        }
        if state == NodeRoleState::Todo && reasons.is_empty() {
            if let Some(ahead) = self.ahead_on_node(noderole) {
                reasons.push(Reason::QueuedBehind { ahead });
            } else if self.is_queued(noderole) {
                let cap = self.config().max_running;
                if self.running() >= cap {
                    reasons.push(Reason::CapReached {
                        running: self.running(),
                        cap,
                    });
                } else {
                    reasons.push(Reason::Ready);
                }
            }
        }
        Ok(self.explanation(noderole, state, reasons))
    }

    fn explanation(
        &self,
        id: NodeRoleId,
        state: NodeRoleState,
        reasons: Vec<Reason>,
    ) -> Explanation {
        Explanation {
            noderole: id,
            label: self.cluster().label(id),
            state,
            reasons,
        }
    }

    /// Follows BLOCKED ancestors (through their first parent that is not ACTIVE) to the one
    /// that is not BLOCKED.
    fn blocking_root(&self, start: NodeRoleId) -> (NodeRoleId, NodeRoleState) {
        let c = self.cluster();
        let mut cur = start;
        let mut seen = std::collections::HashSet::new();
        loop {
            let state = c.noderole(cur).map_or(NodeRoleState::Proposed, |n| n.state);
            if state != NodeRoleState::Blocked || !seen.insert(cur) {
                return (cur, state);
            }
            let next = c.parents(cur).iter().copied().find(|p| {
                c.noderole(*p)
                    .is_some_and(|n| n.state != NodeRoleState::Active)
            });
            match next {
                Some(p) => cur = p,
                None => return (cur, state),
            }
        }
    }
}
