//! `predictions`: predictive traits. A goal over the next `window_days`,
//! trained as of a cutoff on the workspace's own history; the scores are
//! the values of three traits of type `prediction`.

use crate::states::{PredictionGoal, PredictiveStatus};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "predictions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub slug: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub goal: PredictionGoal,
    pub window_days: i32,
    /// The goal's options: record types, model, filters, column, active days.
    #[sea_orm(column_type = "JsonBinary")]
    pub config: Json,
    /// Cron expression of the retraining.
    pub retrain: String,
    pub status: PredictiveStatus,
    #[sea_orm(column_type = "Text")]
    pub status_error: String,
    /// The trait holding the probability (or predicted spend).
    pub score_trait_id: Uuid,
    pub percentile_trait_id: Uuid,
    pub risk_trait_id: Uuid,
    /// Standardization, fills and weights of the trained model.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub model: Option<Json>,
    /// The holdout's quality report.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub quality: Option<Json>,
    /// The scores at every 0.1 % of the last full scoring (1 001 values),
    /// which place the scores of players rescored between full scorings.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub score_cuts: Option<Json>,
    /// Training's T: features as of it, labels from (T, T + window].
    pub cutoff: Option<DateTimeUtc>,
    pub trained_at: Option<DateTimeUtc>,
    pub scored_at: Option<DateTimeUtc>,
    pub scored_players: i64,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
