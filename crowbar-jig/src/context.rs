//! What a jig is given (the [`RunContext`]) and what it gives back ([`JigOutput`] or a
//! [`JigError`](crate::JigError)).

use std::net::IpAddr;
use std::sync::Arc;

use crowbar_core::{Cluster, Fqdn, Node, NodeId, NodeRoleId};
use serde_json::Value;

use crate::JigError;

/// What a jig run returns: its output on success, or why it failed.
pub type Outcome = Result<JigOutput, crate::JigError>;

/// The node a run happens on.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NodeInfo {
    /// Its id.
    pub id: NodeId,
    /// Its FQDN (validated by construction).
    pub name: Fqdn,
    /// Its short name.
    pub alias: String,
    /// Its management address, from the node's hint `address`, `admin-v4addr` or
    /// `admin-v6addr` (a prefix length such as `/24` is dropped). Remote jigs need one.
    pub address: Option<IpAddr>,
}

impl NodeInfo {
    /// A node without an address.
    pub fn new(id: NodeId, name: Fqdn) -> NodeInfo {
        let alias = name.first_label().to_owned();
        NodeInfo {
            id,
            name,
            alias,
            address: None,
        }
    }

    /// Sets the address.
    #[must_use]
    pub fn with_address(mut self, address: IpAddr) -> NodeInfo {
        self.address = Some(address);
        self
    }

    /// What a run sees of `node`: its id, name, alias and the address from its hint.
    ///
    /// ```
    /// use crowbar_core::{Cluster, NodeSpec};
    /// use crowbar_jig::NodeInfo;
    /// let mut cluster = Cluster::new();
    /// let id = cluster.create_node(NodeSpec::new("n1.example.com")
    ///     .hint(serde_json::json!({"address": "fd00::7/64"})))?;
    /// let info = NodeInfo::from_node(cluster.node(id).unwrap());
    /// assert_eq!((info.alias.as_str(), info.address), ("n1", Some("fd00::7".parse()?)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_node(node: &Node) -> NodeInfo {
        NodeView::of_node(node).to_info()
    }
}

/// What [`Jig::run_now`](crate::Jig::run_now) sees of a run's node: the facts of a
/// [`NodeInfo`], borrowed, either from the model's node row (the annealer asks instant jigs
/// this way, with nothing built or allocated per node) or from a [`NodeInfo`]
/// ([`RunContext::view`]). The address is read from the node's hint only when asked for.
///
/// ```
/// use crowbar_core::{Cluster, NodeSpec};
/// use crowbar_jig::{NodeInfo, NodeView};
/// let mut cluster = Cluster::new();
/// let id = cluster.create_node(NodeSpec::new("n1.example.com")
///     .hint(serde_json::json!({"admin-v4addr": "192.168.124.10/24"})))?;
/// let node = cluster.node(id).unwrap();
/// let view = NodeView::of_node(node);
/// assert_eq!((view.alias, view.address()), ("n1", Some("192.168.124.10".parse()?)));
/// // The same facts as the owned form, whichever way the view was made.
/// let info = NodeInfo::from_node(node);
/// assert_eq!(view, NodeView::from(&info));
/// assert_eq!(view.to_info(), info);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct NodeView<'a> {
    /// Its id.
    pub id: NodeId,
    /// Its FQDN.
    pub name: &'a Fqdn,
    /// Its short name.
    pub alias: &'a str,
    address: AddressOf<'a>,
}

/// Where a [`NodeView`]'s address comes from.
#[derive(Clone, Copy, Debug)]
enum AddressOf<'a> {
    /// Already read (a [`NodeInfo`]'s).
    Known(Option<IpAddr>),
    /// To be read from the node's hint when asked for.
    Hint(crowbar_core::Hints<'a>),
}

