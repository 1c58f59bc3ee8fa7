//! The `Jig` trait and the built-in jigs.
//!
//! A jig is what actually does the work of a noderole on its node: Crowbar shipped `noop`, `test`,
//! `script` and Chef-based jigs. This crate defines the trait integrators implement and the
//! built-in jigs.
#![deny(missing_docs)]
