//! Trait definitions: types, configuration, and validation against the
//! workspace's catalog into a [`Plan`] the compiler turns into SQL.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    sandbox::{self, Flavor, Node},
    value_refs::{filter_plan, value_ref},
};
use crate::{
    Error, Result,
    catalog::{DataType, ModelKind},
    text_enum::text_enum,
};

pub use entity::states::TraitType;

pub use entity::states::ResultType;

pub use entity::states::TraitStatus;

text_enum! {
    pub enum Aggregation {
        Count => "count",
        Sum => "sum",
        Avg => "avg",
        Min => "min",
        Max => "max",
        CountDistinct => "count_distinct",
        MostFrequent => "most_frequent",
        LeastFrequent => "least_frequent",
        Median => "median",
        Percentile => "percentile",
    }
}

text_enum! {
    pub enum Occurrence {
        First => "first",
        Last => "last",
        Exists => "exists",
    }
}

text_enum! {
    pub enum FilterOp {
        Eq => "=",
        NotEq => "!=",
        Lt => "<",
        LtEq => "<=",
        Gt => ">",
        GtEq => ">=",
        In => "in",
        NotIn => "not_in",
        IsNull => "is_null",
        IsNotNull => "is_not_null",
    }
}

pub const DEFAULT_LIST_LIMIT: u32 = 100;
pub const MAX_LIST_LIMIT: u32 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceConfig {
    source_model_id: Uuid,
    relationship_id: Uuid,
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    aggregation: Option<String>,
    #[serde(default)]
    occurrence: Option<String>,
    #[serde(default)]
    filters: Vec<FilterConfig>,
    #[serde(default)]
    window: Option<WindowConfig>,
    #[serde(default)]
    limit: Option<u32>,
    /// The fraction of `percentile` (0 < p < 1).
    #[serde(default)]
    percentile: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilterConfig {
    pub(super) column: String,
    pub(super) op: String,
    #[serde(default)]
    pub(super) value: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowConfig {
    #[serde(default)]
    within_days: Option<u32>,
    /// `[from, to]`: from `to` days ago up to `from` days ago.
    #[serde(default)]
    between_days: Option<[u32; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlConfig {
    sql_expression: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormulaConfig {
    expression: String,
}

/// What the validator needs to know about a model.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub id: Uuid,
    pub slug: String,
    pub kind: ModelKind,
    pub table: String,
    pub primary_key: String,
    pub timestamp_column: Option<String>,
    pub columns: HashMap<String, DataType>,
}

#[derive(Clone, Debug)]
pub struct RelationshipInfo {
    pub from_model_id: Uuid,
    pub to_model_id: Uuid,
    pub from_column: String,
    pub to_column: String,
}

/// Another trait of the same parent, as seen by expressions.
#[derive(Clone, Debug)]
pub struct TraitRef {
    pub id: Uuid,
    pub slug: String,
    pub result_type: ResultType,
}

pub struct Catalog {
    pub models: HashMap<Uuid, ModelInfo>,
    pub relationships: HashMap<Uuid, RelationshipInfo>,
}

/// A source column, or one key of a key/value parameter list (`action_params.damage`).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueRef {
    pub column: String,
    pub data_type: DataType,
    pub param_key: Option<String>,
    /// What a parameter value (always text in the data) is cast to.
    pub cast: Option<DataType>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
    Bool(bool),
    Timestamp(DateTime<Utc>),
    Date(NaiveDate),
}

#[derive(Clone, Debug, PartialEq)]
pub struct FilterPlan {
    pub target: ValueRef,
    pub op: FilterOp,
    pub values: Vec<Literal>,
}

/// What a source trait computes from its source rows, each operation with
/// the value it reads: a plan that sums nothing cannot be built.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceOp {
    /// One value per entity.
    Scalar(ScalarOp),
    /// The entity's distinct non-null values, in order, at most `limit`.
    List { value: ValueRef, limit: u32 },
    /// The value occurring most (or, `least`, least) often among the
    /// entity's non-null values; ties go to the value that sorts first.
    Frequent { value: ValueRef, least: bool },
    /// The continuous percentile `fraction` of the entity's non-null values,
    /// interpolated linearly between the closest ranks (`percentile_cont`).
    Percentile { value: ValueRef, fraction: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum ScalarOp {
    /// Rows, or the non-null values of a column when one is named.
    Count(Option<ValueRef>),
    /// Distinct non-null values of a column.
    CountDistinct(ValueRef),
    Sum(ValueRef),
    Avg(ValueRef),
    /// Also `first` (of an orderable column).
    Min(ValueRef),
    /// Also `last`.
    Max(ValueRef),
    /// Whether any row matches.
    Exists,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourcePlan {
    pub source_table: String,
    /// Join: `source.source_column = parent.parent_column`.
    pub source_column: String,
    pub parent_column: String,
    pub op: SourceOp,
    pub filters: Vec<FilterPlan>,
    /// (timestamp column, days)
    pub window: Option<Window>,
    /// The source's timestamp column: a trait over a source without one
    /// cannot be computed as of a past time.
    pub timestamp_column: Option<String>,
}

/// Rows whose timestamp `column` lies from `oldest_days` ago up to
/// `newest_days` ago (0: up to now).
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub column: String,
    pub newest_days: u32,
    pub oldest_days: u32,
}

#[derive(Clone, Debug)]
pub enum Computation {
    Source(SourcePlan),
    Expression { node: Node, refs: Vec<TraitRef> },
}

/// A validated trait, ready to compile.
#[derive(Clone, Debug)]
pub struct Plan {
    pub parent_table: String,
    pub parent_key: String,
    pub result_type: ResultType,
    pub computation: Computation,
}

impl Plan {
    /// Trait ids this trait reads (for the dependency graph).
    pub fn dependencies(&self) -> Vec<Uuid> {
        match &self.computation {
            Computation::Expression { refs, .. } => refs.iter().map(|r| r.id).collect(),
            Computation::Source(_) => Vec::new(),
        }
    }

    /// Whether the plan can be computed as of a past time, given that its
    /// references can: its source rows carry a timestamp, and an expression
    /// reads no column of the parent (whose values are today's).
    pub fn computable_as_of(&self) -> bool {
        match &self.computation {
            Computation::Source(sp) => sp.timestamp_column.is_some(),
            Computation::Expression { node, .. } => !node.reads_columns(),
        }
    }
}

pub(super) fn invalid(field: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid(field, msg)
}

/// The value a trait has for an entity with no source rows, where it is
/// known: a count or sum over no events is 0 and `exists` is false (the
/// player exists and did nothing). Every other aggregation (min, max, avg,
/// median, …) and occurrence (first, last) over nothing stays missing.
pub fn value_over_no_events(trait_type: TraitType, config: &serde_json::Value) -> Option<f64> {
    let named = |key: &str| config.get(key).and_then(|v| v.as_str());
    match trait_type {
        TraitType::Aggregation => match named("aggregation").and_then(Aggregation::parse)? {
            Aggregation::Count | Aggregation::CountDistinct | Aggregation::Sum => Some(0.0),
            _ => None,
        },
        TraitType::Occurrence => {
            (named("occurrence").and_then(Occurrence::parse)? == Occurrence::Exists).then_some(0.0)
        }
        _ => None,
    }
}

fn parse_config<T: for<'de> Deserialize<'de>>(config: &serde_json::Value) -> Result<T> {
    serde_json::from_value(config.clone()).map_err(|e| invalid("config", e))
}

/// Validates a definition against the catalog and the parent's other traits.
pub fn plan(
    catalog: &Catalog,
    parent_model_id: Uuid,
    trait_type: TraitType,
    config: &serde_json::Value,
    result_type: ResultType,
    siblings: &[TraitRef],
) -> Result<Plan> {
    let parent = catalog
        .models
        .get(&parent_model_id)
        .ok_or_else(|| invalid("parent_model_id", "no such model in this workspace"))?;
    if parent.kind != ModelKind::Entity {
        return Err(invalid(
            "parent_model_id",
            format!(
                "`{}` is an event model; traits attach to entity models",
                parent.slug
            ),
        ));
    }
    let computation = match trait_type {
        TraitType::Aggregation | TraitType::Occurrence | TraitType::List => {
            Computation::Source(source_plan(
                catalog,
                parent,
                trait_type,
                parse_config(config)?,
                result_type,
            )?)
        }
        TraitType::Sql => {
            let c: SqlConfig = parse_config(config)?;
            expression(
                &c.sql_expression,
                Flavor::Sql,
                parent,
                siblings,
                "config.sql_expression",
            )?
        }
        TraitType::Formula => {
            let c: FormulaConfig = parse_config(config)?;
            expression(
                &c.expression,
                Flavor::Formula,
                parent,
                siblings,
                "config.expression",
            )?
        }
        TraitType::Prediction => {
            return Err(invalid(
                "trait_type",
                "`prediction` traits hold a prediction's scores: create a prediction instead",
            ));
        }
    };
    if matches!(computation, Computation::Expression { .. }) && result_type == ResultType::Array {
        return Err(invalid(
            "result_type",
            "sql and formula traits compute scalars: text, number, boolean or timestamp",
        ));
    }
    Ok(Plan {
        parent_table: parent.table.clone(),
        parent_key: parent.primary_key.clone(),
        result_type,
        computation,
    })
}

struct ExprScope<'a> {
    parent: &'a ModelInfo,
    siblings: &'a [TraitRef],
    columns: bool,
}

impl sandbox::Scope for ExprScope<'_> {
    fn is_column(&self, name: &str) -> bool {
        self.columns && self.parent.columns.contains_key(name)
    }
    fn is_trait(&self, slug: &str) -> bool {
        self.siblings.iter().any(|t| t.slug == slug)
    }
}

fn expression(
    text: &str,
    flavor: Flavor,
    parent: &ModelInfo,
    siblings: &[TraitRef],
    field: &str,
) -> Result<Computation> {
    let scope = ExprScope {
        parent,
        siblings,
        columns: flavor == Flavor::Sql,
    };
    let node = sandbox::parse(text, flavor, &scope).map_err(|m| invalid(field, m))?;
    let refs = node
        .trait_refs()
        .into_iter()
        .filter_map(|slug| siblings.iter().find(|t| t.slug == slug).cloned())
        .collect();
    Ok(Computation::Expression { node, refs })
}

fn source_plan(
    catalog: &Catalog,
    parent: &ModelInfo,
    trait_type: TraitType,
    c: SourceConfig,
    result_type: ResultType,
) -> Result<SourcePlan> {
    let (source, source_column, parent_column) = join(catalog, parent, &c)?;
    let value = c
        .column
        .as_deref()
        .map(|col| value_ref(source, col, result_type, "config.column"))
        .transpose()?;
    let checks = OpChecks {
        result_type,
        value: value.as_ref(),
    };
    let op = match trait_type {
        TraitType::Aggregation => aggregation_op(&c, &checks)?,
        TraitType::Occurrence => occurrence_op(&c, &checks)?,
        TraitType::List => list_op(&c, &checks)?,
        TraitType::Sql | TraitType::Formula | TraitType::Prediction => {
            unreachable!("only source traits have a source")
        }
    };
    if c.limit.is_some() && !matches!(op, SourceOp::List { .. }) {
        return Err(invalid("config.limit", "applies to list traits only"));
    }
    let filters = c
        .filters
        .iter()
        .enumerate()
        .map(|(i, f)| filter_plan(source, f, &format!("config.filters[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let window = window_plan(source, c.window)?;
    Ok(SourcePlan {
        source_table: source.table.clone(),
        source_column,
        parent_column,
        op,
        filters,
        window,
        timestamp_column: source.timestamp_column.clone(),
    })
}

/// The source model and the columns its relationship joins on: (source,
/// source column, parent column), in either direction of the relationship.
fn join<'a>(
    catalog: &'a Catalog,
    parent: &ModelInfo,
    c: &SourceConfig,
) -> Result<(&'a ModelInfo, String, String)> {
    let source = catalog
        .models
        .get(&c.source_model_id)
        .ok_or_else(|| invalid("config.source_model_id", "no such model in this workspace"))?;
    let rel = catalog
        .relationships
        .get(&c.relationship_id)
        .ok_or_else(|| {
            invalid(
                "config.relationship_id",
                "no such relationship in this workspace",
            )
        })?;
    if rel.from_model_id == source.id && rel.to_model_id == parent.id {
        Ok((source, rel.from_column.clone(), rel.to_column.clone()))
    } else if rel.from_model_id == parent.id && rel.to_model_id == source.id {
        Ok((source, rel.to_column.clone(), rel.from_column.clone()))
    } else {
        Err(invalid(
            "config.relationship_id",
            format!("does not connect `{}` to `{}`", source.slug, parent.slug),
        ))
    }
}

/// What every source operation checks of the trait's column and result type.
struct OpChecks<'a> {
    result_type: ResultType,
    value: Option<&'a ValueRef>,
}

impl<'a> OpChecks<'a> {
    /// The column an operation reads (`config.column` is required for it).
    fn column(&self, what: &str) -> Result<&'a ValueRef> {
        self.value
            .ok_or_else(|| invalid("config.column", format!("is required for {what}")))
    }

    /// The trait's `result_type` must be what the operation computes.
    fn computes(&self, want: ResultType, what: &str) -> Result<()> {
        if self.result_type == want {
            return Ok(());
        }
        Err(invalid(
            "result_type",
            format!(
                "{what} computes {}, not {}",
                want.as_str(),
                self.result_type.as_str()
            ),
        ))
    }

    /// The number column an operation reads, computing a number (sum, avg, median…).
    fn number(&self, what: &str) -> Result<&'a ValueRef> {
        let v = self.column(what)?;
        if v.cast.unwrap_or(v.data_type) != DataType::Number {
            return Err(invalid(
                "config.column",
                format!(
                    "`{}` is {}; {what} needs a number column",
                    v.column,
                    v.data_type.as_str()
                ),
            ));
        }
        self.computes(ResultType::Number, what)?;
        Ok(v)
    }

    /// What ordering `v` computes (min, max, first, last).
    fn orderable(v: &ValueRef, what: &str) -> Result<ResultType> {
        match v.cast.unwrap_or(v.data_type) {
            DataType::Number => Ok(ResultType::Number),
            DataType::Timestamp | DataType::Date => Ok(ResultType::Timestamp),
            DataType::Text => Ok(ResultType::Text),
            other => Err(invalid(
                "config.column",
                format!(
                    "`{}` is {}; {what} needs a number, text or time column",
                    v.column,
                    other.as_str()
                ),
            )),
        }
    }
}

/// The `name` of a text enum in `config.{field}`, required and known.
fn config_enum<T>(
    value: Option<&str>,
    field: &str,
    parse: fn(&str) -> Option<T>,
    expected: String,
) -> Result<T> {
    let name = value.ok_or_else(|| {
        invalid(
            &format!("config.{field}"),
            format!("is required ({expected})"),
        )
    })?;
    parse(name).ok_or_else(|| {
        invalid(
            &format!("config.{field}"),
            format!("unknown {field} '{name}' ({expected})"),
        )
    })
}

fn aggregation_op(c: &SourceConfig, checks: &OpChecks<'_>) -> Result<SourceOp> {
    let agg = config_enum(
        c.aggregation.as_deref(),
        "aggregation",
        Aggregation::parse,
        Aggregation::expected(),
    )?;
    Ok(SourceOp::Scalar(match agg {
        Aggregation::Count => {
            checks.computes(ResultType::Number, "count")?;
            ScalarOp::Count(checks.value.cloned())
        }
        Aggregation::CountDistinct => {
            let v = checks.column(agg.as_str())?;
            checks.computes(ResultType::Number, agg.as_str())?;
            ScalarOp::CountDistinct(v.clone())
        }
        Aggregation::Median | Aggregation::Percentile => {
            let v = checks.number(agg.as_str())?;
            let fraction = match agg {
                Aggregation::Median => 0.5,
                _ => c
                    .percentile
                    .filter(|p| *p > 0.0 && *p < 1.0)
                    .ok_or_else(|| {
                        invalid(
                            "config.percentile",
                            "is required for percentile: a fraction between 0 and 1 (exclusive)",
                        )
                    })?,
            };
            return Ok(SourceOp::Percentile {
                value: v.clone(),
                fraction,
            });
        }
        Aggregation::MostFrequent | Aggregation::LeastFrequent => {
            let v = checks.column(agg.as_str())?;
            checks.computes(OpChecks::orderable(v, agg.as_str())?, agg.as_str())?;
            return Ok(SourceOp::Frequent {
                value: v.clone(),
                least: agg == Aggregation::LeastFrequent,
            });
        }
        Aggregation::Sum | Aggregation::Avg => {
            let v = checks.number(agg.as_str())?;
            if agg == Aggregation::Sum {
                ScalarOp::Sum(v.clone())
            } else {
                ScalarOp::Avg(v.clone())
            }
        }
        Aggregation::Min | Aggregation::Max => {
            let v = checks.column(agg.as_str())?;
            checks.computes(OpChecks::orderable(v, agg.as_str())?, agg.as_str())?;
            if agg == Aggregation::Min {
                ScalarOp::Min(v.clone())
            } else {
                ScalarOp::Max(v.clone())
            }
        }
    }))
}

fn occurrence_op(c: &SourceConfig, checks: &OpChecks<'_>) -> Result<SourceOp> {
    let occ = config_enum(
        c.occurrence.as_deref(),
        "occurrence",
        Occurrence::parse,
        Occurrence::expected(),
    )?;
    Ok(SourceOp::Scalar(match occ {
        Occurrence::Exists => {
            checks.computes(ResultType::Boolean, "exists")?;
            ScalarOp::Exists
        }
        Occurrence::First | Occurrence::Last => {
            let v = checks.column(occ.as_str())?;
            checks.computes(OpChecks::orderable(v, occ.as_str())?, occ.as_str())?;
            if occ == Occurrence::First {
                ScalarOp::Min(v.clone())
            } else {
                ScalarOp::Max(v.clone())
            }
        }
    }))
}

fn list_op(c: &SourceConfig, checks: &OpChecks<'_>) -> Result<SourceOp> {
    let value = checks.column("list")?.clone();
    checks.computes(ResultType::Array, "list")?;
    let limit = c.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(invalid(
            "config.limit",
            format!("must be between 1 and {MAX_LIST_LIMIT}"),
        ));
    }
    Ok(SourceOp::List { value, limit })
}

