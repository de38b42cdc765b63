//! SQLite: values of `sql`/`formula` traits that do not fit their column
//! (a text in the number column, say) were stored by earlier versions and
//! made every read of the trait fail. They are cleared (the next run of the
//! trait now fails with the reason instead, see `engine::traits::stored_types`).
//! PostgreSQL's typed columns never held such values.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000012_typed_trait_values"
    }
}

/// (column, the condition a value must meet to be read back).
const COLUMNS: [(&str, &str); 4] = [
    (
        "value_number",
        "typeof(value_number) IN ('integer', 'real')",
    ),
    (
        "value_boolean",
        "typeof(value_boolean) = 'integer' AND value_boolean IN (0, 1)",
    ),
    (
        "value_timestamp",
        "typeof(value_timestamp) = 'text' AND julianday(value_timestamp) IS NOT NULL",
    ),
    (
        "value_json",
        "typeof(value_json) = 'text' AND json_valid(value_json)",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != sea_orm::DbBackend::Sqlite {
            return Ok(());
        }
        for (column, fits) in COLUMNS {
            m.get_connection()
                .execute_unprepared(&format!(
                    "UPDATE trait_values SET {column} = NULL WHERE {column} IS NOT NULL AND NOT ({fits})"
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, _: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
