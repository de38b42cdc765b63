//! `segment_changes`: a player entering or leaving a segment at a recomputation.

use crate::states::Change;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "segment_changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i32,
    pub workspace_id: Uuid,
    pub segment_id: Uuid,
    pub user_id: String,
    /// `ENTERED` or `EXITED`.
    pub change: Change,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
