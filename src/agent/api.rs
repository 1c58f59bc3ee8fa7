//! The Ops API: Crowbar's `/api/v2` resources on axum, JSON in and out.
//!
//! Handlers never touch the cluster directly: reads run as one command on the annealer's
//! driver (`AnnealHandle::with_annealer`), mutations as one durable command
//! (`AnnealHandle::update_durable`), answered once the change is in the store. Errors are
//! `{error, field?, detail}` with a 4xx chosen in one place ([`ApiError`]).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use crowbar_anneal::{
    AnnealError, AnnealHandle, AnnealStatus, Annealer, Explanation, Plan, PlanScope, StuckReason,
};
use crowbar_core::{
    Bootenv, Cause, Cluster, CoreError, DeploymentId, NodeId, NodeRoleId, NodeRoleState, NodeSpec,
    RoleId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::{TokenRole, Tokens};

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) handle: AnnealHandle,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) jigs: Arc<Vec<JigOut>>,
}

/// An API error: a status and the JSON body `{error, field?, detail}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    error: &'static str,
    field: Option<String>,
    detail: String,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            field: None,
            detail: detail.into(),
        }
    }

    fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    fn not_found(kind: &str, key: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("unknown {kind} {key:?}"),
        )
    }

    fn bad_request(field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", detail).field(field)
    }

    /// The HTTP status of this error.
    #[cfg(test)]
    fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = self.error, detail = %self.detail, "request failed");
        } else {
            tracing::debug!(status = %self.status, error = self.error, detail = %self.detail, "request refused");
        }
        let mut body = json!({ "error": self.error, "detail": self.detail });
        if let Some(f) = self.field {
            body["field"] = Value::String(f);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        use CoreError as E;
        let detail = e.to_string();
        match e {
            E::InvalidFqdn { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail).field("name")
            }
            E::InvalidAlias { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail).field("alias")
            }
            E::InvalidName { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail).field("name")
            }
            E::InvalidBootenv { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail).field("bootenv")
            }
            E::UnknownRoleFlag { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail).field("flags")
            }
            E::NotAnObject { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
            }
            E::Duplicate { .. } => ApiError::new(StatusCode::CONFLICT, "exists", detail),
            E::Unknown { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", detail),
            E::InconsistentSnapshot { .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", detail)
            }
            _ => ApiError::new(StatusCode::CONFLICT, "refused", detail),
        }
    }
}

impl From<AnnealError> for ApiError {
    fn from(e: AnnealError) -> ApiError {
        match e {
            AnnealError::Core(c) => c.into(),
            AnnealError::UnknownNodeRole(id) => ApiError::not_found("noderole", &id.0.to_string()),
            AnnealError::Stopped | AnnealError::Driver { .. } | AnnealError::Store(_) => {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("{e}: the agent takes no changes until it is restarted"),
                )
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

/// JSON body extractor whose rejections are our JSON errors (400 naming the position).
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_request",
                "the body must be JSON (Content-Type: application/json)",
            )),
            Err(JsonRejection::BytesRejection(r))
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "the request body is larger than api.max_body_bytes",
                ))
            }
            Err(r) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                r.body_text(),
            )),
        }
    }
}

/// Query extractor whose rejections are our JSON errors.
pub(crate) struct Q<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(Q(q.0)),
            Err(r @ QueryRejection::FailedToDeserializeQueryString(_)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                r.body_text(),
            )),
            Err(r) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                r.body_text(),
            )),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

// ---- what the API shows -------------------------------------------------------------------

/// A node as the API shows it.
#[derive(Serialize)]
pub(crate) struct NodeOut {
    id: u64,
    name: String,
    alias: String,
    description: String,
    deployment: u64,
    admin: bool,
    alive: bool,
    available: bool,
    bootenv: String,
    state: NodeRoleState,
    hint: Value,
    discovery: Value,
}

