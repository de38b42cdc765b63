//! One work record per player: a load that touches a player already waiting
//! for a pass stamps a new `version` on the record instead of adding one, so
//! a stream of posts or ten files over the same players leave one record per
//! player (not one per load). A pass deletes only the versions it took: a
//! load that stamped the record after the pass took it leaves it for the next.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_foundation::unique;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000019_touched_players_once"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("touched_players")
                .add_column(big_integer("version").default(0))
                .to_owned(),
        )
        .await?;
        // Records waiting from before: the newest of each player's stays.
        m.get_connection()
            .execute_unprepared(
                "DELETE FROM touched_players WHERE EXISTS (SELECT 1 FROM touched_players n \
                 WHERE n.workspace_id = touched_players.workspace_id \
                 AND n.user_id = touched_players.user_id AND n.seq > touched_players.seq)",
            )
            .await?;
        m.create_index(unique(
            "touched_players",
            "player",
            &["workspace_id", "user_id"],
        ))
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_touched_players_player")
                .table("touched_players")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("touched_players")
                .drop_column("version")
                .to_owned(),
        )
        .await
    }
}
