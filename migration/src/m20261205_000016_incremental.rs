//! Incremental evaluation: the players each committed load touched (the
//! work log an incremental pass consumes), and the record of each pass per
//! trait.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_foundation::{index, workspace_fk};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000016_incremental"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("touched_players")
                .if_not_exists()
                .col(pk_auto("seq"))
                .col(uuid("workspace_id"))
                .col(string("user_id"))
                .col(timestamp_with_time_zone("committed_at"))
                .foreign_key(&mut workspace_fk("touched_players"))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "touched_players",
            "pending",
            &["workspace_id", "seq"],
        ))
        .await?;
        m.create_table(
            Table::create()
                .table("trait_passes")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid("trait_id"))
                .col(big_integer("entities"))
                .col(big_integer("rows_read"))
                .col(big_integer("rows_changed"))
                .col(big_integer("duration_ms"))
                .col(timestamp_with_time_zone("finished_at"))
                .foreign_key(&mut workspace_fk("trait_passes"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("trait_passes", "trait", &["trait_id", "id"]))
            .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("trait_passes").to_owned())
            .await?;
        m.drop_table(Table::drop().table("touched_players").to_owned())
            .await
    }
}