fn node_out(c: &Cluster, id: NodeId) -> Option<NodeOut> {
    let n = c.node(id)?;
    Some(NodeOut {
        id: n.id.0,
        name: n.name.to_string(),
        alias: n.alias.clone(),
        description: n.description.clone(),
        deployment: n.deployment.0,
        admin: n.admin,
        alive: n.alive,
        available: n.available,
        bootenv: n.bootenv.to_string(),
        state: c.node_state(id).unwrap_or(NodeRoleState::Active),
        hint: n.hint.clone(),
        discovery: n.discovery.clone(),
    })
}

/// A role as the API shows it.
#[derive(Serialize)]
pub(crate) struct RoleOut {
    id: u64,
    name: String,
    description: String,
    jig: String,
    requires: Vec<String>,
    flags: Value,
    provides: Vec<String>,
    conflicts: Vec<String>,
    template: Value,
    cohort: u32,
}

fn role_out(c: &Cluster, id: RoleId) -> Option<RoleOut> {
    let r = c.role(id)?;
    Some(RoleOut {
        id: r.id.0,
        name: r.name.clone(),
        description: r.description.clone(),
        jig: r.jig.clone(),
        requires: r.requires.clone(),
        flags: serde_json::to_value(r.flags).unwrap_or(Value::Null),
        provides: r.provides.clone(),
        conflicts: r.conflicts.clone(),
        template: r.template.clone(),
        cohort: r.cohort,
    })
}

/// A jig as the API shows it.
#[derive(Serialize, Clone)]
pub(crate) struct JigOut {
    pub(crate) name: String,
    pub(crate) active: bool,
}

/// A deployment as the API shows it, with its derived state.
#[derive(Serialize)]
pub(crate) struct DeploymentOut {
    id: u64,
    name: String,
    description: String,
    parent: Option<u64>,
    system: bool,
    state: String,
}

fn deployment_out(c: &Cluster, id: DeploymentId) -> Option<DeploymentOut> {
    let d = c.deployment(id)?;
    Some(DeploymentOut {
        id: d.id.0,
        name: d.name.clone(),
        description: d.description.clone(),
        parent: d.parent.map(|p| p.0),
        system: d.system,
        state: c
            .deployment_state(id)
            .map(|s| format!("{s}"))
            .unwrap_or_default(),
    })
}

/// A noderole as the API shows it: facts, data layers and runlog.
#[derive(Serialize)]
pub(crate) struct NodeRoleOut {
    id: u64,
    label: String,
    node: u64,
    role: u64,
    deployment: u64,
    state: NodeRoleState,
    cohort: u32,
    run_count: u32,
    parents: Vec<u64>,
    children: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proposed_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    committed_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sysdata: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wall: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runlog: Option<String>,
}

fn noderole_out(c: &Cluster, id: NodeRoleId, full: bool) -> Option<NodeRoleOut> {
    let nr = c.noderole(id)?;
    Some(NodeRoleOut {
        id: id.0,
        label: c.label(id),
        node: nr.node.0,
        role: nr.role.0,
        deployment: nr.deployment.0,
        state: nr.state,
        cohort: nr.cohort,
        run_count: nr.run_count,
        parents: c.parents(id).iter().map(|p| p.0).collect(),
        children: c.children(id).iter().map(|p| p.0).collect(),
        proposed_data: full.then(|| nr.proposed_data.clone()),
        committed_data: if full {
            nr.committed_data.cloned()
        } else {
            None
        },
        sysdata: full.then(|| nr.sysdata.clone()),
        wall: full.then(|| nr.wall.clone()),
        runlog: full.then(|| nr.runlog.to_owned()),
    })
}

// ---- addressing by id or name ----------------------------------------------------------------

fn unknown(what: &'static str, key: &str) -> CoreError {
    CoreError::Unknown {
        what,
        name: key.to_owned(),
    }
}

fn node_key(c: &Cluster, key: &str) -> Result<NodeId, CoreError> {
    if let Ok(id) = key.parse::<u64>()
        && c.node(NodeId(id)).is_some()
    {
        return Ok(NodeId(id));
    }
    c.find_node(key).ok_or_else(|| unknown("node", key))
}

