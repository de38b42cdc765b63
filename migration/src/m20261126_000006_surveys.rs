//! The hosted survey (one per workspace), player registrations with their
//! tokens and progress, answers, psychological scores, and the audit trail
//! of erasures.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_foundation::workspace_fk;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000006_surveys"
    }
}

const TABLES: [&str; 5] = [
    "erasures",
    "psych_scores",
    "survey_answers",
    "survey_registrations",
    "surveys",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("surveys")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid_uniq("workspace_id"))
                .col(string("status"))
                .col(string("survey_type"))
                .col(string("title"))
                .col(string("internal_title"))
                .col(json_binary("instrument"))
                // Quality checks and token lifetime.
                .col(integer("min_seconds"))
                .col(integer("token_ttl_hours"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("modified_at"))
                .col(timestamp_with_time_zone_null("closed_at"))
                .foreign_key(&mut workspace_fk("surveys"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("survey_registrations")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(string("user_id"))
                .col(string_uniq("token"))
                .col(timestamp_with_time_zone("expires_at"))
                // requested | partial | complete | disqualified
                .col(string("status"))
                .col(string_null("disqualified_reason"))
                .col(timestamp_with_time_zone("registered_at"))
                .col(timestamp_with_time_zone_null("started_at"))
                .col(timestamp_with_time_zone_null("completed_at"))
                .foreign_key(&mut workspace_fk("survey_registrations"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_survey_registrations_user")
                .table("survey_registrations")
                .col("workspace_id")
                .col("user_id")
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("survey_answers")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(string("user_id"))
                .col(string("item_id"))
                .col(small_integer("value"))
                .col(timestamp_with_time_zone("answered_at"))
                .primary_key(
                    Index::create()
                        .col("workspace_id")
                        .col("user_id")
                        .col("item_id"),
                )
                .foreign_key(&mut workspace_fk("survey_answers"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("psych_scores")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(string("user_id"))
                .col(string("category"))
                .col(string("facet"))
                .col(double("score"))
                // survey | predicted
                .col(string("source"))
                .col(timestamp_with_time_zone("computed_at"))
                .primary_key(
                    Index::create()
                        .col("workspace_id")
                        .col("user_id")
                        .col("category")
                        .col("facet"),
                )
                .foreign_key(&mut workspace_fk("psych_scores"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("erasures")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                // SHA-256 of the user id: the audit proves the erasure without keeping the id.
                .col(string("user_id_hash"))
                .col(uuid_null("api_key_id"))
                .col(json_binary("rows_removed"))
                .col(big_integer("total_rows"))
                .col(timestamp_with_time_zone("erased_at"))
                .foreign_key(&mut workspace_fk("erasures"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in TABLES {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
