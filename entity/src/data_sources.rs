//! `data_sources`: a bucket or folder the workspace's files are loaded from. `credentials` is never returned.

use crate::states::{SourceKind, SourceStatus};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "data_sources")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub kind: SourceKind,
    #[sea_orm(column_type = "JsonBinary")]
    pub config: Json,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub credentials: Option<Json>,
    pub scan_interval_minutes: i32,
    pub enabled: bool,
    pub reload_overwritten: bool,
    pub status: SourceStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub last_scan_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
