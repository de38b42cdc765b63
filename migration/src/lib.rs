//! Schema migrations, portable across PostgreSQL and SQLite (sea-query DDL only).

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_foundation;
mod m20261124_000002_trait_engine;
mod m20261124_000003_ingestion;
mod m20261124_000004_sources;
mod m20261124_000005_playfab;
mod m20261126_000006_surveys;
mod m20261126_000007_trait_staleness;
mod m20261126_000008_notification_webhooks;
mod m20261126_000009_segments;
mod m20261126_000010_one_open_scan;
mod m20261201_000011_job_outbox;
mod m20261201_000012_typed_trait_values;
mod m20261201_000013_custom_models;
mod m20261201_000014_console_sessions;
mod m20261201_000015_segment_changes;
mod m20261205_000016_incremental;
mod m20261206_000017_trait_values_fillfactor;
mod m20261206_000018_persona_space;
mod m20261206_000019_touched_players_once;
mod m20261206_000020_survey_science;
mod m20261206_000021_stable_personas;
mod m20261206_000022_predictions;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_foundation::Migration),
            Box::new(m20261124_000002_trait_engine::Migration),
            Box::new(m20261124_000003_ingestion::Migration),
            Box::new(m20261124_000004_sources::Migration),
            Box::new(m20261124_000005_playfab::Migration),
            Box::new(m20261126_000006_surveys::Migration),
            Box::new(m20261126_000007_trait_staleness::Migration),
            Box::new(m20261126_000008_notification_webhooks::Migration),
            Box::new(m20261126_000009_segments::Migration),
            Box::new(m20261126_000010_one_open_scan::Migration),
            Box::new(m20261201_000011_job_outbox::Migration),
            Box::new(m20261201_000012_typed_trait_values::Migration),
            Box::new(m20261201_000013_custom_models::Migration),
            Box::new(m20261201_000014_console_sessions::Migration),
            Box::new(m20261201_000015_segment_changes::Migration),
            Box::new(m20261205_000016_incremental::Migration),
            Box::new(m20261206_000017_trait_values_fillfactor::Migration),
            Box::new(m20261206_000018_persona_space::Migration),
            Box::new(m20261206_000019_touched_players_once::Migration),
            Box::new(m20261206_000020_survey_science::Migration),
            Box::new(m20261206_000021_stable_personas::Migration),
            Box::new(m20261206_000022_predictions::Migration),
        ]
    }
}
