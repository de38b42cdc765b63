//! The outbox and lost-work recovery.
//!
//! A job record *is* the outbox entry: it is written on the caller's
//! connection (the transaction of the state change that needs the job) with
//! `dispatched_at` NULL, handed to the queue after the commit, and marked
//! dispatched once the queue took it. When the queue is down the record stays
//! in the outbox and every worker's dispatcher retries it, so no state change
//! is left `queued` without a job.
//!
//! A running job writes a heartbeat every [`JOB_HEARTBEAT`]. A record still
//! `running` without one for [`JOB_LOST_AFTER`] belonged to a process that
//! died: it goes back to the outbox (handlers are idempotent), or, after
//! [`MAX_ATTEMPTS`], is failed together with its domain rows, saying why.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use entity::{
    ingestion_runs, job_records, notifications, prediction_status, segments, source_files,
    trait_runs,
};

use crate::{
    Engine, Error, Result,
    ingest::{files::FileStatus, sources::DeliveryStatus},
    jobs::{Job, JobStatus, Work},
    prediction::PredictionStatus,
    queue::Queue,
    segments::ComputeStatus,
    traits::runs::RunStatus,
};

/// How often a running job proves it is alive.
pub const JOB_HEARTBEAT: Duration = Duration::from_secs(5);
/// A running job without a heartbeat for this long is taken up again.
pub const JOB_LOST_AFTER: Duration = Duration::from_secs(30);
/// A job lost this many times (its worker died each time) is failed instead.
pub const MAX_ATTEMPTS: i32 = 5;
/// Records younger than this are left to the dispatch of the request that wrote them.
const DISPATCH_GRACE: Duration = Duration::from_secs(2);
/// A job handed to Redis and not started after this long is handed over again
/// (safety net; a Redis restart is noticed at once, see [`Dispatcher`]).
const REDISPATCH_AFTER: Duration = Duration::from_secs(15 * 60);
/// Outbox records handed over per dispatcher pass.
const DISPATCH_BATCH: u64 = 500;

fn ago(d: Duration) -> chrono::DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(d).expect("small duration")
}

/// Writes a job record into the outbox on `conn`. Commit it with the state
/// change that needs it, then call [`Engine::dispatch`].
pub(crate) async fn enqueue_in<C: ConnectionTrait>(
    conn: &C,
    workspace_id: Option<Uuid>,
    work: Work,
) -> Result<job_records::Model> {
    Ok(job_records::ActiveModel {
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
        dispatched_at: Set(None),
        heartbeat_at: Set(None),
    }
    .insert(conn)
    .await?)
}

/// [`enqueue_in`] unless the same work is already waiting to start (then
/// that record), so a burst of triggers runs it once.
pub(crate) async fn enqueue_once_in<C: ConnectionTrait>(
    conn: &C,
    workspace_id: Uuid,
    work: Work,
) -> Result<job_records::Model> {
    let waiting = job_records::Entity::find()
        .filter(job_records::Column::WorkspaceId.eq(workspace_id))
        .filter(job_records::Column::Kind.eq(work.kind()))
        .filter(job_records::Column::Status.eq(JobStatus::Queued.as_str()))
        .all(conn)
        .await?;
    if let Some(same) = waiting
        .into_iter()
        .find(|r| serde_json::from_value::<Work>(r.payload.clone()).is_ok_and(|w| w == work))
    {
        return Ok(same);
    }
    enqueue_in(conn, Some(workspace_id), work).await
}

/// Jobs this process is running. Their heartbeats are its own, so recovery
/// never takes them, even when a long SQLite write delays a heartbeat.
#[derive(Default)]
pub(crate) struct LocalJobs(Mutex<HashSet<Uuid>>);

impl LocalJobs {
    fn ids(&self) -> Vec<Uuid> {
        self.0.lock().expect("local jobs").iter().copied().collect()
    }
}

