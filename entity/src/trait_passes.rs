//! `trait_passes`: one incremental pass of one trait over the players new
//! data touched.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "trait_passes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub trait_id: Uuid,
    /// Players whose value was recomputed.
    pub entities: i64,
    /// Rows of the trait's source model read (theirs only).
    pub rows_read: i64,
    pub rows_changed: i64,
    pub duration_ms: i64,
    pub finished_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
