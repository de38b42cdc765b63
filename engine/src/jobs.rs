//! Job types and their records. Every queued job has a `job_records` row the
//! client can poll; handlers are idempotent, so a retry after a crash (or a
//! duplicate delivery) leaves the same data.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use uuid::Uuid;

use entity::job_records;

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    outbox::{MAX_ATTEMPTS, enqueue_in, enqueue_once_in},
    pagination::{Direction, Page, PageRequest, paginate},
    text_enum::text_enum,
};

/// The message on the queue: which record it belongs to and what to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub record_id: Uuid,
    pub work: Work,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Work {
    /// Proves the pipeline end to end: API → queue → a worker → database.
    /// The record then names the worker that ran it.
    Diagnostic { message: String },
    /// Evaluates one trait run (and queues the dependency runs after it).
    EvaluateTrait { run_id: Uuid },
    /// Evaluates runs of traits that share one scan of their source.
    EvaluateTraits { run_ids: Vec<Uuid> },
    /// Lists a source and queues a load per new file.
    ScanSource { run_id: Uuid },
    /// Loads one file of the ledger.
    LoadFile { file_id: Uuid },
    /// POSTs a notification to the workspace's webhook, with retries.
    DeliverNotification { notification_id: Uuid },
    /// Recomputes a segment's members (then its personas).
    ComputeSegment { segment_id: Uuid },
    /// Clusters a segment's scored members into personas.
    ComputePersonas { segment_id: Uuid },
    /// Trains the psych-score models of a workspace and predicts every other player.
    TrainPrediction { workspace_id: Uuid },
}

impl Work {
    /// Jobs that write much in one go. On SQLite they run one at a time, so
    /// they do not queue up behind each other's write lock (and starve the
    /// queue's own writes) until a busy timeout fails them.
    pub fn is_heavy(&self) -> bool {
        !matches!(
            self,
            Work::Diagnostic { .. } | Work::DeliverNotification { .. } | Work::ScanSource { .. }
        )
    }

    pub fn kind(&self) -> &'static str {
        self.job_kind().as_str()
    }

    pub fn job_kind(&self) -> JobKind {
        match self {
            Work::Diagnostic { .. } => JobKind::Diagnostic,
            Work::EvaluateTrait { .. } => JobKind::EvaluateTrait,
            Work::EvaluateTraits { .. } => JobKind::EvaluateTraits,
            Work::ScanSource { .. } => JobKind::ScanSource,
            Work::LoadFile { .. } => JobKind::LoadFile,
            Work::DeliverNotification { .. } => JobKind::DeliverNotification,
            Work::ComputeSegment { .. } => JobKind::ComputeSegment,
            Work::ComputePersonas { .. } => JobKind::ComputePersonas,
            Work::TrainPrediction { .. } => JobKind::TrainPrediction,
        }
    }
}

text_enum! {
    /// What a job record does (its `kind` column).
    pub enum JobKind {
        Diagnostic => "diagnostic",
        EvaluateTrait => "evaluate_trait",
        EvaluateTraits => "evaluate_traits",
        ScanSource => "scan_source",
        LoadFile => "load_file",
        DeliverNotification => "deliver_notification",
        ComputeSegment => "compute_segment",
        ComputePersonas => "compute_personas",
        TrainPrediction => "train_prediction",
    }
}

text_enum! {
    pub enum JobStatus {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

impl Engine {
    /// Writes the job to the outbox and hands it to the queue. For a job that
    /// belongs to a state change, write both in one transaction with
    /// [`enqueue_in`] and call [`Engine::dispatch`] after the commit instead.
    pub async fn enqueue(
        &self,
        workspace_id: Option<Uuid>,
        work: Work,
    ) -> Result<job_records::Model> {
        let record = enqueue_in(&self.db, workspace_id, work).await?;
        self.dispatch(&record).await;
        Ok(record)
    }

    /// Enqueues `work` unless the same work is already waiting to start, so a
    /// burst of triggers (many trait runs, many completions) runs it once.
    pub(crate) async fn enqueue_once(
        &self,
        workspace_id: Uuid,
        work: Work,
    ) -> Result<job_records::Model> {
        let record = enqueue_once_in(&self.db, workspace_id, work).await?;
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
            Work::Diagnostic {
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
            .filter(
                job_records::Column::Status
                    .is_in([JobStatus::Queued.as_str(), JobStatus::Running.as_str()]),
            )
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
        let span = tracing::info_span!(
            "job",
            id = %record.id,
            kind = %record.kind,
            workspace = ?record.workspace_id,
            attempt = record.attempts
        );
        let _alive = self.keep_alive(record.id);
        let _heavy = match &self.heavy_jobs {
            Some(gate) if job.work.is_heavy() => Some(gate.clone().acquire_owned().await),
            _ => None,
        };
        let outcome = self.run_work(&job.work).instrument(span.clone()).await;
        if let Err(e) = &outcome
            && e.is_transient()
            && record.attempts < MAX_ATTEMPTS
        {
            let cause = e.cause();
            span.in_scope(|| tracing::warn!(error = %cause, "the database failed under the job; it runs again"));
            return self.retry(record.id, record.attempts, &cause).await;
        }
        let failure = outcome.as_ref().err().map(|e| {
            let cause = e.cause();
            span.in_scope(|| tracing::warn!(error = %cause, "job failed"));
            cause
        });
        self.finish(record.id, failure).await
    }

    async fn run_work(&self, work: &Work) -> Result<()> {
        match work {
            Work::Diagnostic { message } => {
                tracing::info!(message, "diagnostic job ran");
                Ok(())
            }
            Work::EvaluateTrait { run_id } => self.execute_trait_run(*run_id).await,
            Work::EvaluateTraits { run_ids } => self.execute_trait_runs(run_ids).await,
            Work::ScanSource { run_id } => self.execute_scan(*run_id).await,
            Work::LoadFile { file_id } => self.execute_load_file(*file_id).await,
            Work::DeliverNotification { notification_id } => {
                self.deliver_notification(*notification_id).await
            }
            Work::ComputeSegment { segment_id } => self.execute_segment_members(*segment_id).await,
            Work::ComputePersonas { segment_id } => self.execute_personas(*segment_id).await,
            Work::TrainPrediction { workspace_id } => self.execute_prediction(*workspace_id).await,
        }
    }

    /// Marks the record finished: succeeded, or failed with `failure` as its error.
    pub(crate) async fn finish(&self, record_id: Uuid, failure: Option<String>) -> Result<()> {
        let status = match failure {
            None => JobStatus::Succeeded,
            Some(_) => JobStatus::Failed,
        };
        job_records::Entity::update_many()
            .col_expr(job_records::Column::Status, Expr::value(status.as_str()))
            .col_expr(job_records::Column::Error, Expr::value(failure))
            .col_expr(
                job_records::Column::FinishedAt,
                Expr::value(Some(Utc::now())),
            )
            .filter(job_records::Column::Id.eq(record_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
