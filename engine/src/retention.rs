//! Bounded history. Finished job records, trait runs, incremental passes,
//! delivered notifications and finished source scans older than the retention window,
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
    trait_passes, trait_runs,
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
    pub trait_passes: u64,
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

        let old_passes = Condition::all().add(trait_passes::Column::FinishedAt.lt(cutoff));
        pruned.trait_passes = self
            .prune::<trait_passes::Entity>(trait_passes::Column::Id, old_passes, &mut longest)
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

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait, PaginatorTrait,
    };
    use uuid::Uuid;

    use entity::{
        job_records,
        states::{JobKind, JobStatus},
    };

    use crate::test_engine::engine;

    async fn record(db: &impl ConnectionTrait, status: JobStatus, days_ago: i64) -> Uuid {
        let at = Utc::now() - Duration::days(days_ago);
        let finished = matches!(status, JobStatus::Succeeded | JobStatus::Failed);
        job_records::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(None),
            kind: Set(JobKind::Diagnostic),
            payload: Set(serde_json::json!({ "type": "diagnostic", "message": "x" })),
            status: Set(status),
            attempts: Set(1),
            error: Set(None),
            worker: Set(None),
            enqueued_at: Set(at),
            started_at: Set(Some(at)),
            finished_at: Set(finished.then_some(at)),
            dispatched_at: Set(Some(at)),
            heartbeat_at: Set(None),
            run_after: Set(None),
        }
        .insert(db)
        .await
        .unwrap()
        .id
    }

    /// 100 000 finished records older than the window go, in batches that
    /// each hold the write lock briefly; newer ones and unfinished ones stay.
    #[tokio::test]
    async fn old_finished_records_are_pruned_in_short_batches() {
        let (engine, p) = engine().await;
        let db = engine.db();
        // An incremental pass 40 days old goes, one of yesterday stays.
        for days_ago in [40, 1] {
            entity::trait_passes::ActiveModel {
                id: Set(Uuid::now_v7()),
                workspace_id: Set(p.workspace_id),
                trait_id: Set(Uuid::now_v7()),
                entities: Set(1),
                rows_read: Set(1),
                rows_changed: Set(1),
                duration_ms: Set(1),
                finished_at: Set(Utc::now() - Duration::days(days_ago)),
            }
            .insert(db)
            .await
            .unwrap();
        }
        let old = record(db, JobStatus::Succeeded, 40).await;
        // 99 999 copies of it (fresh ids), in one statement.
        db.execute_unprepared(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 99999) \
             INSERT INTO job_records (id, workspace_id, kind, payload, status, attempts, error, worker, \
             enqueued_at, started_at, finished_at, dispatched_at, heartbeat_at) \
             SELECT randomblob(16), workspace_id, kind, payload, status, attempts, error, worker, \
             enqueued_at, started_at, finished_at, dispatched_at, heartbeat_at \
             FROM job_records, n",
        )
        .await
        .unwrap();
        let failed_old = record(db, JobStatus::Failed, 31).await;
        let recent = record(db, JobStatus::Succeeded, 29).await;
        let running_old = record(db, JobStatus::Running, 40).await;
        let queued_old = record(db, JobStatus::Queued, 40).await;
        assert_eq!(
            job_records::Entity::find().count(db).await.unwrap(),
            100_004
        );

        let pruned = engine.prune_history(Utc::now()).await.unwrap();
        assert_eq!(pruned.job_records, 100_001);
        assert_eq!(pruned.trait_passes, 1);
        assert_eq!(
            entity::trait_passes::Entity::find()
                .count(db)
                .await
                .unwrap(),
            1
        );
        assert!(
            pruned.longest_batch_ms < 1000,
            "a batch held the write lock for {} ms",
            pruned.longest_batch_ms
        );
        let left: Vec<Uuid> = job_records::Entity::find()
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        for id in [recent, running_old, queued_old] {
            assert!(left.contains(&id));
        }
        assert!(!left.contains(&old) && !left.contains(&failed_old));
        assert_eq!(left.len(), 3);
        // Nothing more to do the second time.
        assert_eq!(
            engine.prune_history(Utc::now()).await.unwrap().job_records,
            0
        );
    }

    /// A trait keeps its newest runs and its newest successful one.
    #[tokio::test]
    async fn a_trait_keeps_its_newest_runs() {
        use entity::{states::RunStatus, trait_runs};
        let (mut engine, p) = engine().await;
        engine.history.trait_runs_kept = 2;
        let players = engine.players_model_id(p.workspace_id).await.unwrap();
        let input = crate::traits::TraitInput {
            name: Some("Level".into()),
            parent_model_id: Some(players),
            trait_type: Some("sql".into()),
            config: Some(serde_json::json!({ "sql_expression": "level" })),
            result_type: Some("number".into()),
            ..Default::default()
        };
        let t = engine.create_trait(&p, input).await.unwrap();
        let db = engine.db();
        trait_runs::Entity::delete_many().exec(db).await.unwrap();
        let mut ids = Vec::new();
        // Oldest first: succeeded, then four failed, all 40 days old.
        for status in [
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Failed,
            RunStatus::Failed,
            RunStatus::Failed,
        ] {
            let run = engine.trigger_trait(&p, t.id).await.unwrap();
            let mut old: trait_runs::ActiveModel = run.into();
            old.status = Set(status);
            old.finished_at = Set(Some(Utc::now() - Duration::days(40)));
            ids.push(old.update(db).await.unwrap().id);
        }
        let pruned = engine.prune_history(Utc::now()).await.unwrap();
        assert_eq!(pruned.trait_runs, 2);
        let mut left: Vec<Uuid> = trait_runs::Entity::find()
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        left.sort();
        assert_eq!(
            left,
            [ids[0], ids[3], ids[4]],
            "the successful run and the newest two"
        );
    }
}