/// Held while a job runs: writes its heartbeat; on drop (done, failed or the
/// future dropped) the heartbeat stops.
pub(crate) struct KeepAlive {
    id: Uuid,
    local: Arc<LocalJobs>,
    beat: tokio::task::JoinHandle<()>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.beat.abort();
        self.local.0.lock().expect("local jobs").remove(&self.id);
    }
}

/// Remembers the Redis server's `run_id`: a new one means Redis restarted and
/// may have lost the jobs it held, so every waiting job is handed over again.
#[derive(Default)]
pub struct Dispatcher {
    redis_run_id: Option<String>,
}

impl Dispatcher {
    /// One pass: take up lost jobs, then hand the outbox to the queue.
    /// Returns how many records were handed over.
    pub async fn pass(&mut self, engine: &Engine) -> Result<usize> {
        let recovered = engine.recover_lost_jobs().await?;
        if recovered > 0 {
            tracing::warn!(recovered, "jobs of a dead worker taken up again");
        }
        let restarted = match engine.queue() {
            Queue::Redis(_) => {
                let id = engine.queue().redis_run_id().await?;
                let restarted = self.redis_run_id.as_ref().is_some_and(|old| *old != id);
                self.redis_run_id = Some(id);
                restarted
            }
            Queue::Sqlite(_) => false,
        };
        if restarted {
            let n = engine.forget_dispatches().await?;
            tracing::warn!(
                jobs = n,
                "the Redis server restarted: waiting jobs handed over again"
            );
        }
        engine.dispatch_outbox().await
    }
}

