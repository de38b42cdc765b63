//! `touched_players`: the players whose rows a committed load wrote, waiting
//! for the workspace's next incremental pass (which deletes what it took);
//! one record per player.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "touched_players")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i32,
    pub workspace_id: Uuid,
    pub user_id: String,
    pub committed_at: DateTimeUtc,
    /// Stamped anew by each load that touches the player again; a pass
    /// deletes the record only if it still has the version the pass took.
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
