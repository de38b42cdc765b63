//! Segments (filter trees over traits and psych facets) with their
//! materialized members, personas (k-means clusters of a segment) with theirs,
//! and the per-facet prediction models learned from survey completes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_foundation::{index, workspace_fk};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000009_segments"
    }
}

const TABLES: [&str; 8] = [
    "persona_members",
    "personas",
    "segment_members",
    "segment_traits",
    "segments",
    "prediction_weights",
    "prediction_models",
    "prediction_status",
];

fn segment_fk(table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_segment"))
        .from(table.to_owned(), "segment_id")
        .to("segments", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("segments")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(string("name"))
                .col(string("slug"))
                .col(text("description"))
                // The filter tree; NULL for the built-in `default` segment (all players).
                .col(json_binary_null("filter"))
                .col(boolean("builtin"))
                // Personas wanted; NULL = choose 2..8 by silhouette.
                .col(integer_null("persona_k"))
                .col(big_integer("seed"))
                // pending | ready | failed
                .col(string("members_status"))
                .col(text_null("members_error"))
                .col(big_integer("member_count"))
                .col(timestamp_with_time_zone_null("members_computed_at"))
                // pending | ready | insufficient | failed
                .col(string("personas_status"))
                .col(text_null("personas_error"))
                .col(big_integer("scored_members"))
                // Mean score per category and facet over all scored members.
                .col(json_binary_null("profile"))
                .col(timestamp_with_time_zone_null("personas_computed_at"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut workspace_fk("segments"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            index("segments", "slug", &["workspace_id", "slug"])
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("segment_traits")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(uuid("segment_id"))
                .col(uuid("trait_id"))
                .primary_key(Index::create().col("segment_id").col("trait_id"))
                .foreign_key(&mut segment_fk("segment_traits"))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "segment_traits",
            "trait",
            &["workspace_id", "trait_id"],
        ))
        .await?;
        m.create_table(
            Table::create()
                .table("segment_members")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(uuid("segment_id"))
                .col(string("user_id"))
                .primary_key(Index::create().col("segment_id").col("user_id"))
                .foreign_key(&mut segment_fk("segment_members"))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "segment_members",
            "user",
            &["workspace_id", "user_id"],
        ))
        .await?;
        m.create_table(
            Table::create()
                .table("personas")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(uuid("segment_id"))
                // 1..k, largest first.
                .col(integer("persona_index"))
                .col(big_integer("size"))
                .col(json_binary("profile"))
                .col(timestamp_with_time_zone("computed_at"))
                .primary_key(Index::create().col("segment_id").col("persona_index"))
                .foreign_key(&mut segment_fk("personas"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("persona_members")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(uuid("segment_id"))
                .col(integer("persona_index"))
                .col(string("user_id"))
                .primary_key(Index::create().col("segment_id").col("user_id"))
                .foreign_key(&mut segment_fk("persona_members"))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "persona_members",
            "persona",
            &["segment_id", "persona_index", "user_id"],
        ))
        .await?;
        m.create_index(index(
            "persona_members",
            "user",
            &["workspace_id", "user_id"],
        ))
        .await?;
        m.create_table(
            Table::create()
                .table("prediction_status")
                .if_not_exists()
                .col(uuid("workspace_id").primary_key())
                // trained | insufficient | failed
                .col(string("status"))
                .col(text("message"))
                .col(big_integer("completes"))
                .col(big_integer("required"))
                .col(big_integer("predicted_players"))
                .col(timestamp_with_time_zone("finished_at"))
                .foreign_key(&mut workspace_fk("prediction_status"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("prediction_models")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(string("category"))
                .col(string("facet"))
                .col(double("intercept"))
                // k-fold cross-validated R² on the survey completes.
                .col(double("r2"))
                .col(big_integer("train_size"))
                .col(timestamp_with_time_zone("trained_at"))
                .primary_key(
                    Index::create()
                        .col("workspace_id")
                        .col("category")
                        .col("facet"),
                )
                .foreign_key(&mut workspace_fk("prediction_models"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("prediction_weights")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(string("category"))
                .col(string("facet"))
                .col(uuid("trait_id"))
                // The feature is standardized as (value - mean) / sd before the weight.
                .col(double("mean"))
                .col(double("sd"))
                .col(double("weight"))
                .primary_key(
                    Index::create()
                        .col("workspace_id")
                        .col("category")
                        .col("facet")
                        .col("trait_id"),
                )
                .foreign_key(&mut workspace_fk("prediction_weights"))
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
