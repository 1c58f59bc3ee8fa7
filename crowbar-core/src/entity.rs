//! The entities of the model: nodes, roles, deployments, deployment roles and noderoles, plus
//! the specifications used to create them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    Bootenv, DeploymentId, Fqdn, Hints, NodeHints, NodeId, NodeRoleId, NodeRoleState, RoleFlag,
    RoleFlags, RoleId,
};

/// A machine, named by its FQDN.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Node {
    /// Its id.
    pub id: NodeId,
    /// Its FQDN, lower-cased.
    pub name: Fqdn,
    /// A short unique name; defaults to the first label of the FQDN.
    pub alias: String,
    /// Free text.
    pub description: String,
    /// The deployment the node belongs to.
    pub deployment: DeploymentId,
    /// Whether this is an admin node (allocates from the admin range, not in the DHCP database).
    pub admin: bool,
    /// The framework's view: the node is reachable and manageable.
    pub alive: bool,
    /// The operator's view: Crowbar may manage this node.
    pub available: bool,
    /// What the node boots into.
    pub bootenv: Bootenv,
    /// Operator preferences consulted before a noderole exists (e.g. `admin-v4addr`); read
    /// them through [`Node::hints`], write them with [`NodeHints`].
    pub hint: Value,
    /// Inventory data found by discovery.
    pub discovery: Value,
}

impl Node {
    /// The node's hints, typed.
    pub fn hints(&self) -> Hints<'_> {
        Hints::new(&self.hint)
    }
}

/// What to create a node from. Only the name is required.
///
/// ```
/// use crowbar_core::NodeSpec;
/// let spec = NodeSpec::new("n1.example.com").admin(true).alive(true).available(true);
/// assert_eq!(spec.name, "n1.example.com");
/// ```
#[derive(Clone, PartialEq, Debug, Default)]
pub struct NodeSpec {
    /// The FQDN (validated and lower-cased on creation).
    pub name: String,
    /// The alias; `None` takes the first label.
    pub alias: Option<String>,
    /// Free text.
    pub description: String,
    /// The deployment; `None` is the system deployment.
    pub deployment: Option<DeploymentId>,
    /// Admin node.
    pub admin: bool,
    /// Initially alive (Crowbar's default is false).
    pub alive: bool,
    /// Initially available (Crowbar's default is false).
    pub available: bool,
    /// Initial bootenv.
    pub bootenv: Bootenv,
    /// Hints (a JSON object).
    pub hint: Option<Value>,
    /// Discovery data (a JSON object).
    pub discovery: Option<Value>,
}

impl NodeSpec {
    /// A node named `name`, everything else default.
    pub fn new(name: impl Into<String>) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            ..NodeSpec::default()
        }
    }

    /// Sets the admin flag.
    #[must_use]
    pub fn admin(mut self, admin: bool) -> Self {
        self.admin = admin;
        self
    }

    /// Sets the initial alive flag.
    #[must_use]
    pub fn alive(mut self, alive: bool) -> Self {
        self.alive = alive;
        self
    }

    /// Sets the initial available flag.
    #[must_use]
    pub fn available(mut self, available: bool) -> Self {
        self.available = available;
        self
    }

    /// Sets the alias.
    #[must_use]
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// Puts the node in a deployment.
    #[must_use]
    pub fn deployment(mut self, deployment: DeploymentId) -> Self {
        self.deployment = Some(deployment);
        self
    }

    /// Sets the hints as raw JSON (an object); [`NodeSpec::hints`] is the typed way.
    #[must_use]
    pub fn hint(mut self, hint: Value) -> Self {
        self.hint = Some(hint);
        self
    }

    /// Sets the hints.
    #[must_use]
    pub fn hints(mut self, hints: NodeHints) -> Self {
        self.hint = Some(hints.into_value());
        self
    }

    /// Sets the discovery data as raw JSON (an object).
    #[must_use]
    pub fn discovery(mut self, discovery: Value) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// Records a discovered network interface and its link-layer address where Sledgehammer's
    /// Ohai put it, `ohai.network.interfaces.<interface>.addresses.<mac> = {"family":
    /// "lladdr"}` (what the DHCP database reads). Other discovery data is kept.
    ///
    /// ```
    /// use crowbar_core::NodeSpec;
    /// let spec = NodeSpec::new("d1.cr0wbar.com")
    ///     .discovered_interface("eth0", "52:54:00:12:34:56")
    ///     .discovered_interface("eth1", "52:54:00:12:34:57");
    /// let d = spec.discovery.unwrap();
    /// assert_eq!(
    ///     d["ohai"]["network"]["interfaces"]["eth1"]["addresses"]["52:54:00:12:34:57"]["family"],
    ///     "lladdr",
    /// );
    /// assert!(d["ohai"]["network"]["interfaces"]["eth0"].is_object());
    /// ```
    #[must_use]
    pub fn discovered_interface(mut self, interface: &str, mac: &str) -> Self {
        let mut add = serde_json::Map::new();
        add.insert(mac.to_owned(), serde_json::json!({"family": "lladdr"}));
        let patch = serde_json::json!({"ohai": {"network": {"interfaces": {
            interface: {"addresses": Value::Object(add)}
        }}}});
        let mut discovery = self
            .discovery
            .take()
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        crate::deep_merge(&mut discovery, &patch);
        self.discovery = Some(discovery);
        self
    }

    /// Sets the bootenv.
    #[must_use]
    pub fn bootenv(mut self, bootenv: Bootenv) -> Self {
        self.bootenv = bootenv;
        self
    }
}

