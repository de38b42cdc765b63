//! `surveys`: the workspace's hosted survey, its instrument (JSON) and quality settings.

use crate::states::SurveyStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "surveys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub workspace_id: Uuid,
    /// `Launched`, `Closed` or `Deleted`.
    pub status: SurveyStatus,
    pub survey_type: String,
    pub title: String,
    pub internal_title: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub instrument: Json,
    /// Completing faster than this disqualifies.
    pub min_seconds: i32,
    pub token_ttl_hours: i32,
    pub created_at: DateTimeUtc,
    pub modified_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
