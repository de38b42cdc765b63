//! Console sign-ins: a session per browser, keyed by the SHA-256 of its
//! cookie's token (the token itself is never stored), tied to the API key
//! that opened it, so revoking the key ends its sessions.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_foundation::{index, workspace_fk};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000014_console_sessions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("console_sessions")
                .if_not_exists()
                .col(string("token_hash").primary_key())
                .col(uuid("workspace_id"))
                .col(uuid("key_id"))
                .col(string("csrf_token"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .foreign_key(&mut workspace_fk("console_sessions"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("console_sessions", "key", &["key_id"]))
            .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("console_sessions").to_owned())
            .await
    }
}
