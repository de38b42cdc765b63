//! The Traitforge server: GraphQL and REST over `engine`, plus the CLI.

pub mod auth;
pub mod cli;
pub mod console;
pub mod demo;
pub mod errors;
pub mod graphql;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod rest;
pub mod server;
pub mod survey_page;
