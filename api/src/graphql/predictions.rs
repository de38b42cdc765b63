//! GraphQL for predictive traits: who will churn, buy or spend how much,
//! the quality report of the last training, and the traits holding the scores.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use engine::{
    entity::predictions,
    predictive::{PredictionInput, quality},
};

use super::{
    connection::parse_id,
    enums::{PredictionGoal, PredictiveStatus},
    query::scope,
    traits::Trait,
};
use crate::errors::GqlResultExt;

#[derive(Default)]
pub struct PredictionQuery;

#[derive(Default)]
pub struct PredictionMutation;

/// A predictive trait: a goal over the next `windowDays`, trained on the
/// workspace's history as of `cutoff`, scoring every player into three traits.
pub struct PredictiveTrait(predictions::Model);

#[Object]
impl PredictiveTrait {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The score trait's slug; the others add `_percentile` and `_risk`.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn goal(&self) -> PredictionGoal {
        self.0.goal.into()
    }
    async fn window_days(&self) -> i32 {
        self.0.window_days
    }
    /// The goal's options with their defaults filled in.
    async fn config(&self) -> Json<serde_json::Value> {
        Json(self.0.config.clone())
    }
    /// Cron expression of the retraining, or `manual`.
    async fn retrain(&self) -> &str {
        &self.0.retrain
    }
    async fn status(&self) -> PredictiveStatus {
        self.0.status.into()
    }
    /// Why the last training did not land (empty otherwise).
    async fn status_error(&self) -> &str {
        &self.0.status_error
    }
    /// The training's T: features as of it, outcomes from (T, T + window].
    async fn cutoff(&self) -> Option<DateTime<Utc>> {
        self.0.cutoff
    }
    async fn trained_at(&self) -> Option<DateTime<Utc>> {
        self.0.trained_at
    }
    async fn scored_at(&self) -> Option<DateTime<Utc>> {
        self.0.scored_at
    }
    async fn scored_players(&self) -> i64 {
        self.0.scored_players
    }
    /// The holdout's quality report (null before the first training).
    async fn quality(&self) -> Option<PredictionQuality> {
        let report: quality::Report = serde_json::from_value(self.0.quality.clone()?).ok()?;
        Some(report.into())
    }
    /// The probability (for spend: the predicted spend) per player.
    async fn score_trait(&self, ctx: &Context<'_>) -> Result<Trait> {
        output(ctx, self.0.score_trait_id).await
    }
    /// The percentile of the score within the workspace (0–100).
    async fn percentile_trait(&self, ctx: &Context<'_>) -> Result<Trait> {
        output(ctx, self.0.percentile_trait_id).await
    }
    /// `low`, `medium` or `high` by percentile (below 50, 50–80, from 80).
    async fn risk_trait(&self, ctx: &Context<'_>) -> Result<Trait> {
        output(ctx, self.0.risk_trait_id).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

async fn output(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Trait> {
    let (engine, p) = scope(ctx)?;
    Ok(Trait(engine.get_trait(p, id).await.gql()?))
}

/// What the model foretold for the holdout players against what happened.
#[derive(SimpleObject)]
pub struct PredictionQuality {
    pub training_players: i64,
    pub holdout_players: i64,
    /// Training players with the outcome (churned, bought; spent) and without.
    pub positives: i64,
    pub negatives: i64,
    pub holdout_positives: i64,
    /// Share of training players with the outcome.
    pub base_rate: f64,
    /// Area under the ROC curve (classification).
    pub auc: Option<f64>,
    pub log_loss: Option<f64>,
    pub brier: Option<f64>,
    /// Outcome rate of the top decile over the base rate.
    pub top_decile_lift: Option<f64>,
    /// Spend: rank correlation of predicted and actual spend.
    pub spearman: Option<f64>,
    pub r2: Option<f64>,
    /// Spend: share of the window's spend by the top decile of predictions.
    pub top_decile_capture: Option<f64>,
    /// Calibration: per decile of predictions (1 = highest), mean predicted and observed.
    pub deciles: Vec<PredictionDecile>,
    /// The features with the largest standardized weights.
    pub top_features: Vec<PredictionFeature>,
    pub penalty: f64,
    /// `poor`, `fair`, `good` or `excellent` (AUC below 0.6, 0.7, 0.8; spend: Spearman below 0.2, 0.4, 0.6).
    pub quality: String,
}

#[derive(SimpleObject)]
pub struct PredictionDecile {
    pub decile: i32,
    pub players: i64,
    pub mean_predicted: f64,
    pub observed: f64,
}

#[derive(SimpleObject)]
pub struct PredictionFeature {
    pub name: String,
    pub weight: f64,
}

impl From<quality::Report> for PredictionQuality {
    fn from(r: quality::Report) -> Self {
        PredictionQuality {
            training_players: r.training_players as i64,
            holdout_players: r.holdout_players as i64,
            positives: r.positives as i64,
            negatives: r.negatives as i64,
            holdout_positives: r.holdout_positives as i64,
            base_rate: r.base_rate,
            auc: r.auc,
            log_loss: r.log_loss,
            brier: r.brier,
            top_decile_lift: r.top_decile_lift,
            spearman: r.spearman,
            r2: r.r2,
            top_decile_capture: r.top_decile_capture,
            deciles: r
                .deciles
                .into_iter()
                .map(|d| PredictionDecile {
                    decile: d.decile as i32,
                    players: d.players as i64,
                    mean_predicted: d.mean_predicted,
                    observed: d.observed,
                })
                .collect(),
            top_features: r
                .top_features
                .into_iter()
                .map(|f| PredictionFeature {
                    name: f.name,
                    weight: f.weight,
                })
                .collect(),
            penalty: r.penalty,
            quality: r.quality,
        }
    }
}

#[derive(InputObject)]
pub struct CreatePredictionInput {
    pub name: String,
    #[graphql(default)]
    pub description: Option<String>,
    pub goal: PredictionGoal,
    /// 7 to 120 days.
    pub window_days: i32,
    /// Churn: `record_types`, `active_days`; purchase, custom: `model`,
    /// `filters`; spend: `model`, `column`, `filters`.
    pub config: Option<Json<serde_json::Value>>,
    /// Cron expression of the retraining (default weekly), or `manual`.
    pub retrain: Option<String>,
}

#[derive(InputObject)]
pub struct UpdatePredictionInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub goal: Option<PredictionGoal>,
    pub window_days: Option<i32>,
    pub config: Option<Json<serde_json::Value>>,
    pub retrain: Option<String>,
}

fn goal_text(g: PredictionGoal) -> String {
    engine::predictive::PredictionGoal::from(g).as_str().into()
}

#[Object]
impl PredictionQuery {
    /// The workspace's predictive traits, by slug.
    async fn predictions(&self, ctx: &Context<'_>) -> Result<Vec<PredictiveTrait>> {
        let (engine, p) = scope(ctx)?;
        Ok(engine
            .list_predictions(p)
            .await
            .gql()?
            .into_iter()
            .map(PredictiveTrait)
            .collect())
    }

    async fn predictive_trait(&self, ctx: &Context<'_>, id: ID) -> Result<PredictiveTrait> {
        let (engine, p) = scope(ctx)?;
        Ok(PredictiveTrait(
            engine
                .get_prediction(p, parse_id("id", &id).gql()?)
                .await
                .gql()?,
        ))
    }
}

#[Object]
impl PredictionMutation {
    /// Checks the goal against the data (422 naming the field; 409 when the
    /// history or an outcome side is too small) and queues its training.
    async fn create_prediction(
        &self,
        ctx: &Context<'_>,
        input: CreatePredictionInput,
    ) -> Result<PredictiveTrait> {
        let (engine, p) = scope(ctx)?;
        let input = PredictionInput {
            name: Some(input.name),
            description: input.description,
            goal: Some(goal_text(input.goal)),
            window_days: Some(i64::from(input.window_days)),
            config: input.config.map(|c| c.0),
            retrain: input.retrain,
        };
        Ok(PredictiveTrait(
            engine.create_prediction(p, input).await.gql()?,
        ))
    }

    /// Changes a prediction; a new goal, window or config retrains it.
    async fn update_prediction(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdatePredictionInput,
    ) -> Result<PredictiveTrait> {
        let (engine, p) = scope(ctx)?;
        let input = PredictionInput {
            name: input.name,
            description: input.description,
            goal: input.goal.map(goal_text),
            window_days: input.window_days.map(i64::from),
            config: input.config.map(|c| c.0),
            retrain: input.retrain,
        };
        Ok(PredictiveTrait(
            engine
                .update_prediction(p, parse_id("id", &id).gql()?, input)
                .await
                .gql()?,
        ))
    }

    /// Deletes a prediction and its traits; refused while a segment or trait reads them.
    async fn delete_prediction(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (engine, p) = scope(ctx)?;
        engine
            .delete_prediction(p, parse_id("id", &id).gql()?)
            .await
            .gql()?;
        Ok(true)
    }

    /// Retrains now (and scores everyone after).
    async fn retrain_prediction(&self, ctx: &Context<'_>, id: ID) -> Result<PredictiveTrait> {
        let (engine, p) = scope(ctx)?;
        Ok(PredictiveTrait(
            engine
                .retrain_prediction(p, parse_id("id", &id).gql()?)
                .await
                .gql()?,
        ))
    }
}
