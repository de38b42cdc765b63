//! Claims, heartbeats and lost-work recovery.
//!
//! A worker claims a record (`queued` → `running`) before running it. A
//! running job writes a heartbeat every [`JOB_HEARTBEAT`]. A record still
//! `running` without one for [`JOB_LOST_AFTER`] belonged to a process that
//! died: it goes back to the outbox (handlers are idempotent), or, after
//! [`MAX_ATTEMPTS`], is given up with its domain rows, saying why.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use entity::job_records;

use super::{Holder, JobStatus, outbox::ago};
use crate::{Engine, Result};

/// How often a running job proves it is alive.
pub const JOB_HEARTBEAT: Duration = Duration::from_secs(5);
/// A running job without a heartbeat for this long is taken up again.
pub const JOB_LOST_AFTER: Duration = Duration::from_secs(30);
/// A job fails for good at this attempt: lost this many times (its worker
/// died each time), or failing transiently (the database away) each time.
pub const MAX_ATTEMPTS: i32 = 5;

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

impl Engine {
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
            .col_expr(job_records::Column::Status, Expr::value(JobStatus::Running))
            .col_expr(
                job_records::Column::Attempts,
                Expr::col(job_records::Column::Attempts).add(1),
            )
            .col_expr(job_records::Column::Worker, Expr::value(worker))
            .col_expr(job_records::Column::StartedAt, Expr::value(now))
            .col_expr(job_records::Column::HeartbeatAt, Expr::value(now))
            .filter(job_records::Column::Id.eq(record_id))
            .filter(job_records::Column::Status.eq(JobStatus::Queued))
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
            .col_expr(job_records::Column::Status, Expr::value(JobStatus::Queued))
            .col_expr(
                job_records::Column::DispatchedAt,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(
                job_records::Column::Error,
                Expr::value(Some(format!("attempt {attempt}: {cause}; running again"))),
            )
            .filter(job_records::Column::Id.eq(record_id))
            .filter(job_records::Column::Status.eq(JobStatus::Running))
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
                    .filter(job_records::Column::Status.eq(JobStatus::Running))
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

    /// Running records whose worker stopped sending heartbeats go back to the
    /// outbox, or are failed after [`MAX_ATTEMPTS`] with their domain rows.
    pub async fn recover_lost_jobs(&self) -> Result<usize> {
        let lost_before = ago(JOB_LOST_AFTER);
        let lost = job_records::Entity::find()
            .filter(job_records::Column::Status.eq(JobStatus::Running))
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
            let taken = if give_up {
                // A payload no handler reads still fails its record.
                let job = self.registry.decode(&record).ok();
                let holder = Holder::Lost {
                    heartbeat_at: record.heartbeat_at,
                };
                self.give_up(record.id, holder, job.as_deref(), &reason)
                    .await?
            } else {
                job_records::Entity::update_many()
                    .col_expr(
                        job_records::Column::Error,
                        Expr::value(Some(reason.as_str())),
                    )
                    .col_expr(job_records::Column::Status, Expr::value(JobStatus::Queued))
                    .col_expr(
                        job_records::Column::DispatchedAt,
                        Expr::value(Option::<chrono::DateTime<Utc>>::None),
                    )
                    .filter(job_records::Column::Id.eq(record.id))
                    .filter(job_records::Column::Status.eq(JobStatus::Running))
                    .filter(match record.heartbeat_at {
                        Some(at) => job_records::Column::HeartbeatAt.eq(at),
                        None => job_records::Column::HeartbeatAt.is_null(),
                    })
                    .exec(&self.db)
                    .await?
                    .rows_affected
                    > 0
            };
            if !taken {
                continue; // it beat in between, or another process took it
            }
            tracing::warn!(record_id = %record.id, kind = %record.kind, attempts = record.attempts, %reason, "lost job");
            recovered += 1;
        }
        Ok(recovered)
    }
}