/// How the annealer retries a failed run of a role: exponential backoff from `backoff_ms`,
/// doubling up to `max_backoff_ms`, at most `max_retries` times. The default never retries, as
/// Crowbar did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// How many automatic retries after the first failure.
    pub max_retries: u32,
    /// The first delay.
    pub backoff_ms: u64,
    /// The cap on the delay.
    pub max_backoff_ms: u64,
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1-based), or `None` when retries are exhausted.
    ///
    /// ```
    /// use crowbar_core::RetryPolicy;
    /// let p = RetryPolicy { max_retries: 3, backoff_ms: 100, max_backoff_ms: 250 };
    /// assert_eq!(p.delay(1), Some(100));
    /// assert_eq!(p.delay(2), Some(200));
    /// assert_eq!(p.delay(3), Some(250));
    /// assert_eq!(p.delay(4), None);
    /// ```
    pub fn delay(&self, attempt: u32) -> Option<u64> {
        if attempt == 0 || attempt > self.max_retries {
            return None;
        }
        let factor = 1u64.checked_shl(attempt - 1).unwrap_or(u64::MAX);
        Some(
            self.backoff_ms
                .saturating_mul(factor)
                .min(self.max_backoff_ms.max(self.backoff_ms)),
        )
    }
}

/// A unit of work that can be bound to nodes.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Role {
    /// Its id.
    pub id: RoleId,
    /// Its unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The name of the jig that runs it.
    pub jig: String,
    /// Names of the roles it requires (its parents); resolved lazily by name.
    pub requires: Vec<String>,
    /// Its flags.
    pub flags: RoleFlags,
    /// Role names this role stands in for.
    pub provides: Vec<String>,
    /// Role names that cannot share a node with this role.
    pub conflicts: Vec<String>,
    /// Default data (a JSON object), the bottom layer of what a jig sees.
    pub template: Value,
    /// One more than the largest cohort of its parents (0 without parents).
    pub cohort: u32,
    /// Automatic retries of failed runs.
    pub retry: RetryPolicy,
    /// How long a run may stay in TRANSITION; `None` is no limit.
    pub timeout_ms: Option<u64>,
}

impl Role {
    /// Whether the role has `flag`.
    pub fn has(&self, flag: RoleFlag) -> bool {
        self.flags.contains(flag)
    }
}

/// What to create a role from.
///
/// ```
/// use crowbar_core::{RoleFlag, RoleSpec};
/// let spec = RoleSpec::new("network-admin").requires(["network-server"]).flag(RoleFlag::Implicit);
/// assert_eq!(spec.jig, "noop");
/// ```
#[derive(Clone, PartialEq, Debug)]
pub struct RoleSpec {
    /// The unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The jig; defaults to `noop`.
    pub jig: String,
    /// Required role names.
    pub requires: Vec<String>,
    /// Flags.
    pub flags: RoleFlags,
    /// Names provided.
    pub provides: Vec<String>,
    /// Names conflicted with.
    pub conflicts: Vec<String>,
    /// Template data (a JSON object).
    pub template: Value,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Run timeout.
    pub timeout_ms: Option<u64>,
}

