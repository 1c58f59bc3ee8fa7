//! The annealer: drives the noderole graph to stability.
//!
//! A pure, synchronous scheduling core decides what may run; an async driver runs jigs under the
//! per-node and global caps and persists every batch of state changes through a store.
#![deny(missing_docs)]
