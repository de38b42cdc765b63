//! `prediction_status`: the outcome of a workspace's latest training of psych-score predictions.

use crate::states::PredictionStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "prediction_status")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    /// `trained`, `insufficient` or `failed`.
    pub status: PredictionStatus,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub completes: i64,
    pub required: i64,
    pub predicted_players: i64,
    pub finished_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
