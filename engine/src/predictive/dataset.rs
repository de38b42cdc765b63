//! The training and scoring data of a prediction, computed as of a time `T`.
//!
//! Features are the players model's number and boolean traits that can be
//! computed as of a time (compiled with source rows up to `T` and windows
//! counted back from `T`, formulas over them in dependency order) plus
//! built-in recency, frequency, tenure and spend. Nothing after `T` reaches
//! a feature. The outcome (the label) counts rows in `(T, T + window]`.
//! Everything is computed by the database into a temporary table of one
//! transaction, which is rolled back: nothing of it is stored.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use ndarray::Array2;
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, StreamTrait, TransactionTrait,
    sea_query::{Alias, Expr, ExprTrait, JoinType, Query, SelectStatement, UnionType},
};
use uuid::Uuid;

use entity::{states::TraitType, traits};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::spec::Target;
use crate::{
    Engine, Result,
    catalog::ModelKind,
    db::Binds,
    traits::scope::Scope,
    traits::{
        compiler::{self, AsOf, Period},
        definition::{
            Catalog, Computation, Plan, ResultType, ScalarOp, SourceOp, TraitStatus,
            value_over_no_events,
        },
    },
};

/// Days counted by the built-in frequency feature.
pub const FREQUENCY_DAYS: i64 = 28;

/// Built-in features, after the traits: (name, value over no events).
pub const BUILT_IN: [(&str, Option<f64>); 4] = [
    ("recency_days", None),
    ("frequency_28d", Some(0.0)),
    ("tenure_days", None),
    ("spend_total", Some(0.0)),
];

/// One column of the feature matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSpec {
    pub name: String,
    pub trait_id: Option<Uuid>,
    /// What a player without a value has (a count over no events is 0);
    /// `None`: missing, filled with the training mean plus an indicator.
    pub fill: Option<f64>,
}

/// The traits a prediction learns from, with everything they read, in an
/// order where each comes after its references.
pub struct Features {
    computed: Vec<(Uuid, Plan)>,
    /// The built-in spend: the sum of `purchases.price`.
    spend: Option<Plan>,
    /// The traits', then the [`BUILT_IN`] features (always the last).
    pub specs: Vec<FeatureSpec>,
}

/// What a dataset is computed for: features as of `at`, with `labels` the
/// outcome after it too, for every player or a pass's `scope` only.
#[derive(Clone, Copy)]
pub(crate) struct Snapshot<'a> {
    pub at: DateTime<Utc>,
    pub labels: bool,
    pub scope: Option<&'a Scope>,
}

pub struct Dataset {
    pub users: Vec<String>,
    /// Players × features; NaN where a player has no value.
    pub x: Array2<f64>,
    /// The outcome per player, with a label period.
    pub y: Option<Vec<f64>>,
}

impl Engine {
    /// The players model's traits computable as of a time; the number and
    /// boolean ones (not other predictions' scores) are features.
    pub(crate) async fn predictive_features(&self, ws: Uuid) -> Result<Features> {
        let players = self.players_model_id(ws).await?;
        let all: Vec<traits::Model> = traits::Entity::find()
            .filter(traits::Column::WorkspaceId.eq(ws))
            .filter(traits::Column::ParentModelId.eq(players))
            .filter(traits::Column::Status.eq(TraitStatus::Active))
            .filter(traits::Column::TraitType.ne(TraitType::Prediction))
            .order_by_asc(traits::Column::Slug)
            .all(&self.db)
            .await?;
        let mut waiting = Vec::new();
        for t in all {
            // A trait that no longer plans (a model changed under it) is left out.
            if let Ok(plan) = self.plan_trait(&self.db, &t).await
                && plan.computable_as_of()
            {
                waiting.push((t, plan));
            }
        }
        let mut computed: Vec<(Uuid, Plan)> = Vec::new();
        let mut specs = Vec::new();
        loop {
            let ready: Vec<usize> = (0..waiting.len())
                .filter(|&i| {
                    waiting[i]
                        .1
                        .dependencies()
                        .iter()
                        .all(|d| computed.iter().any(|(id, _)| id == d))
                })
                .collect();
            if ready.is_empty() {
                break;
            }
            for i in ready.into_iter().rev() {
                let (t, plan) = waiting.remove(i);
                if matches!(plan.result_type, ResultType::Number | ResultType::Boolean) {
                    specs.push(FeatureSpec {
                        name: t.slug.clone(),
                        trait_id: Some(t.id),
                        fill: value_over_no_events(t.trait_type, &t.config),
                    });
                }
                computed.push((t.id, plan));
            }
        }
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs.extend(BUILT_IN.iter().map(|(name, fill)| FeatureSpec {
            name: name.to_string(),
            trait_id: None,
            fill: *fill,
        }));
        let catalog = self.load_catalog(&self.db, ws).await?;
        let spend = catalog
            .models
            .values()
            .find(|m| m.slug == "purchases")
            .zip(catalog.models.get(&players))
            .and_then(|(purchases, players)| {
                super::spec::outcome(
                    &catalog,
                    players,
                    purchases,
                    "sum",
                    Some("price".into()),
                    &[],
                    "spend",
                )
                .ok()
            });
        Ok(Features {
            computed,
            spend,
            specs,
        })
    }

