//! Who entered and who left a segment at each recomputation, and a JSON
//! payload on notifications (a membership change's webhook body).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_foundation::{index, workspace_fk};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000015_segment_changes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("segment_changes")
                .if_not_exists()
                .col(pk_auto("seq"))
                .col(uuid("workspace_id"))
                .col(uuid("segment_id"))
                .col(string("user_id"))
                .col(string("change"))
                .col(timestamp_with_time_zone("at"))
                .foreign_key(&mut workspace_fk("segment_changes"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("segment_changes", "segment", &["segment_id", "seq"]))
            .await?;
        m.create_index(index(
            "segment_changes",
            "user",
            &["workspace_id", "user_id"],
        ))
        .await?;
        m.alter_table(
            Table::alter()
                .table("notifications")
                .add_column(json_binary_null("payload"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("notifications")
                .drop_column("payload")
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table("segment_changes").to_owned())
            .await
    }
}
