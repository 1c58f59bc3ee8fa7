//! The annealing agent: one process that holds the cluster, anneals it, persists it, and
//! serves the Ops API (`/api/v2`).
//!
//! [`Agent::start`] opens the store, recovers what a crash left behind, imports the configured
//! barclamps, starts the annealer's driver and the HTTP listeners, and hands back a running
//! agent; [`Agent::shutdown`] stops taking requests, lets runs in flight finish (up to the
//! configured grace), persists and stops. `examples/crowbar-agent.rs` is the thin main around
//! it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use crowbar::agent::{Agent, AgentConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let mut config = AgentConfig::for_dir(dir.path()); // memory store, 127.0.0.1:0
//! config.listen = vec!["127.0.0.1:0".parse()?];
//! let agent = Agent::start(config).await?;
//! let addr = agent.local_addrs()[0];
//! assert!(addr.port() != 0);
//! // The operator token is in dir/tokens.secret (mode 0600); only its hash is kept.
//! assert!(dir.path().join("tokens.secret").exists());
//! agent.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Every route but `/health` needs `Authorization: Bearer <token>`; a reader token may only
//! GET. One task owns the model (the driver): handlers send it commands and a mutation is
//! answered only once it is in the store.

mod api;
mod auth;
mod barclamp;
mod config;

use std::net::SocketAddr;
use std::sync::Arc;

use crowbar_anneal::{AnnealError, AnnealHandle, Annealer, AnnealerConfig, Driver, DriverConfig};
use crowbar_core::{Cluster, CoreError, MemStore, SqliteStore, Store, StoreError, SystemClock};
use crowbar_jig::{JigRegistry, ScriptConfig, ScriptJig};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use auth::{TokenError, TokenRole, Tokens};
pub use barclamp::{Barclamp, BarclampError, JigDecl};
pub use config::{AgentConfig, ConfigError, StoreConfig, TlsConfig};