fn role_key(c: &Cluster, key: &str) -> Result<RoleId, CoreError> {
    if let Ok(id) = key.parse::<u64>()
        && c.role(RoleId(id)).is_some()
    {
        return Ok(RoleId(id));
    }
    c.find_role(key).ok_or_else(|| unknown("role", key))
}

fn deployment_key(c: &Cluster, key: &str) -> Result<DeploymentId, CoreError> {
    if let Ok(id) = key.parse::<u64>()
        && c.deployment(DeploymentId(id)).is_some()
    {
        return Ok(DeploymentId(id));
    }
    c.find_deployment(key)
        .ok_or_else(|| unknown("deployment", key))
}

/// A noderole by id or as `role@node`.
fn noderole_key(c: &Cluster, key: &str) -> Result<NodeRoleId, CoreError> {
    if let Ok(id) = key.parse::<u64>()
        && c.noderole(NodeRoleId(id)).is_some()
    {
        return Ok(NodeRoleId(id));
    }
    if let Some((role, node)) = key.split_once('@') {
        let r = role_key(c, role)?;
        let n = node_key(c, node)?;
        return c.noderole_for(r, n).ok_or_else(|| unknown("noderole", key));
    }
    Err(unknown("noderole", key))
}

// ---- handlers -------------------------------------------------------------------------------

/// Runs a read on the driver.
async fn read<T: Send + 'static>(
    s: &ApiState,
    f: impl FnOnce(&mut Annealer) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    s.handle.with_annealer(f).await?
}

