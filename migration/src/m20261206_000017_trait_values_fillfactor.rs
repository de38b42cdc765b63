//! PostgreSQL leaves a fifth of each `trait_values` page free, so an
//! incremental pass's update of a value (whose indexed columns never change)
//! stays on its page as a heap-only tuple instead of adding an index entry:
//! about a fifth less work per updated value. SQLite has no such setting.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000017_trait_values_fillfactor"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection()
                .execute_unprepared("ALTER TABLE trait_values SET (fillfactor = 80)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection()
                .execute_unprepared("ALTER TABLE trait_values RESET (fillfactor)")
                .await?;
        }
        Ok(())
    }
}
