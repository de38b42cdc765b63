//! What a prediction foretells, checked against the workspace's models: the
//! goal, the window, and per goal the rows that count as the outcome.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    Error, Result,
    catalog::ModelKind,
    traits::definition::{Catalog, ModelInfo, Plan, ResultType, TraitType, plan},
};

pub use entity::states::PredictionGoal;

/// Days a prediction may look ahead.
pub const WINDOW_DAYS: std::ops::RangeInclusive<i64> = 7..=120;
/// Churn: the players scored are those active in the last this many days.
pub const DEFAULT_ACTIVE_DAYS: u32 = 21;
/// Churn: what counts as still playing.
pub const DEFAULT_CHURN_RECORD_TYPES: [&str; 2] = ["logins", "actions"];
/// Retraining by default: weekly, Monday 04:00 UTC.
pub const DEFAULT_RETRAIN: &str = "0 4 * * Mon";

/// The goal's options as sent (`config`); every key is optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoalConfig {
    /// Churn: the record types whose absence is churn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_types: Option<Vec<String>>,
    /// Churn: who is scored and trained on (active in the last N days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_days: Option<u32>,
    /// Purchase, custom, spend: the model whose rows are the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Spend: the numeric column summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Purchase, custom, spend: trait-style filters on the outcome rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Value>,
}

/// A checked goal: the outcome's plans, ready to compute over a period.
pub struct Target {
    pub goal: PredictionGoal,
    pub window_days: u32,
    /// Churn only: the activity that makes a player part of the population.
    pub active_days: Option<u32>,
    /// Per source model: count (or sum, for spend) of its matching rows per player.
    pub outcomes: Vec<Plan>,
    /// The config with every default filled in, as stored.
    pub config: GoalConfig,
}

impl Target {
    /// A regression (predicted spend) rather than a probability.
    pub fn is_regression(&self) -> bool {
        self.goal == PredictionGoal::Spend
    }
}

pub fn parse_goal(text: &str) -> Result<PredictionGoal> {
    PredictionGoal::parse(text).ok_or_else(|| {
        Error::invalid(
            "goal",
            format!("'{text}' is not one of: {}", PredictionGoal::expected()),
        )
    })
}

pub fn window_days(days: i64) -> Result<u32> {
    if !WINDOW_DAYS.contains(&days) {
        return Err(Error::invalid(
            "window_days",
            format!(
                "must be from {} to {} days, not {days}",
                WINDOW_DAYS.start(),
                WINDOW_DAYS.end()
            ),
        ));
    }
    Ok(days as u32)
}

pub fn parse_config(config: Option<&Value>) -> Result<GoalConfig> {
    match config {
        None | Some(Value::Null) => Ok(GoalConfig::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| Error::invalid("config", e)),
    }
}

/// Checks the goal's options against the workspace's models and plans its outcome.
pub fn target(
    catalog: &Catalog,
    players: &ModelInfo,
    goal: PredictionGoal,
    window_days: u32,
    mut c: GoalConfig,
) -> Result<Target> {
    let only = |present: bool, key: &str, goals: &str| -> Result<()> {
        if present {
            return Err(Error::invalid(
                format!("config.{key}"),
                format!("applies to {goals} predictions only"),
            ));
        }
        Ok(())
    };
    let churn = goal == PredictionGoal::Churn;
    only(!churn && c.record_types.is_some(), "record_types", "churn")?;
    only(!churn && c.active_days.is_some(), "active_days", "churn")?;
    only(
        churn && c.model.is_some(),
        "model",
        "purchase, custom and spend",
    )?;
    only(
        churn && !c.filters.is_empty(),
        "filters",
        "purchase, custom and spend",
    )?;
    only(
        goal != PredictionGoal::Spend && c.column.is_some(),
        "column",
        "spend",
    )?;
    let mut outcomes = Vec::new();
    let mut active_days = None;
    if churn {
        let days = c.active_days.unwrap_or(DEFAULT_ACTIVE_DAYS);
        if !(1..=365).contains(&days) {
            return Err(Error::invalid(
                "config.active_days",
                "must be from 1 to 365 days",
            ));
        }
        c.active_days = Some(days);
        active_days = Some(days);
        let types = c.record_types.get_or_insert_with(|| {
            DEFAULT_CHURN_RECORD_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        if types.is_empty() {
            return Err(Error::invalid(
                "config.record_types",
                "name at least one record type",
            ));
        }
        for (i, slug) in types.iter().enumerate() {
            let field = format!("config.record_types[{i}]");
            let source = timed_model(catalog, slug, &field)?;
            outcomes.push(outcome(
                catalog,
                players,
                source,
                "count",
                None,
                &[],
                &field,
            )?);
        }
    } else {
        let slug = match (&c.model, goal) {
            (Some(m), _) => m.clone(),
            (None, PredictionGoal::Custom) => {
                return Err(Error::invalid(
                    "config.model",
                    "a custom goal names the record type or model whose rows are the outcome",
                ));
            }
            (None, _) => "purchases".to_owned(),
        };
        let source = timed_model(catalog, &slug, "config.model")?;
        c.model = Some(slug);
        let (aggregation, column) = if goal == PredictionGoal::Spend {
            let column = c.column.get_or_insert_with(|| "price".to_owned()).clone();
            ("sum", Some(column))
        } else {
            ("count", None)
        };
        outcomes.push(outcome(
            catalog,
            players,
            source,
            aggregation,
            column,
            &c.filters,
            "config.model",
        )?);
    }
    Ok(Target {
        goal,
        window_days,
        active_days,
        outcomes,
        config: c,
    })
}

/// A record type or custom model with a timestamp and a relationship to players.
fn timed_model<'a>(catalog: &'a Catalog, slug: &str, field: &str) -> Result<&'a ModelInfo> {
    let m = catalog
        .models
        .values()
        .find(|m| m.slug == slug)
        .ok_or_else(|| Error::invalid(field, format!("no record type or model `{slug}`")))?;
    if m.kind != ModelKind::Event || m.timestamp_column.is_none() {
        return Err(Error::invalid(
            field,
            format!("`{slug}` has no timestamp: outcomes are rows over time"),
        ));
    }
    Ok(m)
}

/// Count (or sum of `column`) of the source's matching rows per player, as
/// a trait plan, so filters are checked and compiled as traits' are.
pub(super) fn outcome(
    catalog: &Catalog,
    players: &ModelInfo,
    source: &ModelInfo,
    aggregation: &str,
    column: Option<String>,
    filters: &[Value],
    field: &str,
) -> Result<Plan> {
    let relationship = catalog
        .relationships
        .iter()
        .find(|(_, r)| {
            (r.from_model_id == source.id && r.to_model_id == players.id)
                || (r.from_model_id == players.id && r.to_model_id == source.id)
        })
        .map(|(id, _)| *id)
        .ok_or_else(|| {
            Error::invalid(
                field,
                format!("`{}` has no relationship to players", source.slug),
            )
        })?;
    let mut config = json!({
        "source_model_id": source.id,
        "relationship_id": relationship,
        "aggregation": aggregation,
        "filters": filters,
    });
    if let Some(column) = column {
        config["column"] = json!(column);
    }
    plan(
        catalog,
        players.id,
        TraitType::Aggregation,
        &config,
        ResultType::Number,
        &[],
    )
}
