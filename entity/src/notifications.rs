//! `notifications`: what a studio is told: storage unreachable, file not valid, file overwritten.

use crate::states::{DeliveryStatus, NotificationKind};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub source_id: Option<Uuid>,
    pub kind: NotificationKind,
    #[sea_orm(column_type = "Text", nullable)]
    pub path: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub created_at: DateTimeUtc,
    /// None: the workspace had no webhook; else `pending`, `delivered` or `failed`.
    pub delivery_status: Option<DeliveryStatus>,
    pub delivery_attempts: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub delivery_error: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    /// The webhook body when the notification carries data (membership changes).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub payload: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