impl<'a> NodeView<'a> {
    /// The view of a node row of the model.
    #[inline]
    pub fn of_node(node: &'a Node) -> NodeView<'a> {
        NodeView {
            id: node.id,
            name: &node.name,
            alias: &node.alias,
            address: AddressOf::Hint(node.hints()),
        }
    }

    /// Its management address, as [`NodeInfo::address`]: from the node's hint `address`,
    /// `admin-v4addr` or `admin-v6addr`, a prefix length dropped.
    pub fn address(&self) -> Option<IpAddr> {
        match self.address {
            AddressOf::Known(address) => address,
            AddressOf::Hint(hints) => hints.management_address(),
        }
    }

    /// The owned form, for a run that outlives the borrow.
    pub fn to_info(&self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            name: self.name.clone(),
            alias: self.alias.to_owned(),
            address: self.address(),
        }
    }
}

impl<'a> From<&'a NodeInfo> for NodeView<'a> {
    fn from(info: &'a NodeInfo) -> NodeView<'a> {
        NodeView {
            id: info.id,
            name: &info.name,
            alias: &info.alias,
            address: AddressOf::Known(info.address),
        }
    }
}

/// Views are equal when their facts are, however they were made.
impl PartialEq for NodeView<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.alias == other.alias
            && self.address() == other.address()
    }
}

/// Everything a jig gets for one run of one noderole.
///
/// The role name and the node are shared (`Arc`): the annealer builds them once per role and
/// per node and hands the same ones to every run, so a context costs no allocation unless the
/// jig wants the data.
#[derive(Clone, PartialEq, Debug)]
pub struct RunContext {
    /// The noderole being run.
    pub noderole: NodeRoleId,
    /// Its role's name.
    pub role: Arc<str>,
    /// Its node.
    pub node: Arc<NodeInfo>,
    /// How many runs of this noderole completed before (its `run_count`).
    pub run_count: u32,
    /// Which attempt this is since the last success: 1, then 2 on the first retry...
    pub attempt: u32,
    /// The layered data the run sees ([`Cluster::run_data`]); `null` for jigs that said they do
    /// not need it ([`Jig::needs_data`](crate::Jig::needs_data)).
    pub data: Value,
}

/// What [`Jig::run_now`](crate::Jig::run_now) sees of a run: the facts of its [`RunContext`]
/// without the data, borrowed from the model and the annealer's caches, so that asking an
/// instant jig costs no allocation and no reference count.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct RunView<'a> {
    /// The noderole being run.
    pub noderole: NodeRoleId,
    /// Its role's name.
    pub role: &'a str,
    /// Its node.
    pub node: NodeView<'a>,
    /// How many runs of this noderole completed before (its `run_count`).
    pub run_count: u32,
    /// Which attempt this is since the last success: 1, then 2 on the first retry...
    pub attempt: u32,
}

