//! GraphQL output types: plain mirrors of engine data, converted once here.

use async_graphql::{Enum, ID, SimpleObject};
use chrono::{DateTime, Utc};
use engine::{
    Error,
    entity::{api_keys, job_records, model_columns, relationships, workspaces},
    models::ModelView,
};

use super::enums::JobKind;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "engine::auth::Role")]
pub enum Role {
    Admin,
    Editor,
    Viewer,
    Ingest,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "engine::catalog::ModelKind")]
pub enum ModelKind {
    Entity,
    Event,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "engine::catalog::DataType")]
pub enum DataType {
    Text,
    Number,
    Boolean,
    Timestamp,
    Date,
    Json,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "engine::catalog::Cardinality")]
pub enum Cardinality {
    ManyToOne,
    OneToMany,
    OneToOne,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "engine::jobs::JobStatus")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

#[derive(SimpleObject)]
pub struct Workspace {
    pub id: ID,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
}

impl From<workspaces::Model> for Workspace {
    fn from(w: workspaces::Model) -> Self {
        Workspace {
            id: w.id.into(),
            name: w.name,
            slug: w.slug,
            created_at: w.created_at,
        }
    }
}

/// The calling key: its workspace and role.
#[derive(SimpleObject)]
pub struct Viewer {
    pub workspace: Workspace,
    pub role: Role,
    pub key_id: ID,
}

#[derive(SimpleObject, Clone)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
}

impl TryFrom<model_columns::Model> for Column {
    type Error = Error;
    fn try_from(c: model_columns::Model) -> Result<Self, Error> {
        Ok(Column {
            data_type: c.data_type.into(),
            name: c.name,
            nullable: c.nullable,
        })
    }
}

#[derive(SimpleObject, Clone)]
pub struct Relationship {
    pub id: ID,
    pub from_model_id: ID,
    pub to_model_id: ID,
    pub from_column: String,
    pub to_column: String,
    pub cardinality: Cardinality,
}

impl TryFrom<relationships::Model> for Relationship {
    type Error = Error;
    fn try_from(r: relationships::Model) -> Result<Self, Error> {
        Ok(Relationship {
            cardinality: r.cardinality.into(),
            id: r.id.into(),
            from_model_id: r.from_model_id.into(),
            to_model_id: r.to_model_id.into(),
            from_column: r.from_column,
            to_column: r.to_column,
        })
    }
}

#[derive(SimpleObject, Clone)]
pub struct Model {
    pub id: ID,
    pub name: String,
    pub slug: String,
    pub kind: ModelKind,
    /// The table that holds the model's rows.
    pub table: String,
    pub primary_key: String,
    pub timestamp_column: Option<String>,
    /// The column holding the player's user id, when rows belong to players.
    pub user_id_column: Option<String>,
    pub built_in: bool,
    pub columns: Vec<Column>,
    pub relationships: Vec<Relationship>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<ModelView> for Model {
    type Error = Error;
    fn try_from(v: ModelView) -> Result<Self, Error> {
        let m = v.model;
        Ok(Model {
            kind: m.kind.into(),
            id: m.id.into(),
            name: m.name,
            slug: m.slug,
            table: m.table_name,
            primary_key: m.primary_key,
            timestamp_column: m.timestamp_column,
            user_id_column: m.user_column,
            built_in: m.built_in,
            columns: v
                .columns
                .into_iter()
                .map(Column::try_from)
                .collect::<Result<_, _>>()?,
            relationships: v
                .relationships
                .into_iter()
                .map(Relationship::try_from)
                .collect::<Result<_, _>>()?,
            created_at: m.created_at,
        })
    }
}

/// An API key as listed: never the secret, only its display prefix.
#[derive(SimpleObject, Clone)]
pub struct ApiKey {
    pub id: ID,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<api_keys::Model> for ApiKey {
    type Error = Error;
    fn try_from(k: api_keys::Model) -> Result<Self, Error> {
        Ok(ApiKey {
            role: k.role.into(),
            id: k.id.into(),
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        })
    }
}

#[derive(SimpleObject)]
pub struct CreatedApiKey {
    pub api_key: ApiKey,
    /// The secret to send as `Authorization: Bearer <secret>`. Shown only now.
    pub secret: String,
}

/// The pollable record of a queued job.
#[derive(SimpleObject, Clone)]
pub struct Job {
    pub id: ID,
    pub kind: JobKind,
    pub status: JobStatus,
    pub attempts: i32,
    pub error: Option<String>,
    /// The worker process that last ran the job (`host:pid` unless `WORKER_ID` is set).
    pub worker: Option<String>,
    pub enqueued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the job was last handed to the queue. Null while it waits in the
    /// outbox (written with the change that needs it, not yet on the queue:
    /// the queue was unreachable, or the dispatcher has not run yet).
    pub dispatched_at: Option<DateTime<Utc>>,
    /// The last proof of life of the worker running it; a running job without
    /// one for `JOB_LOST_AFTER` is taken up again.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// A debounced job is not handed to the queue before this time.
    pub run_after: Option<DateTime<Utc>>,
}

impl TryFrom<job_records::Model> for Job {
    type Error = Error;
    fn try_from(j: job_records::Model) -> Result<Self, Error> {
        Ok(Job {
            status: j.status.into(),
            id: j.id.into(),
            kind: j.kind.into(),
            attempts: j.attempts,
            error: j.error,
            worker: j.worker,
            enqueued_at: j.enqueued_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            dispatched_at: j.dispatched_at,
            heartbeat_at: j.heartbeat_at,
            run_after: j.run_after,
        })
    }
}
