//! Compiles a [`Plan`] into set-based statements for one backend.
//!
//! Every entity of the parent model gets its value from one
//! `INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE changed` statement, so the
//! database does the work in one pass and unchanged values are not rewritten
//! (the affected-row count is the number of changed values). Identifiers come
//! from the validated catalog and are quoted by sea-query; every literal is a
//! bound value. The only SQL text written here is our own templates.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    DbBackend,
    sea_query::{
        Alias, BinOper, Cond, DeleteStatement, Expr, ExprTrait, Func, InsertStatement, JoinType,
        Keyword, OnConflict, Order, Query, SelectStatement,
    },
};
use uuid::Uuid;

use super::definition::{
    Computation, FilterOp, FilterPlan, Literal, Plan, ResultType, ScalarOp, SourceOp, SourcePlan,
    ValueRef, Window,
};
use super::scope::Scope;
use crate::catalog::DataType;

pub use super::expr_sql::render;

pub const VALUES_TABLE: &str = "trait_values";

/// The statements of one evaluation, run in one transaction.
pub struct Compiled {
    /// Computes every entity's value and inserts it: for a trait with no stored values yet.
    pub insert: InsertStatement,
    /// Computes every entity's value and writes the changed ones.
    pub upsert: InsertStatement,
    /// Removes values of entities that no longer exist.
    pub delete_stale: DeleteStatement,
}

pub(super) fn a(name: &str) -> Alias {
    Alias::new(name)
}

pub(super) fn col(table: &str, name: &str) -> Expr {
    Expr::col((a(table), a(name)))
}

pub(super) fn null() -> Expr {
    Expr::Keyword(Keyword::Null)
}

/// A template of ours with `$1…$n` markers, rendered for the backend's placeholder style.
pub(super) fn template(backend: DbBackend, text: &str, args: Vec<Expr>) -> Expr {
    if backend == DbBackend::Postgres {
        return Expr::cust_with_exprs(text.to_owned(), args);
    }
    // SQLite placeholders are positional `?`: repeat arguments in order of use.
    let mut out = String::with_capacity(text.len());
    let mut used = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            let n: usize = digits.parse().expect("template marker");
            used.push(args[n - 1].clone());
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Expr::cust_with_exprs(out, used)
}

/// `a` and `b` differ, treating NULL as a value (portable IS DISTINCT FROM).
fn differs(x: Expr, y: Expr) -> Expr {
    let both_sides = Expr::Binary(Box::new(x.clone()), BinOper::NotEqual, Box::new(y.clone()));
    let nullness = Expr::Binary(
        Box::new(x.is_null()),
        BinOper::NotEqual,
        Box::new(y.is_null()),
    );
    Cond::any().add(both_sides).add(nullness).into()
}

pub(super) fn literal(l: &Literal) -> Expr {
    match l {
        Literal::Number(n) => Expr::val(*n),
        Literal::Text(s) => Expr::val(s.clone()),
        Literal::Bool(b) => Expr::val(*b),
        Literal::Timestamp(t) => Expr::val(*t),
        Literal::Date(d) => Expr::val(*d),
    }
}

/// The value of `v` on one source row (alias `s`).
fn source_value(backend: DbBackend, v: &ValueRef) -> Expr {
    let column = col("s", &v.column);
    let Some(key) = &v.param_key else {
        return column;
    };
    // First `value` whose `key` matches in a `[{"key","value"}]` list.
    let raw = match backend {
        DbBackend::Postgres => template(
            backend,
            "(SELECT e.elem->>'value' FROM jsonb_array_elements(CASE WHEN jsonb_typeof($1) = 'array' THEN $1 ELSE '[]'::jsonb END) AS e(elem) WHERE e.elem->>'key' = $2 LIMIT 1)",
            vec![column, Expr::val(key.clone())],
        ),
        _ => template(
            backend,
            "(SELECT json_extract(e.value, '$.value') FROM json_each(CASE WHEN json_valid($1) AND json_type($1) = 'array' THEN $1 ELSE '[]' END) AS e WHERE json_extract(e.value, '$.key') = $2 LIMIT 1)",
            vec![column, Expr::val(key.clone())],
        ),
    };
    match v.cast {
        Some(DataType::Number) => match backend {
            // Text that is not a number becomes NULL instead of failing the run.
            DbBackend::Postgres => template(
                backend,
                "(CASE WHEN btrim($1) ~ '^[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?$' THEN CAST(btrim($1) AS DOUBLE PRECISION) END)",
                vec![raw],
            ),
            _ => template(
                backend,
                "(CASE WHEN typeof($1) IN ('integer', 'real') THEN $1 WHEN trim($1) GLOB '*[0-9]*' AND trim($1) NOT GLOB '*[^0-9.eE+-]*' THEN CAST(trim($1) AS REAL) END)",
                vec![raw],
            ),
        },
        Some(DataType::Timestamp) if backend == DbBackend::Postgres => template(
            backend,
            "(CASE WHEN $1 ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}' THEN CAST($1 AS TIMESTAMPTZ) END)",
            vec![raw],
        ),
        _ => match backend {
            DbBackend::Postgres => raw,
            _ => template(backend, "CAST($1 AS TEXT)", vec![raw]),
        },
    }
}

