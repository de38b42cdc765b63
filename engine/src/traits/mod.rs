//! Traits: per-entity computed values defined over the model catalog.

pub mod compiler;
pub mod definition;
pub mod sandbox;
