//! `job_records`: the pollable record of every queued job (the queue itself lives in apalis).

use crate::states::{JobKind, JobStatus};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "job_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub kind: JobKind,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub status: JobStatus,
    pub attempts: i32,
    pub error: Option<String>,
    pub worker: Option<String>,
    pub enqueued_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// When the record was last handed to the queue; NULL while it waits in the outbox.
    pub dispatched_at: Option<DateTimeUtc>,
    /// Last proof of life of the process running it.
    pub heartbeat_at: Option<DateTimeUtc>,
    /// Not handed to the queue before this time (a debounced job); NULL: at once.
    pub run_after: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
