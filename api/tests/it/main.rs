//! API integration tests (one binary): real HTTP against the real server.

mod auth;
mod bucket_sources;
mod catalog;
mod cli;
mod crash;
mod erasure;
mod faults;
mod fixtures;
mod graphql_limits;
mod ingest;
mod jobs;
mod keys;
mod migrations;
mod notification_webhooks;
mod personas;
mod security;
mod segments;
mod sources;
mod support;
mod survey;
mod survey_browser;
mod tenancy;
mod trait_staleness;
mod trait_values;
mod traits_api;
mod transport;
