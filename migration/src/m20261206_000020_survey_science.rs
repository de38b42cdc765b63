//! Survey science: the norms the stored T-scores were computed with (per
//! facet, with where they came from and a version every score carries),
//! features that know a zero from a gap (a fill value and a missing
//! indicator per prediction weight), the ridge penalty chosen per facet,
//! and jobs that wait until a time (a debounced retraining).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_foundation::workspace_fk;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000020_survey_science"
    }
}

/// SQLite adds one column per `ALTER TABLE`.
async fn add(m: &SchemaManager<'_>, table: &'static str, col: &mut ColumnDef) -> Result<(), DbErr> {
    m.alter_table(Table::alter().table(table).add_column(col).to_owned())
        .await
}

async fn drop(m: &SchemaManager<'_>, table: &'static str, col: &'static str) -> Result<(), DbErr> {
    m.alter_table(Table::alter().table(table).drop_column(col).to_owned())
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("survey_norms")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(string("category"))
                .col(string("facet"))
                .col(double("mean"))
                .col(double("sd"))
                .col(string("source"))
                .col(big_integer("respondents"))
                .col(integer("version"))
                .col(timestamp_with_time_zone("computed_at"))
                .primary_key(
                    Index::create()
                        .col("workspace_id")
                        .col("category")
                        .col("facet"),
                )
                .foreign_key(&mut workspace_fk("survey_norms"))
                .to_owned(),
        )
        .await?;
        add(m, "psych_scores", integer("norm_version").default(0)).await?;
        add(m, "prediction_weights", &mut double_null("fill")).await?;
        add(m, "prediction_weights", double("missing_on").default(0.0)).await?;
        add(m, "prediction_weights", double("missing_off").default(0.0)).await?;
        add(m, "prediction_models", double("penalty").default(0.01)).await?;
        add(
            m,
            "job_records",
            &mut timestamp_with_time_zone_null("run_after"),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        drop(m, "job_records", "run_after").await?;
        drop(m, "prediction_models", "penalty").await?;
        for c in ["missing_off", "missing_on", "fill"] {
            drop(m, "prediction_weights", c).await?;
        }
        drop(m, "psych_scores", "norm_version").await?;
        m.drop_table(Table::drop().table("survey_norms").to_owned())
            .await
    }
}
