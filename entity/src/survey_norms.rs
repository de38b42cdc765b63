//! `survey_norms`: per facet, the mean and standard deviation of the raw
//! score that the workspace's stored T-scores stand on, and where they came from.

use crate::states::NormSource;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "survey_norms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub category: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub facet: String,
    pub mean: f64,
    pub sd: f64,
    pub source: NormSource,
    /// Complete respondents the norm was computed from (0 for an instrument's).
    pub respondents: i64,
    /// Raised by one at every change; scores carry the version they stand on.
    pub version: i32,
    pub computed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
