//! `models`: the catalog of queryable models (entities and event streams).

use crate::states::ModelKind;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "models")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub slug: String,
    pub kind: ModelKind,
    pub table_name: String,
    pub primary_key: String,
    pub timestamp_column: Option<String>,
    /// The column holding the player's user id (None: rows are not a player's).
    pub user_column: Option<String>,
    pub built_in: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