fn filter(backend: DbBackend, f: &FilterPlan) -> Expr {
    let x = source_value(backend, &f.target);
    let vals: Vec<Expr> = f.values.iter().map(literal).collect();
    let first = || vals[0].clone();
    match f.op {
        FilterOp::Eq => x.eq(first()),
        FilterOp::NotEq => x.ne(first()),
        FilterOp::Lt => x.lt(first()),
        FilterOp::LtEq => x.lte(first()),
        FilterOp::Gt => x.gt(first()),
        FilterOp::GtEq => x.gte(first()),
        FilterOp::In => Expr::Binary(Box::new(x), BinOper::In, Box::new(Expr::Tuple(vals))),
        FilterOp::NotIn => Expr::Binary(Box::new(x), BinOper::NotIn, Box::new(Expr::Tuple(vals))),
        FilterOp::IsNull => x.is_null(),
        FilterOp::IsNotNull => x.is_not_null(),
    }
}

/// A window's conditions on the source rows (alias `s`), all to hold.
fn window(w: &Window, now: DateTime<Utc>) -> Vec<Expr> {
    let ago = |days: u32| now - Duration::days(i64::from(days));
    let mut c = vec![col("s", &w.column).gte(ago(w.oldest_days))];
    if w.newest_days > 0 {
        c.push(col("s", &w.column).lt(ago(w.newest_days)));
    }
    c
}

/// Per-entity aggregate of the source rows: `SELECT join AS k, agg AS v … GROUP BY join`.
/// With `keys`, only the source rows whose join value is among them are read.
fn aggregate(
    backend: DbBackend,
    workspace_id: Uuid,
    p: &SourcePlan,
    now: DateTime<Utc>,
    keys: Option<SelectStatement>,
    period: Option<&Period>,
) -> SelectStatement {
    let mut rows = Query::select();
    rows.from_as(a(&p.source_table), a("s"))
        .and_where(col("s", "workspace_id").eq(workspace_id));
    if let Some(period) = period {
        let ts = p
            .timestamp_column
            .as_deref()
            .expect("only sources with a timestamp are computed as of a time");
        if let Some(after) = period.after {
            rows.and_where(col("s", ts).gt(after));
        }
        rows.and_where(col("s", ts).lte(period.until));
    }
    if let Some(keys) = keys {
        rows.and_where(col("s", &p.source_column).in_subquery(keys));
    }
    for f in &p.filters {
        rows.and_where(filter(backend, f));
    }
    if let Some(w) = &p.window {
        for c in window(w, now) {
            rows.and_where(c);
        }
    }
    let key = col("s", &p.source_column);
    let op = match &p.op {
        SourceOp::Scalar(op) => op,
        SourceOp::List { value, limit } => {
            let v = source_value(backend, value);
            // Distinct non-null values per entity, numbered in order, capped, then aggregated in order.
            rows.distinct()
                .expr_as(key, a("k"))
                .expr_as(v.clone(), a("v"))
                .and_where(v.is_not_null());
            let mut ranked = Query::select();
            ranked
                .column(a("k"))
                .column(a("v"))
                .expr_as(
                    Expr::cust("ROW_NUMBER() OVER (PARTITION BY \"k\" ORDER BY \"v\")"),
                    a("rn"),
                )
                .from_subquery(rows, a("d"));
            if backend != DbBackend::Postgres {
                // SQLite aggregates in input order.
                ranked
                    .order_by(a("k"), Order::Asc)
                    .order_by(a("v"), Order::Asc);
            }
            let agg = match backend {
                DbBackend::Postgres => Expr::cust("jsonb_agg(\"v\" ORDER BY \"v\")"),
                _ => Expr::cust("json_group_array(\"v\")"),
            };
            let mut out = Query::select();
            out.column(a("k"))
                .expr_as(agg, a("v"))
                .from_subquery(ranked, a("r"))
                .and_where(Expr::col(a("rn")).lte(i64::from(*limit)))
                .group_by_col(a("k"));
            return out;
        }
        SourceOp::Percentile { value, fraction } => {
            return percentile(backend, rows, key, source_value(backend, value), *fraction);
        }
        SourceOp::Frequent { value, least } => {
            // Per entity and value, how often; then the first by count (ties: the smaller value).
            let v = source_value(backend, value);
            rows.expr_as(key.clone(), a("k"))
                .expr_as(v.clone(), a("v"))
                .expr_as(Expr::cust("COUNT(*)"), a("n"))
                .and_where(v.clone().is_not_null())
                .add_group_by([key, v]);
            let order = if *least { "ASC" } else { "DESC" };
            let mut ranked = Query::select();
            ranked
                .column(a("k"))
                .column(a("v"))
                .expr_as(
                    Expr::cust(format!(
                        "ROW_NUMBER() OVER (PARTITION BY \"k\" ORDER BY \"n\" {order}, \"v\" ASC)"
                    )),
                    a("rn"),
                )
                .from_subquery(rows, a("c"));
            let mut out = Query::select();
            out.column(a("k"))
                .column(a("v"))
                .from_subquery(ranked, a("r"))
                .and_where(Expr::col(a("rn")).eq(1));
            return out;
        }
    };
    let agg = scalar_aggregate(backend, op, Expr::cust("*"), &|e| e);
    rows.expr_as(key.clone(), a("k"))
        .expr_as(agg, a("v"))
        .add_group_by([key]);
    rows
}

