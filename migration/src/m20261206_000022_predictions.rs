//! Predictive traits: a goal (churn, purchase, a custom event, spend) over
//! the next N days, trained on the workspace's own history as of a cutoff,
//! its model and quality report, and the three traits its scores are written
//! to (probability or predicted spend, percentile, risk band).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_foundation::workspace_fk;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000022_predictions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("predictions")
                .if_not_exists()
                .col(uuid("id").primary_key())
                .col(uuid("workspace_id"))
                .col(string("name"))
                .col(string("slug"))
                .col(text("description").default(""))
                .col(string("goal"))
                .col(integer("window_days"))
                .col(json_binary("config"))
                .col(string("retrain"))
                .col(string("status"))
                .col(text("status_error").default(""))
                .col(uuid("score_trait_id"))
                .col(uuid("percentile_trait_id"))
                .col(uuid("risk_trait_id"))
                .col(json_binary_null("model"))
                .col(json_binary_null("quality"))
                .col(json_binary_null("score_cuts"))
                .col(timestamp_with_time_zone_null("cutoff"))
                .col(timestamp_with_time_zone_null("trained_at"))
                .col(timestamp_with_time_zone_null("scored_at"))
                .col(big_integer("scored_players").default(0))
                .col(integer("version").default(1))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut workspace_fk("predictions"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("predictions_workspace_slug")
                .table("predictions")
                .col("workspace_id")
                .col("slug")
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("predictions").to_owned())
            .await
    }
}