    /// The population as of `at` with its features, and with `labels`
    /// their outcome over `(at, at + window]`.
    pub(crate) async fn dataset(
        &self,
        ws: Uuid,
        features: &Features,
        target: &Target,
        at: DateTime<Utc>,
        labels: bool,
    ) -> Result<Dataset> {
        let tx = self.db.begin().await?;
        let snapshot = Snapshot {
            at,
            labels,
            scope: None,
        };
        let outcome = self.dataset_in(&tx, ws, features, target, snapshot).await;
        // Nothing of the computation stays, whatever happened.
        tx.rollback().await?;
        outcome
    }

    /// [`Engine::dataset`] on `tx` (whose temporary tables it leaves).
    pub(crate) async fn dataset_in(
        &self,
        tx: &DatabaseTransaction,
        ws: Uuid,
        features: &Features,
        target: &Target,
        snapshot: Snapshot<'_>,
    ) -> Result<Dataset> {
        let Snapshot { at, labels, scope } = snapshot;
        let backend = ConnectionTrait::get_database_backend(tx);
        let scratch = format!("tf_asof_{}", Uuid::new_v4().simple());
        tx.execute_unprepared(&format!(
            "CREATE TEMPORARY TABLE \"{scratch}\" AS SELECT * FROM trait_values WHERE 1 = 0"
        ))
        .await?;
        // No index: maintaining one cost more than each statement's join
        // (5 s of 8 per million values on PostgreSQL); expressions read
        // their references with hash joins.
        let as_of = AsOf {
            period: Period {
                after: None,
                until: at,
            },
            table: &scratch,
            scope,
        };
        let clock = std::time::Instant::now();
        let mut phases: Vec<(&str, u128)> = Vec::new();
        let lap = |name: &'static str, phases: &mut Vec<(&str, u128)>| {
            phases.push((name, clock.elapsed().as_millis()));
        };
        // A source feature no expression reads streams from its aggregate
        // into the matrix below; the rest are computed into the table, in
        // dependency order, where expressions find their references.
        let read_by_expressions: Vec<Uuid> = features
            .computed
            .iter()
            .flat_map(|(_, plan)| plan.dependencies())
            .collect();
        let column_of = |id: &Uuid| features.specs.iter().position(|s| s.trait_id == Some(*id));
        let mut direct = Vec::new();
        for (id, plan) in &features.computed {
            let leaf = !read_by_expressions.contains(id);
            match (column_of(id), leaf && streams_by_user(plan)) {
                (Some(c), true) => direct.push((c, plan)),
                // Neither a feature nor read by one.
                (None, _) if leaf => {}
                _ => {
                    let insert = compiler::compile_as_of(plan, backend, ws, *id, &as_of);
                    tx.execute(&insert).await?;
                }
            }
        }

