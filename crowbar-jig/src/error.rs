//! The one error type of the crate: why a jig run failed, and whether a retry can help.

use std::path::PathBuf;

/// Why a jig run failed. Every variant says whether retrying can help
/// ([`JigError::retryable`]) and carries what the run logged so far ([`JigError::runlog`]).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JigError {
    /// The jig reported a failure of its own.
    #[error("{message}")]
    Failed {
        /// What went wrong.
        message: String,
        /// Whether running again can help.
        retryable: bool,
        /// What the run logged.
        runlog: String,
    },
    /// A script exited with a non-zero status (or was killed by a signal: `status` is `None`).
    /// Exit status 75 (`EX_TEMPFAIL`) means "try again later" and is retryable.
    #[error("script {script} failed with {}", status.map_or_else(|| "a signal".to_owned(), |s| format!("exit status {s}")))]
    Script {
        /// The script's file name.
        script: String,
        /// Its exit status.
        status: Option<i32>,
        /// What the run logged.
        runlog: String,
    },
    /// The run took longer than its time limit and was killed.
    #[error("timed out after {after_ms} ms")]
    Timeout {
        /// The limit, in milliseconds.
        after_ms: u64,
        /// What the run logged before it was killed.
        runlog: String,
    },
    /// ssh or scp could not reach the node (exit status 255).
    #[error("cannot reach {target} over ssh: {message}")]
    Unreachable {
        /// `user@address`.
        target: String,
        /// What ssh said.
        message: String,
        /// What the run logged.
        runlog: String,
    },
    /// A file operation on the run's working directory failed.
    #[error("{operation} {}: {message}", path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
    /// A program could not be started.
    #[error("cannot start {program}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// The system's message.
        message: String,
    },
    /// A value that would reach a command line or a path is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// `ssh user`, `remote directory`, `script name`...
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The role has no scripts to run.
    #[error("role {role} has no scripts in {}", dir.display())]
    NoScripts {
        /// The role.
        role: String,
        /// Where they were looked for.
        dir: PathBuf,
    },
    /// No jig of this name is registered.
    #[error("no jig named {name:?} is registered")]
    UnknownJig {
        /// The name the role asked for.
        name: String,
    },
    /// The run's input could not be assembled.
    #[error("cannot stage the run: {message}")]
    Staging {
        /// Why.
        message: String,
    },
}

impl JigError {
    /// A failure reported by a jig.
    pub fn failed(message: impl Into<String>, retryable: bool) -> JigError {
        JigError::Failed {
            message: message.into(),
            retryable,
            runlog: String::new(),
        }
    }

    /// Whether running the jig again can help: transient failures (timeouts, unreachable
    /// nodes, I/O, `EX_TEMPFAIL`, jigs that say so) are; bad input and missing jigs are not.
    pub fn retryable(&self) -> bool {
        match self {
            JigError::Failed { retryable, .. } => *retryable,
            JigError::Script { status, .. } => *status == Some(75),
            JigError::Timeout { .. } | JigError::Unreachable { .. } | JigError::Io { .. } => true,
            JigError::Spawn { .. }
            | JigError::Invalid { .. }
            | JigError::NoScripts { .. }
            | JigError::UnknownJig { .. }
            | JigError::Staging { .. } => false,
        }
    }

    /// What the run logged before it failed (empty when nothing ran).
    pub fn runlog(&self) -> &str {
        match self {
            JigError::Failed { runlog, .. }
            | JigError::Script { runlog, .. }
            | JigError::Timeout { runlog, .. }
            | JigError::Unreachable { runlog, .. } => runlog,
            _ => "",
        }
    }
}
