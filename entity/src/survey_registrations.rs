//! `survey_registrations`: a player's survey token, its expiry and the response's progress.

use crate::states::ResponseStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "survey_registrations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub user_id: String,
    #[sea_orm(unique)]
    pub token: String,
    pub expires_at: DateTimeUtc,
    /// `requested`, `partial`, `complete` or `disqualified`.
    pub status: ResponseStatus,
    pub disqualified_reason: Option<String>,
    pub registered_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
