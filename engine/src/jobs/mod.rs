//! The job infrastructure: records (the outbox), claims, heartbeats,
//! dispatch, recovery and the queue. It knows no domain: each job kind is a
//! type owned by its domain that implements [`JobHandler`], and the registry
//! (`crate::job_kinds`, the one place that sees every domain) maps the stored
//! kind of a record to it. Every queued job has a `job_records` row the client
//! can poll; handlers are idempotent, so a retry after a crash (or a duplicate
//! delivery) leaves the same data.

pub mod outbox;
pub mod queue;
mod recovery;

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tracing::Instrument;
use uuid::Uuid;

use entity::job_records;

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    pagination::{Direction, Page, PageRequest, paginate},
};

pub use entity::states::{JobKind, JobStatus};
pub(crate) use outbox::{enqueue_in, enqueue_once_in};
pub(crate) use recovery::LocalJobs;
pub use recovery::{JOB_HEARTBEAT, JOB_LOST_AFTER, MAX_ATTEMPTS};

/// The message on the queue: which record it belongs to, and its payload
/// (the record's, `{"type": kind, ...}`; the record is what runs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub record_id: Uuid,
    pub work: serde_json::Value,
}

/// A kind of job. Implemented by a type of the domain that owns the work
/// (its fields are the payload); registered once in `crate::job_kinds`.
#[async_trait::async_trait]
pub trait JobHandler: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stored as the record's `kind` and as the payload's `type`.
    const KIND: JobKind;
    /// Writes much in one go. On SQLite such jobs run one at a time, so they
    /// do not queue up behind each other's write lock (and starve the
    /// queue's own writes) until a busy timeout fails them.
    const HEAVY: bool;

    async fn run(&self, engine: &Engine) -> Result<()>;

    /// The job will not run again (it failed for good, or its workers kept
    /// dying): close the domain rows it left open as failed with `reason`,
    /// in `tx`, which also fails the record.
    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()>;
}

/// Who holds a running record that is given up.
#[derive(Clone, Copy)]
pub(crate) enum Holder {
    /// This process is running it.
    Us,
    /// A worker that stopped sending heartbeats; the last one seen.
    Lost {
        heartbeat_at: Option<chrono::DateTime<Utc>>,
    },
}

/// A decoded job of any kind.
#[async_trait::async_trait]
pub(crate) trait Runnable: Send + Sync {
    fn heavy(&self) -> bool;
    async fn run(&self, engine: &Engine) -> Result<()>;
    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()>;
}

#[async_trait::async_trait]
impl<J: JobHandler> Runnable for J {
    fn heavy(&self) -> bool {
        J::HEAVY
    }

    async fn run(&self, engine: &Engine) -> Result<()> {
        JobHandler::run(self, engine).await
    }

    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()> {
        JobHandler::abandon(self, tx, reason).await
    }
}

type Decode = fn(serde_json::Value) -> serde_json::Result<Box<dyn Runnable>>;

fn decode<J: JobHandler>(payload: serde_json::Value) -> serde_json::Result<Box<dyn Runnable>> {
    Ok(Box::new(serde_json::from_value::<J>(payload)?))
}

/// Stored kinds → their handlers.
#[derive(Default)]
pub struct Registry(HashMap<JobKind, Decode>);

impl Registry {
    pub fn with<J: JobHandler>(mut self) -> Self {
        let previous = self.0.insert(J::KIND, decode::<J>);
        assert!(previous.is_none(), "job kind {} registered twice", J::KIND);
        self
    }

    pub fn handles(&self, kind: JobKind) -> bool {
        self.0.contains_key(&kind)
    }

    pub(crate) fn decode(&self, record: &job_records::Model) -> Result<Box<dyn Runnable>> {
        let decode = self
            .0
            .get(&record.kind)
            .ok_or_else(|| Error::internal(format!("no handler for job kind '{}'", record.kind)))?;
        decode(record.payload.clone()).map_err(|e| {
            Error::internal(format!("job {} has an unreadable payload: {e}", record.id))
        })
    }
}

/// The stored payload of `job`: its fields and its kind as `type`.
pub(crate) fn payload<J: JobHandler>(job: &J) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(job).map_err(Error::internal)?;
    value
        .as_object_mut()
        .ok_or_else(|| Error::internal(format!("job {} is not a struct", J::KIND)))?
        .insert("type".into(), J::KIND.as_str().into());
    Ok(value)
}

/// Proves the pipeline end to end: API → queue → a worker → database. The
/// record then names the worker that ran it.
#[derive(Serialize, Deserialize)]
pub struct Diagnostic {
    pub message: String,
}

#[async_trait::async_trait]
impl JobHandler for Diagnostic {
    const KIND: JobKind = JobKind::Diagnostic;
    const HEAVY: bool = false;

    async fn run(&self, _: &Engine) -> Result<()> {
        tracing::info!(message = %self.message, "diagnostic job ran");
        Ok(())
    }

    async fn abandon(&self, _: &DatabaseTransaction, _: &str) -> Result<()> {
        Ok(())
    }
}

impl Engine {
    /// Writes the job to the outbox and hands it to the queue. For a job that
    /// belongs to a state change, write both in one transaction with
    /// [`enqueue_in`] and call [`Engine::dispatch`] after the commit instead.
    pub async fn enqueue<J: JobHandler>(
        &self,
        workspace_id: Option<Uuid>,
        job: J,
    ) -> Result<job_records::Model> {
        let record = enqueue_in(&self.db, workspace_id, &job).await?;
        self.dispatch(&record).await;
        Ok(record)
    }

