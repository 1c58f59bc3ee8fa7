//! The agent's configuration: TOML parsed into a raw shape, then validated into an
//! [`AgentConfig`] that cannot be wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration the agent refuses, naming the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not TOML of the expected shape (an unknown key, a wrong type).
    #[error("{message}")]
    Syntax {
        /// What the TOML parser said, with the line and column.
        message: String,
    },
    /// A key has a value the agent cannot work with.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, dotted (`anneal.max_running`).
        key: String,
        /// Why it is refused.
        reason: String,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// Where the agent keeps the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreConfig {
    /// A SQLite file (created if missing): the embedded default.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// Memory only: everything is lost when the agent stops. For demos and tests.
    Memory,
}

/// TLS for the API: a PEM certificate chain and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The validated configuration of a `crowbar-agent`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentConfig {
    /// Where the cluster is kept.
    pub store: StoreConfig,
    /// Where the Ops API listens (port 0 picks a free port).
    pub listen: Vec<SocketAddr>,
    /// The file holding the API tokens (hashes only), created with two fresh tokens on first
    /// start, mode 0600.
    pub token_file: PathBuf,
    /// Where the freshly generated tokens are written once, mode 0600, for the operator to pick
    /// up (never logged).
    pub token_secret_file: PathBuf,
    /// Optional TLS for the API.
    pub tls: Option<TlsConfig>,
    /// The most jig runs at once, over all nodes.
    pub max_running: usize,
    /// The TRANSITION time limit for roles and jigs that set none.
    pub default_timeout: Option<Duration>,
    /// On SIGTERM, how long runs in flight may take to finish.
    pub stop_grace: Duration,
    /// Barclamp files (YAML) imported at start, in order.
    pub barclamps: Vec<PathBuf>,
    /// Directory of the script jig's role scripts (`<dir>/<role>/*.sh`); no script jig if unset.
    pub scripts_dir: Option<PathBuf>,
    /// The largest request body accepted (413 past it).
    pub max_body_bytes: usize,
    /// A request that takes longer than this is answered 408.
    pub request_timeout: Duration,
    /// The most event streams open at once (503 past it).
    pub max_event_streams: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    anneal: RawAnneal,
    #[serde(default)]
    jigs: RawJigs,
    #[serde(default)]
    barclamps: Vec<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    kind: Option<String>,
    path: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApi {
    listen: Option<Vec<String>>,
    token_file: Option<PathBuf>,
    token_secret_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_body_bytes: Option<i64>,
    request_timeout_ms: Option<i64>,
    max_event_streams: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAnneal {
    max_running: Option<i64>,
    default_timeout_ms: Option<i64>,
    stop_grace_ms: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawJigs {
    scripts_dir: Option<PathBuf>,
}

fn positive(key: &str, v: Option<i64>, default: i64, max: i64) -> Result<i64, ConfigError> {
    let v = v.unwrap_or(default);
    if v < 1 || v > max {
        return Err(invalid(
            key,
            format!("must be between 1 and {max}, not {v}"),
        ));
    }
    Ok(v)
}

impl AgentConfig {
    /// A configuration for tests and demos: memory store, loopback on a free port, token files
    /// in `dir`.
    pub fn for_dir(dir: &Path) -> AgentConfig {
        AgentConfig::from_toml("[store]\nkind = \"memory\"", dir).expect("the defaults are valid")
    }

    /// Parses and checks a TOML configuration; relative paths are taken from `base` (the
    /// directory of the config file).
    pub fn from_toml(text: &str, base: &Path) -> Result<AgentConfig, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            message: e.to_string().trim_end().to_owned(),
        })?;
        let at = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let store = match raw.store.kind.as_deref().unwrap_or("sqlite") {
            "sqlite" => StoreConfig::Sqlite {
                path: at(raw.store.path.unwrap_or_else(|| "crowbar.sqlite".into())),
            },
            "memory" => {
                if raw.store.path.is_some() {
                    return Err(invalid("store.path", "a memory store has no path"));
                }
                StoreConfig::Memory
            }
            other => {
                return Err(invalid(
                    "store.kind",
                    format!("{other:?} is not a store: expected \"sqlite\" or \"memory\""),
                ));
            }
        };
        let listen = raw
            .api
            .listen
            .unwrap_or_else(|| vec!["127.0.0.1:3000".into()]);
        if listen.is_empty() {
            return Err(invalid("api.listen", "give at least one address"));
        }
        let listen = listen
            .iter()
            .map(|a| {
                a.parse::<SocketAddr>()
                    .map_err(|_| invalid("api.listen", format!("{a:?} is not an address:port")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match (raw.api.tls_cert, raw.api.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert: at(cert),
                key: at(key),
            }),
            (Some(_), None) => return Err(invalid("api.tls_key", "tls_cert needs tls_key")),
            (None, Some(_)) => return Err(invalid("api.tls_cert", "tls_key needs tls_cert")),
        };
        let max_running = positive("anneal.max_running", raw.anneal.max_running, 10, 100_000)?;
        let default_timeout = match raw.anneal.default_timeout_ms {
            None => None,
            Some(ms) => Some(Duration::from_millis(positive(
                "anneal.default_timeout_ms",
                Some(ms),
                1,
                i64::MAX,
            )? as u64)),
        };
        let stop_grace = match raw.anneal.stop_grace_ms {
            Some(ms) if ms < 0 => {
                return Err(invalid("anneal.stop_grace_ms", "must not be negative"));
            }
            Some(ms) => Duration::from_millis(ms as u64),
            None => Duration::from_secs(30),
        };
        let max_body_bytes = positive(
            "api.max_body_bytes",
            raw.api.max_body_bytes,
            1 << 20,
            1 << 30,
        )? as usize;
        let request_timeout = Duration::from_millis(positive(
            "api.request_timeout_ms",
            raw.api.request_timeout_ms,
            30_000,
            3_600_000,
        )? as u64);
        let max_event_streams = positive(
            "api.max_event_streams",
            raw.api.max_event_streams,
            1024,
            1_000_000,
        )? as usize;
        let scripts_dir = raw.jigs.scripts_dir.map(at);
        if let Some(d) = &scripts_dir
            && !d.is_dir()
        {
            return Err(invalid(
                "jigs.scripts_dir",
                format!("{} is not a directory", d.display()),
            ));
        }
        let barclamps: Vec<PathBuf> = raw.barclamps.into_iter().map(at).collect();
        for (i, b) in barclamps.iter().enumerate() {
            if !b.is_file() {
                return Err(invalid(
                    &format!("barclamps[{i}]"),
                    format!("{} is not a file", b.display()),
                ));
            }
        }
        Ok(AgentConfig {
            store,
            listen,
            token_file: at(raw.api.token_file.unwrap_or_else(|| "tokens.toml".into())),
            token_secret_file: at(raw
                .api
                .token_secret_file
                .unwrap_or_else(|| "tokens.secret".into())),
            tls,
            max_running: max_running as usize,
            default_timeout,
            stop_grace,
            barclamps,
            scripts_dir,
            max_body_bytes,
            request_timeout,
            max_event_streams,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        AgentConfig::from_toml(text, Path::new("/tmp"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_are_sqlite_on_loopback() {
        let c = AgentConfig::from_toml("", Path::new("/srv/crowbar")).unwrap();
        assert_eq!(
            c.store,
            StoreConfig::Sqlite {
                path: "/srv/crowbar/crowbar.sqlite".into()
            }
        );
        assert_eq!(c.listen, ["127.0.0.1:3000".parse().unwrap()]);
        assert_eq!(c.token_file, Path::new("/srv/crowbar/tokens.toml"));
        assert_eq!(c.max_running, 10);
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(
            err("[store]\nkind = \"redis\""),
            "store.kind: \"redis\" is not a store: expected \"sqlite\" or \"memory\""
        );
        assert_eq!(
            err("[anneal]\nmax_running = 0"),
            "anneal.max_running: must be between 1 and 100000, not 0"
        );
        assert_eq!(
            err("[api]\nlisten = [\"localhost\"]"),
            "api.listen: \"localhost\" is not an address:port"
        );
        assert_eq!(
            err("[api]\ntls_cert = \"c.pem\""),
            "api.tls_key: tls_cert needs tls_key"
        );
        assert_eq!(
            err("barclamps = [\"/nonexistent.yml\"]"),
            "barclamps[0]: /nonexistent.yml is not a file"
        );
        let unknown = err("[anneal]\nmax_runing = 3");
        assert!(unknown.contains("unknown field `max_runing`"), "{unknown}");
        assert!(unknown.contains("line 2"), "{unknown}");
    }
}
