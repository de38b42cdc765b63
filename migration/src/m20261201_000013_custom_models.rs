//! Custom models: which column of a model holds the player's user id, so
//! that loads make players known and erasure finds a player's rows in models
//! a workspace defined itself. Built-in models get the value they always had.

use sea_orm_migration::{prelude::*, schema::string_null};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000013_custom_models"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("models")
                .add_column(string_null("user_column"))
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(
                "UPDATE models SET user_column = 'user_id' WHERE built_in AND slug <> 'items'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("models")
                .drop_column("user_column")
                .to_owned(),
        )
        .await
    }
}