/// `percentile_cont(fraction)` of `v` per entity. PostgreSQL has it as an
/// ordered-set aggregate; SQLite ranks each entity's values with window
/// functions and interpolates between the two ranks around the position
/// `(n - 1) × fraction`, still in one statement.
fn percentile(
    backend: DbBackend,
    mut rows: SelectStatement,
    key: Expr,
    v: Expr,
    fraction: f64,
) -> SelectStatement {
    rows.and_where(v.clone().is_not_null());
    if backend == DbBackend::Postgres {
        let agg = template(
            backend,
            &format!("percentile_cont({fraction}) WITHIN GROUP (ORDER BY $1)"),
            vec![v],
        );
        rows.expr_as(key.clone(), a("k"))
            .expr_as(agg, a("v"))
            .add_group_by([key]);
        return rows;
    }
    rows.expr_as(key, a("k")).expr_as(v, a("x"));
    let mut ranked = Query::select();
    ranked
        .column(a("k"))
        .column(a("x"))
        .expr_as(
            Expr::cust("ROW_NUMBER() OVER (PARTITION BY \"k\" ORDER BY \"x\")"),
            a("rn"),
        )
        .expr_as(
            Expr::cust(format!(
                "(COUNT(*) OVER (PARTITION BY \"k\") - 1) * {fraction}"
            )),
            a("h"),
        )
        .from_subquery(rows, a("d"));
    let mut out = Query::select();
    out.column(a("k"))
        .expr_as(
            Expr::cust(
                "MAX(CASE WHEN \"rn\" = CAST(\"h\" AS INTEGER) + 1 THEN \"x\" END) \
                 + (MAX(\"h\") - CAST(MAX(\"h\") AS INTEGER)) \
                 * (COALESCE(MAX(CASE WHEN \"rn\" = CAST(\"h\" AS INTEGER) + 2 THEN \"x\" END), \
                    MAX(CASE WHEN \"rn\" = CAST(\"h\" AS INTEGER) + 1 THEN \"x\" END)) \
                    - MAX(CASE WHEN \"rn\" = CAST(\"h\" AS INTEGER) + 1 THEN \"x\" END))",
            ),
            a("v"),
        )
        .from_subquery(ranked, a("r"))
        .group_by_col(a("k"));
    out
}

