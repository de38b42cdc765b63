//! `trait_values`: one computed value per trait and entity, in the column of its result type.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "trait_values")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub trait_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity_id: String,
    pub value_number: Option<f64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub value_text: Option<String>,
    pub value_boolean: Option<bool>,
    pub value_timestamp: Option<DateTimeUtc>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub value_json: Option<Json>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
