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
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use entity::{trait_dependencies, trait_runs, trait_values, traits};

use super::{
    compiler,
    definition::{self as compiler_plan, TraitStatus},
    jobs::{EvaluateTrait, EvaluateTraits},
    service::{REFRESH_MANUAL, parse_refresh},
};
use crate::pagination::{Direction, Page, PageRequest, paginate};
use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    jobs::enqueue_in,
};

pub use entity::states::Trigger;

pub use entity::states::RunStatus;

fn new_run(
    t: &traits::Model,
    trigger: Trigger,
    created_by: Option<Uuid>,
) -> trait_runs::ActiveModel {
    trait_runs::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(t.workspace_id),
        trait_id: Set(t.id),
        status: Set(RunStatus::Queued),
        trigger: Set(trigger),
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
        let run = new_run(t, trigger, p.map(|p| p.account_id.unwrap_or(p.key_id)));
        self.insert_with_job(t.workspace_id, run, |run| EvaluateTrait { run_id: run.id })
            .await
    }

    /// Queues an evaluation and returns the run to poll.
    pub async fn trigger_trait(&self, p: &Principal, id: Uuid) -> Result<trait_runs::Model> {
        p.require(Permission::Write)?;
        let t = self.get_trait(p, id).await?;
        super::service::refuse_prediction_trait(&t)?;
        self.queue_run(&t, Trigger::Manual, Some(p)).await
    }

    /// The trait's newest `limit` runs (default and bounds of a page), newest first.
    pub async fn newest_trait_runs(
        &self,
        p: &Principal,
        id: Uuid,
        limit: Option<u64>,
    ) -> Result<Vec<trait_runs::Model>> {
        let limit = newest_limit(limit)?;
        let t = self.get_trait(p, id).await?;
        Ok(runs_of(&t)
            .order_by_desc(trait_runs::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// The trait's runs, newest first, a page at a time.
    pub async fn trait_runs_page(
        &self,
        p: &Principal,
        id: Uuid,
        page: PageRequest,
    ) -> Result<Page<trait_runs::Model>> {
        let t = self.get_trait(p, id).await?;
        let q = runs_of(&t);
        paginate(
            &self.db,
            q,
            trait_runs::Column::Id,
            Direction::Backward,
            page,
        )
        .await
    }

    /// The body of the `EvaluateTrait` job. Finished runs are skipped, so a
    /// redelivered job changes nothing; a run left `running` by a crash is
    /// evaluated again, which writes the same values.
    pub async fn execute_trait_run(&self, run_id: Uuid) -> Result<()> {
        self.execute_trait_runs(&[run_id]).await
    }

    /// The body of the `EvaluateTraits` job: runs of source traits that share
    /// a scan (see [`compiler::scan_key`]) are computed from one pass over the
    /// source; anything else is evaluated on its own.
    pub async fn execute_trait_runs(&self, run_ids: &[Uuid]) -> Result<()> {
        let mut pending = Vec::new();
        for run in trait_runs::Entity::find()
            .filter(trait_runs::Column::Id.is_in(run_ids.to_vec()))
            .order_by_asc(trait_runs::Column::Id)
            .all(&self.db)
            .await?
        {
            if run.status == RunStatus::Succeeded || run.status == RunStatus::Failed {
                continue;
            }
            let Some(t) = traits::Entity::find_by_id(run.trait_id)
                .one(&self.db)
                .await?
            else {
                continue;
            };
            let started = Utc::now();
            let mut running: trait_runs::ActiveModel = run.into();
            running.status = Set(RunStatus::Running);
            running.started_at = Set(Some(started));
            pending.push((running.update(&self.db).await?, t));
        }
        if pending.is_empty() {
            return Ok(());
        }
        let clock = Instant::now();
        let now = Utc::now();
        let traits: Vec<traits::Model> = pending.iter().map(|(_, t)| t.clone()).collect();
        let outcomes = self.evaluate(&traits, now).await;
        if let Err(e) = &outcomes
            && e.is_transient()
        {
            // The database failed, not the definition: the runs stay
            // `running` and the job runs again (see `Engine::execute`).
            return outcomes.map(|_| ());
        }
        let duration_ms = clock.elapsed().as_millis() as i64;
        if let Ok(each) = &outcomes {
            let written = each.iter().map(|(_, changed)| *changed as u64).sum();
            crate::db::analyze_after_bulk_write(&self.db, "trait_values", written).await;
        }
        let mut succeeded = Vec::new();
        for (i, (run, t)) in pending.iter().enumerate() {
            let outcome = match &outcomes {
                Ok(each) => Ok(each[i]),
                Err(e) => Err(e),
            };
            let run = self.finish_run(run, t, outcome, duration_ms).await?;
            self.cascade(
                t,
                &run,
                run.status == RunStatus::Succeeded,
                pending.len() > 1,
            )
            .await?;
            if run.status == RunStatus::Succeeded && run.trigger != Trigger::Dependency {
                succeeded.push(t.clone());
            }
        }
        if pending.len() > 1 && !succeeded.is_empty() {
            // One cascade for the whole scan, so a trait reading several of
            // these traits is recomputed once.
            self.start_chain(&succeeded).await?;
        }
        Ok(())
    }

    async fn finish_run(
        &self,
        run: &trait_runs::Model,
        t: &traits::Model,
        outcome: std::result::Result<(i64, i64), &Error>,
        duration_ms: i64,
    ) -> Result<trait_runs::Model> {
        let finished = Utc::now();
        let mut done: trait_runs::ActiveModel = run.clone().into();
        done.finished_at = Set(Some(finished));
        done.duration_ms = Set(Some(duration_ms));
        let mut def: traits::ActiveModel = t.clone().into();
        match outcome {
            Ok((computed, changed)) => {
                done.status = Set(RunStatus::Succeeded);
                done.rows_computed = Set(Some(computed));
                done.rows_changed = Set(Some(changed));
                def.last_computed_at = Set(Some(finished));
                if t.status == TraitStatus::Error {
                    def.status = Set(TraitStatus::Active);
                }
                def.status_error = Set(String::new());
            }
            Err(e) => {
                let message = e.cause();
                tracing::warn!(trait_id = %t.id, run_id = %run.id, error = %message, "trait run failed");
                done.status = Set(RunStatus::Failed);
                done.error = Set(Some(message.clone()));
                def.status = Set(TraitStatus::Error);
                def.status_error = Set(message);
            }
        }
        def.update(&self.db).await?;
        // Data loaded before this run started is in its values; data loaded
        // while it ran keeps the trait stale for the next run.
        if let (Ok(_), Some(started)) = (outcome, run.started_at) {
            traits::Entity::update_many()
                .col_expr(
                    traits::Column::StaleSince,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(traits::Column::Id.eq(t.id))
                .filter(traits::Column::StaleSince.lte(started))
                .exec(&self.db)
                .await?;
        }
        let done = done.update(&self.db).await?;
        if outcome.is_ok() {
            // Segments reading the trait and the prediction models follow its new values.
            if let Err(e) = self.trait_values_changed(t).await {
                tracing::warn!(trait_id = %t.id, error = %e, "could not queue segment and prediction updates");
            }
        }
        Ok(done)
    }

    /// Computes every entity's value of each trait and replaces the stored
    /// ones, all in one transaction. The traits' rows are locked first, so two
    /// runs of one trait never write at once. Several source traits sharing a
    /// scan read one temporary aggregate of the source. Returns (values
    /// computed, values changed) per trait.
    async fn evaluate(
        &self,
        traits_: &[traits::Model],
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, i64)>> {
        let backend = self.db.get_database_backend();
        let mut plans = Vec::new();
        for t in traits_ {
            plans.push(self.plan_trait(&self.db, t).await?);
        }
        let sources: Vec<&compiler_plan::SourcePlan> = plans
            .iter()
            .filter_map(|p| match &p.computation {
                compiler_plan::Computation::Source(sp) => Some(sp),
                _ => None,
            })
            .collect();
        let shared = plans.len() > 1
            && sources.len() == plans.len()
            && sources.iter().all(|sp| {
                compiler::scan_key(sp).is_some()
                    && compiler::scan_key(sp) == compiler::scan_key(sources[0])
            });
        if plans.len() > 1 && !shared {
            return Err(Error::internal("runs of one job must share a scan"));
        }
        let scratch = format!("tf_scan_{}", Uuid::new_v4().simple());
        let create_scratch = shared.then(|| {
            let select =
                compiler::shared_aggregate(backend, traits_[0].workspace_id, &sources, now, None);
            let stmt = sea_orm::StatementBuilder::build(&select, &backend);
            sea_orm::Statement::from_sql_and_values(
                backend,
                format!("CREATE TEMPORARY TABLE \"{scratch}\" AS {}", stmt.sql),
                stmt.values.map(|v| v.0).unwrap_or_default(),
            )
        });
        let compiled: Vec<(Uuid, Uuid, compiler::Compiled)> = plans
            .iter()
            .zip(traits_)
            .enumerate()
            .map(|(i, (plan, t))| {
                let from = if shared {
                    compiler::Aggregate::Shared {
                        table: &scratch,
                        index: i,
                    }
                } else {
                    compiler::Aggregate::Inline
                };
                (
                    t.workspace_id,
                    t.id,
                    compiler::compile_with(plan, backend, t.workspace_id, t.id, now, from),
                )
            })
            .collect();
        // SQLite keeps whatever an expression returns: check it fits.
        let checks: Vec<Option<(String, compiler_plan::ResultType)>> = plans
            .iter()
            .zip(traits_)
            .map(|(plan, t)| {
                let expression = matches!(
                    plan.computation,
                    compiler_plan::Computation::Expression { .. }
                );
                (expression && backend == sea_orm::DbBackend::Sqlite)
                    .then(|| (t.slug.clone(), plan.result_type))
            })
            .collect();
        let ids: Vec<Uuid> = traits_.iter().map(|t| t.id).collect();
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                if backend == sea_orm::DbBackend::Postgres {
                    // Every statement of a run reads whole tables of the
                    // workspace. Without fresh statistics (a table just
                    // loaded, autovacuum not yet there) PostgreSQL may pick a
                    // nested loop for the stale-value anti join, which is
                    // quadratic in players; hash and merge joins stay linear.
                    tx.execute_unprepared("SET LOCAL enable_nestloop = off")
                        .await?;
                }
                // The pass's lock first, then the rows: a run and a pass
                // take them in one order (see `lock_values`).
                lock_values(tx, &ids).await?;
                traits::Entity::update_many()
                    .col_expr(traits::Column::Version, Expr::col(traits::Column::Version))
                    .filter(traits::Column::Id.is_in(ids))
                    .exec(tx)
                    .await?;
                if let Some(create) = create_scratch {
                    tx.execute_raw(create).await?;
                }
                let mut out = Vec::new();
                for ((workspace_id, trait_id, c), check) in compiled.iter().zip(&checks) {
                    out.push(write_values(tx, *workspace_id, *trait_id, c).await?);
                    if let Some((slug, result_type)) = check {
                        super::stored_types::check(
                            tx,
                            *workspace_id,
                            *trait_id,
                            slug,
                            *result_type,
                        )
                        .await?;
                    }
                }
                if shared {
                    tx.execute_unprepared(&format!("DROP TABLE \"{scratch}\""))
                        .await?;
                }
                Ok(out)
            })
        })
        .await
    }

    /// After a root run, queues runs for every trait downstream in topological
    /// order, as a chain: each run, when done, starts the next. When a run
    /// fails, the rest of its chain is marked failed. Runs of a shared scan
    /// (`in_batch`) cascade together, once, from [`Self::execute_trait_runs`].
    async fn cascade(
        &self,
        t: &traits::Model,
        run: &trait_runs::Model,
        ok: bool,
        in_batch: bool,
    ) -> Result<()> {
        let chain: Vec<Uuid> = run
            .chain
            .as_ref()
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default();
        if !ok {
            for id in chain {
                if let Some(r) = trait_runs::Entity::find_by_id(id).one(&self.db).await? {
                    let mut skipped: trait_runs::ActiveModel = r.into();
                    skipped.status = Set(RunStatus::Failed);
                    skipped.error =
                        Set(Some(format!("skipped: upstream trait `{}` failed", t.slug)));
                    skipped.finished_at = Set(Some(Utc::now()));
                    skipped.update(&self.db).await?;
                }
            }
            return Ok(());
        }
        if run.trigger == Trigger::Dependency {
            return self.continue_chain(t.workspace_id, &chain).await;
        }
        if in_batch {
            return Ok(());
        }
        self.start_chain(std::slice::from_ref(t)).await
    }

    /// Creates dependency runs for everything downstream of `roots` and
    /// starts the first, in one transaction with its job.
    pub(crate) async fn start_chain(&self, roots: &[traits::Model]) -> Result<()> {
        let runs: Vec<trait_runs::ActiveModel> = self
            .downstream(roots)
            .await?
            .iter()
            .map(|d| new_run(d, Trigger::Dependency, None))
            .collect();
        if runs.is_empty() {
            return Ok(());
        }
        let ws = roots[0].workspace_id;
        let job = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let mut ids = Vec::new();
                for run in runs {
                    ids.push(run.insert(tx).await?.id);
                }
                continue_chain_in(tx, ws, &ids).await
            })
        })
        .await?;
        if let Some(job) = job {
            self.dispatch(&job).await;
        }
        Ok(())
    }

    async fn continue_chain(&self, workspace_id: Uuid, chain: &[Uuid]) -> Result<()> {
        let chain = chain.to_vec();
        let job = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move { continue_chain_in(tx, workspace_id, &chain).await })
        })
        .await?;
        if let Some(job) = job {
            self.dispatch(&job).await;
        }
        Ok(())
    }

    /// Re-evaluates every active trait of a parent model. Source traits that
    /// read the same source through the same join are computed from one scan
    /// of it; expression traits follow through the dependency cascade (or on
    /// their own when they read no other trait).
    pub async fn refresh_traits(
        &self,
        p: &Principal,
        parent_model_id: Uuid,
    ) -> Result<Vec<trait_runs::Model>> {
        p.require(Permission::Write)?;
        let all = self.list_traits(p, Some(parent_model_id)).await?;
        let mut groups: Vec<(Option<compiler::ScanKey>, Vec<traits::Model>)> = Vec::new();
        // A prediction's traits are scored by their prediction, not computed.
        for t in all.into_iter().filter(|t| {
            t.status != TraitStatus::Draft && t.trait_type != entity::states::TraitType::Prediction
        }) {
            let plan = self.plan_trait(&self.db, &t).await?;
            let key = match &plan.computation {
                compiler_plan::Computation::Source(sp) => compiler::scan_key(sp),
                compiler_plan::Computation::Expression { refs, .. } if !refs.is_empty() => continue,
                compiler_plan::Computation::Expression { .. } => None,
            };
            match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
                Some((_, members)) => members.push(t),
                None => groups.push((key, vec![t])),
            }
        }
        let mut runs = Vec::new();
        for (_, members) in groups {
            let new: Vec<trait_runs::ActiveModel> = members
                .iter()
                .map(|t| new_run(t, Trigger::Refresh, Some(p.account_id.unwrap_or(p.key_id))))
                .collect();
            let ws = p.workspace_id;
            let (inserted, job) = crate::db::write_tx(&self.db, |tx| {
                Box::pin(async move {
                    let mut inserted = Vec::new();
                    for run in new {
                        inserted.push(run.insert(tx).await?);
                    }
                    let job = match inserted.as_slice() {
                        [one] => {
                            enqueue_in(tx, Some(ws), &EvaluateTrait { run_id: one.id }).await?
                        }
                        _ => {
                            let run_ids = inserted.iter().map(|r| r.id).collect();
                            enqueue_in(tx, Some(ws), &EvaluateTraits { run_ids }).await?
                        }
                    };
                    Ok((inserted, job))
                })
            })
            .await?;
            self.dispatch(&job).await;
            runs.extend(inserted);
        }
        Ok(runs)
    }

    /// Every trait that reads one of `roots`, directly or not (roots
    /// excluded), in an order where each comes after everything it reads
    /// (Kahn's algorithm on that subgraph).
    pub(super) async fn downstream(&self, roots: &[traits::Model]) -> Result<Vec<traits::Model>> {
        let t = &roots[0];
        let edges = trait_dependencies::Entity::find()
            .filter(trait_dependencies::Column::WorkspaceId.eq(t.workspace_id))
            .all(&self.db)
            .await?;
        let mut readers: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for e in &edges {
            readers.entry(e.depends_on_id).or_default().push(e.trait_id);
        }
        let root_ids: HashSet<Uuid> = roots.iter().map(|r| r.id).collect();
        let mut reach = HashSet::new();
        let mut stack: Vec<Uuid> = root_ids.iter().copied().collect();
        while let Some(n) = stack.pop() {
            for &r in readers.get(&n).map(Vec::as_slice).unwrap_or_default() {
                if !root_ids.contains(&r) && reach.insert(r) {
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
            .filter(|t| t.status != TraitStatus::Draft)
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
            .filter(traits::Column::Refresh.ne(REFRESH_MANUAL))
            .filter(traits::Column::Status.ne(TraitStatus::Draft))
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
                .filter(trait_runs::Column::Trigger.eq(Trigger::Schedule))
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

/// Hands the first run of `chain` its job and the rest of the chain, on `tx`.
async fn continue_chain_in(
    tx: &sea_orm::DatabaseTransaction,
    workspace_id: Uuid,
    chain: &[Uuid],
) -> Result<Option<entity::job_records::Model>> {
    let Some((&next, rest)) = chain.split_first() else {
        return Ok(None);
    };
    let next_run = trait_runs::Entity::find_by_id(next)
        .one(tx)
        .await?
        .ok_or(Error::NotFound { what: "trait run" })?;
    let mut active: trait_runs::ActiveModel = next_run.into();
    active.chain = Set(Some(serde_json::to_value(rest).map_err(Error::internal)?));
    active.update(tx).await?;
    Ok(Some(
        enqueue_in(tx, Some(workspace_id), &EvaluateTrait { run_id: next }).await?,
    ))
}

/// Writes one trait's values: a plain insert the first time, otherwise an
/// upsert of changed values plus removal of vanished entities.
async fn write_values(
    tx: &sea_orm::DatabaseTransaction,
    workspace_id: Uuid,
    trait_id: Uuid,
    c: &compiler::Compiled,
) -> Result<(i64, i64)> {
    let stored = trait_values::Entity::find()
        .filter(trait_values::Column::WorkspaceId.eq(workspace_id))
        .filter(trait_values::Column::TraitId.eq(trait_id));
    if stored.clone().one(tx).await?.is_none() {
        // First computation: no conflict handling to pay for.
        let inserted = tx.execute(&c.insert).await?.rows_affected() as i64;
        return Ok((inserted, inserted));
    }
    let upserted = tx.execute(&c.upsert).await?.rows_affected();
    let deleted = tx.execute(&c.delete_stale).await?.rows_affected();
    let computed = stored.count(tx).await?;
    Ok((computed as i64, (upserted + deleted) as i64))
}

/// For the rest of the transaction, the right to write these traits' values:
/// a full run and an incremental pass of one trait never write at once. On
/// PostgreSQL an advisory lock per trait, taken in one order (a full run then
/// locks the traits' rows, a pass only key-shares them, so a load marking a
/// trait stale waits for neither); on SQLite the write lock already
/// serializes writers.
pub(crate) async fn lock_values(tx: &sea_orm::DatabaseTransaction, ids: &[Uuid]) -> Result<()> {
    let mut keys: Vec<i32> = ids.iter().copied().map(crate::db::advisory_key).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        // Two-key form, class 7301: apart from the workspace passes' one-key locks.
        crate::db::advisory_xact_lock_key(tx, 7301, key).await?;
    }
    Ok(())
}

/// `?limit=` of a newest-first history (runs, passes): 1 to the page maximum.
pub(super) fn newest_limit(limit: Option<u64>) -> Result<u64> {
    PageRequest::new(limit, None).limit().map_err(|_| {
        Error::invalid(
            "limit",
            format!("must be between 1 and {}", crate::pagination::MAX_PAGE_SIZE),
        )
    })
}

fn runs_of(t: &traits::Model) -> sea_orm::Select<trait_runs::Entity> {
    trait_runs::Entity::find()
        .filter(trait_runs::Column::WorkspaceId.eq(t.workspace_id))
        .filter(trait_runs::Column::TraitId.eq(t.id))
}
