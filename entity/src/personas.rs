//! `personas`: one k-means cluster of a segment with its mean profile; its
//! index and id stay with it across re-clusterings.

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
    /// Stable across re-clusterings (NULL for personas not clustered since).
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// From the facets that set it apart, e.g. `High Competition · Low Social`.
    pub label: String,
    /// Share of its previous members it kept at the last clustering (NULL: new).
    pub stability: Option<f64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
