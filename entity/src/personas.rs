//! `personas`: one k-means cluster of a segment, numbered 1..k by size, with its mean profile.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "personas")]
pub struct Model {
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub segment_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub persona_index: i32,
    pub size: i64,
    /// `{category: {facet: mean score}}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub profile: Json,
    pub computed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
