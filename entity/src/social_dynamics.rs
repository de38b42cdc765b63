//! `social_dynamics`: interactions between players (`social_dynamics/`).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "social_dynamics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: String,
    pub timestamp: DateTimeUtc,
    pub target_user_id: Option<String>,
    pub interaction: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub interaction_params: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub extra: Option<Json>,
    pub source_file_id: Option<Uuid>,
    pub line_number: Option<i64>,
    pub loaded_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
