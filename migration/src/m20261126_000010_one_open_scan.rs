//! At most one open (queued or running) scan per source, so a scan asked for
//! while another is waiting or listing joins it instead of racing it.
//!
//! sea-query has no partial indexes; the SQL below is the same on PostgreSQL
//! and SQLite.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000010_one_open_scan"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        // Earlier versions could leave several open runs of one source; keep the newest.
        db.execute_unprepared(
            "UPDATE ingestion_runs SET status = 'failed', \
                 error = 'superseded by a later scan of the source', finished_at = queued_at \
             WHERE status IN ('queued', 'running') AND EXISTS ( \
                 SELECT 1 FROM ingestion_runs later \
                 WHERE later.source_id = ingestion_runs.source_id \
                   AND later.status IN ('queued', 'running') AND later.id > ingestion_runs.id)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ingestion_runs_one_open_per_source \
             ON ingestion_runs (source_id) WHERE status IN ('queued', 'running')",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ingestion_runs_one_open_per_source")
                .table("ingestion_runs")
                .to_owned(),
        )
        .await
    }
}
