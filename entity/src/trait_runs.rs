//! `trait_runs`: one evaluation of a trait: queued, running, then succeeded or failed.

use crate::states::{RunStatus, Trigger};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "trait_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub trait_id: Uuid,
    pub status: RunStatus,
    pub trigger: Trigger,
    pub error: Option<String>,
    pub rows_computed: Option<i64>,
    pub rows_changed: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Dependency runs queued to follow this one, in topological order.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub chain: Option<Json>,
    pub created_by: Option<Uuid>,
    pub queued_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
