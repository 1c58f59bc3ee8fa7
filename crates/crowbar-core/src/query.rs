//! Read-only queries over the model that the layers above need (the annealer's `explain`, for
//! one).

#[allow(unused_imports)]
use crate::Cluster;
