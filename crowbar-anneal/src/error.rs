//! The one error type of the crate.

use crowbar_core::{CoreError, NodeRoleId, StoreError};

/// What can go wrong in the annealer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnnealError {
    /// The model refused an operation.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The store failed; `retryable` says whether trying again can help.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// No such noderole.
    #[error("unknown {0}")]
    UnknownNodeRole(NodeRoleId),
    /// The driver has stopped (or its task ended) and can take no more requests.
    #[error("the annealer has stopped")]
    Stopped,
    /// The driver stopped on an error (reported to [`AnnealHandle::stop`](crate::AnnealHandle::stop)).
    #[error("the annealer stopped on an error: {message}")]
    Driver {
        /// The error.
        message: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {what}")]
    Config {
        /// What is wrong.
        what: &'static str,
    },
}

impl AnnealError {
    /// Whether retrying the failed call can help.
    pub fn retryable(&self) -> bool {
        match self {
            AnnealError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}