    /// Enqueues `job` unless the same job is already waiting to start, so a
    /// burst of triggers (many trait runs, many completions) runs it once.
    pub(crate) async fn enqueue_once<J: JobHandler>(
        &self,
        workspace_id: Uuid,
        job: J,
    ) -> Result<job_records::Model> {
        let record = enqueue_once_in(&self.db, workspace_id, &job).await?;
        self.dispatch(&record).await;
        Ok(record)
    }

    pub async fn enqueue_diagnostic(
        &self,
        p: &Principal,
        message: &str,
    ) -> Result<job_records::Model> {
        p.require(Permission::Admin)?;
        if message.len() > 1000 {
            return Err(Error::invalid("message", "must be at most 1000 characters"));
        }
        self.enqueue(
            Some(p.workspace_id),
            Diagnostic {
                message: message.to_owned(),
            },
        )
        .await
    }

    pub async fn job(&self, p: &Principal, id: Uuid) -> Result<job_records::Model> {
        p.require(Permission::Read)?;
        job_records::Entity::find_by_id(id)
            .filter(job_records::Column::WorkspaceId.eq(p.workspace_id))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound { what: "job" })
    }

    pub async fn list_jobs(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> Result<Page<job_records::Model>> {
        p.require(Permission::Read)?;
        let q =
            job_records::Entity::find().filter(job_records::Column::WorkspaceId.eq(p.workspace_id));
        paginate(
            &self.db,
            q,
            job_records::Column::Id,
            Direction::Forward,
            page,
        )
        .await
    }

    /// Jobs not yet finished, across workspaces (tests drain on this; metrics report it).
    pub async fn unfinished_jobs(&self) -> Result<u64> {
        Ok(job_records::Entity::find()
            .filter(job_records::Column::Status.is_in([JobStatus::Queued, JobStatus::Running]))
            .count(&self.db)
            .await?)
    }

    /// Runs one job for `worker`. The record is claimed first: a record that
    /// is finished, or running with a live heartbeat (a duplicate delivery),
    /// is left alone, which makes redelivery and a second dispatch harmless.
    /// A failure is recorded with its cause on the record and in the domain
    /// rows; it is not handed back to the queue (the outbox and the lost-work
    /// recovery decide what runs again).
    pub async fn execute(&self, job: Job, worker: &str) -> Result<()> {
        let Some(record) = self.claim(job.record_id, worker).await? else {
            tracing::debug!(record_id = %job.record_id, "job already taken or finished; dropping delivery");
            return Ok(());
        };
        match self.registry.decode(&record) {
            Ok(handler) => self.run_claimed(&record, handler.as_ref()).await,
            Err(e) => self
                .give_up(record.id, Holder::Us, None, &e.cause())
                .await
                .map(drop),
        }
    }

    /// Runs a claimed record's handler. A transient failure (the database
    /// went away) puts it back in the outbox until [`MAX_ATTEMPTS`]; any
    /// other failure, and the last transient one, gives up on it.
    pub(crate) async fn run_claimed(
        &self,
        record: &job_records::Model,
        job: &dyn Runnable,
    ) -> Result<()> {
        let span = tracing::info_span!(
            "job",
            id = %record.id,
            kind = %record.kind,
            workspace = ?record.workspace_id,
            attempt = record.attempts
        );
        let _alive = self.keep_alive(record.id);
        let _heavy = match &self.heavy_jobs {
            Some(gate) if job.heavy() => Some(gate.clone().acquire_owned().await),
            _ => None,
        };
        let Err(e) = job.run(self).instrument(span.clone()).await else {
            return self.finish(record.id).await;
        };
        let cause = e.cause();
        if e.is_transient() && record.attempts < MAX_ATTEMPTS {
            span.in_scope(|| tracing::warn!(error = %cause, "the database failed under the job; it runs again"));
            return self.retry(record.id, record.attempts, &cause).await;
        }
        span.in_scope(|| tracing::warn!(error = %cause, "job failed"));
        self.give_up(record.id, Holder::Us, Some(job), &cause)
            .await
            .map(drop)
    }

    /// Marks a running record succeeded.
    async fn finish(&self, record_id: Uuid) -> Result<()> {
        job_records::Entity::update_many()
            .col_expr(
                job_records::Column::Status,
                Expr::value(JobStatus::Succeeded),
            )
            .col_expr(
                job_records::Column::Error,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                job_records::Column::FinishedAt,
                Expr::value(Some(Utc::now())),
            )
            .filter(job_records::Column::Id.eq(record_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The one way a job ends for good without success: its record is failed
    /// with `reason` and, in the same transaction, the handler's `abandon`
    /// fails the domain rows it left open. Only a record still `running` (and,
    /// for a lost one, with the heartbeat recovery saw) is taken: a job that
    /// beat in between, or that another process took, is left (`false`).
    pub(crate) async fn give_up(
        &self,
        record_id: Uuid,
        holder: Holder,
        job: Option<&dyn Runnable>,
        reason: &str,
    ) -> Result<bool> {
        let tx = crate::db::begin_write(&self.db).await?;
        let mut take = job_records::Entity::update_many()
            .col_expr(job_records::Column::Status, Expr::value(JobStatus::Failed))
            .col_expr(job_records::Column::Error, Expr::value(Some(reason)))
            .col_expr(job_records::Column::FinishedAt, Expr::value(Utc::now()))
            .filter(job_records::Column::Id.eq(record_id))
            .filter(job_records::Column::Status.eq(JobStatus::Running));
        if let Holder::Lost { heartbeat_at } = holder {
            take = take.filter(match heartbeat_at {
                Some(at) => job_records::Column::HeartbeatAt.eq(at),
                None => job_records::Column::HeartbeatAt.is_null(),
            });
        }
        let taken = take.exec(&tx).await?.rows_affected;
        if taken == 0 {
            return Ok(false); // dropped: rolled back
        }
        if let Some(job) = job {
            job.abandon(&tx, reason).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
