//! Trait values (typed, one row per trait and entity), definition history and
//! the dependency graph between traits.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000002_trait_engine"
    }
}

fn trait_fk(table: &str, column: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table.to_owned(), column)
        .to("traits", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("trait_values")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(uuid("trait_id"))
                .col(string("entity_id"))
                .col(double_null("value_number"))
                .col(text_null("value_text"))
                .col(boolean_null("value_boolean"))
                .col(timestamp_with_time_zone_null("value_timestamp"))
                .col(json_binary_null("value_json"))
                .col(timestamp_with_time_zone("updated_at"))
                .primary_key(
                    Index::create()
                        .col("workspace_id")
                        .col("trait_id")
                        .col("entity_id"),
                )
                // No foreign key and no second index: evaluation writes every
                // entity's value, and a per-row FK check plus another index
                // nearly doubled its cost. Deleting a trait removes its values;
                // profile reads use this key with the model's trait ids.
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("trait_versions")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid("trait_id"))
                .col(integer("version"))
                .col(json_binary("definition"))
                .col(json_binary("changed_fields"))
                .col(uuid_null("changed_by"))
                .col(timestamp_with_time_zone("changed_at"))
                .foreign_key(&mut trait_fk("trait_versions", "trait_id"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_trait_versions_trait")
                .table("trait_versions")
                .col("workspace_id")
                .col("trait_id")
                .col("version")
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("trait_dependencies")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(uuid("trait_id"))
                .col(uuid("depends_on_id"))
                .primary_key(
                    Index::create()
                        .col("workspace_id")
                        .col("trait_id")
                        .col("depends_on_id"),
                )
                .foreign_key(&mut trait_fk("trait_dependencies", "trait_id"))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_trait_dependencies_depends_on")
                        .from("trait_dependencies", "depends_on_id")
                        .to("traits", "id")
                        .on_delete(ForeignKeyAction::Restrict)
                        .to_owned(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_trait_dependencies_reverse")
                .table("trait_dependencies")
                .col("workspace_id")
                .col("depends_on_id")
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in ["trait_dependencies", "trait_versions", "trait_values"] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
