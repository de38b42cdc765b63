//! The outbox: writing job records and handing them to the queue.
//!
//! A job record *is* the outbox entry: it is written on the caller's
//! connection (the transaction of the state change that needs the job) with
//! `dispatched_at` NULL, handed to the queue after the commit, and marked
//! dispatched once the queue took it. When the queue is down the record stays
//! in the outbox and every worker's dispatcher retries it, so no state change
//! is left `queued` without a job.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use entity::job_records;

use super::{Job, JobHandler, JobStatus, payload, queue::Queue};
use crate::{Engine, Result};

/// Records younger than this are left to the dispatch of the request that wrote them.
const DISPATCH_GRACE: Duration = Duration::from_secs(2);
/// A job handed to Redis and not started after this long is handed over again
/// (safety net; a Redis restart is noticed at once, see [`Dispatcher`]).
const REDISPATCH_AFTER: Duration = Duration::from_secs(15 * 60);
/// Outbox records handed over per dispatcher pass.
const DISPATCH_BATCH: u64 = 500;

pub(super) fn ago(d: Duration) -> chrono::DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(d).expect("small duration")
}

/// Writes a job record into the outbox on `conn`. Commit it with the state
/// change that needs it, then call [`Engine::dispatch`].
pub(crate) async fn enqueue_in<C: ConnectionTrait>(
    conn: &C,
    workspace_id: Option<Uuid>,
    job: &impl JobHandler,
) -> Result<job_records::Model> {
    insert_record(conn, workspace_id, job, payload(job)?, None).await
}

async fn insert_record<C: ConnectionTrait, J: JobHandler>(
    conn: &C,
    workspace_id: Option<Uuid>,
    _: &J,
    payload: serde_json::Value,
    run_after: Option<chrono::DateTime<Utc>>,
) -> Result<job_records::Model> {
    Ok(job_records::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        kind: Set(J::KIND),
        payload: Set(payload),
        status: Set(JobStatus::Queued),
        attempts: Set(0),
        error: Set(None),
        worker: Set(None),
        enqueued_at: Set(Utc::now()),
        started_at: Set(None),
        finished_at: Set(None),
        dispatched_at: Set(None),
        heartbeat_at: Set(None),
        run_after: Set(run_after),
    }
    .insert(conn)
    .await?)
}

/// [`enqueue_in`] unless the same job (same payload) is already waiting to
/// start (then that record), so a burst of triggers runs it once.
pub(crate) async fn enqueue_once_in<C: ConnectionTrait, J: JobHandler>(
    conn: &C,
    workspace_id: impl Into<Option<Uuid>>,
    job: &J,
) -> Result<job_records::Model> {
    enqueue_once_after(conn, workspace_id, job, None).await
}

/// [`enqueue_once_in`] for a job not to be handed to the queue before
/// `run_after` (the outbox dispatcher hands it over when it is due). A
/// waiting record due later is brought forward to `run_after`.
pub(crate) async fn enqueue_once_after<C: ConnectionTrait, J: JobHandler>(
    conn: &C,
    workspace_id: impl Into<Option<Uuid>>,
    job: &J,
    run_after: Option<chrono::DateTime<Utc>>,
) -> Result<job_records::Model> {
    let workspace_id = workspace_id.into();
    let payload = payload(job)?;
    let waiting = job_records::Entity::find()
        .filter(match workspace_id {
            Some(ws) => job_records::Column::WorkspaceId.eq(ws),
            None => job_records::Column::WorkspaceId.is_null(),
        })
        .filter(job_records::Column::Kind.eq(J::KIND))
        .filter(job_records::Column::Status.eq(JobStatus::Queued))
        .all(conn)
        .await?;
    if let Some(mut same) = waiting.into_iter().find(|r| r.payload == payload) {
        let later = match (same.run_after, run_after) {
            (Some(waits), Some(wanted)) => waits > wanted,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if later {
            job_records::Entity::update_many()
                .col_expr(job_records::Column::RunAfter, Expr::value(run_after))
                .filter(job_records::Column::Id.eq(same.id))
                .exec(conn)
                .await?;
            same.run_after = run_after;
        }
        return Ok(same);
    }
    insert_record(conn, workspace_id, job, payload, run_after).await
}

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
    /// Inserts `row` and the job it needs (`job` of the inserted row) in one
    /// transaction, then dispatches the job.
    pub(crate) async fn insert_with_job<A, J: JobHandler>(
        &self,
        workspace_id: Uuid,
        row: A,
        job: impl FnOnce(&<A::Entity as EntityTrait>::Model) -> J + Send + 'static,
    ) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send + 'static,
        <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A> + Send,
    {
        let (row, job) = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let row = row.insert(tx).await?;
                let job = enqueue_in(tx, Some(workspace_id), &job(&row)).await?;
                Ok((row, job))
            })
        })
        .await?;
        self.dispatch(&job).await;
        Ok(row)
    }

    /// Hands an outbox record to the queue now (a record that is already
    /// on it, found by `enqueue_once_in`, is left). If the queue is
    /// unreachable the record stays in the outbox; the dispatcher retries it.
    pub async fn dispatch(&self, record: &job_records::Model) {
        if record.dispatched_at.is_some() || record.run_after.is_some_and(|at| at > Utc::now()) {
            return;
        }
        if let Err(e) = self.hand_over(record).await {
            tracing::warn!(record_id = %record.id, kind = %record.kind, error = %e, "job kept in the outbox; the dispatcher will retry");
        }
    }

    async fn hand_over(&self, record: &job_records::Model) -> Result<()> {
        self.queue
            .push(Job {
                record_id: record.id,
                work: record.payload.clone(),
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
            .filter(job_records::Column::Status.eq(JobStatus::Queued))
            .filter(due)
            .filter(
                Condition::any()
                    .add(job_records::Column::RunAfter.is_null())
                    .add(job_records::Column::RunAfter.lte(Utc::now())),
            )
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
            if let Err(e) = self
                .queue
                .push(Job {
                    record_id: record.id,
                    work: record.payload.clone(),
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
            .filter(job_records::Column::Status.eq(JobStatus::Queued))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Records in the outbox not yet handed to the queue (metrics).
    pub async fn outbox_waiting(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(job_records::Entity::find()
            .filter(job_records::Column::Status.eq(JobStatus::Queued))
            .filter(job_records::Column::DispatchedAt.is_null())
            .count(&self.db)
            .await?)
    }
}
