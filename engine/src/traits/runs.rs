//! Trait runs: queued by a trigger, executed by the `EvaluateTrait` job as one
//! transaction of set-based statements, then cascaded to dependent traits in
//! topological order.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::Instant,
};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, sea_query::Expr,
};
use uuid::Uuid;

use entity::{trait_dependencies, trait_runs, trait_values, traits};

use super::{compiler, definition::TraitStatus, service::parse_refresh};
use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    jobs::Work,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `POST …/trigger` or `triggerTrait`.
    Manual,
    /// A trait this one reads was recomputed.
    Dependency,
    /// The trait's `refresh` cron schedule fired.
    Schedule,
    /// The trait was created or its computation changed.
    Definition,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Dependency => "dependency",
            Trigger::Schedule => "schedule",
            Trigger::Definition => "definition",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

fn new_run(
    t: &traits::Model,
    trigger: Trigger,
    created_by: Option<Uuid>,
) -> trait_runs::ActiveModel {
    trait_runs::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(t.workspace_id),
        trait_id: Set(t.id),
        status: Set(RunStatus::Queued.as_str().into()),
        trigger: Set(trigger.as_str().into()),
        error: Set(None),
        rows_computed: Set(None),
        rows_changed: Set(None),
        duration_ms: Set(None),
        chain: Set(None),
        created_by: Set(created_by),
        queued_at: Set(Utc::now()),
        started_at: Set(None),
        finished_at: Set(None),
    }
}

impl Engine {
    pub(crate) async fn queue_run(
        &self,
        t: &traits::Model,
        trigger: Trigger,
        p: Option<&Principal>,
    ) -> Result<trait_runs::Model> {
        let run = new_run(t, trigger, p.map(|p| p.account_id.unwrap_or(p.key_id)))
            .insert(&self.db)
            .await?;
        self.enqueue(Some(t.workspace_id), Work::EvaluateTrait { run_id: run.id })
            .await?;
        Ok(run)
    }

    /// Queues an evaluation and returns the run to poll.
    pub async fn trigger_trait(&self, p: &Principal, id: Uuid) -> Result<trait_runs::Model> {
        p.require(Permission::Write)?;
        let t = self.get_trait(p, id).await?;
        self.queue_run(&t, Trigger::Manual, Some(p)).await
    }

