//! When a trait's inputs last changed without it being recomputed: set when
//! loaded data touches its source, cleared by the next successful run.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000007_trait_staleness"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("traits")
                .add_column(timestamp_with_time_zone_null("stale_since"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("traits")
                .drop_column("stale_since")
                .to_owned(),
        )
        .await
    }
}
