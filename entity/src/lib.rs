//! SeaORM entities: one module per table, data only (rules live in `engine`).

pub mod accounts;
pub mod actions;
pub mod api_keys;
pub mod data_sources;
pub mod ingestion_runs;
pub mod items;
pub mod job_records;
pub mod kpis;
pub mod level_ups;
pub mod logins;
pub mod model_columns;
pub mod models;
pub mod notifications;
pub mod players;
pub mod purchases;
pub mod quarantined_lines;
pub mod relationships;
pub mod social_dynamics;
pub mod source_files;
pub mod trait_dependencies;
pub mod trait_runs;
pub mod trait_values;
pub mod trait_versions;
pub mod traits;
pub mod virtual_purchases;
pub mod workspaces;
