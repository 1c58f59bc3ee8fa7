//! The `Jig` trait, what a jig gets and gives back, and the built-in jigs.
//!
//! A jig does the work of a noderole on its node. Crowbar shipped `noop`, `test` and `script`
//! (and Chef and Puppet jigs); this crate has the first three and the trait integrators
//! implement for their own. The annealer (`crowbar-anneal`) finds jigs by the name a role gives
//! in a [`JigRegistry`], builds a [`RunContext`] for each run and applies the [`Outcome`].
//!
//! # Writing a jig
//!
//! One method is required. It gets the noderole, its node and the layered data, and returns
//! wall data to store or a [`JigError`] that says whether a retry can help:
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use crowbar_core::{Fqdn, NodeId, NodeRoleId};
//! use crowbar_jig::{Jig, JigError, JigOutput, JigRegistry, NodeInfo, Outcome, RunContext};
//! use serde_json::json;
//!
//! /// Pretends to configure NTP: reports the server it was given.
//! struct Ntp;
//!
//! #[async_trait]
//! impl Jig for Ntp {
//!     async fn run(&self, cx: RunContext) -> Outcome {
//!         let Some(server) = cx.data["ntp"]["server"].as_str() else {
//!             return Err(JigError::failed("no ntp.server in the data", false));
//!         };
//!         Ok(JigOutput::with_wall(json!({"ntp": {"synced_to": server}}))
//!             .runlog(format!("{} now syncs to {server}\n", cx.node.name)))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut jigs = JigRegistry::with_builtins();
//! jigs.register("ntp", Arc::new(Ntp));
//!
//! let node = NodeInfo::new(NodeId(1), Fqdn::new("n1.example.com")?);
//! let cx = RunContext::new(NodeRoleId(7), "ntp-client", node.clone())
//!     .with_data(json!({"ntp": {"server": "pool.ntp.org"}}));
//! let out = jigs.get("ntp").unwrap().run(cx).await?;
//! assert_eq!(out.wall, Some(json!({"ntp": {"synced_to": "pool.ntp.org"}})));
//!
//! let err = jigs.get("ntp").unwrap().run(RunContext::new(NodeRoleId(7), "ntp-client", node)).await;
//! assert!(matches!(err, Err(ref e) if !e.retryable()));
//! # Ok(()) }
//! ```
//!
//! # The script jig
//!
//! [`ScriptJig`] runs `<scripts_dir>/<role>/*.sh` in order in a fresh directory holding the
//! data as `attrs/<path>/attr` files; scripts answer by writing `attrs/<path>/wall` files:
//!
//! ```
//! use std::os::unix::fs::PermissionsExt;
//! use crowbar_core::{Fqdn, NodeId, NodeRoleId};
//! use crowbar_jig::{Jig, NodeInfo, RunContext, ScriptConfig, ScriptJig};
//! use serde_json::json;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let role_dir = dir.path().join("scripts/ntp-client");
//! std::fs::create_dir_all(&role_dir)?;
//! let script = role_dir.join("01-configure.sh");
//! std::fs::write(&script, "#!/bin/sh\nset -e\nmkdir -p attrs/ntp/synced_to\n\
//!     cp attrs/ntp/server/attr attrs/ntp/synced_to/wall\necho configured\n")?;
//! std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
//!
//! let mut config = ScriptConfig::new(dir.path().join("scripts"));
//! config.work_dir = dir.path().to_owned();
//! let jig = ScriptJig::new(config)?;
//! let node = NodeInfo::new(NodeId(1), Fqdn::new("n1.example.com")?);
//! let cx = RunContext::new(NodeRoleId(7), "ntp-client", node)
//!     .with_data(json!({"ntp": {"server": "pool.ntp.org"}}));
//! let out = jig.run(cx).await?;
//! assert_eq!(out.wall, Some(json!({"ntp": {"synced_to": "pool.ntp.org"}})));
//! assert!(out.runlog.contains("configured"));
//! # Ok(()) }
//! ```
//!
//! To run the scripts on the nodes instead, set [`ScriptConfig::ssh`]: a node with an address
//! is then reached with `ssh` and `scp` as a user with a key, and with
//! [`SshConfig::known_hosts`] only the host keys listed there are trusted:
//!
//! ```
//! use crowbar_jig::{JigError, ScriptConfig, ScriptJig, SshConfig};
//!
//! let mut ssh = SshConfig::new("crowbar", "/etc/crowbar/id_ed25519");
//! ssh.known_hosts = Some("/etc/crowbar/known_hosts".into());
//! let jig = ScriptJig::new(ScriptConfig {
//!     ssh: Some(ssh),
//!     ..ScriptConfig::new("/etc/crowbar/scripts")
//! })?;
//! assert_eq!(jig.config().ssh.as_ref().map(|s| s.port), Some(22));
//!
//! // A path ssh would split or expand is refused up front, not at the first run.
//! let mut bad = SshConfig::new("crowbar", "/etc/crowbar/id_ed25519");
//! bad.known_hosts = Some("~/.ssh/known_hosts".into());
//! let err = ScriptJig::new(ScriptConfig { ssh: Some(bad), ..ScriptConfig::new("/s") });
//! assert!(matches!(err, Err(JigError::Invalid { what: "known_hosts path", .. })));
//! # Ok::<(), JigError>(())
//! ```
#![deny(missing_docs)]

mod attrs;
mod builtin;
mod context;
mod error;
mod jig;
mod script;

pub use builtin::{NoopJig, TestJig};
pub use context::{JigOutput, NodeInfo, NodeView, Outcome, RunContext, RunView};
pub use error::JigError;
pub use jig::{CancelReason, Jig, JigRegistry};
pub use script::{ScriptConfig, ScriptJig, SshConfig};