        // The population: players with an event by `at` (for churn: lately).
        lap("traits", &mut phases);
        let activity = self.activity(tx, ws, at, scope).await?;
        lap("activity", &mut phases);
        let since = target
            .active_days
            .map(|d| at - Duration::days(i64::from(d)));
        let mut users: Vec<String> = activity
            .iter()
            .filter(|(_, a)| since.is_none_or(|s| a.last > s))
            .map(|(u, _)| u.clone())
            .collect();
        users.sort();
        let row_of: HashMap<&str, usize> = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.as_str(), i))
            .collect();
        let mut x = Array2::from_elem((users.len(), features.specs.len()), f64::NAN);
        let streamed: Vec<usize> = direct.iter().map(|(c, _)| *c).collect();
        for (c, plan) in direct {
            let exists = is_exists(plan);
            for (user, v) in self
                .outcome_sums(tx, ws, &Some(plan.clone()), &as_of)
                .await?
            {
                if let Some(&r) = row_of.get(user.as_str()) {
                    // `exists` has a row exactly when it holds.
                    x[[r, c]] = if exists { 1.0 } else { v };
                }
            }
        }
        let traits: Vec<(usize, Uuid)> = features
            .specs
            .iter()
            .enumerate()
            .filter(|(c, _)| !streamed.contains(c))
            .filter_map(|(c, s)| s.trait_id.map(|id| (c, id)))
            .collect();
        if !traits.is_empty() {
            let mut b = Binds::new(backend);
            let columns: Vec<String> = traits
                .iter()
                .enumerate()
                .map(|(i, (_, id))| {
                    format!(
                        "MAX(CASE WHEN trait_id = {} THEN COALESCE(value_number, \
                         CASE WHEN value_boolean THEN 1.0 WHEN NOT value_boolean THEN 0.0 END) END) AS f{i}",
                        b.bind(*id)
                    )
                })
                .collect();
            let sql = format!(
                "SELECT entity_id, {} FROM \"{scratch}\" GROUP BY entity_id",
                columns.join(", ")
            );
            let mut rows = tx.stream_raw(b.statement(sql)).await?;
            while let Some(row) = rows.try_next().await? {
                let entity: String = row.try_get("", "entity_id")?;
                let Some(&r) = row_of.get(entity.as_str()) else {
                    continue;
                };
                for (i, (c, _)) in traits.iter().enumerate() {
                    if let Some(v) = row.try_get::<Option<f64>>("", &format!("f{i}"))? {
                        x[[r, *c]] = v;
                    }
                }
            }
        }
        lap("pivot", &mut phases);
        let spend = self.outcome_sums(tx, ws, &features.spend, &as_of).await?;
        lap("spend", &mut phases);
        let built_in = features.specs.len().saturating_sub(BUILT_IN.len());
        for (r, u) in users.iter().enumerate() {
            let a = &activity[u];
            let days = |t: DateTime<Utc>| (at - t).num_seconds() as f64 / 86_400.0;
            x[[r, built_in]] = days(a.last);
            x[[r, built_in + 1]] = a.recent as f64;
            x[[r, built_in + 2]] = days(a.first);
            x[[r, built_in + 3]] = spend.get(u).copied().unwrap_or(0.0);
        }

        // A count or sum over no events is 0, not a gap.
        for (c, spec) in features.specs.iter().enumerate() {
            if let Some(fill) = spec.fill {
                x.column_mut(c)
                    .mapv_inplace(|v| if v.is_nan() { fill } else { v });
            }
        }

        let y = if labels {
            let window = AsOf {
                period: Period {
                    after: Some(at),
                    until: at + Duration::days(i64::from(target.window_days)),
                },
                ..as_of
            };
            let mut total: HashMap<String, f64> = HashMap::new();
            for plan in &target.outcomes {
                for (u, v) in self
                    .outcome_sums(tx, ws, &Some(plan.clone()), &window)
                    .await?
                {
                    *total.entry(u).or_default() += v;
                }
            }
            let value = |u: &String| total.get(u).copied().unwrap_or(0.0);
            Some(
                users
                    .iter()
                    .map(|u| match target.goal {
                        super::spec::PredictionGoal::Churn => f64::from(value(u) == 0.0),
                        super::spec::PredictionGoal::Spend => value(u),
                        _ => f64::from(value(u) > 0.0),
                    })
                    .collect(),
            )
        } else {
            None
        };
        lap("labels", &mut phases);
        if scope.is_none() {
            tracing::info!(
                players = users.len(),
                ?phases,
                "prediction dataset (ms since start)"
            );
        }
        // A pass commits its transaction: leave no table in the session.
        tx.execute_unprepared(&format!("DROP TABLE \"{scratch}\""))
            .await?;
        Ok(Dataset { users, x, y })
    }

    /// When the workspace's history starts: its earliest event of any record type.
    pub(crate) async fn history_start(&self, ws: Uuid) -> Result<Option<DateTime<Utc>>> {
        let catalog = self.load_catalog(&self.db, ws).await?;
        let mut b = Binds::new(self.db.get_database_backend());
        let parts: Vec<String> = event_tables(&catalog)
            .into_iter()
            .map(|(table, ts)| {
                format!(
                    "SELECT MIN(\"{ts}\") AS ts FROM \"{table}\" WHERE workspace_id = {}",
                    b.bind(ws)
                )
            })
            .collect();
        let sql = format!(
            "SELECT MIN(ts) AS ts FROM ({}) e",
            parts.join(" UNION ALL ")
        );
        let row = self.db.query_one_raw(b.statement(sql)).await?;
        Ok(match row {
            Some(row) => row.try_get::<Option<DateTime<Utc>>>("", "ts")?,
            None => None,
        })
    }

    /// How many players are eligible at `at` (an event by then; for churn,
    /// lately) and how many of them have the outcome in `(at, at + window]`:
    /// one statement, nothing fetched per player. The quick check before a
    /// prediction is stored; the training counts its own players exactly.
    pub(crate) async fn outcome_counts(
        &self,
        ws: Uuid,
        target: &Target,
        at: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        let backend = self.db.get_database_backend();
        let catalog = self.load_catalog(&self.db, ws).await?;
        let since = target
            .active_days
            .map(|d| at - Duration::days(i64::from(d)));
        let mut events: Option<SelectStatement> = None;
        for (table, ts) in event_tables(&catalog) {
            let mut q = Query::select();
            q.column(Alias::new("user_id"))
                .from(Alias::new(table))
                .and_where(Expr::col(Alias::new("workspace_id")).eq(ws))
                .and_where(Expr::col(Alias::new(ts)).lte(at));
            if let Some(since) = since {
                q.and_where(Expr::col(Alias::new(ts)).gt(since));
            }
            match &mut events {
                None => events = Some(q),
                Some(all) => {
                    all.union(UnionType::All, q);
                }
            }
        }
        let Some(events) = events else {
            return Ok((0, 0));
        };
        let mut population = Query::select();
        population
            .column(Alias::new("user_id"))
            .from_subquery(events, Alias::new("e"))
            .group_by_col(Alias::new("user_id"));
        let period = Period {
            after: Some(at),
            until: at + Duration::days(i64::from(target.window_days)),
        };
        let mut select = Query::select();
        select.from_subquery(population, Alias::new("p"));
        let mut sum = Vec::new();
        for (i, plan) in target.outcomes.iter().enumerate() {
            let agg = compiler::period_aggregate(plan, backend, ws, &period, None)
                .ok_or_else(|| crate::Error::internal("an outcome is a source plan"))?;
            let o = format!("o{i}");
            select.join_subquery(
                JoinType::LeftJoin,
                agg,
                Alias::new(&o),
                Expr::col((Alias::new(&o), Alias::new("k")))
                    .equals((Alias::new("p"), Alias::new("user_id"))),
            );
            sum.push(format!("COALESCE(\"{o}\".\"v\", 0)"));
        }
        let outcome = format!("({})", sum.join(" + "));
        select
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
            .expr_as(
                Expr::cust(format!("SUM(CASE WHEN {outcome} > 0 THEN 1 ELSE 0 END)")),
                Alias::new("with_outcome"),
            );
        let row = self
            .db
            .query_one(&select)
            .await?
            .ok_or_else(|| crate::Error::internal("an aggregate without a row"))?;
        let n: i64 = row.try_get("", "n")?;
        let with: Option<i64> = row.try_get("", "with_outcome")?;
        Ok((n as u64, with.unwrap_or(0) as u64))
    }

    /// Per player with an event by `at`: first and last event, and events
    /// in the [`FREQUENCY_DAYS`] before `at`, over every record type.
    async fn activity(
        &self,
        tx: &DatabaseTransaction,
        ws: Uuid,
        at: DateTime<Utc>,
        scope: Option<&Scope>,
    ) -> Result<HashMap<String, Activity>> {
        // A pass's players only: joined on its small table of keys.
        let only = scope.map_or(String::new(), |s| {
            format!(" AND user_id IN (SELECT user_id FROM \"{}\")", s.keys)
        });
        let catalog = self.load_catalog(tx, ws).await?;
        let mut b = Binds::new(ConnectionTrait::get_database_backend(tx));
        // Placeholders are bound in the order they appear in the text.
        let recent = b.bind(at - Duration::days(FREQUENCY_DAYS));
        let mut parts = Vec::new();
        for (table, ts) in event_tables(&catalog) {
            parts.push(format!(
                "SELECT user_id, \"{ts}\" AS ts FROM \"{table}\" WHERE workspace_id = {} AND \"{ts}\" <= {}{only}",
                b.bind(ws),
                b.bind(at)
            ));
        }
        let sql = format!(
            "SELECT user_id, MIN(ts) AS first_at, MAX(ts) AS last_at, \
             SUM(CASE WHEN ts > {} THEN 1 ELSE 0 END) AS recent \
             FROM ({}) e GROUP BY user_id",
            recent,
            parts.join(" UNION ALL ")
        );
        let mut out = HashMap::new();
        let mut rows = tx.stream_raw(b.statement(sql)).await?;
        while let Some(row) = rows.try_next().await? {
            out.insert(
                row.try_get::<String>("", "user_id")?,
                Activity {
                    first: row.try_get("", "first_at")?,
                    last: row.try_get("", "last_at")?,
                    recent: row.try_get::<i64>("", "recent")?,
                },
            );
        }
        Ok(out)
    }

    /// Per player with rows in `as_of`'s period (of its scope's players,
    /// with one), the value of a count or sum plan: streamed from the
    /// aggregate itself, nothing written.
    async fn outcome_sums(
        &self,
        tx: &DatabaseTransaction,
        ws: Uuid,
        plan: &Option<Plan>,
        as_of: &AsOf<'_>,
    ) -> Result<HashMap<String, f64>> {
        let Some(plan) = plan else {
            return Ok(HashMap::new());
        };
        let backend = ConnectionTrait::get_database_backend(tx);
        let select = compiler::period_aggregate(plan, backend, ws, &as_of.period, as_of.scope)
            .ok_or_else(|| crate::Error::internal("an outcome is a source plan"))?;
        let mut out = HashMap::new();
        let mut rows = tx.stream(&select).await?;
        while let Some(row) = rows.try_next().await? {
            // A count is an integer, a sum a float (PostgreSQL types them apart).
            let v = match row.try_get::<Option<f64>>("", "v") {
                Ok(v) => v,
                Err(_) => row.try_get::<Option<i64>>("", "v")?.map(|v| v as f64),
            };
            if let Some(v) = v {
                out.insert(row.try_get::<String>("", "k")?, v);
            }
        }
        Ok(out)
    }
}

