//! Incremental evaluation: cost follows new data, not history.
//!
//! Every load records, in its own transaction, the players whose rows it
//! wrote (`touched_players`, one record per player: touching a waiting player
//! again stamps a new version). The workspace's `IncrementalPass` takes every
//! recorded player at once (so a stream of small posts coalesces into one
//! pass) and recomputes, for those players only, each `on_load` trait of the
//! players model and every trait that reads one, in dependency order, with
//! the same compiled statement a full run uses restricted to them. A player's
//! value depends only on that player's rows, so the values are exactly those
//! of a full recompute, whatever the order the rows arrived in. The pass
//! deletes the records (the versions) it took in the transaction that writes
//! the values: a crash leaves them for the next pass, which computes the same
//! values, and a load since leaves its stamp for the next pass too.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::Instant,
};

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
    Statement, StatementBuilder, TransactionTrait,
    sea_query::{Alias, Expr, ExprTrait, LockType, Query},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use entity::{states::TraitStatus, touched_players, trait_dependencies, trait_passes, traits};

use super::{
    compiler,
    definition::{Computation, Plan, SourcePlan},
    scope::Scope,
    service::REFRESH_ON_LOAD,
};
use crate::{
    Engine, Result,
    jobs::{JobHandler, JobKind},
};

/// Brings the `on_load` traits (and their readers) up to date for the
/// players new data touched.
#[derive(Serialize, Deserialize)]
pub struct IncrementalPass {
    pub workspace_id: Uuid,
}

#[async_trait::async_trait]
impl JobHandler for IncrementalPass {
    const KIND: JobKind = JobKind::IncrementalPass;
    const HEAVY: bool = true;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.execute_incremental(self.workspace_id).await
    }

    /// The touched players stay recorded: the next pass takes them.
    async fn abandon(&self, _: &DatabaseTransaction, _: &str) -> Result<()> {
        Ok(())
    }
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassSummary {
    pub entities: i64,
    pub traits: usize,
}

impl Engine {
    /// After a load committed (its touched players are recorded): the pass.
    pub(crate) async fn queue_incremental(&self, workspace_id: Uuid) -> Result<()> {
        self.enqueue_once(workspace_id, IncrementalPass { workspace_id })
            .await
            .map(drop)
    }

    /// Workspaces with touched players and no pass waiting get one (a
    /// process that died between a load's commit and queueing its pass).
    pub async fn queue_waiting_passes(&self) -> Result<usize> {
        let waiting: HashSet<Uuid> = touched_players::Entity::find()
            .select_only()
            .column(touched_players::Column::WorkspaceId)
            .distinct()
            .into_tuple::<Uuid>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        for ws in &waiting {
            self.queue_incremental(*ws).await?;
        }
        Ok(waiting.len())
    }

    /// Windowed `on_load` traits change with the clock, not only with data:
    /// once an hour (at minute 7) each is recomputed in full, so a value is
    /// exact for touched players after every pass and for everyone within an
    /// hour of the clock moving an event out of (or into) its window.
    pub async fn queue_window_refreshes(&self, now: chrono::DateTime<Utc>) -> Result<usize> {
        use chrono::Timelike;
        if now.minute() != 7 {
            return Ok(0);
        }
        let windowed: Vec<traits::Model> = traits::Entity::find()
            .filter(traits::Column::Refresh.eq(REFRESH_ON_LOAD))
            .filter(traits::Column::Status.ne(TraitStatus::Draft))
            .all(&self.db)
            .await?
            .into_iter()
            .filter(|t| t.config.get("window").is_some_and(|w| !w.is_null()))
            .collect();
        for t in &windowed {
            self.queue_run(t, super::runs::Trigger::Schedule, None)
                .await?;
        }
        Ok(windowed.len())
    }