/// The value written for one parent row (alias `p`), given its aggregate `v`
/// and whether the entity had matching rows.
fn source_result(
    backend: DbBackend,
    p: &SourcePlan,
    result: ResultType,
    v: Expr,
    exists: Expr,
) -> Expr {
    match p.op {
        SourceOp::Scalar(ScalarOp::Count(_) | ScalarOp::CountDistinct(_)) => {
            Func::coalesce([v, Expr::val(0i64)]).into()
        }
        SourceOp::Scalar(ScalarOp::Exists) => exists,
        _ if result == ResultType::Timestamp && backend != DbBackend::Postgres => {
            // SQLite: dates ('YYYY-MM-DD') become midnight UTC in the stored timestamp format.
            template(
                backend,
                "(CASE WHEN length($1) = 10 THEN $1 || 'T00:00:00+00:00' ELSE $1 END)",
                vec![v],
            )
        }
        _ => v,
    }
}

/// Source table, source join column, parent join column.
pub type ScanKey = (String, String, String);

/// Whether several source traits can share one scan: same source, same join,
/// scalar results (lists and most/least frequent values need their own
/// count/rank pipeline).
pub fn scan_key(p: &SourcePlan) -> Option<ScanKey> {
    matches!(p.op, SourceOp::Scalar(_)).then(|| {
        (
            p.source_table.clone(),
            p.source_column.clone(),
            p.parent_column.clone(),
        )
    })
}

/// One scan of the source for several traits: `SELECT k, agg₀ AS v0, agg₁ AS
/// v1, … GROUP BY k`, each trait's filters and window folded into its own
/// aggregate as `CASE WHEN … THEN value END`. All plans share a [`scan_key`].
///
/// With `keys` (an incremental pass), only the source rows whose join value
/// is among them are read, and column `n` counts the rows read per entity.
pub fn shared_aggregate(
    backend: DbBackend,
    workspace_id: Uuid,
    plans: &[&SourcePlan],
    now: DateTime<Utc>,
    keys: Option<SelectStatement>,
) -> SelectStatement {
    let first = plans[0];
    let key = col("s", &first.source_column);
    let mut rows = Query::select();
    rows.from_as(a(&first.source_table), a("s"))
        .and_where(col("s", "workspace_id").eq(workspace_id))
        .expr_as(key.clone(), a("k"));
    if let Some(keys) = keys {
        rows.and_where(key.clone().in_subquery(keys))
            .expr_as(Expr::cust("COUNT(*)"), a("n"));
    }
    for (i, p) in plans.iter().enumerate() {
        let mut cond = Cond::all();
        let mut conditional = false;
        for f in &p.filters {
            cond = cond.add(filter(backend, f));
            conditional = true;
        }
        if let Some(w) = &p.window {
            for c in window(w, now) {
                cond = cond.add(c);
            }
            conditional = true;
        }
        let guard = |e: Expr| -> Expr {
            if conditional {
                Expr::case(cond.clone(), e).finally(null()).into()
            } else {
                e
            }
        };
        let SourceOp::Scalar(op) = &p.op else {
            unreachable!("lists have no scan_key, so they never share a scan")
        };
        let agg = scalar_aggregate(backend, op, guard(Expr::val(1)), &guard);
        rows.expr_as(agg, a(&format!("v{i}")));
    }
    rows.add_group_by([key]);
    rows
}

/// The aggregate of a scalar operation: `every_row` is what counting rows
/// counts, and `guard` wraps each value read (a shared scan folds each
/// trait's filters in there).
fn scalar_aggregate(
    backend: DbBackend,
    op: &ScalarOp,
    every_row: Expr,
    guard: &dyn Fn(Expr) -> Expr,
) -> Expr {
    let v = |r: &ValueRef| guard(source_value(backend, r));
    match op {
        ScalarOp::Count(None) | ScalarOp::Exists => Func::count(every_row).into(),
        ScalarOp::Count(Some(r)) => Func::count(v(r)).into(),
        ScalarOp::CountDistinct(r) => Func::count_distinct(v(r)).into(),
        ScalarOp::Sum(r) => Func::sum(v(r)).into(),
        ScalarOp::Avg(r) => Func::avg(v(r)).into(),
        ScalarOp::Min(r) => Func::min(v(r)).into(),
        ScalarOp::Max(r) => Func::max(v(r)).into(),
    }
}

/// The source rows a computation as of a past time reads: timestamps in
/// `(after, until]`. Windows count back from `until`.
#[derive(Clone, Copy, Debug)]
pub struct Period {
    pub after: Option<DateTime<Utc>>,
    pub until: DateTime<Utc>,
}

/// A computation as of a [`Period`], written to `table` (the shape of
/// `trait_values`) instead of the stored values; expressions read their
/// references from `table` too, so dependencies are computed first. With a
/// `scope`, for an incremental pass's players only.
#[derive(Clone, Copy)]
pub struct AsOf<'a> {
    pub period: Period,
    pub table: &'a str,
    pub scope: Option<&'a Scope>,
}

