//! `ingestion_runs`: one scan of a source: what it found, queued and skipped.

use crate::states::RunStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ingestion_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub source_id: Uuid,
    pub status: RunStatus,
    pub files_found: i32,
    pub files_queued: i32,
    pub files_skipped: i32,
    #[sea_orm(column_type = "JsonBinary")]
    pub skipped_paths: Json,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub queued_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