impl RoleSpec {
    /// A role named `name` run by the `noop` jig, with no requirements.
    pub fn new(name: impl Into<String>) -> RoleSpec {
        RoleSpec {
            name: name.into(),
            description: String::new(),
            jig: "noop".to_owned(),
            requires: Vec::new(),
            flags: RoleFlags::NONE,
            provides: Vec::new(),
            conflicts: Vec::new(),
            template: Value::Object(Default::default()),
            retry: RetryPolicy::default(),
            timeout_ms: None,
        }
    }

    /// Sets the jig.
    #[must_use]
    pub fn jig(mut self, jig: impl Into<String>) -> Self {
        self.jig = jig.into();
        self
    }

    /// Adds required roles.
    #[must_use]
    pub fn requires<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.requires.extend(names.into_iter().map(Into::into));
        self
    }

    /// Adds a flag.
    #[must_use]
    pub fn flag(mut self, flag: RoleFlag) -> Self {
        self.flags = self.flags.with(flag);
        self
    }

    /// Adds provided names.
    #[must_use]
    pub fn provides<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.provides.extend(names.into_iter().map(Into::into));
        self
    }

    /// Adds conflicting names.
    #[must_use]
    pub fn conflicts<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.conflicts.extend(names.into_iter().map(Into::into));
        self
    }

    /// Sets the template.
    #[must_use]
    pub fn template(mut self, template: Value) -> Self {
        self.template = template;
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the run timeout.
    #[must_use]
    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }
}

/// Whether a deployment is being edited or committed (its stored state).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentPhase {
    /// Being edited: its noderoles do not run.
    Proposed,
    /// Committed: its noderoles may run.
    Committed,
}

/// A group of noderoles, in a tree under the system deployment.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Deployment {
    /// Its id.
    pub id: DeploymentId,
    /// Its unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The parent deployment; `None` only for the system deployment.
    pub parent: Option<DeploymentId>,
    /// Whether this is the system deployment.
    pub system: bool,
    /// Proposed or committed.
    pub phase: DeploymentPhase,
}

/// A role's data within a deployment.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct DeploymentRole {
    /// The deployment.
    pub deployment: DeploymentId,
    /// The role.
    pub role: RoleId,
    /// User data layered over the role template.
    pub data: Value,
    /// System data.
    pub wall: Value,
}

/// A role bound to a node in a deployment.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct NodeRole {
    /// Its id.
    pub id: NodeRoleId,
    /// The node.
    pub node: NodeId,
    /// The role.
    pub role: RoleId,
    /// The deployment.
    pub deployment: DeploymentId,
    /// Its state.
    pub state: NodeRoleState,
    /// One more than its largest parent cohort; the annealer runs lower cohorts first.
    pub cohort: u32,
    /// How many runs completed.
    pub run_count: u32,
    /// User data, editable while PROPOSED.
    pub proposed_data: Value,
    /// User data as last committed; `None` until the first commit.
    pub committed_data: Option<Value>,
    /// Framework-written data.
    pub sysdata: Value,
    /// What the jig reported back.
    pub wall: Value,
    /// The log of the last run.
    pub runlog: String,
}

impl NodeRole {
    /// The user data in force: proposed while PROPOSED, else committed.
    pub fn data(&self) -> &Value {
        data_in_force(
            self.state,
            &self.proposed_data,
            self.committed_data.as_ref(),
        )
    }
}

/// The user data in force for a noderole in `state`: proposed while PROPOSED (or never
/// committed), else committed. The one rule behind [`NodeRole::data`] and
/// [`NodeRoleRef::data`](crate::NodeRoleRef::data).
pub(crate) fn data_in_force<'a>(
    state: NodeRoleState,
    proposed: &'a Value,
    committed: Option<&'a Value>,
) -> &'a Value {
    match (state, committed) {
        (NodeRoleState::Proposed, _) | (_, None) => proposed,
        (_, Some(committed)) => committed,
    }
}