impl RunContext {
    /// The context's facts, borrowed, as [`Jig::run_now`](crate::Jig::run_now) sees them.
    pub fn view(&self) -> RunView<'_> {
        RunView {
            noderole: self.noderole,
            role: &self.role,
            node: NodeView::from(&*self.node),
            run_count: self.run_count,
            attempt: self.attempt,
        }
    }

    /// A context by hand, for tests and for embedders that run jigs themselves.
    pub fn new(
        noderole: NodeRoleId,
        role: impl Into<Arc<str>>,
        node: impl Into<Arc<NodeInfo>>,
    ) -> RunContext {
        RunContext {
            noderole,
            role: role.into(),
            node: node.into(),
            run_count: 0,
            attempt: 1,
            data: Value::Object(Default::default()),
        }
    }

    /// Sets the data.
    #[must_use]
    pub fn with_data(mut self, data: Value) -> RunContext {
        self.data = data;
        self
    }

    /// Sets the attempt number.
    #[must_use]
    pub fn with_attempt(mut self, attempt: u32) -> RunContext {
        self.attempt = attempt;
        self
    }

    /// Builds the context of a run of `noderole` from the model; stages the layered data only
    /// when `with_data`.
    ///
    /// ```
    /// use crowbar_core::{Cluster, NodeSpec, RoleSpec};
    /// use crowbar_jig::RunContext;
    /// let mut cluster = Cluster::new();
    /// cluster.create_role(RoleSpec::new("ntp").template(serde_json::json!({"ntp": {"server": "pool"}})))?;
    /// cluster.create_node(NodeSpec::new("n1.example.com")
    ///     .hint(serde_json::json!({"admin-v4addr": "192.168.124.10/24"})))?;
    /// let nr = cluster.bind_by_name("ntp", "n1", None)?;
    /// let cx = RunContext::from_cluster(&cluster, nr, 1, true)?;
    /// assert_eq!(cx.node.address, Some("192.168.124.10".parse()?));
    /// assert_eq!(cx.data["ntp"]["server"], "pool");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_cluster(
        cluster: &Cluster,
        noderole: NodeRoleId,
        attempt: u32,
        with_data: bool,
    ) -> Result<RunContext, JigError> {
        let nr = cluster
            .noderole(noderole)
            .ok_or_else(|| unknown(noderole))?;
        let node = cluster.node(nr.node).ok_or_else(|| unknown(nr.node))?;
        let role = cluster.role(nr.role).ok_or_else(|| unknown(nr.role))?;
        RunContext::from_shared(
            cluster,
            noderole,
            attempt,
            Arc::from(role.name.as_str()),
            Arc::new(NodeInfo::from_node(node)),
            with_data,
        )
    }

    /// Like [`RunContext::from_cluster`], with the role's name and the node given by a caller
    /// that keeps them per role and per node (the annealer's driver shares one of each among
    /// every run): reads only the noderole's run count and, when `with_data`, its layered data.
    pub fn from_shared(
        cluster: &Cluster,
        noderole: NodeRoleId,
        attempt: u32,
        role: Arc<str>,
        node: Arc<NodeInfo>,
        with_data: bool,
    ) -> Result<RunContext, JigError> {
        let nr = cluster.brief(noderole).ok_or_else(|| unknown(noderole))?;
        let data = if with_data {
            cluster.run_data(noderole).map_err(|e| JigError::Staging {
                message: e.to_string(),
            })?
        } else {
            Value::Null
        };
        Ok(RunContext {
            noderole,
            role,
            node,
            run_count: nr.run_count,
            attempt,
            data,
        })
    }
}

/// The staging error for something the model no longer has.
fn unknown(what: impl std::fmt::Display) -> JigError {
    JigError::Staging {
        message: format!("unknown {what}"),
    }
}

/// What a successful run hands back.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct JigOutput {
    /// Data to store as the noderole's wall (replacing the old one), if any.
    pub wall: Option<Value>,
    /// The run's log, stored on the noderole.
    pub runlog: String,
}

impl JigOutput {
    /// Success with nothing to report.
    pub fn empty() -> JigOutput {
        JigOutput::default()
    }

    /// Whether there is nothing to report: no wall, an empty runlog (what [`JigOutput::empty`]
    /// makes). Such a success leaves the noderole's data as it was.
    ///
    /// ```
    /// use crowbar_jig::JigOutput;
    /// use serde_json::json;
    ///
    /// assert!(JigOutput::empty().is_empty());
    /// assert!(!JigOutput::empty().runlog("done").is_empty());
    /// assert!(!JigOutput::with_wall(json!({})).is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.wall.is_none() && self.runlog.is_empty()
    }

    /// Success with wall data.
    pub fn with_wall(wall: Value) -> JigOutput {
        JigOutput {
            wall: Some(wall),
            runlog: String::new(),
        }
    }

    /// Sets the runlog.
    #[must_use]
    pub fn runlog(mut self, runlog: impl Into<String>) -> JigOutput {
        self.runlog = runlog.into();
        self
    }
}