/// Runs a mutation on the driver; answers once it is in the store.
async fn write<T: Send + 'static>(
    s: &ApiState,
    f: impl FnOnce(&mut Cluster) -> Result<T, CoreError> + Send + 'static,
) -> ApiResult<T> {
    Ok(s.handle.update_durable(f).await?.0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

fn page<T>(
    items: impl Iterator<Item = T>,
    offset: Option<usize>,
    limit: Option<usize>,
) -> ApiResult<Value>
where
    T: Serialize,
{
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request(
            "limit",
            "limit must be between 1 and 10000",
        ));
    }
    let offset = offset.unwrap_or(0);
    let mut total = 0usize;
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        total = i + 1;
        if i >= offset && out.len() < limit {
            out.push(item);
        }
    }
    Ok(json!({ "items": out, "total": total, "offset": offset, "limit": limit }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFilter {
    offset: Option<usize>,
    limit: Option<usize>,
    alive: Option<bool>,
    available: Option<bool>,
    admin: Option<bool>,
    deployment: Option<String>,
    name: Option<String>,
}

async fn list_nodes(State(s): State<ApiState>, Q(f): Q<NodeFilter>) -> ApiResult<Json<Value>> {
    read(&s, move |a| {
        let c = a.cluster();
        let dep = f
            .deployment
            .as_deref()
            .map(|d| deployment_key(c, d))
            .transpose()?;
        let items = c
            .nodes()
            .filter(|n| f.alive.is_none_or(|v| n.alive == v))
            .filter(|n| f.available.is_none_or(|v| n.available == v))
            .filter(|n| f.admin.is_none_or(|v| n.admin == v))
            .filter(|n| dep.is_none_or(|d| n.deployment == d))
            .filter(|n| {
                f.name
                    .as_deref()
                    .is_none_or(|p| n.name.as_str().contains(p))
            })
            .filter_map(|n| node_out(c, n.id));
        page(items, f.offset, f.limit).map(Json)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeCreate {
    name: String,
    alias: Option<String>,
    #[serde(default)]
    description: String,
    deployment: Option<String>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    alive: bool,
    #[serde(default)]
    available: bool,
    bootenv: Option<String>,
    hint: Option<Value>,
    discovery: Option<Value>,
    /// Crowbar's shortcut: the admin MAC (`hint.admin_macs`).
    mac: Option<String>,
    /// Crowbar's shortcut: the admin IPv4 address (`hint.admin-v4addr`).
    ip: Option<String>,
}

async fn create_node(
    State(s): State<ApiState>,
    Body(b): Body<NodeCreate>,
) -> ApiResult<(StatusCode, Json<NodeOut>)> {
    let bootenv = match b.bootenv.as_deref() {
        None => None,
        Some(v) => Some(v.parse::<Bootenv>().map_err(ApiError::from)?),
    };
    let mut hint = match b.hint {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err(ApiError::bad_request("hint", "hint must be a JSON object")),
    };
    if let Some(mac) = b.mac {
        hint.get_or_insert_default()
            .insert("admin_macs".into(), json!([mac]));
    }
    if let Some(ip) = b.ip {
        if ip.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(ApiError::bad_request(
                "ip",
                format!("{ip:?} is not an IPv4 address"),
            ));
        }
        hint.get_or_insert_default()
            .insert("admin-v4addr".into(), Value::String(ip));
    }
    let out = write(&s, move |c| {
        let mut spec = NodeSpec::new(b.name)
            .admin(b.admin)
            .alive(b.alive)
            .available(b.available);
        spec.description = b.description;
        if let Some(a) = b.alias {
            spec = spec.alias(a);
        }
        if let Some(d) = b.deployment {
            spec = spec.deployment(deployment_key(c, &d)?);
        }
        if let Some(be) = bootenv {
            spec = spec.bootenv(be);
        }
        if let Some(h) = hint {
            spec = spec.hint(Value::Object(h));
        }
        spec.discovery = b.discovery;
        let id = c.create_node(spec)?;
        Ok(node_out(c, id).expect("just made"))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

async fn show_node(State(s): State<ApiState>, Path(key): Path<String>) -> ApiResult<Json<NodeOut>> {
    read(&s, move |a| {
        let c = a.cluster();
        let id = node_key(c, &key)?;
        Ok(Json(node_out(c, id).expect("exists")))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeUpdate {
    alive: Option<bool>,
    available: Option<bool>,
    bootenv: Option<String>,
    hint: Option<Value>,
    discovery: Option<Value>,
}

async fn update_node(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    Body(b): Body<NodeUpdate>,
) -> ApiResult<Json<NodeOut>> {
    let bootenv = match b.bootenv.as_deref() {
        None => None,
        Some(v) => Some(v.parse::<Bootenv>().map_err(ApiError::from)?),
    };
    let out = write(&s, move |c| {
        let id = node_key(c, &key)?;
        if let Some(h) = b.hint {
            c.set_node_hint(id, h)?;
        }
        if let Some(d) = b.discovery {
            c.set_node_discovery(id, d)?;
        }
        if let Some(be) = bootenv {
            c.set_node_bootenv(id, be)?;
        }
        if let Some(v) = b.available {
            c.set_node_available(id, v)?;
        }
        if let Some(v) = b.alive {
            c.set_node_alive(id, v)?;
        }
        Ok(node_out(c, id).expect("exists"))
    })
    .await?;
    Ok(Json(out))
}

async fn commit_node(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<Json<NodeOut>> {
    let out = write(&s, move |c| {
        let id = node_key(c, &key)?;
        c.commit_node(id)?;
        Ok(node_out(c, id).expect("exists"))
    })
    .await?;
    Ok(Json(out))
}

async fn delete_node(State(s): State<ApiState>, Path(key): Path<String>) -> ApiResult<StatusCode> {
    write(&s, move |c| {
        let id = node_key(c, &key)?;
        c.delete_node(id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_roles(State(s): State<ApiState>, Q(p): Q<Page>) -> ApiResult<Json<Value>> {
    read(&s, move |a| {
        let c = a.cluster();
        page(
            c.roles().filter_map(|r| role_out(c, r.id)),
            p.offset,
            p.limit,
        )
        .map(Json)
    })
    .await
}

async fn show_role(State(s): State<ApiState>, Path(key): Path<String>) -> ApiResult<Json<RoleOut>> {
    read(&s, move |a| {
        let c = a.cluster();
        let id = role_key(c, &key)?;
        Ok(Json(role_out(c, id).expect("exists")))
    })
    .await
}

async fn list_jigs(State(s): State<ApiState>) -> Json<Value> {
    Json(json!({ "items": &*s.jigs, "total": s.jigs.len() }))
}

async fn show_jig(State(s): State<ApiState>, Path(name): Path<String>) -> ApiResult<Json<JigOut>> {
    s.jigs
        .iter()
        .find(|j| j.name == name)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("jig", &name))
}

async fn import_barclamp(
    State(s): State<ApiState>,
    body: String,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let barclamp = super::barclamp::Barclamp::parse(&body, "the request body")
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    let known: Vec<String> = s.jigs.iter().map(|j| j.name.clone()).collect();
    barclamp.check_jigs(&known).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()).field("roles")
    })?;
    let name = barclamp.name.clone();
    let created = write(&s, move |c| barclamp.apply(c)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "barclamp": name, "roles_created": created })),
    ))
}

async fn list_deployments(State(s): State<ApiState>, Q(p): Q<Page>) -> ApiResult<Json<Value>> {
    read(&s, move |a| {
        let c = a.cluster();
        page(
            c.deployments().filter_map(|d| deployment_out(c, d.id)),
            p.offset,
            p.limit,
        )
        .map(Json)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentCreate {
    name: String,
    parent: Option<String>,
}

async fn create_deployment(
    State(s): State<ApiState>,
    Body(b): Body<DeploymentCreate>,
) -> ApiResult<(StatusCode, Json<DeploymentOut>)> {
    let out = write(&s, move |c| {
        let parent = match b.parent {
            None => None,
            Some(p) => Some(deployment_key(c, &p)?),
        };
        let id = c.create_deployment(&b.name, parent)?;
        Ok(deployment_out(c, id).expect("just made"))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

async fn show_deployment(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<Json<DeploymentOut>> {
    read(&s, move |a| {
        let c = a.cluster();
        let id = deployment_key(c, &key)?;
        Ok(Json(deployment_out(c, id).expect("exists")))
    })
    .await
}

async fn commit_deployment(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<Json<DeploymentOut>> {
    let out = write(&s, move |c| {
        let id = deployment_key(c, &key)?;
        c.commit_deployment(id)?;
        Ok(deployment_out(c, id).expect("exists"))
    })
    .await?;
    Ok(Json(out))
}

async fn propose_deployment(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<Json<DeploymentOut>> {
    let out = write(&s, move |c| {
        let id = deployment_key(c, &key)?;
        c.propose_deployment(id)?;
        Ok(deployment_out(c, id).expect("exists"))
    })
    .await?;
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeRoleFilter {
    offset: Option<usize>,
    limit: Option<usize>,
    state: Option<NodeRoleState>,
    node: Option<String>,
    role: Option<String>,
    deployment: Option<String>,
}

async fn list_noderoles(
    State(s): State<ApiState>,
    Q(f): Q<NodeRoleFilter>,
) -> ApiResult<Json<Value>> {
    read(&s, move |a| {
        let c = a.cluster();
        let node = f.node.as_deref().map(|k| node_key(c, k)).transpose()?;
        let role = f.role.as_deref().map(|k| role_key(c, k)).transpose()?;
        let dep = f
            .deployment
            .as_deref()
            .map(|k| deployment_key(c, k))
            .transpose()?;
        let matches = |id: NodeRoleId| {
            let Some(b) = c.brief(id) else { return false };
            f.state.is_none_or(|s| b.state == s)
                && role.is_none_or(|r| b.role == r)
                && dep.is_none_or(|d| b.deployment == d)
        };
        let out = |id: NodeRoleId| noderole_out(c, id, false);
        // A node filter walks that node's noderoles only.
        let items: Box<dyn Iterator<Item = NodeRoleOut>> = match node {
            Some(n) => Box::new(
                c.noderoles_on(n)
                    .iter()
                    .copied()
                    .filter(|id| matches(*id))
                    .filter_map(out),
            ),
            None => Box::new(
                c.noderoles()
                    .map(|nr| nr.id)
                    .filter(|id| matches(*id))
                    .filter_map(out),
            ),
        };
        page(items, f.offset, f.limit).map(Json)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bind {
    node: String,
    role: String,
    deployment: Option<String>,
}

async fn bind(
    State(s): State<ApiState>,
    Body(b): Body<Bind>,
) -> ApiResult<(StatusCode, Json<NodeRoleOut>)> {
    let out = write(&s, move |c| {
        let node = node_key(c, &b.node)?;
        let role = role_key(c, &b.role)?;
        let dep = match b.deployment {
            None => None,
            Some(d) => Some(deployment_key(c, &d)?),
        };
        let id = c.bind(role, node, dep)?;
        Ok(noderole_out(c, id, true).expect("just made"))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

async fn show_noderole(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<Json<NodeRoleOut>> {
    read(&s, move |a| {
        let c = a.cluster();
        let id = noderole_key(c, &key)?;
        Ok(Json(noderole_out(c, id, true).expect("exists")))
    })
    .await
}

async fn set_noderole_data(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    Body(data): Body<Value>,
) -> ApiResult<Json<NodeRoleOut>> {
    let out = write(&s, move |c| {
        let id = noderole_key(c, &key)?;
        c.set_noderole_data(id, data)?;
        Ok(noderole_out(c, id, true).expect("exists"))
    })
    .await?;
    Ok(Json(out))
}

async fn retry_noderole(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<Json<NodeRoleOut>> {
    let out = write(&s, move |c| {
        let id = noderole_key(c, &key)?;
        c.retry(id, Cause::Retry)?;
        Ok(noderole_out(c, id, true).expect("exists"))
    })
    .await?;
    Ok(Json(out))
}

async fn commit_noderole(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> ApiResult<Json<NodeRoleOut>> {
    let out = write(&s, move |c| {
        let id = noderole_key(c, &key)?;
        c.commit_noderole(id)?;
        Ok(noderole_out(c, id, true).expect("exists"))
    })
    .await?;
    Ok(Json(out))
}

async fn explain(State(s): State<ApiState>, Path(key): Path<String>) -> ApiResult<Json<Value>> {
    let e: Explanation = read(&s, move |a| {
        let id = noderole_key(a.cluster(), &key)?;
        a.explain(id).map_err(ApiError::from)
    })
    .await?;
    let text = e.to_string();
    let reasons: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.trim_start_matches("  - "))
        .collect();
    Ok(Json(json!({
        "noderole": e.noderole.0,
        "label": e.label,
        "state": e.state,
        "reasons": reasons,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanQuery {
    deployment: Option<String>,
    node: Option<String>,
    /// `current` (nothing committed) or `everything` (the default).
    scope: Option<String>,
}

fn stuck_reason(r: &StuckReason) -> String {
    match r {
        StuckReason::NodeNotAlive(n) => format!("{n} is not alive"),
        StuckReason::NodeNotAvailable(n) => format!("{n} is not available"),
        StuckReason::DeploymentProposed(d) => format!("{d} stays proposed"),
        StuckReason::InError => "in ERROR".into(),
        StuckReason::Proposed => "PROPOSED and not committed by this plan".into(),
        StuckReason::NodeFrozen { by } => format!("its node is frozen by {by} in ERROR"),
        StuckReason::Waits { parent, root } => {
            format!("waits for {parent}, stuck because of {root}")
        }
    }
}

async fn plan(State(s): State<ApiState>, Q(q): Q<PlanQuery>) -> ApiResult<Json<Value>> {
    read(&s, move |a| {
        let c = a.cluster();
        let scope = match (q.deployment, q.node, q.scope.as_deref()) {
            (Some(d), None, None) => PlanScope::Deployment(deployment_key(c, &d)?),
            (None, Some(n), None) => PlanScope::Node(node_key(c, &n)?),
            (None, None, None | Some("everything")) => PlanScope::Everything,
            (None, None, Some("current")) => PlanScope::Current,
            (None, None, Some(other)) => {
                return Err(ApiError::bad_request(
                    "scope",
                    format!("{other:?}: expected current or everything"),
                ));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "scope",
                    "give one of deployment, node or scope",
                ));
            }
        };
        let p: Plan = a.plan(scope);
        let c = a.cluster();
        let runs: Vec<Value> = p
            .runs
            .iter()
            .map(|r| json!({"wave": r.wave, "noderole": r.noderole.0, "label": c.label(r.noderole), "running_now": r.running_now}))
            .collect();
        let stuck: Vec<Value> = p
            .stuck
            .iter()
            .map(|st| json!({"noderole": st.noderole.0, "label": c.label(st.noderole), "reason": stuck_reason(&st.reason)}))
            .collect();
        Ok(Json(json!({ "waves": p.waves, "runs": runs, "stuck": stuck })))
    })
    .await
}

async fn anneal_status(State(s): State<ApiState>) -> ApiResult<(StatusCode, Json<Value>)> {
    let status = s.handle.status().await?;
    let code = match status {
        AnnealStatus::Failed => StatusCode::CONFLICT,
        AnnealStatus::Working | AnnealStatus::Scheduled => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    Ok((code, Json(json!({ "message": status.to_string() }))))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn fallback(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

/// Bearer-token check: readers may GET, operators anything. Every refusal is logged with the
/// route and the reason (never the token).
async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let refuse = |status, error, detail: &str| {
        tracing::info!(method = %req.method(), route = %path, reason = detail, "refused");
        let mut r = ApiError::new(status, error, detail).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
        }
        r
    };
    let role = match presented {
        None => return refuse(StatusCode::UNAUTHORIZED, "unauthorized", "no bearer token"),
        Some(t) => match s.tokens.check(t.trim()) {
            None => return refuse(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token"),
            Some(r) => r,
        },
    };
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    if role == TokenRole::Reader && !reads {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a reader token may only read (GET)",
        );
    }
    next.run(req).await
}

/// The whole API.
pub(crate) fn router(state: ApiState, max_body: usize) -> Router {
    let v2 = Router::new()
        .route("/nodes", get(list_nodes).post(create_node))
        .route(
            "/nodes/{key}",
            get(show_node).put(update_node).delete(delete_node),
        )
        .route("/nodes/{key}/commit", put(commit_node))
        .route("/roles", get(list_roles))
        .route("/roles/{key}", get(show_role))
        .route("/jigs", get(list_jigs))
        .route("/jigs/{name}", get(show_jig))
        .route("/barclamps", post(import_barclamp))
        .route(
            "/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route("/deployments/{key}", get(show_deployment))
        .route("/deployments/{key}/commit", put(commit_deployment))
        .route("/deployments/{key}/propose", put(propose_deployment))
        .route("/node_roles", get(list_noderoles).post(bind))
        .route("/node_roles/{key}", get(show_noderole))
        .route("/node_roles/{key}/data", put(set_noderole_data))
        .route("/node_roles/{key}/retry", put(retry_noderole))
        .route("/node_roles/{key}/commit", put(commit_noderole))
        .route("/node_roles/{key}/explain", get(explain))
        .route("/plan", get(plan))
        .route("/anneal", get(anneal_status))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .nest("/api/v2", v2)
        .route("/health", get(health))
        .fallback(fallback)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_count_everything_and_keep_their_window() {
        let v = page(0..10, Some(8), Some(5)).unwrap();
        assert_eq!(v["items"], json!([8, 9]));
        assert_eq!(v["total"], 10);
        assert_eq!(
            page(0..1, None, Some(0)).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