/// Per entity with rows in `period` (of a pass's players, with a scope),
/// the source plan's aggregate: `k` (the join value) and `v`. None for an
/// expression plan.
pub fn period_aggregate(
    plan: &Plan,
    backend: DbBackend,
    workspace_id: Uuid,
    period: &Period,
    scope: Option<&Scope>,
) -> Option<SelectStatement> {
    match &plan.computation {
        Computation::Source(sp) => Some(aggregate(
            backend,
            workspace_id,
            sp,
            period.until,
            scope.map(|s| scope_source_keys(sp, s)),
            Some(period),
        )),
        Computation::Expression { .. } => None,
    }
}

/// Which entities and source rows a compilation covers.
enum Rows<'a> {
    /// Every entity, every row: a full run.
    All,
    /// The players of an incremental pass.
    Scoped(&'a Scope),
    /// Every entity (or a pass's), rows of a past period, into a table of its own.
    AsOf(&'a AsOf<'a>),
}

/// Where a source trait's aggregate comes from.
pub enum Aggregate<'a> {
    /// Its own subquery.
    Inline,
    /// Column `v{index}` of a table filled by [`shared_aggregate`].
    Shared { table: &'a str, index: usize },
}

pub fn compile(
    plan: &Plan,
    backend: DbBackend,
    workspace_id: Uuid,
    trait_id: Uuid,
    now: DateTime<Utc>,
) -> Compiled {
    compile_with(
        plan,
        backend,
        workspace_id,
        trait_id,
        now,
        Aggregate::Inline,
    )
}

pub fn compile_with(
    plan: &Plan,
    backend: DbBackend,
    workspace_id: Uuid,
    trait_id: Uuid,
    now: DateTime<Utc>,
    aggregate_from: Aggregate<'_>,
) -> Compiled {
    compile_in(
        plan,
        backend,
        workspace_id,
        trait_id,
        now,
        aggregate_from,
        Rows::All,
    )
}

/// Computes every entity's value as of a past time into `as_of.table`.
/// Only plans whose sources have a timestamp column (see
/// [`SourcePlan::timestamp_column`]) can be computed so.
pub fn compile_as_of(
    plan: &Plan,
    backend: DbBackend,
    workspace_id: Uuid,
    trait_id: Uuid,
    as_of: &AsOf<'_>,
) -> InsertStatement {
    compile_in(
        plan,
        backend,
        workspace_id,
        trait_id,
        as_of.period.until,
        Aggregate::Inline,
        Rows::AsOf(as_of),
    )
    .insert
}

/// The same statements restricted to the players of an incremental pass's
/// [`Scope`]. Every entity's value depends only on its own rows, so the
/// values written are exactly those a full run writes for them.
pub fn compile_scoped(
    plan: &Plan,
    backend: DbBackend,
    workspace_id: Uuid,
    trait_id: Uuid,
    now: DateTime<Utc>,
    scope: &Scope,
    aggregate_from: Aggregate<'_>,
) -> Compiled {
    compile_in(
        plan,
        backend,
        workspace_id,
        trait_id,
        now,
        aggregate_from,
        Rows::Scoped(scope),
    )
}

/// The source join values of a scope's players: the user ids themselves
/// when the source joins on them, else read from their player rows.
pub fn scope_source_keys(sp: &SourcePlan, scope: &Scope) -> SelectStatement {
    if sp.parent_column == "user_id" {
        return scope.keys();
    }
    Query::select()
        .expr(col("p2", &sp.parent_column))
        .from_as(a(&scope.players), a("p2"))
        .to_owned()
}

