//! Job types and their records. Every queued job has a `job_records` row the
//! client can poll; handlers are idempotent, so a retry after a crash (or a
//! duplicate delivery) leaves the same data.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use entity::job_records;

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    pagination::{Page, PageRequest, paginate},
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
    pub fn kind(&self) -> &'static str {
        match self {
            Work::Diagnostic { .. } => "diagnostic",
            Work::EvaluateTrait { .. } => "evaluate_trait",
            Work::EvaluateTraits { .. } => "evaluate_traits",
            Work::ScanSource { .. } => "scan_source",
            Work::LoadFile { .. } => "load_file",
            Work::DeliverNotification { .. } => "deliver_notification",
            Work::ComputeSegment { .. } => "compute_segment",
            Work::ComputePersonas { .. } => "compute_personas",
            Work::TrainPrediction { .. } => "train_prediction",
        }
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
    /// Writes the record, then pushes the job. If the queue is down the record
    /// is marked failed and the caller gets `unavailable`.
    pub async fn enqueue(
        &self,
        workspace_id: Option<Uuid>,
        work: Work,
    ) -> Result<job_records::Model> {
        let record = job_records::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            kind: Set(work.kind().to_owned()),
            payload: Set(serde_json::to_value(&work).map_err(Error::internal)?),
            status: Set(JobStatus::Queued.as_str().to_owned()),
            attempts: Set(0),
            error: Set(None),
            worker: Set(None),
            enqueued_at: Set(Utc::now()),
            started_at: Set(None),
            finished_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        let job = Job {
            record_id: record.id,
            work,
        };
        if let Err(e) = self.queue.push(job).await {
            self.finish(record.clone(), Err(e.to_string())).await?;
            return Err(e);
        }
        Ok(record)
    }

    /// Enqueues `work` unless the same work is already waiting to start, so a
    /// burst of triggers (many trait runs, many completions) runs it once.
    pub(crate) async fn enqueue_once(
        &self,
        workspace_id: Uuid,
        work: Work,
    ) -> Result<job_records::Model> {
        let waiting = job_records::Entity::find()
            .filter(job_records::Column::WorkspaceId.eq(workspace_id))
            .filter(job_records::Column::Kind.eq(work.kind()))
            .filter(job_records::Column::Status.eq(JobStatus::Queued.as_str()))
            .all(&self.db)
            .await?;
        if let Some(same) = waiting
            .into_iter()
            .find(|r| serde_json::from_value::<Work>(r.payload.clone()).is_ok_and(|w| w == work))
        {
            return Ok(same);
        }
        self.enqueue(Some(workspace_id), work).await
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
        paginate(&self.db, q, job_records::Column::Id, page).await
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

    /// Runs one job for `worker`. A job whose record already succeeded is
    /// skipped, which makes redelivery harmless.
    pub async fn execute(&self, job: Job, worker: &str) -> Result<()> {
        let Some(record) = job_records::Entity::find_by_id(job.record_id)
            .one(&self.db)
            .await?
        else {
            tracing::warn!(record_id = %job.record_id, "job record is gone; dropping job");
            return Ok(());
        };
        if record.status == JobStatus::Succeeded.as_str() {
            return Ok(());
        }
        let mut running: job_records::ActiveModel = record.clone().into();
        running.status = Set(JobStatus::Running.as_str().to_owned());
        running.attempts = Set(record.attempts + 1);
        running.worker = Set(Some(worker.to_owned()));
        running.started_at = Set(Some(Utc::now()));
        let record = running.update(&self.db).await?;

        let outcome = match &job.work {
            Work::Diagnostic { message } => {
                tracing::info!(record_id = %record.id, worker, message, "diagnostic job ran");
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
        };
        let failure = outcome.as_ref().err().map(|e: &Error| e.to_string());
        self.finish(record, failure.map_or(Ok(()), Err)).await?;
        outcome
    }

    async fn finish(
        &self,
        record: job_records::Model,
        outcome: std::result::Result<(), String>,
    ) -> Result<()> {
        let mut done: job_records::ActiveModel = record.into();
        done.finished_at = Set(Some(Utc::now()));
        match outcome {
            Ok(()) => {
                done.status = Set(JobStatus::Succeeded.as_str().to_owned());
                done.error = Set(None);
            }
            Err(e) => {
                done.status = Set(JobStatus::Failed.as_str().to_owned());
                done.error = Set(Some(e));
            }
        }
        done.update(&self.db).await?;
        Ok(())
    }
}
