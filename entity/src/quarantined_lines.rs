//! `quarantined_lines`: input lines that could not be loaded, with file, line, byte offset and reason.

use crate::states::LineOrigin;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "quarantined_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// `post`, `file` or `playfab`.
    pub origin: LineOrigin,
    pub record_type: String,
    pub source_file_id: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub path: Option<String>,
    /// 1-based.
    pub line_number: i64,
    /// Offset of the line's first byte in the file or body.
    pub byte_offset: i64,
    pub field: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    /// The start of the line (at most 200 characters), for a human to recognise it.
    #[sea_orm(column_type = "Text")]
    pub excerpt: String,
    /// The line's user id when it could be read, so erasure can find it.
    pub user_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
