//! PlayFab event ids already received, so a redelivered event is ignored.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000005_playfab"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("playfab_events")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(string("event_id"))
                .col(timestamp_with_time_zone("received_at"))
                .primary_key(Index::create().col("workspace_id").col("event_id"))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_playfab_events_workspace")
                        .from("playfab_events", "workspace_id")
                        .to("workspaces", "id")
                        .on_delete(ForeignKeyAction::Cascade)
                        .to_owned(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("playfab_events").if_exists().to_owned())
            .await
    }
}