fn compile_in(
    plan: &Plan,
    backend: DbBackend,
    workspace_id: Uuid,
    trait_id: Uuid,
    now: DateTime<Utc>,
    aggregate_from: Aggregate<'_>,
    rows: Rows<'_>,
) -> Compiled {
    let (scope, as_of) = match rows {
        Rows::All => (None, None),
        Rows::Scoped(s) => (Some(s), None),
        Rows::AsOf(o) => (o.scope, Some(o)),
    };
    let values_table = as_of.map_or(VALUES_TABLE, |o| o.table);
    // A pass reads its players' rows from its own small table.
    let parents = match scope {
        Some(s) => {
            debug_assert_eq!(
                plan.parent_table, "players",
                "passes compute players traits"
            );
            s.players.as_str()
        }
        None => plan.parent_table.as_str(),
    };
    let value_col = plan.result_type.value_column();
    let mut select = Query::select();
    select
        .expr(Expr::val(workspace_id))
        .expr(Expr::val(trait_id))
        .expr(col("p", &plan.parent_key));
    select.from_as(a(parents), a("p"));
    match &plan.computation {
        Computation::Source(sp) => {
            let on = col("a", "k").equals((a("p"), a(&sp.parent_column)));
            let (v, exists) = match aggregate_from {
                Aggregate::Inline => {
                    let keys = scope.map(|s| scope_source_keys(sp, s));
                    let period = as_of.map(|o| &o.period);
                    let agg = aggregate(backend, workspace_id, sp, now, keys, period);
                    select.join_subquery(JoinType::LeftJoin, agg, a("a"), on);
                    (col("a", "v"), col("a", "k").is_not_null())
                }
                Aggregate::Shared { table, index } => {
                    select.join_as(JoinType::LeftJoin, a(table), a("a"), on);
                    let v = col("a", &format!("v{index}"));
                    // Filters live inside the shared aggregate, so a row for the
                    // entity does not mean a matching row: test the count.
                    (
                        v.clone(),
                        Expr::from(Func::coalesce([v, Expr::val(0i64)])).gt(0),
                    )
                }
            };
            select.expr(source_result(backend, sp, plan.result_type, v, exists));
        }
        Computation::Expression { node, refs } => {
            for (i, r) in refs.iter().enumerate() {
                let t = format!("t{i}");
                select.join_as(
                    JoinType::LeftJoin,
                    a(values_table),
                    a(&t),
                    Cond::all()
                        .add(col(&t, "workspace_id").eq(workspace_id))
                        .add(col(&t, "trait_id").eq(r.id))
                        .add(col(&t, "entity_id").equals((a("p"), a(&plan.parent_key)))),
                );
            }
            let lookup = |slug: &str| -> Expr {
                let (i, r) = refs
                    .iter()
                    .enumerate()
                    .find(|(_, r)| r.slug == slug)
                    .expect("validated reference");
                col(&format!("t{i}"), r.result_type.value_column())
            };
            let value = render(backend, node, &lookup);
            let value = match plan.result_type {
                // A comparison is 0/1 in SQLite and a boolean in PostgreSQL; both store as boolean.
                ResultType::Number if backend == DbBackend::Postgres => {
                    template(backend, "CAST($1 AS DOUBLE PRECISION)", vec![value])
                }
                _ => value,
            };
            select.expr(value);
        }
    }
    select
        .expr(Expr::val(now))
        .and_where(col("p", "workspace_id").eq(workspace_id));

    let target = a(values_table);
    let mut insert = Query::insert();
    insert
        .into_table(target.clone())
        .columns([
            a("workspace_id"),
            a("trait_id"),
            a("entity_id"),
            a(value_col),
            a("updated_at"),
        ])
        .select_from(select)
        .expect("column count matches");
    let mut upsert = insert.clone();
    upsert.on_conflict(
        OnConflict::columns([a("workspace_id"), a("trait_id"), a("entity_id")])
            .update_columns([a(value_col), a("updated_at")])
            .action_and_where(differs(
                col(VALUES_TABLE, value_col),
                Expr::col((a("excluded"), a(value_col))),
            ))
            .to_owned(),
    );

    let mut delete_stale = Query::delete();
    delete_stale
        .from_table(target.clone())
        .and_where(col(VALUES_TABLE, "workspace_id").eq(workspace_id))
        .and_where(col(VALUES_TABLE, "trait_id").eq(trait_id));
    match scope {
        // Driven from the pass's few gone players, never from the trait's values.
        Some(s) => delete_stale.and_where(col(VALUES_TABLE, "entity_id").in_subquery(s.gone())),
        None => {
            let mut exists = Query::select();
            exists
                .expr(Expr::val(1))
                .from_as(a(&plan.parent_table), a("p"))
                .and_where(col("p", "workspace_id").eq(workspace_id))
                .and_where(col("p", &plan.parent_key).equals((target.clone(), a("entity_id"))));
            delete_stale.and_where(Expr::exists(exists).not())
        }
    };
    Compiled {
        insert,
        upsert,
        delete_stale,
    }
}

#[cfg(test)]
#[path = "compiler_tests.rs"]
mod tests;
