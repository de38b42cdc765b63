//! Bucket sources, the ledger of files seen in them, scan runs and
//! notifications; and the per-file line keys that make loads idempotent.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_foundation::{EVENT_TABLES, workspace_fk};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000004_sources"
    }
}

fn source_fk(table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_source"))
        .from(table.to_owned(), "source_id")
        .to("data_sources", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("data_sources")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(string("name"))
                .col(string("kind"))
                .col(json_binary("config"))
                // Credentials: written, used, never returned or logged.
                .col(json_binary_null("credentials"))
                .col(integer("scan_interval_minutes"))
                .col(boolean("enabled"))
                .col(boolean("reload_overwritten"))
                .col(string("status"))
                .col(text_null("last_error"))
                .col(timestamp_with_time_zone_null("last_scan_at"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut workspace_fk("data_sources"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("source_files")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid("source_id"))
                .col(text("path"))
                .col(string("record_type"))
                .col(string("format"))
                .col(big_integer("size"))
                .col(string_null("etag"))
                .col(timestamp_with_time_zone_null("last_modified"))
                .col(string("status"))
                .col(big_integer("rows_loaded"))
                .col(big_integer("rows_rejected"))
                .col(big_integer("checkpoint_line"))
                .col(text_null("error"))
                .col(timestamp_with_time_zone("discovered_at"))
                .col(timestamp_with_time_zone_null("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .foreign_key(&mut workspace_fk("source_files"))
                .foreign_key(&mut source_fk("source_files"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_source_files_path")
                .table("source_files")
                .col("workspace_id")
                .col("source_id")
                .col("path")
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("ingestion_runs")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid("source_id"))
                .col(string("status"))
                .col(integer("files_found"))
                .col(integer("files_queued"))
                .col(integer("files_skipped"))
                .col(json_binary("skipped_paths"))
                .col(text_null("error"))
                .col(timestamp_with_time_zone("queued_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .foreign_key(&mut workspace_fk("ingestion_runs"))
                .foreign_key(&mut source_fk("ingestion_runs"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("notifications")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid_null("source_id"))
                .col(string("kind"))
                .col(text_null("path"))
                .col(text("message"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut workspace_fk("notifications"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_notifications_workspace")
                .table("notifications")
                .col("workspace_id")
                .col("id")
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // A file's line is loaded (or quarantined) once, whatever retries happen.
        for table in EVENT_TABLES.iter().chain(["quarantined_lines"].iter()) {
            m.create_index(
                Index::create()
                    .name(format!("ux_{table}_file_line"))
                    .table(*table)
                    .col("workspace_id")
                    .col("source_file_id")
                    .col("line_number")
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in EVENT_TABLES.iter().chain(["quarantined_lines"].iter()) {
            m.drop_index(
                Index::drop()
                    .name(format!("ux_{table}_file_line"))
                    .table(*table)
                    .to_owned(),
            )
            .await?;
        }
        for t in [
            "notifications",
            "ingestion_runs",
            "source_files",
            "data_sources",
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