    /// The traits a pass recomputes, in dependency order: every `on_load`
    /// trait of the players model and every trait that reads one.
    async fn incremental_traits(&self, ws: Uuid) -> Result<Vec<traits::Model>> {
        let players = self.players_model_id(ws).await?;
        let all: HashMap<Uuid, traits::Model> = traits::Entity::find()
            .filter(traits::Column::WorkspaceId.eq(ws))
            .filter(traits::Column::Status.ne(TraitStatus::Draft))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let edges = trait_dependencies::Entity::find()
            .filter(trait_dependencies::Column::WorkspaceId.eq(ws))
            .all(&self.db)
            .await?;
        let mut readers: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for e in &edges {
            readers.entry(e.depends_on_id).or_default().push(e.trait_id);
        }
        let mut chosen: HashSet<Uuid> = all
            .values()
            .filter(|t| t.parent_model_id == players && t.refresh == REFRESH_ON_LOAD)
            .map(|t| t.id)
            .collect();
        let mut stack: Vec<Uuid> = chosen.iter().copied().collect();
        while let Some(n) = stack.pop() {
            for r in readers.get(&n).into_iter().flatten() {
                // Passes compute players' values (readers on other models
                // are left stale for their next full run).
                let of_players = all.get(r).is_some_and(|t| t.parent_model_id == players);
                if of_players && chosen.insert(*r) {
                    stack.push(*r);
                }
            }
        }
        // Kahn's algorithm over the chosen traits; ties by id, so the order is stable.
        let mut indegree: HashMap<Uuid, usize> = chosen.iter().map(|id| (*id, 0)).collect();
        for e in &edges {
            if chosen.contains(&e.trait_id) && chosen.contains(&e.depends_on_id) {
                *indegree.entry(e.trait_id).or_default() += 1;
            }
        }
        let mut ready: Vec<Uuid> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(id, _)| *id)
            .collect();
        ready.sort();
        let mut ready: VecDeque<Uuid> = ready.into();
        let mut order = Vec::new();
        while let Some(n) = ready.pop_front() {
            order.push(all[&n].clone());
            let mut next = Vec::new();
            for r in readers.get(&n).into_iter().flatten() {
                if let Some(d) = indegree.get_mut(r) {
                    *d -= 1;
                    if *d == 0 {
                        next.push(*r);
                    }
                }
            }
            next.sort();
            ready.extend(next);
        }
        Ok(order)
    }

    /// The body of the `IncrementalPass` job.
    pub async fn execute_incremental(&self, ws: Uuid) -> Result<()> {
        let order = self.incremental_traits(ws).await?;
        let mut plans = Vec::with_capacity(order.len());
        for t in &order {
            plans.push(self.plan_trait(&self.db, t).await?);
        }
        let segments = self.computed_segments(ws).await?;
        let backend = self.db.get_database_backend();
        let now = Utc::now();
        let suffix = Uuid::new_v4().simple().to_string();
        let taken = format!("tf_taken_{suffix}");
        let scope = Scope::new(&suffix);
        let tx = crate::db::begin_write(&self.db).await?;
        if backend == sea_orm::DbBackend::Postgres {
            // One pass of a workspace at a time (SQLite: the write lock does it):
            // a second one then finds the players the first took gone.
            let key = i64::from_be_bytes(ws.as_bytes()[8..].try_into().expect("8 bytes"));
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT pg_advisory_xact_lock($1)",
                [key.into()],
            ))
            .await?;
        }
        // A full run of one of these traits and this pass never write at
        // once; and the traits are not deleted under the pass. A load's
        // stale mark (an update of the rows) does not wait for the pass.
        let ids: Vec<Uuid> = order.iter().map(|t| t.id).collect();
        super::runs::lock_values(&tx, &ids).await?;
        if backend == sea_orm::DbBackend::Postgres {
            let key_share = Query::select()
                .column(traits::Column::Id)
                .from(traits::Entity)
                .and_where(traits::Column::Id.is_in(ids.clone()))
                .lock(LockType::KeyShare)
                .to_owned();
            tx.query_all(&key_share).await?;
        }
        // What this pass takes: the records committed by now. Records
        // committed while it runs stay for the next pass.
        let take = Query::select()
            .columns([
                Alias::new("seq"),
                Alias::new("user_id"),
                Alias::new("version"),
            ])
            .from(Alias::new("touched_players"))
            .and_where(Expr::col(Alias::new("workspace_id")).eq(ws))
            .to_owned();
        let take = StatementBuilder::build(&take, &backend);
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            format!("CREATE TEMPORARY TABLE \"{taken}\" AS {}", take.sql),
            take.values.map(|v| v.0).unwrap_or_default(),
        ))
        .await?;
        tx.execute_unprepared(&format!(
            "CREATE TEMPORARY TABLE \"{}\" AS SELECT DISTINCT user_id FROM \"{taken}\"",
            scope.keys
        ))
        .await?;
        tx.execute_raw(scope.fill_players(backend, ws)).await?;
        if backend == sea_orm::DbBackend::Postgres {
            // Statistics for the scope: the planner then reads the players'
            // rows through the tables' user indexes instead of scanning them;
            // a pass's statements are short, JIT only costs.
            for table in [&scope.keys, &scope.players] {
                tx.execute_unprepared(&format!("ANALYZE \"{table}\""))
                    .await?;
            }
            tx.execute_unprepared("SET LOCAL jit = off").await?;
            // A pass reads a few players' rows: probing the user index per
            // player beats scanning the table (the default cost of a random
            // read assumes spinning disks and picks the scan at 1M players).
            tx.execute_unprepared("SET LOCAL random_page_cost = 1.1")
                .await?;
        }
        let entities = count(
            &tx,
            &format!("SELECT COUNT(*) AS n FROM \"{}\"", scope.keys),
        )
        .await?;
        let (mut moved, mut deliveries) = (Vec::new(), Vec::new());
        let mut scratch = Vec::new();
        let mut builtin = None;
        let mut failed: Vec<(Uuid, String)> = Vec::new();
        if entities > 0 {
            let scans = shared_scans(&tx, &order, &plans, ws, now, &scope, &suffix).await?;
            // Rows read, per source: traits over one source read the same rows.
            let mut read: HashMap<(String, String), i64> = HashMap::new();
            for (t, plan) in order.iter().zip(&plans) {
                let clock = Instant::now();
                let from = match scans.of_trait.get(&t.id) {
                    Some((table, index)) => compiler::Aggregate::Shared {
                        table,
                        index: *index,
                    },
                    None => compiler::Aggregate::Inline,
                };
                let rows_read = match &plan.computation {
                    Computation::Source(sp) => {
                        let key = (sp.source_table.clone(), sp.source_column.clone());
                        match read.get(&key) {
                            Some(n) => *n,
                            None => {
                                let n = match scans.of_trait.get(&t.id) {
                                    Some((table, _)) => scans.rows_read[table],
                                    None => rows_read(&tx, sp, ws, &scope).await?,
                                };
                                read.insert(key, n);
                                n
                            }
                        }
                    }
                    Computation::Expression { .. } => 0,
                };
                let c = compiler::compile_scoped(plan, backend, ws, t.id, now, &scope, from);
                let changed = if matches!(plan.computation, Computation::Expression { .. }) {
                    // An expression may compute what its result type cannot
                    // hold (PostgreSQL refuses it, SQLite would keep it): that
                    // undoes this trait's writes only, the trait shows the
                    // error as after a failed full run, and the pass goes on.
                    let savepoint = tx.begin().await?;
                    match write_checked(&savepoint, t, plan, &c, &scope).await {
                        Ok(changed) => {
                            savepoint.commit().await?;
                            changed
                        }
                        Err(e) if e.is_transient() => return Err(e),
                        Err(e) => {
                            savepoint.rollback().await?;
                            failed.push((t.id, e.cause()));
                            continue;
                        }
                    }
                } else {
                    write_scoped(&tx, &c).await?
                };
                trait_passes::Entity::insert(trait_passes::ActiveModel {
                    id: sea_orm::ActiveValue::Set(Uuid::now_v7()),
                    workspace_id: sea_orm::ActiveValue::Set(ws),
                    trait_id: sea_orm::ActiveValue::Set(t.id),
                    entities: sea_orm::ActiveValue::Set(entities),
                    rows_read: sea_orm::ActiveValue::Set(rows_read),
                    rows_changed: sea_orm::ActiveValue::Set(changed),
                    duration_ms: sea_orm::ActiveValue::Set(clock.elapsed().as_millis() as i64),
                    finished_at: sea_orm::ActiveValue::Set(Utc::now()),
                })
                .exec_without_returning(&tx)
                .await?;
            }
            scratch = scans.rows_read.into_keys().collect();
            for (id, cause) in &failed {
                traits::Entity::update_many()
                    .col_expr(traits::Column::Status, Expr::value(TraitStatus::Error))
                    .col_expr(traits::Column::StatusError, Expr::value(cause.clone()))
                    .filter(traits::Column::Id.eq(*id))
                    .exec(&tx)
                    .await?;
            }
            // A trait that failed stays stale: its values miss the new rows.
            let computed: Vec<Uuid> = ids
                .iter()
                .copied()
                .filter(|id| failed.iter().all(|(f, _)| f != id))
                .collect();
            if !computed.is_empty() {
                traits::Entity::update_many()
                    .col_expr(traits::Column::LastComputedAt, Expr::value(Some(now)))
                    .filter(traits::Column::Id.is_in(computed))
                    .exec(&tx)
                    .await?;
            }
            // Their predicted psych scores, then memberships and personas,
            // follow in the same transaction.
            crate::prediction::rescore_in(&tx, ws, &scope).await?;
            self.rescore_predictions_in(&tx, ws, &scope).await?;
            (moved, deliveries) = self.update_members_in(&tx, &segments, &scope).await?;
            // The built-in segment's members are every player: no filter to
            // follow, but its personas take the new and changed ones too.
            builtin = entity::segments::Entity::find()
                .filter(entity::segments::Column::WorkspaceId.eq(ws))
                .filter(entity::segments::Column::Builtin.eq(true))
                .one(&tx)
                .await?;
            if let Some(all) = &builtin {
                crate::segments::personas::place_members(&tx, all.id, &scope).await?;
            }
        }
        // Only the versions taken: a load that touched a player again since
        // stamped a new one, and the record waits for the next pass.
        // Marks made before the pass started are for loads it took (a load
        // marks before it queues the pass); later ones wait for the next.
        let failed_ids: Vec<Uuid> = failed.iter().map(|(id, _)| *id).collect();
        let fresh: Vec<Uuid> = ids
            .into_iter()
            .filter(|id| !failed_ids.contains(id))
            .collect();
        if !fresh.is_empty() {
            traits::Entity::update_many()
                .col_expr(
                    traits::Column::StaleSince,
                    Expr::value(Option::<chrono::DateTime<Utc>>::None),
                )
                .filter(traits::Column::Id.is_in(fresh))
                .filter(traits::Column::StaleSince.lte(now))
                .exec(&tx)
                .await?;
        }
        tx.execute_unprepared(&format!(
            "DELETE FROM touched_players WHERE EXISTS (SELECT 1 FROM \"{taken}\" k \
             WHERE k.seq = touched_players.seq AND k.version = touched_players.version)"
        ))
        .await?;
        for table in [&taken, &scope.keys, &scope.players]
            .into_iter()
            .chain(&scratch)
        {
            tx.execute_unprepared(&format!("DROP TABLE \"{table}\""))
                .await?;
        }
        tx.commit().await?;
        tracing::debug!(workspace = %ws, entities, traits = order.len(), segments_changed = moved.len(), "incremental pass");
        for job in &deliveries {
            self.dispatch(job).await;
        }
        // A segment without personas yet clusters now that its members
        // changed, once anyone has psych scores to cluster (before that it
        // would only read its members to find none); one that has personas
        // placed the pass's players above (re-clustering stays explicit:
        // `refreshSegment`).
        let unclustered: Vec<Uuid> = segments
            .iter()
            .map(|(s, _)| s)
            .filter(|s| moved.contains(&s.id))
            .chain(builtin.iter())
            .filter(|s| s.persona_space.is_none())
            .map(|s| s.id)
            .collect();
        if !unclustered.is_empty() && self.any_psych_scores(ws).await? {
            for segment_id in unclustered {
                self.enqueue_once(ws, crate::segments::jobs::ComputePersonas { segment_id })
                    .await?;
            }
        }
        Ok(())
    }

    /// A trait's newest `limit` incremental passes, newest first.
    pub async fn newest_trait_passes(
        &self,
        p: &crate::auth::Principal,
        id: Uuid,
        limit: Option<u64>,
    ) -> Result<Vec<trait_passes::Model>> {
        use sea_orm::QueryOrder;
        let limit = super::runs::newest_limit(limit)?;
        let t = self.get_trait(p, id).await?;
        Ok(trait_passes::Entity::find()
            .filter(trait_passes::Column::TraitId.eq(t.id))
            .order_by_desc(trait_passes::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// The last incremental pass of a trait.
    pub async fn last_trait_pass(&self, t: &traits::Model) -> Result<Option<trait_passes::Model>> {
        use sea_orm::QueryOrder;
        Ok(trait_passes::Entity::find()
            .filter(trait_passes::Column::TraitId.eq(t.id))
            .order_by_desc(trait_passes::Column::Id)
            .one(&self.db)
            .await?)
    }
}

/// Writes a trait's values for a pass's players; returns the values changed.
async fn write_scoped(conn: &DatabaseTransaction, c: &compiler::Compiled) -> Result<i64> {
    let upserted = conn.execute(&c.upsert).await?.rows_affected();
    let removed = conn.execute(&c.delete_stale).await?.rows_affected();
    Ok((upserted + removed) as i64)
}

/// [`write_scoped`], then on SQLite the check that every value written fits
/// the trait's result type.
async fn write_checked(
    conn: &DatabaseTransaction,
    t: &traits::Model,
    plan: &Plan,
    c: &compiler::Compiled,
    scope: &Scope,
) -> Result<i64> {
    let changed = write_scoped(conn, c).await?;
    if conn.get_database_backend() == sea_orm::DbBackend::Sqlite {
        super::stored_types::check_in(
            conn,
            t.workspace_id,
            t.id,
            &t.slug,
            plan.result_type,
            Some(&scope.keys),
        )
        .await?;
    }
    Ok(changed)
}

async fn count(tx: &DatabaseTransaction, sql: &str) -> Result<i64> {
    let backend = tx.get_database_backend();
    let row = tx
        .query_one_raw(Statement::from_string(backend, sql.to_owned()))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0))
}