    /// A trait's runs, newest first.
    pub async fn trait_runs(&self, p: &Principal, id: Uuid) -> Result<Vec<trait_runs::Model>> {
        let t = self.get_trait(p, id).await?;
        Ok(trait_runs::Entity::find()
            .filter(trait_runs::Column::WorkspaceId.eq(t.workspace_id))
            .filter(trait_runs::Column::TraitId.eq(t.id))
            .order_by_desc(trait_runs::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// The body of the `EvaluateTrait` job. Finished runs are skipped, so a
    /// redelivered job changes nothing; a run left `running` by a crash is
    /// evaluated again, which writes the same values.
    pub async fn execute_trait_run(&self, run_id: Uuid) -> Result<()> {
        let Some(run) = trait_runs::Entity::find_by_id(run_id).one(&self.db).await? else {
            return Ok(());
        };
        if run.status == RunStatus::Succeeded.as_str() || run.status == RunStatus::Failed.as_str() {
            return Ok(());
        }
        let Some(t) = traits::Entity::find_by_id(run.trait_id)
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        let started = Utc::now();
        let mut running: trait_runs::ActiveModel = run.clone().into();
        running.status = Set(RunStatus::Running.as_str().into());
        running.started_at = Set(Some(started));
        let run = running.update(&self.db).await?;

        let clock = Instant::now();
        let outcome = self.evaluate(&t, started).await;
        let duration_ms = clock.elapsed().as_millis() as i64;
        let finished = Utc::now();
        let mut done: trait_runs::ActiveModel = run.clone().into();
        done.finished_at = Set(Some(finished));
        done.duration_ms = Set(Some(duration_ms));
        let mut def: traits::ActiveModel = t.clone().into();
        match &outcome {
            Ok((computed, changed)) => {
                done.status = Set(RunStatus::Succeeded.as_str().into());
                done.rows_computed = Set(Some(*computed));
                done.rows_changed = Set(Some(*changed));
                def.last_computed_at = Set(Some(finished));
                if t.status == TraitStatus::Error.as_str() {
                    def.status = Set(TraitStatus::Active.as_str().into());
                }
                def.status_error = Set(String::new());
            }
            Err(e) => {
                let message = match e {
                    Error::Internal(cause) => cause.to_string(),
                    other => other.to_string(),
                };
                tracing::warn!(trait_id = %t.id, run_id = %run.id, error = %message, "trait run failed");
                done.status = Set(RunStatus::Failed.as_str().into());
                done.error = Set(Some(message.clone()));
                def.status = Set(TraitStatus::Error.as_str().into());
                def.status_error = Set(message);
            }
        }
        let run = done.update(&self.db).await?;
        def.update(&self.db).await?;
        self.cascade(&t, &run, outcome.is_ok()).await
    }

    /// Computes every entity's value and replaces the stored ones in one
    /// transaction. The trait's row is locked first, so two runs of one trait
    /// never write at once. Returns (values computed, values changed).
    async fn evaluate(&self, t: &traits::Model, now: DateTime<Utc>) -> Result<(i64, i64)> {
        let plan = self.plan_trait(&self.db, t).await?;
        let backend = self.db.get_database_backend();
        let compiled = compiler::compile(&plan, backend, t.workspace_id, t.id, now);
        let (workspace_id, trait_id) = (t.workspace_id, t.id);
        let result = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                traits::Entity::update_many()
                    .col_expr(traits::Column::Version, Expr::col(traits::Column::Version))
                    .filter(traits::Column::Id.eq(trait_id))
                    .exec(tx)
                    .await?;
                let stored = trait_values::Entity::find()
                    .filter(trait_values::Column::WorkspaceId.eq(workspace_id))
                    .filter(trait_values::Column::TraitId.eq(trait_id));
                if stored.clone().one(tx).await?.is_none() {
                    // First computation: a plain insert, no conflict handling to pay for.
                    let inserted = tx.execute(&compiled.insert).await?.rows_affected() as i64;
                    return Ok((inserted, inserted));
                }
                let upserted = tx.execute(&compiled.upsert).await?.rows_affected();
                let deleted = tx.execute(&compiled.delete_stale).await?.rows_affected();
                let computed = stored.count(tx).await?;
                Ok((computed as i64, (upserted + deleted) as i64))
            })
        })
        .await?;
        Ok(result)
    }

    /// After a root run succeeds, queues runs for every trait downstream in
    /// topological order, as a chain: each run, when done, starts the next.
    /// When a run fails, the rest of its chain is marked failed.
    async fn cascade(&self, t: &traits::Model, run: &trait_runs::Model, ok: bool) -> Result<()> {
        let chain: Vec<Uuid> = run
            .chain
            .as_ref()
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default();
        if !ok {
            for id in chain {
                if let Some(r) = trait_runs::Entity::find_by_id(id).one(&self.db).await? {
                    let mut skipped: trait_runs::ActiveModel = r.into();
                    skipped.status = Set(RunStatus::Failed.as_str().into());
                    skipped.error =
                        Set(Some(format!("skipped: upstream trait `{}` failed", t.slug)));
                    skipped.finished_at = Set(Some(Utc::now()));
                    skipped.update(&self.db).await?;
                }
            }
            return Ok(());
        }
        let chain = if run.trigger == Trigger::Dependency.as_str() {
            chain
        } else {
            let mut ids = Vec::new();
            for d in self.downstream(t).await? {
                ids.push(
                    new_run(&d, Trigger::Dependency, None)
                        .insert(&self.db)
                        .await?
                        .id,
                );
            }
            ids
        };
        let Some((&next, rest)) = chain.split_first() else {
            return Ok(());
        };
        let next_run = trait_runs::Entity::find_by_id(next)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound { what: "trait run" })?;
        let mut active: trait_runs::ActiveModel = next_run.into();
        active.chain = Set(Some(serde_json::to_value(rest).map_err(Error::internal)?));
        active.update(&self.db).await?;
        self.enqueue(Some(t.workspace_id), Work::EvaluateTrait { run_id: next })
            .await?;
        Ok(())
    }

    /// Every trait that reads `t`, directly or not, in an order where each
    /// comes after everything it reads (Kahn's algorithm on the subgraph).
    async fn downstream(&self, t: &traits::Model) -> Result<Vec<traits::Model>> {
        let edges = trait_dependencies::Entity::find()
            .filter(trait_dependencies::Column::WorkspaceId.eq(t.workspace_id))
            .all(&self.db)
            .await?;
        let mut readers: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for e in &edges {
            readers.entry(e.depends_on_id).or_default().push(e.trait_id);
        }
        let mut reach = HashSet::new();
        let mut stack = vec![t.id];
        while let Some(n) = stack.pop() {
            for &r in readers.get(&n).map(Vec::as_slice).unwrap_or_default() {
                if reach.insert(r) {
                    stack.push(r);
                }
            }
        }
        let mut indegree: HashMap<Uuid, usize> = reach.iter().map(|&id| (id, 0)).collect();
        for e in &edges {
            if reach.contains(&e.trait_id) && reach.contains(&e.depends_on_id) {
                *indegree.get_mut(&e.trait_id).unwrap() += 1;
            }
        }
        let mut ready: VecDeque<Uuid> = {
            let mut v: Vec<Uuid> = indegree
                .iter()
                .filter(|(_, d)| **d == 0)
                .map(|(id, _)| *id)
                .collect();
            v.sort();
            v.into()
        };
        let mut order = Vec::new();
        while let Some(n) = ready.pop_front() {
            order.push(n);
            let mut next: Vec<Uuid> = Vec::new();
            for &r in readers.get(&n).map(Vec::as_slice).unwrap_or_default() {
                if let Some(d) = indegree.get_mut(&r) {
                    *d -= 1;
                    if *d == 0 {
                        next.push(r);
                    }
                }
            }
            next.sort();
            ready.extend(next);
        }
        let mut by_id: HashMap<Uuid, traits::Model> = traits::Entity::find()
            .filter(traits::Column::Id.is_in(order.clone()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        Ok(order
            .into_iter()
            .filter_map(|id| by_id.remove(&id))
            .filter(|t| t.status != TraitStatus::Draft.as_str())
            .collect())
    }

    /// Queues runs for traits whose `refresh` schedule fired in `(since, now]`.
    /// Called every minute by the worker's cron schedule.
    pub async fn queue_scheduled_refreshes(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let scheduled = traits::Entity::find()
            .filter(traits::Column::Refresh.ne("manual"))
            .filter(traits::Column::Status.ne(TraitStatus::Draft.as_str()))
            .all(&self.db)
            .await?;
        let mut queued = 0;
        for t in scheduled {
            let Ok(Some(schedule)) = parse_refresh(&t.refresh) else {
                continue;
            };
            let Some(fire) = schedule.after(&since).next().filter(|fire| *fire <= now) else {
                continue;
            };
            // Several workers tick at once: one scheduled run per trait and fire time.
            let already = trait_runs::Entity::find()
                .filter(trait_runs::Column::WorkspaceId.eq(t.workspace_id))
                .filter(trait_runs::Column::TraitId.eq(t.id))
                .filter(trait_runs::Column::Trigger.eq(Trigger::Schedule.as_str()))
                .filter(trait_runs::Column::QueuedAt.gte(fire))
                .one(&self.db)
                .await?;
            if already.is_none() {
                self.queue_run(&t, Trigger::Schedule, None).await?;
                queued += 1;
            }
        }
        Ok(queued)
    }
}
