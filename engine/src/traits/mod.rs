//! Traits: per-entity computed values defined over the model catalog.

pub mod compiler;
pub mod definition;
mod expr_sql;
pub mod incremental;
pub mod jobs;
mod preview;
pub mod runs;
pub mod sandbox;
pub mod scope;
pub mod service;
mod staleness;
mod stored_types;
mod value_refs;
mod values;

pub use runs::{RunStatus, Trigger};
pub use service::TraitInput;
pub use values::TraitValue;
