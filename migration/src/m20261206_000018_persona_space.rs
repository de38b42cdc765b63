//! Where a segment's personas sit: the facets, their mean and standard
//! deviation over the members at the last clustering, and each persona's
//! centroid in those standardized units. An incremental pass places a new
//! or changed member into the nearest persona from it, without clustering.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000018_persona_space"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("segments")
                .add_column(json_binary_null("persona_space"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("segments")
                .drop_column("persona_space")
                .to_owned(),
        )
        .await
    }
}
