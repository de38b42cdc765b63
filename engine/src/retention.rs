//! Bounded history. Finished job records, trait runs, delivered
//! notifications and finished source scans older than the retention window,
//! and expired console sessions, are deleted by the `PruneHistory` job (queued
//! hourly by the workers' clock), a bounded batch per transaction so that no
//! writer (on SQLite: every writer) waits long behind it.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, Query},
};
use serde::{Deserialize, Serialize};

use entity::{
    console_sessions, ingestion_runs, job_records, notifications,
    states::{DeliveryStatus, JobStatus, RunStatus},
    trait_runs,
};

use crate::{
    Engine, Result,
    jobs::{JobHandler, JobKind},
};

/// `HISTORY_DAYS`: how long finished records are kept.
pub const DEFAULT_HISTORY_DAYS: u32 = 30;
/// `TRAIT_RUNS_KEPT`: a trait's newest runs kept whatever their age.
pub const DEFAULT_TRAIT_RUNS_KEPT: u32 = 50;
/// Rows deleted per transaction: on SQLite a batch holds the write lock for
/// milliseconds, so requests and loads slip in between batches.
pub const PRUNE_BATCH: u64 = 2_000;

#[derive(Clone, Copy, Debug)]
pub struct HistoryRetention {
    pub days: u32,
    pub trait_runs_kept: u32,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        HistoryRetention {
            days: DEFAULT_HISTORY_DAYS,
            trait_runs_kept: DEFAULT_TRAIT_RUNS_KEPT,
        }
    }
}

/// What one pruning deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub job_records: u64,
    pub trait_runs: u64,
    pub notifications: u64,
    pub ingestion_runs: u64,
    pub console_sessions: u64,
    /// The longest a batch's transaction took, in milliseconds.
    pub longest_batch_ms: u64,
}

/// Deletes history older than the retention window (across workspaces).
#[derive(Serialize, Deserialize)]
pub struct PruneHistory {}

#[async_trait::async_trait]
impl JobHandler for PruneHistory {
    const KIND: JobKind = JobKind::PruneHistory;
    const HEAVY: bool = false;

    async fn run(&self, engine: &Engine) -> Result<()> {
        let pruned = engine.prune_history(Utc::now()).await?;
        tracing::info!(?pruned, "history pruned");
        Ok(())
    }

    async fn abandon(&self, _: &DatabaseTransaction, _: &str) -> Result<()> {
        Ok(())
    }
}

impl Engine {
    /// Queues the pruning once an hour (at minute 17, away from the
    /// top-of-the-hour schedules); a pruning already waiting is not doubled.
    pub async fn queue_history_pruning(&self, now: DateTime<Utc>) -> Result<bool> {
        use chrono::Timelike;
        if now.minute() != 17 {
            return Ok(false);
        }
        let record = crate::jobs::enqueue_once_in(&self.db, None, &PruneHistory {}).await?;
        self.dispatch(&record).await;
        Ok(true)
    }

    /// Deletes every record the retention window lets go, as of `now`.
    pub async fn prune_history(&self, now: DateTime<Utc>) -> Result<Pruned> {
        let cutoff = now - chrono::Duration::days(i64::from(self.history.days));
        let mut pruned = Pruned::default();
        let mut longest = std::time::Duration::ZERO;

        let finished_jobs = Condition::all()
            .add(job_records::Column::Status.is_in([JobStatus::Succeeded, JobStatus::Failed]))
            .add(job_records::Column::FinishedAt.lt(cutoff));
        pruned.job_records = self
            .prune::<job_records::Entity>(job_records::Column::Id, finished_jobs, &mut longest)
            .await?;

        pruned.trait_runs = self
            .prune::<trait_runs::Entity>(
                trait_runs::Column::Id,
                self.prunable_trait_runs(cutoff),
                &mut longest,
            )
            .await?;

        // Delivered or failed deliveries, and notifications no webhook was to get.
        let settled = Condition::all()
            .add(notifications::Column::CreatedAt.lt(cutoff))
            .add(
                Condition::any()
                    .add(notifications::Column::DeliveryStatus.is_null())
                    .add(
                        notifications::Column::DeliveryStatus
                            .is_in([DeliveryStatus::Delivered, DeliveryStatus::Failed]),
                    ),
            );
        pruned.notifications = self
            .prune::<notifications::Entity>(notifications::Column::Id, settled, &mut longest)
            .await?;

        let finished_scans = Condition::all()
            .add(ingestion_runs::Column::Status.is_in([RunStatus::Succeeded, RunStatus::Failed]))
            .add(ingestion_runs::Column::FinishedAt.lt(cutoff));
        pruned.ingestion_runs = self
            .prune::<ingestion_runs::Entity>(
                ingestion_runs::Column::Id,
                finished_scans,
                &mut longest,
            )
            .await?;

        let expired = Condition::all().add(console_sessions::Column::ExpiresAt.lt(now));
        pruned.console_sessions = self
            .prune::<console_sessions::Entity>(
                console_sessions::Column::TokenHash,
                expired,
                &mut longest,
            )
            .await?;
        pruned.longest_batch_ms = longest.as_millis() as u64;
        Ok(pruned)
    }

    /// Finished runs older than the cutoff, except a trait's newest
    /// `trait_runs_kept` runs and its newest succeeded run (the one its
    /// current values come from).
    fn prunable_trait_runs(&self, cutoff: DateTime<Utc>) -> Condition {
        let kept = i64::from(std::cmp::max(self.history.trait_runs_kept, 1));
        Condition::all()
            .add(trait_runs::Column::Status.is_in([RunStatus::Succeeded, RunStatus::Failed]))
            .add(trait_runs::Column::FinishedAt.lt(cutoff))
            .add(Expr::cust_with_values(
                "(SELECT COUNT(*) FROM trait_runs AS newer \
                 WHERE newer.trait_id = trait_runs.trait_id AND newer.id > trait_runs.id) >= ?",
                [kept],
            ))
            .add(
                Condition::any()
                    .add(trait_runs::Column::Status.ne(RunStatus::Succeeded))
                    .add(Expr::cust_with_values(
                        "EXISTS (SELECT 1 FROM trait_runs AS later \
                         WHERE later.trait_id = trait_runs.trait_id AND later.status = ? \
                         AND later.id > trait_runs.id)",
                        [RunStatus::Succeeded.as_str()],
                    )),
            )
    }

    /// Deletes the rows of `E` matching `which`, [`PRUNE_BATCH`] per statement
    /// (each its own transaction), until none is left.
    async fn prune<E: EntityTrait>(
        &self,
        id: E::Column,
        which: Condition,
        longest: &mut std::time::Duration,
    ) -> Result<u64> {
        let mut total = 0;
        loop {
            let batch = Query::select()
                .column(id)
                .from(E::default())
                .cond_where(which.clone())
                .limit(PRUNE_BATCH)
                .to_owned();
            let started = std::time::Instant::now();
            let deleted = E::delete_many()
                .filter(Expr::col(id).in_subquery(batch))
                .exec(&self.db)
                .await?
                .rows_affected;
            *longest = (*longest).max(started.elapsed());
            total += deleted;
            if deleted < PRUNE_BATCH {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}
