//! `source_files`: the ledger: every file seen in a source, loaded exactly once.

use crate::states::{FileFormat, FileStatus};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "source_files")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub source_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub path: String,
    pub record_type: String,
    pub format: FileFormat,
    pub size: i64,
    pub etag: Option<String>,
    pub last_modified: Option<DateTimeUtc>,
    pub status: FileStatus,
    pub rows_loaded: i64,
    pub rows_rejected: i64,
    pub checkpoint_line: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub discovered_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
