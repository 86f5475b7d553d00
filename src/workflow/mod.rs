//! The declarative, versioned workflow engine: definitions are data (TOML files), guards and
//! effects are Rust code registered under names, and the core is pure (the clock is a parameter).

pub mod common;
pub mod compile;
pub mod definition;
pub mod describe;
pub mod diagram;
pub mod engine;
pub mod kinds;
pub mod model;
pub mod registry;
pub mod runtime;
#[cfg(test)]
mod validation_tests;

pub use compile::{compile, content_hash, DefinitionError};
pub use engine::{Action, EventChoice, Outcome, Rejection, RejectionKind, StepChoice};
pub use model::{Actor, CompiledWorkflow, Deputyship, EventInput, Grant, Instance, Now};
pub use registry::{Registry, Unmet, Vocabulary, WorkflowContext};
pub use runtime::{
    load_dir, EventRequest, FireError, Fired, Kinds, StoredInstance, Waiting, WorkflowRuntime,
    WorkflowSet,
};

#[cfg(test)]
mod engine_tests;
