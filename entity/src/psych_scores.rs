//! `psych_scores`: a player's T-score per category and facet, from the survey or predicted.

use crate::states::ScoreSource;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "psych_scores")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub category: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub facet: String,
    pub score: f64,
    /// `survey` or `predicted`.
    pub source: ScoreSource,
    pub computed_at: DateTimeUtc,
    /// The `survey_norms` version the T-score stands on.
    pub norm_version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
