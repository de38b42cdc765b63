//! Personas keep who they are across re-clusterings: a stable id, an
//! editable name and description, an automatic label from the facets that
//! set them apart, and how many of their previous members they kept.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000021_stable_personas"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement; personas made before get
        // an id at their next clustering (NULL until then).
        for col in [
            uuid_null("id"),
            string_null("name"),
            text_null("description"),
            string("label").default("").to_owned(),
            double_null("stability"),
        ] {
            let mut col = col;
            m.alter_table(
                Table::alter()
                    .table("personas")
                    .add_column(&mut col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in ["stability", "label", "description", "name", "id"] {
            m.alter_table(Table::alter().table("personas").drop_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}