/// Whether a plan's value per player is its aggregate keyed by user id, as
/// [`Engine::outcome_sums`] streams it: a scalar aggregate joined on
/// `user_id` whose value is the aggregate itself (or, for `exists`, its
/// presence).
fn streams_by_user(plan: &Plan) -> bool {
    match &plan.computation {
        Computation::Source(sp) => {
            sp.parent_column == "user_id"
                && matches!(sp.op, SourceOp::Scalar(_))
                && matches!(plan.result_type, ResultType::Number | ResultType::Boolean)
        }
        Computation::Expression { .. } => false,
    }
}

fn is_exists(plan: &Plan) -> bool {
    matches!(
        &plan.computation,
        Computation::Source(sp) if matches!(sp.op, SourceOp::Scalar(ScalarOp::Exists))
    )
}

/// Every record type's (table, timestamp column) whose rows name a player.
fn event_tables(catalog: &Catalog) -> Vec<(&str, &str)> {
    let mut tables: Vec<(&str, &str)> = catalog
        .models
        .values()
        .filter(|m| m.kind == ModelKind::Event && m.columns.contains_key("user_id"))
        .filter_map(|m| Some((m.table.as_str(), m.timestamp_column.as_deref()?)))
        .collect();
    tables.sort();
    tables
}

struct Activity {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    recent: i64,
}
