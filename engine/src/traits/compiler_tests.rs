//! Tests of the trait compiler: generated SQL pinned by snapshots (in `snapshots/`, named for `traits::compiler::tests`).

use chrono::TimeZone;
use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

use super::*;
use crate::traits::definition::{FilterPlan, TraitRef, Window};

fn fixed() -> (Uuid, Uuid, DateTime<Utc>) {
    (
        Uuid::parse_str("00000000-0000-0000-0000-0000000000aa").unwrap(),
        Uuid::parse_str("00000000-0000-0000-0000-0000000000bb").unwrap(),
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    )
}

fn sql(plan: &Plan) -> String {
    let (ws, t, now) = fixed();
    let mut out = String::new();
    for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
        let c = compile(plan, backend, ws, t, now);
        let text = match backend {
            DbBackend::Postgres => c.upsert.to_string(PostgresQueryBuilder),
            _ => c.upsert.to_string(SqliteQueryBuilder),
        };
        out.push_str(&format!("-- {backend:?}\n{text}\n"));
    }
    out
}

fn source(op: SourceOp, filters: Vec<FilterPlan>, window: Option<(String, u32)>) -> Plan {
    let window = window.map(|(column, days)| Window {
        column,
        newest_days: 0,
        oldest_days: days,
    });
    Plan {
        parent_table: "players".into(),
        parent_key: "user_id".into(),
        result_type: match op {
            SourceOp::Scalar(ScalarOp::Exists) => ResultType::Boolean,
            SourceOp::List { .. } => ResultType::Array,
            SourceOp::Frequent { .. } => ResultType::Text,
            _ => ResultType::Number,
        },
        computation: Computation::Source(SourcePlan {
            source_table: "actions".into(),
            source_column: "user_id".into(),
            parent_column: "user_id".into(),
            op,
            filters,
            window,
            timestamp_column: Some("timestamp".into()),
        }),
    }
}

#[test]
fn aggregation_with_a_parameter_path_filter_and_window() {
    let damage = ValueRef {
        column: "action_params".into(),
        data_type: DataType::Json,
        param_key: Some("damage".into()),
        cast: Some(DataType::Number),
    };
    let name = ValueRef {
        column: "action_name".into(),
        data_type: DataType::Text,
        param_key: None,
        cast: None,
    };
    let plan = source(
        SourceOp::Scalar(ScalarOp::Sum(damage)),
        vec![FilterPlan {
            target: name,
            op: FilterOp::Eq,
            values: vec![Literal::Text("fight_won".into())],
        }],
        Some(("timestamp".into(), 30)),
    );
    insta::assert_snapshot!(sql(&plan));
}

#[test]
fn list_of_distinct_values_capped() {
    let name = ValueRef {
        column: "action_name".into(),
        data_type: DataType::Text,
        param_key: None,
        cast: None,
    };
    insta::assert_snapshot!(sql(&source(
        SourceOp::List {
            value: name,
            limit: 5
        },
        vec![],
        None
    )));
}

fn action_name() -> ValueRef {
    ValueRef {
        column: "action_name".into(),
        data_type: DataType::Text,
        param_key: None,
        cast: None,
    }
}

#[test]
fn count_of_distinct_values() {
    insta::assert_snapshot!(sql(&source(
        SourceOp::Scalar(ScalarOp::CountDistinct(action_name())),
        vec![],
        None
    )));
}

#[test]
fn most_frequent_value_ties_to_the_first() {
    insta::assert_snapshot!(sql(&source(
        SourceOp::Frequent {
            value: action_name(),
            least: false
        },
        vec![],
        Some(("timestamp".into(), 7))
    )));
}

#[test]
fn percentile_interpolates_between_ranks() {
    let damage = ValueRef {
        column: "action_params".into(),
        data_type: DataType::Json,
        param_key: Some("damage".into()),
        cast: Some(DataType::Number),
    };
    insta::assert_snapshot!(sql(&source(
        SourceOp::Percentile {
            value: damage,
            fraction: 0.9
        },
        vec![],
        None
    )));
}

#[test]
fn relative_window_between_days() {
    let mut plan = source(SourceOp::Scalar(ScalarOp::Count(None)), vec![], None);
    if let Computation::Source(sp) = &mut plan.computation {
        sp.window = Some(Window {
            column: "timestamp".into(),
            newest_days: 30,
            oldest_days: 90,
        });
    }
    insta::assert_snapshot!(sql(&plan));
}

#[test]
fn formula_over_other_traits() {
    let refs = vec![
        TraitRef {
            id: Uuid::from_u128(1),
            slug: "total_revenue".into(),
            result_type: ResultType::Number,
        },
        TraitRef {
            id: Uuid::from_u128(2),
            slug: "total_purchases".into(),
            result_type: ResultType::Number,
        },
    ];
    let scope = |slug: &str| refs.iter().any(|r| r.slug == slug);
    struct S<'a>(&'a dyn Fn(&str) -> bool);
    impl crate::traits::sandbox::Scope for S<'_> {
        fn is_column(&self, _: &str) -> bool {
            false
        }
        fn is_trait(&self, slug: &str) -> bool {
            (self.0)(slug)
        }
    }
    let node = crate::traits::sandbox::parse(
        "ROUND({total_revenue} / NULLIF({total_purchases}, 0), 2)",
        crate::traits::sandbox::Flavor::Formula,
        &S(&scope),
    )
    .unwrap();
    let plan = Plan {
        parent_table: "players".into(),
        parent_key: "user_id".into(),
        result_type: ResultType::Number,
        computation: Computation::Expression { node, refs },
    };
    insta::assert_snapshot!(sql(&plan));
}

/// An incremental pass: the shared scan reads the scope's rows only (and
/// counts them), the values are written for the scope's player rows, and
/// stale values are looked for among its gone players only.
#[test]
fn scoped_to_the_players_a_pass_took() {
    let (ws, t, now) = fixed();
    let plan = source(SourceOp::Scalar(ScalarOp::Count(None)), vec![], None);
    let Computation::Source(sp) = &plan.computation else {
        unreachable!()
    };
    let scope = crate::traits::scope::Scope::new("x");
    let mut out = String::new();
    for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
        let scan = shared_aggregate(backend, ws, &[sp], now, Some(scope_source_keys(sp, &scope)));
        let shared = Aggregate::Shared {
            table: "tf_scan_0_x",
            index: 0,
        };
        let c = compile_scoped(&plan, backend, ws, t, now, &scope, shared);
        let inline = compile_scoped(&plan, backend, ws, t, now, &scope, Aggregate::Inline);
        let (scan, upsert, inline, delete) = match backend {
            DbBackend::Postgres => (
                scan.to_string(PostgresQueryBuilder),
                c.upsert.to_string(PostgresQueryBuilder),
                inline.upsert.to_string(PostgresQueryBuilder),
                c.delete_stale.to_string(PostgresQueryBuilder),
            ),
            _ => (
                scan.to_string(SqliteQueryBuilder),
                c.upsert.to_string(SqliteQueryBuilder),
                inline.upsert.to_string(SqliteQueryBuilder),
                c.delete_stale.to_string(SqliteQueryBuilder),
            ),
        };
        out.push_str(&format!(
            "-- {backend:?}\n{scan}\n{upsert}\n{inline}\n{delete}\n"
        ));
    }
    insta::assert_snapshot!(out);
}
