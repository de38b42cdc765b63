//! The job records become the outbox: a record is written in the transaction
//! of the state change that needs it, and `dispatched_at` says when it was
//! last handed to the queue (NULL: not yet). A running job proves it is alive
//! with `heartbeat_at`; a stale one is taken up again (see `engine::jobs`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000011_job_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in ["dispatched_at", "heartbeat_at"] {
            m.alter_table(
                Table::alter()
                    .table("job_records")
                    .add_column(timestamp_with_time_zone_null(column))
                    .to_owned(),
            )
            .await?;
        }
        // Records written before the outbox were pushed when they were written.
        m.get_connection()
            .execute_unprepared(
                "UPDATE job_records SET dispatched_at = enqueued_at WHERE status = 'queued'",
            )
            .await?;
        m.create_index(
            Index::create()
                .name("job_records_status_dispatched")
                .table("job_records")
                .col("status")
                .col("dispatched_at")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("job_records_status_dispatched")
                .table("job_records")
                .to_owned(),
        )
        .await?;
        for column in ["heartbeat_at", "dispatched_at"] {
            m.alter_table(
                Table::alter()
                    .table("job_records")
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