impl Engine {
    /// Inserts `row` and the job it needs (`work` of the inserted row) in one
    /// transaction, then dispatches the job.
    pub(crate) async fn insert_with_job<A>(
        &self,
        workspace_id: Uuid,
        row: A,
        work: impl FnOnce(&<A::Entity as EntityTrait>::Model) -> Work + Send + 'static,
    ) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send + 'static,
        <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A> + Send,
    {
        let (row, job) = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let row = row.insert(tx).await?;
                let job = enqueue_in(tx, Some(workspace_id), work(&row)).await?;
                Ok((row, job))
            })
        })
        .await?;
        self.dispatch(&job).await;
        Ok(row)
    }

    /// Takes the record for this run: only a `queued` record can be taken, so
    /// a second delivery of a job (a redelivery, a second dispatch) finds it
    /// running or finished and does nothing.
    pub(crate) async fn claim(
        &self,
        record_id: Uuid,
        worker: &str,
    ) -> Result<Option<job_records::Model>> {
        let now = Utc::now();
        let taken = job_records::Entity::update_many()
            .col_expr(
                job_records::Column::Status,
                Expr::value(JobStatus::Running.as_str()),
            )
            .col_expr(
                job_records::Column::Attempts,
                Expr::col(job_records::Column::Attempts).add(1),
            )
            .col_expr(job_records::Column::Worker, Expr::value(worker))
            .col_expr(job_records::Column::StartedAt, Expr::value(now))
            .col_expr(job_records::Column::HeartbeatAt, Expr::value(now))
            .filter(job_records::Column::Id.eq(record_id))
            .filter(job_records::Column::Status.eq(JobStatus::Queued.as_str()))
            .exec(&self.db)
            .await?
            .rows_affected;
        if taken == 0 {
            return Ok(None);
        }
        Ok(job_records::Entity::find_by_id(record_id)
            .one(&self.db)
            .await?)
    }

    /// Puts a running record back in the outbox after a transient failure. If
    /// this write fails too (the database is still away), the record stays
    /// `running` without heartbeats and is taken up after [`JOB_LOST_AFTER`].
    pub(crate) async fn retry(&self, record_id: Uuid, attempt: i32, cause: &str) -> Result<()> {
        job_records::Entity::update_many()
            .col_expr(
                job_records::Column::Status,
                Expr::value(JobStatus::Queued.as_str()),
            )
            .col_expr(
                job_records::Column::DispatchedAt,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(
                job_records::Column::Error,
                Expr::value(Some(format!("attempt {attempt}: {cause}; running again"))),
            )
            .filter(job_records::Column::Id.eq(record_id))
            .filter(job_records::Column::Status.eq(JobStatus::Running.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Registers the job as running here and writes its heartbeat until dropped.
    pub(crate) fn keep_alive(&self, record_id: Uuid) -> KeepAlive {
        self.local_jobs
            .0
            .lock()
            .expect("local jobs")
            .insert(record_id);
        let db = self.db.clone();
        let beat = tokio::spawn(async move {
            let mut every = tokio::time::interval(JOB_HEARTBEAT);
            every.tick().await;
            loop {
                every.tick().await;
                let beat = job_records::Entity::update_many()
                    .col_expr(job_records::Column::HeartbeatAt, Expr::value(Utc::now()))
                    .filter(job_records::Column::Id.eq(record_id))
                    .filter(job_records::Column::Status.eq(JobStatus::Running.as_str()))
                    .exec(&db)
                    .await;
                if let Err(e) = beat {
                    tracing::debug!(%record_id, error = %e, "job heartbeat not written");
                }
            }
        });
        KeepAlive {
            id: record_id,
            local: self.local_jobs.clone(),
            beat,
        }
    }

    /// Hands an outbox record to the queue now (a record that is already
    /// on it, found by `enqueue_once_in`, is left). If the queue is
    /// unreachable the record stays in the outbox; the dispatcher retries it.
    pub async fn dispatch(&self, record: &job_records::Model) {
        if record.dispatched_at.is_some() {
            return;
        }
        if let Err(e) = self.hand_over(record).await {
            tracing::warn!(record_id = %record.id, kind = %record.kind, error = %e, "job kept in the outbox; the dispatcher will retry");
        }
    }

    async fn hand_over(&self, record: &job_records::Model) -> Result<()> {
        let work: Work = serde_json::from_value(record.payload.clone()).map_err(Error::internal)?;
        self.queue
            .push(Job {
                record_id: record.id,
                work,
            })
            .await?;
        job_records::Entity::update_many()
            .col_expr(job_records::Column::DispatchedAt, Expr::value(Utc::now()))
            .filter(job_records::Column::Id.eq(record.id))
            .filter(job_records::Column::DispatchedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Hands every waiting outbox record to the queue (and, on Redis, records
    /// that waited there implausibly long). Stops at the first failure: the
    /// queue is down, the next pass retries.
    pub async fn dispatch_outbox(&self) -> Result<usize> {
        let mut due = Condition::any().add(
            Condition::all()
                .add(job_records::Column::DispatchedAt.is_null())
                .add(job_records::Column::EnqueuedAt.lt(ago(DISPATCH_GRACE))),
        );
        if matches!(self.queue, Queue::Redis(_)) {
            due = due.add(job_records::Column::DispatchedAt.lt(ago(REDISPATCH_AFTER)));
        }
        let waiting = job_records::Entity::find()
            .filter(job_records::Column::Status.eq(JobStatus::Queued.as_str()))
            .filter(due)
            .order_by_asc(job_records::Column::Id)
            .limit(DISPATCH_BATCH)
            .all(&self.db)
            .await?;
        let mut handed = 0;
        for record in waiting {
            // Take the record first, so two dispatchers do not both push it.
            let mut take = job_records::Entity::update_many()
                .col_expr(job_records::Column::DispatchedAt, Expr::value(Utc::now()))
                .filter(job_records::Column::Id.eq(record.id));
            take = match record.dispatched_at {
                None => take.filter(job_records::Column::DispatchedAt.is_null()),
                Some(at) => take.filter(job_records::Column::DispatchedAt.eq(at)),
            };
            if take.exec(&self.db).await?.rows_affected == 0 {
                continue;
            }
            let work: Work =
                serde_json::from_value(record.payload.clone()).map_err(Error::internal)?;
            if let Err(e) = self
                .queue
                .push(Job {
                    record_id: record.id,
                    work,
                })
                .await
            {
                job_records::Entity::update_many()
                    .col_expr(
                        job_records::Column::DispatchedAt,
                        Expr::value(record.dispatched_at),
                    )
                    .filter(job_records::Column::Id.eq(record.id))
                    .exec(&self.db)
                    .await?;
                return Err(e);
            }
            handed += 1;
        }
        Ok(handed)
    }

    /// After the queue lost what it held: every waiting job goes back to the outbox.
    async fn forget_dispatches(&self) -> Result<u64> {
        Ok(job_records::Entity::update_many()
            .col_expr(
                job_records::Column::DispatchedAt,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .filter(job_records::Column::Status.eq(JobStatus::Queued.as_str()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Running records whose worker stopped sending heartbeats go back to the
    /// outbox, or are failed after [`MAX_ATTEMPTS`] with their domain rows.
    pub async fn recover_lost_jobs(&self) -> Result<usize> {
        let lost_before = ago(JOB_LOST_AFTER);
        let lost = job_records::Entity::find()
            .filter(job_records::Column::Status.eq(JobStatus::Running.as_str()))
            .filter(
                Condition::any()
                    .add(job_records::Column::HeartbeatAt.lt(lost_before))
                    .add(
                        Condition::all()
                            .add(job_records::Column::HeartbeatAt.is_null())
                            .add(job_records::Column::StartedAt.lt(lost_before)),
                    ),
            )
            .filter(job_records::Column::Id.is_not_in(self.local_jobs.ids()))
            .all(&self.db)
            .await?;
        let mut recovered = 0;
        for record in lost {
            let worker = record.worker.as_deref().unwrap_or("?");
            let give_up = record.attempts >= MAX_ATTEMPTS;
            let reason = if give_up {
                format!(
                    "lost {} times: the worker running it stopped (killed or crashed) each time; last {worker}",
                    record.attempts
                )
            } else {
                format!("worker {worker} stopped sending heartbeats; taken up again")
            };
            let mut update = job_records::Entity::update_many()
                .col_expr(
                    job_records::Column::Error,
                    Expr::value(Some(reason.clone())),
                )
                .filter(job_records::Column::Id.eq(record.id))
                .filter(job_records::Column::Status.eq(JobStatus::Running.as_str()))
                .filter(match record.heartbeat_at {
                    Some(at) => job_records::Column::HeartbeatAt.eq(at),
                    None => job_records::Column::HeartbeatAt.is_null(),
                });
            update = if give_up {
                update
                    .col_expr(
                        job_records::Column::Status,
                        Expr::value(JobStatus::Failed.as_str()),
                    )
                    .col_expr(job_records::Column::FinishedAt, Expr::value(Utc::now()))
            } else {
                update
                    .col_expr(
                        job_records::Column::Status,
                        Expr::value(JobStatus::Queued.as_str()),
                    )
                    .col_expr(
                        job_records::Column::DispatchedAt,
                        Expr::value(Option::<chrono::DateTime<Utc>>::None),
                    )
            };
            if update.exec(&self.db).await?.rows_affected == 0 {
                continue; // it beat in between, or another process took it
            }
            tracing::warn!(record_id = %record.id, kind = %record.kind, attempts = record.attempts, %reason, "lost job");
            if give_up && let Ok(work) = serde_json::from_value::<Work>(record.payload) {
                self.abandon(&work, &reason).await?;
            }
            recovered += 1;
        }
        Ok(recovered)
    }

    /// Fails the domain rows of a job that will not run again, so nothing a
    /// user started stays `running` for ever.
    async fn abandon(&self, work: &Work, reason: &str) -> Result<()> {
        let now = Utc::now();
        let open = [RunStatus::Queued.as_str(), RunStatus::Running.as_str()];
        let failed = RunStatus::Failed.as_str();
        match work {
            Work::Diagnostic { .. } => {}
            Work::EvaluateTrait { run_id } => self.fail_trait_runs(&[*run_id], reason).await?,
            Work::EvaluateTraits { run_ids } => self.fail_trait_runs(run_ids, reason).await?,
            Work::ScanSource { run_id } => {
                ingestion_runs::Entity::update_many()
                    .col_expr(ingestion_runs::Column::Status, Expr::value(failed))
                    .col_expr(ingestion_runs::Column::Error, Expr::value(Some(reason)))
                    .col_expr(ingestion_runs::Column::FinishedAt, Expr::value(Some(now)))
                    .filter(ingestion_runs::Column::Id.eq(*run_id))
                    .filter(ingestion_runs::Column::Status.is_in(open))
                    .exec(&self.db)
                    .await?;
            }
            Work::LoadFile { file_id } => {
                source_files::Entity::update_many()
                    .col_expr(
                        source_files::Column::Status,
                        Expr::value(FileStatus::Failed.as_str()),
                    )
                    .col_expr(source_files::Column::Error, Expr::value(Some(reason)))
                    .col_expr(source_files::Column::FinishedAt, Expr::value(Some(now)))
                    .filter(source_files::Column::Id.eq(*file_id))
                    .filter(
                        source_files::Column::Status
                            .is_in([FileStatus::Queued.as_str(), FileStatus::Loading.as_str()]),
                    )
                    .exec(&self.db)
                    .await?;
            }
            Work::DeliverNotification { notification_id } => {
                notifications::Entity::update_many()
                    .col_expr(
                        notifications::Column::DeliveryStatus,
                        Expr::value(Some(DeliveryStatus::Failed.as_str())),
                    )
                    .col_expr(
                        notifications::Column::DeliveryError,
                        Expr::value(Some(reason)),
                    )
                    .filter(notifications::Column::Id.eq(*notification_id))
                    .filter(
                        notifications::Column::DeliveryStatus.eq(DeliveryStatus::Pending.as_str()),
                    )
                    .exec(&self.db)
                    .await?;
            }
            Work::ComputeSegment { segment_id } | Work::ComputePersonas { segment_id } => {
                let (status, error) = match work {
                    Work::ComputeSegment { .. } => (
                        segments::Column::MembersStatus,
                        segments::Column::MembersError,
                    ),
                    _ => (
                        segments::Column::PersonasStatus,
                        segments::Column::PersonasError,
                    ),
                };
                segments::Entity::update_many()
                    .col_expr(status, Expr::value(ComputeStatus::Failed.as_str()))
                    .col_expr(error, Expr::value(Some(reason)))
                    .filter(segments::Column::Id.eq(*segment_id))
                    .exec(&self.db)
                    .await?;
            }
            Work::TrainPrediction { workspace_id } => {
                prediction_status::Entity::update_many()
                    .col_expr(
                        prediction_status::Column::Status,
                        Expr::value(PredictionStatus::Failed.as_str()),
                    )
                    .col_expr(prediction_status::Column::Message, Expr::value(reason))
                    .col_expr(prediction_status::Column::FinishedAt, Expr::value(now))
                    .filter(prediction_status::Column::WorkspaceId.eq(*workspace_id))
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok(())
    }

    async fn fail_trait_runs(&self, run_ids: &[Uuid], reason: &str) -> Result<()> {
        trait_runs::Entity::update_many()
            .col_expr(
                trait_runs::Column::Status,
                Expr::value(RunStatus::Failed.as_str()),
            )
            .col_expr(trait_runs::Column::Error, Expr::value(Some(reason)))
            .col_expr(
                trait_runs::Column::FinishedAt,
                Expr::value(Some(Utc::now())),
            )
            .filter(trait_runs::Column::Id.is_in(run_ids.to_vec()))
            .filter(
                trait_runs::Column::Status
                    .is_in([RunStatus::Queued.as_str(), RunStatus::Running.as_str()]),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Records in the outbox not yet handed to the queue (metrics).
    pub async fn outbox_waiting(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(job_records::Entity::find()
            .filter(job_records::Column::Status.eq(JobStatus::Queued.as_str()))
            .filter(job_records::Column::DispatchedAt.is_null())
            .count(&self.db)
            .await?)
    }
}