/// `window` on the source's timestamp column: `within_days: N` (the last N
/// days) or `between_days: [from, to]` (from `to` days ago up to `from` days ago).
fn window_plan(source: &ModelInfo, window: Option<WindowConfig>) -> Result<Option<Window>> {
    let Some(w) = window else {
        return Ok(None);
    };
    let column = source.timestamp_column.clone().ok_or_else(|| {
        invalid(
            "config.window",
            format!("`{}` has no timestamp column to window on", source.slug),
        )
    })?;
    let days = |d: u32, field: &str| {
        if d > 36_500 {
            Err(invalid(field, "must be at most 36500 days"))
        } else {
            Ok(d)
        }
    };
    let (newest_days, oldest_days) = match (w.within_days, w.between_days) {
        (Some(n), None) if n > 0 => (0, days(n, "config.window.within_days")?),
        (Some(_), None) => {
            return Err(invalid(
                "config.window.within_days",
                "must be between 1 and 36500",
            ));
        }
        (None, Some([from, to])) if from < to => (
            days(from, "config.window.between_days")?,
            days(to, "config.window.between_days")?,
        ),
        (None, Some(_)) => {
            return Err(invalid(
                "config.window.between_days",
                "must be [from, to] days ago with from < to, e.g. [30, 90]",
            ));
        }
        _ => {
            return Err(invalid(
                "config.window",
                "needs exactly one of within_days or between_days",
            ));
        }
    };
    Ok(Some(Window {
        column,
        newest_days,
        oldest_days,
    }))
}
