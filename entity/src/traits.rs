//! `traits`: trait definitions attached to a parent model.

use crate::states::{ResultType, TraitStatus, TraitType};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "traits")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub parent_model_id: Uuid,
    pub name: String,
    pub slug: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub trait_type: TraitType,
    #[sea_orm(column_type = "JsonBinary")]
    pub config: Json,
    pub result_type: ResultType,
    pub status: TraitStatus,
    #[sea_orm(column_type = "Text")]
    pub status_error: String,
    /// `manual`, `on_load` or a cron expression.
    pub refresh: String,
    /// Incremented on every update; earlier definitions are in `trait_versions`.
    pub version: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub last_computed_at: Option<DateTimeUtc>,
    /// Data this trait reads was loaded after its last computation (cleared by the next run).
    pub stale_since: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
