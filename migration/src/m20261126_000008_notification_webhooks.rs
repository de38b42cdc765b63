//! An optional webhook per workspace that notifications are POSTed to, and
//! each notification's delivery state.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000008_notification_webhooks"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("workspaces")
                .add_column(text_null("notification_webhook_url"))
                .to_owned(),
        )
        .await?;
        // SQLite adds one column per ALTER TABLE.
        for column in [
            // null: no webhook when it was raised; else pending, delivered or failed.
            string_null("delivery_status"),
            integer("delivery_attempts").default(0).to_owned(),
            text_null("delivery_error"),
            timestamp_with_time_zone_null("delivered_at"),
        ] {
            m.alter_table(
                Table::alter()
                    .table("notifications")
                    .add_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            "delivery_status",
            "delivery_attempts",
            "delivery_error",
            "delivered_at",
        ] {
            m.alter_table(
                Table::alter()
                    .table("notifications")
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table("workspaces")
                .drop_column("notification_webhook_url")
                .to_owned(),
        )
        .await
    }
}
