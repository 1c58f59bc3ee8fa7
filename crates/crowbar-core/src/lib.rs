//! The Crowbar domain model.
#![deny(missing_docs)]
