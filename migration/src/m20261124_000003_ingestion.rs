//! Quarantined input: every line that could not be loaded, with where it came
//! from and why, so a studio can fix and resend it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000003_ingestion"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("quarantined_lines")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(string("origin"))
                .col(string("record_type"))
                .col(uuid_null("source_file_id"))
                .col(text_null("path"))
                .col(big_integer("line_number"))
                .col(big_integer("byte_offset"))
                .col(string_null("field"))
                .col(text("message"))
                .col(text("excerpt"))
                .col(string_null("user_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_quarantined_lines_workspace")
                        .from("quarantined_lines", "workspace_id")
                        .to("workspaces", "id")
                        .on_delete(ForeignKeyAction::Cascade)
                        .to_owned(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_quarantined_lines_workspace")
                .table("quarantined_lines")
                .col("workspace_id")
                .col("id")
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table("quarantined_lines")
                .if_exists()
                .to_owned(),
        )
        .await
    }
}