/// Rows of a source trait's model the pass reads: those of its players.
async fn rows_read(
    tx: &DatabaseTransaction,
    sp: &SourcePlan,
    ws: Uuid,
    scope: &Scope,
) -> Result<i64> {
    let q = Query::select()
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(Alias::new(&sp.source_table))
        .and_where(Expr::col(Alias::new("workspace_id")).eq(ws))
        .and_where(
            Expr::col(Alias::new(&sp.source_column))
                .in_subquery(compiler::scope_source_keys(sp, scope)),
        )
        .to_owned();
    let row = tx.query_one(&q).await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0))
}

/// The pass's reads of its sources: one temporary table per group of source
/// traits sharing a scan ([`compiler::scan_key`]), each trait's aggregate a
/// column of it, so three traits over purchases read their players'
/// purchases once.
struct SharedScans {
    /// Trait → (table, column index).
    of_trait: HashMap<Uuid, (String, usize)>,
    /// Table → source rows it read.
    rows_read: HashMap<String, i64>,
}

async fn shared_scans(
    tx: &DatabaseTransaction,
    order: &[traits::Model],
    plans: &[Plan],
    ws: Uuid,
    now: chrono::DateTime<Utc>,
    scope: &Scope,
    suffix: &str,
) -> Result<SharedScans> {
    let backend = tx.get_database_backend();
    let mut groups: Vec<(compiler::ScanKey, Vec<(Uuid, &SourcePlan)>)> = Vec::new();
    for (t, plan) in order.iter().zip(plans) {
        let Computation::Source(sp) = &plan.computation else {
            continue;
        };
        let Some(key) = compiler::scan_key(sp) else {
            continue;
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push((t.id, sp)),
            None => groups.push((key, vec![(t.id, sp)])),
        }
    }
    let mut out = SharedScans {
        of_trait: HashMap::new(),
        rows_read: HashMap::new(),
    };
    for (i, (_, members)) in groups.iter().enumerate() {
        let table = format!("tf_scan_{i}_{suffix}");
        let sources: Vec<&SourcePlan> = members.iter().map(|(_, sp)| *sp).collect();
        let keys = compiler::scope_source_keys(sources[0], scope);
        let select = compiler::shared_aggregate(backend, ws, &sources, now, Some(keys));
        let stmt = StatementBuilder::build(&select, &backend);
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            format!("CREATE TEMPORARY TABLE \"{table}\" AS {}", stmt.sql),
            stmt.values.map(|v| v.0).unwrap_or_default(),
        ))
        .await?;
        if backend == sea_orm::DbBackend::Postgres {
            tx.execute_unprepared(&format!("ANALYZE \"{table}\""))
                .await?;
        }
        let n = count(
            tx,
            &format!("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM \"{table}\""),
        )
        .await?;
        for (index, (id, _)) in members.iter().enumerate() {
            out.of_trait.insert(*id, (table.clone(), index));
        }
        out.rows_read.insert(table, n);
    }
    Ok(out)
}
