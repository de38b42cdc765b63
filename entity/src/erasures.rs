//! `erasures`: the audit trail of player erasures (a hash of the id, never the id).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "erasures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// Hex SHA-256 of the erased user id.
    pub user_id_hash: String,
    pub api_key_id: Option<Uuid>,
    /// `{table: rows removed}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub rows_removed: Json,
    pub total_rows: i64,
    pub erased_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
