//! Context kinds: each binds a typed context to its registry of guards and step providers.

pub mod generic;
pub mod subcontract;
pub mod workload;
