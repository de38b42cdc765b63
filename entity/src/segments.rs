//! `segments`: a named filter tree over traits and psych facets, with the
//! state of its materialized members and personas.

use crate::states::ComputeStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "segments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub slug: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    /// The filter tree; `None` for the built-in `default` segment (all players).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub filter: Option<Json>,
    pub builtin: bool,
    /// Personas wanted; `None` chooses k by silhouette.
    pub persona_k: Option<i32>,
    pub seed: i64,
    /// `pending`, `ready` or `failed`.
    pub members_status: ComputeStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub members_error: Option<String>,
    pub member_count: i64,
    pub members_computed_at: Option<DateTimeUtc>,
    /// `pending`, `ready`, `insufficient` or `failed`.
    pub personas_status: ComputeStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub personas_error: Option<String>,
    pub scored_members: i64,
    /// Mean score per category and facet over all scored members.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub profile: Option<Json>,
    pub personas_computed_at: Option<DateTimeUtc>,
    /// Where the personas sit (facets, their scaling, centroids) as of the
    /// last clustering: incremental passes place members from it.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub persona_space: Option<Json>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