/// Why the agent could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// What the store holds is not a cluster.
    #[error("store: {0}")]
    Model(#[from] CoreError),
    /// The annealer refused its settings or stopped on an error.
    #[error("annealer: {0}")]
    Anneal(#[from] AnnealError),
    /// The tokens could not be loaded or made.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// A barclamp file was refused.
    #[error("barclamp {path}: {source}")]
    Barclamp {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: BarclampError,
    },
    /// A listen address could not be bound, or a file read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A running agent.
pub struct Agent {
    handle: AnnealHandle,
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    servers: JoinSet<std::io::Result<()>>,
    tokens_made: bool,
}

/// The jigs the agent offers: the built-ins, and the script jig when a scripts directory is
/// configured.
fn jigs(config: &AgentConfig) -> Result<JigRegistry, AgentError> {
    let mut jigs = JigRegistry::with_builtins();
    if let Some(dir) = &config.scripts_dir {
        let jig =
            ScriptJig::new(ScriptConfig::new(dir.clone())).map_err(|e| ConfigError::Invalid {
                key: "jigs.scripts_dir".into(),
                reason: e.to_string(),
            })?;
        jigs.register("script", Arc::new(jig));
    }
    Ok(jigs)
}

impl Agent {
    /// Starts the agent: store, recovery, barclamps, annealer, API listeners.
    pub async fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        if config.tls.is_some() {
            return Err(ConfigError::Invalid {
                key: "api.tls_cert".into(),
                reason: "TLS is not built into this agent yet: put it behind a TLS proxy".into(),
            }
            .into());
        }
        let store: Arc<dyn Store> = match &config.store {
            StoreConfig::Sqlite { path } => Arc::new(SqliteStore::open(path)?),
            StoreConfig::Memory => Arc::new(MemStore::new()),
        };
        let (tokens, tokens_made) =
            Tokens::load_or_create(&config.token_file, &config.token_secret_file)?;
        let snapshot = store.load().await?;
        let mut cluster = if snapshot.revision == 0 {
            Cluster::with_clock(Arc::new(SystemClock))
        } else {
            Cluster::from_snapshot(snapshot, Arc::new(SystemClock))?
        };
        let jigs = jigs(&config)?;
        let jig_names: Vec<String> = jigs.names().map(str::to_owned).collect();
        for path in &config.barclamps {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| AgentError::Io {
                what: format!("reading barclamp {shown}"),
                source,
            })?;
            let b = Barclamp::parse(&text, &shown).map_err(|source| AgentError::Barclamp {
                path: shown.clone(),
                source,
            })?;
            b.check_jigs(&jig_names)
                .map_err(|source| AgentError::Barclamp {
                    path: shown.clone(),
                    source,
                })?;
            let created = b.apply(&mut cluster)?;
            tracing::info!(barclamp = %shown, roles = created.len(), "imported");
        }
        let mut annealer_config = AnnealerConfig::with_max_running(config.max_running);
        annealer_config.default_timeout_ms = config.default_timeout.map(|d| d.as_millis() as u64);
        let annealer = Annealer::new(cluster, annealer_config.clone())?;
        let driver_config = DriverConfig {
            annealer: annealer_config,
            stop_grace: config.stop_grace,
            ..DriverConfig::default()
        };
        let handle = Driver::spawn(annealer, store, jigs, driver_config);
        let jig_list = jig_names
            .iter()
            .map(|name| api::JigOut {
                name: name.clone(),
                active: true,
            })
            .collect();
        let state = api::ApiState {
            handle: handle.clone(),
            tokens: Arc::new(tokens),
            jigs: Arc::new(jig_list),
        };
        let app = api::router(state, config.max_body_bytes).layer(
            tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                config.request_timeout,
            ),
        );
        let (stop, stopped) = watch::channel(false);
        let mut servers = JoinSet::new();
        let mut addrs = Vec::new();
        for addr in &config.listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AgentError::Io {
                    what: format!("listening on {addr} (api.listen)"),
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| AgentError::Io {
                what: format!("listening on {addr}"),
                source,
            })?;
            addrs.push(local);
            let mut stopped = stopped.clone();
            let app = app.clone();
            servers.spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            });
            tracing::info!(addr = %local, "API listening");
        }
        Ok(Agent {
            handle,
            addrs,
            stop,
            servers,
            tokens_made,
        })
    }

    /// The addresses the API listens on (with the ports picked for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Whether this start made the tokens (written to the secret file).
    pub fn tokens_made(&self) -> bool {
        self.tokens_made
    }

    /// The annealer's handle, for embedding programs.
    pub fn handle(&self) -> &AnnealHandle {
        &self.handle
    }

    /// Stops taking requests, lets runs in flight finish (up to the grace), persists, stops.
    pub async fn shutdown(mut self) -> Result<(), AgentError> {
        let _ = self.stop.send(true);
        while let Some(r) = self.servers.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "API listener ended with an error");
            }
        }
        self.handle.stop().await?;
        Ok(())
    }
}

/// The demo barclamp (`barclamps/demo.yml`): a four-role stack on the test jig.
pub const DEMO_BARCLAMP: &str = include_str!("../../barclamps/demo.yml");

/// Seeds a demo: imports the demo barclamp, creates `nodes` alive nodes
/// (`demo-NNNN.cr0wbar.com`) with the demo stack bound, and commits them. Nodes that exist
/// already are left alone, so a restarted agent seeds nothing twice. Returns how many
/// noderoles the cluster holds afterwards; answered once the change is in the store.
pub async fn seed_demo(handle: &AnnealHandle, nodes: usize) -> Result<usize, AgentError> {
    let demo = Barclamp::parse(DEMO_BARCLAMP, "barclamps/demo.yml").map_err(|source| {
        AgentError::Barclamp {
            path: "barclamps/demo.yml".into(),
            source,
        }
    })?;
    let (count, _) = handle
        .update_durable(move |c| {
            demo.apply(c)?;
            for i in 1..=nodes {
                let name = format!("demo-{i:04}.cr0wbar.com");
                if c.find_node(&name).is_some() {
                    continue;
                }
                let id = c.create_node(crowbar_core::NodeSpec::new(name).alive(true))?;
                c.bind_by_name("demo-webapp", &format!("demo-{i:04}"), None)?;
                c.commit_node(id)?;
            }
            Ok(c.noderole_count())
        })
        .await?;
    Ok(count)
}
