//! Predictive traits: who will churn, buy, do something, or spend how much
//! over the next N days, learned from the workspace's own history.
//!
//! Training takes a cutoff `T = now − N days`, computes every feature as of
//! `T` ([`dataset`]) and the outcome from `(T, T + N]`, holds out 20% of the
//! players by a stable hash of their id, fits ([`model`]) on the rest and
//! measures on the holdout ([`quality`]). Scoring computes the same features
//! as of now and writes each scored player's probability (or predicted
//! spend), percentile and risk band as the values of the prediction's three
//! traits, in one transaction, so readers switch from the old scores to the
//! new at once.

pub mod dataset;
pub mod logistic;
pub mod model;
pub mod quality;
mod scores;
pub mod spec;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;

use entity::{predictions, traits};

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    jobs::{JobHandler, JobKind, outbox::enqueue_in},
    slug::slugify,
    traits::definition::{ResultType, TraitStatus, TraitType},
};

pub use entity::states::{PredictionGoal, PredictiveStatus};
use spec::Target;

/// Share of players (by a stable hash of their id) held out of training.
pub const HOLDOUT_PERCENT: u64 = 20;
/// Players needed on each side of the outcome in the training set.
pub const MIN_CLASS_PLAYERS: u64 = 100;
/// A scored prediction is rescored (without retraining) when its scores are this old.
pub const RESCORE_AFTER_HOURS: i64 = 24;

/// Fields of a create or a partial update; `None` means "not sent".
#[derive(Clone, Debug, Default)]
pub struct PredictionInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub goal: Option<String>,
    pub window_days: Option<i64>,
    pub config: Option<Value>,
    /// Cron expression of the retraining, or `manual`.
    pub retrain: Option<String>,
}

/// Whether a player is in the holdout: FNV-1a (64 bit) of the user id, mod 100.
pub fn in_holdout(user_id: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 100 < HOLDOUT_PERCENT
}

/// The three traits a prediction writes, by what they hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Output {
    Score,
    Percentile,
    Risk,
}

impl Output {
    pub const ALL: [Output; 3] = [Output::Score, Output::Percentile, Output::Risk];

    fn suffix(self) -> &'static str {
        match self {
            Output::Score => "",
            Output::Percentile => "_percentile",
            Output::Risk => "_risk",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Output::Score => "score",
            Output::Percentile => "percentile",
            Output::Risk => "risk",
        }
    }

    fn result_type(self) -> ResultType {
        match self {
            Output::Risk => ResultType::Text,
            _ => ResultType::Number,
        }
    }

    pub fn trait_id(self, p: &predictions::Model) -> Uuid {
        match self {
            Output::Score => p.score_trait_id,
            Output::Percentile => p.percentile_trait_id,
            Output::Risk => p.risk_trait_id,
        }
    }
}

fn parse_retrain(text: &str) -> Result<String> {
    let text = text.trim();
    if text != crate::traits::service::REFRESH_MANUAL {
        crate::traits::service::parse_cron(
            text,
            "retrain",
            "must be `manual` or a cron expression like `0 4 * * Mon`",
        )?;
    }
    Ok(text.to_owned())
}

impl Engine {
    pub async fn list_predictions(&self, p: &Principal) -> Result<Vec<predictions::Model>> {
        p.require(Permission::Read)?;
        Ok(predictions::Entity::find()
            .filter(predictions::Column::WorkspaceId.eq(p.workspace_id))
            .order_by_asc(predictions::Column::Slug)
            .all(&self.db)
            .await?)
    }

    pub async fn get_prediction(&self, p: &Principal, id: Uuid) -> Result<predictions::Model> {
        p.require(Permission::Read)?;
        find(&self.db, p.workspace_id, id).await
    }

    /// Checks the goal against the workspace's models and data (422 naming
    /// the field; 409 when the history is too short or an outcome side has
    /// too few players), then stores it with its three traits and queues the
    /// first training, in one transaction.
    pub async fn create_prediction(
        &self,
        p: &Principal,
        input: PredictionInput,
    ) -> Result<predictions::Model> {
        p.require(Permission::Write)?;
        let name = crate::limits::sluggable_name(
            input
                .name
                .as_deref()
                .ok_or_else(|| Error::invalid("name", "is required"))?,
            "name",
        )?;
        let goal = spec::parse_goal(
            input
                .goal
                .as_deref()
                .ok_or_else(|| Error::invalid("goal", "is required"))?,
        )?;
        let window = spec::window_days(
            input
                .window_days
                .ok_or_else(|| Error::invalid("window_days", "is required"))?,
        )?;
        let retrain = parse_retrain(input.retrain.as_deref().unwrap_or(spec::DEFAULT_RETRAIN))?;
        let description =
            crate::limits::description(input.description.unwrap_or_default(), "description")?;
        let target = self
            .target(p.workspace_id, goal, window, input.config.as_ref())
            .await?;
        self.check_trainable(p.workspace_id, &target).await?;
        let players = self.players_model_id(p.workspace_id).await?;
        let now = Utc::now();
        let slug = slugify(&name);
        let row = predictions::Model {
            id: Uuid::now_v7(),
            workspace_id: p.workspace_id,
            name,
            slug,
            description,
            goal,
            window_days: window as i32,
            config: serde_json::to_value(&target.config).map_err(Error::internal)?,
            retrain,
            status: PredictiveStatus::Training,
            status_error: String::new(),
            score_trait_id: Uuid::now_v7(),
            percentile_trait_id: Uuid::now_v7(),
            risk_trait_id: Uuid::now_v7(),
            model: None,
            quality: None,
            score_cuts: None,
            cutoff: None,
            trained_at: None,
            scored_at: None,
            scored_players: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let (created, job) = crate::db::write_tx(&self.db, |tx| {
            let row = row.clone();
            Box::pin(async move {
                let clash = predictions::Entity::find()
                    .filter(predictions::Column::WorkspaceId.eq(row.workspace_id))
                    .filter(predictions::Column::Slug.eq(&row.slug))
                    .one(tx)
                    .await?;
                if clash.is_some() {
                    return Err(Error::Conflict(format!(
                        "a prediction with slug `{}` already exists",
                        row.slug
                    )));
                }
                for output in Output::ALL {
                    let t = output_trait(&row, players, output, now);
                    crate::traits::service::ensure_unique_slug(tx, &t).await?;
                    traits::ActiveModel::from(t).insert(tx).await?;
                }
                let created = predictions::ActiveModel::from(row).insert(tx).await?;
                let job = enqueue_in(
                    tx,
                    Some(created.workspace_id),
                    &TrainPredictive {
                        prediction_id: created.id,
                    },
                )
                .await?;
                Ok((created, job))
            })
        })
        .await?;
        self.dispatch(&job).await;
        Ok(created)
    }

    /// Changes name, description, goal, window, config or schedule; a change
    /// of what is predicted is checked as on create and retrains.
    pub async fn update_prediction(
        &self,
        p: &Principal,
        id: Uuid,
        input: PredictionInput,
    ) -> Result<predictions::Model> {
        p.require(Permission::Write)?;
        let before = find(&self.db, p.workspace_id, id).await?;
        let mut after = before.clone();
        if let Some(name) = &input.name {
            // The slug stays: the traits' slugs and segments refer to it.
            after.name = crate::limits::sluggable_name(name, "name")?;
        }
        if let Some(d) = input.description {
            after.description = crate::limits::description(d, "description")?;
        }
        if let Some(r) = &input.retrain {
            after.retrain = parse_retrain(r)?;
        }
        let retrains =
            input.goal.is_some() || input.window_days.is_some() || input.config.is_some();
        if retrains {
            after.goal = match &input.goal {
                Some(g) => spec::parse_goal(g)?,
                None => before.goal,
            };
            let window = match input.window_days {
                Some(w) => spec::window_days(w)?,
                None => before.window_days as u32,
            };
            after.window_days = window as i32;
            // A new goal starts from its own defaults unless a config is sent.
            let config = match (&input.config, input.goal.is_some()) {
                (Some(c), _) => Some(c.clone()),
                (None, true) => None,
                (None, false) => Some(before.config.clone()),
            };
            let target = self
                .target(p.workspace_id, after.goal, window, config.as_ref())
                .await?;
            self.check_trainable(p.workspace_id, &target).await?;
            after.config = serde_json::to_value(&target.config).map_err(Error::internal)?;
            after.status = PredictiveStatus::Training;
            after.status_error = String::new();
        }
        after.version += 1;
        after.updated_at = Utc::now();
        let (updated, job) = crate::db::write_tx(&self.db, |tx| {
            let after = after.clone();
            let version = before.version;
            Box::pin(async move {
                // Two updates of one prediction apply one after the other.
                let moved = predictions::Entity::update_many()
                    .col_expr(predictions::Column::Version, Expr::value(after.version))
                    .filter(predictions::Column::Id.eq(after.id))
                    .filter(predictions::Column::Version.eq(version))
                    .exec(tx)
                    .await?;
                if moved.rows_affected == 0 {
                    return Err(Error::Conflict(
                        "the prediction changed meanwhile: read it again".into(),
                    ));
                }
                let updated = predictions::ActiveModel::from(after.clone())
                    .reset_all()
                    .update(tx)
                    .await?;
                for output in Output::ALL {
                    traits::Entity::update_many()
                        .col_expr(
                            traits::Column::Name,
                            Expr::value(output_name(&updated.name, output)),
                        )
                        .filter(traits::Column::Id.eq(output.trait_id(&updated)))
                        .exec(tx)
                        .await?;
                }
                let job = match retrains {
                    true => Some(
                        enqueue_in(
                            tx,
                            Some(updated.workspace_id),
                            &TrainPredictive {
                                prediction_id: updated.id,
                            },
                        )
                        .await?,
                    ),
                    false => None,
                };
                Ok((updated, job))
            })
        })
        .await?;
        if let Some(job) = job {
            self.dispatch(&job).await;
        }
        Ok(updated)
    }

    /// Removes the prediction, its traits and their values; refused (409)
    /// while a segment or trait reads one of its traits.
    pub async fn delete_prediction(&self, p: &Principal, id: Uuid) -> Result<()> {
        p.require(Permission::Write)?;
        let row = find(&self.db, p.workspace_id, id).await?;
        let outputs: Vec<traits::Model> = traits::Entity::find()
            .filter(traits::Column::Id.is_in(Output::ALL.map(|o| o.trait_id(&row))))
            .all(&self.db)
            .await?;
        for t in &outputs {
            self.ensure_unused(t).await?;
        }
        crate::db::write_tx(&self.db, |tx| {
            let outputs = outputs.clone();
            Box::pin(async move {
                for t in &outputs {
                    crate::traits::service::delete_trait_in(tx, t).await?;
                }
                predictions::Entity::delete_by_id(id).exec(tx).await?;
                Ok(())
            })
        })
        .await
    }

    /// Queues a training (and scoring) now.
    pub async fn retrain_prediction(&self, p: &Principal, id: Uuid) -> Result<predictions::Model> {
        p.require(Permission::Write)?;
        let row = find(&self.db, p.workspace_id, id).await?;
        let job = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                predictions::Entity::update_many()
                    .col_expr(
                        predictions::Column::Status,
                        Expr::value(PredictiveStatus::Training),
                    )
                    .filter(predictions::Column::Id.eq(id))
                    .exec(tx)
                    .await?;
                crate::jobs::outbox::enqueue_once_in(
                    tx,
                    row.workspace_id,
                    &TrainPredictive { prediction_id: id },
                )
                .await
            })
        })
        .await?;
        self.dispatch(&job).await;
        find(&self.db, p.workspace_id, id).await
    }

    /// The prediction's data as of `at`, with outcomes over `(at, at +
    /// window]`: what a training at cutoff `at` learns from, for a studio
    /// (or a test) to check against its own computation.
    pub async fn prediction_dataset(
        &self,
        p: &Principal,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(Vec<dataset::FeatureSpec>, dataset::Dataset)> {
        p.require(Permission::Read)?;
        let row = find(&self.db, p.workspace_id, id).await?;
        let target = self.stored_target(&row).await?;
        let features = self.predictive_features(row.workspace_id).await?;
        let data = self
            .dataset(row.workspace_id, &features, &target, at, true)
            .await?;
        Ok((features.specs, data))
    }

    /// A stored prediction's goal, checked again against today's models.
    async fn stored_target(&self, row: &predictions::Model) -> Result<Target> {
        let window = row.window_days as u32;
        self.target(row.workspace_id, row.goal, window, Some(&row.config))
            .await
    }

    async fn target(
        &self,
        ws: Uuid,
        goal: PredictionGoal,
        window: u32,
        config: Option<&Value>,
    ) -> Result<Target> {
        let catalog = self.load_catalog(&self.db, ws).await?;
        let players_id = self.players_model_id(ws).await?;
        let players = catalog
            .models
            .get(&players_id)
            .ok_or_else(|| Error::internal("the players model is missing"))?;
        spec::target(&catalog, players, goal, window, spec::parse_config(config)?)
    }

    /// 409 when the history is shorter than twice the window.
    async fn check_history(&self, ws: Uuid, target: &Target, now: DateTime<Utc>) -> Result<()> {
        let needed = Duration::days(2 * i64::from(target.window_days));
        let start = self.history_start(ws).await?;
        let have = start.map(|s| now - s).unwrap_or_default();
        if have < needed {
            return Err(Error::Conflict(format!(
                "window_days: a {}-day window needs {} days of history; the workspace has {}",
                target.window_days,
                needed.num_days(),
                match start {
                    Some(_) => format!(
                        "{} (events since {})",
                        have.num_days(),
                        start.unwrap().date_naive()
                    ),
                    None => "no events".into(),
                }
            )));
        }
        Ok(())
    }

    /// 409 unless the history and both sides of the outcome suffice, among
    /// every eligible player (the training then counts its own 80 %).
    async fn check_trainable(&self, ws: Uuid, target: &Target) -> Result<()> {
        let now = Utc::now();
        self.check_history(ws, target, now).await?;
        let cutoff = now - Duration::days(i64::from(target.window_days));
        let (players, with_outcome) = self.outcome_counts(ws, target, cutoff).await?;
        check_classes(target, players, with_outcome)
    }
}

/// 409 when a side of the outcome has fewer than [`MIN_CLASS_PLAYERS`]
/// among `players`, `with_outcome` of whom had a matching row in the window.
fn check_classes(target: &Target, players: u64, with_outcome: u64) -> Result<()> {
    // Churn is the outcome's absence.
    let positives = match target.goal {
        PredictionGoal::Churn => players - with_outcome,
        _ => with_outcome,
    };
    let negatives = players - positives;
    let (yes, no) = match target.goal {
        PredictionGoal::Churn => ("churned", "stayed"),
        PredictionGoal::Spend => ("spent", "spent nothing"),
        _ => ("had the outcome", "did not"),
    };
    if positives < MIN_CLASS_PLAYERS || negatives < MIN_CLASS_PLAYERS {
        return Err(Error::Conflict(format!(
            "goal: in the last {} days {positives} players {yes} and {negatives} {no}; \
             training needs at least {MIN_CLASS_PLAYERS} on each side",
            target.window_days
        )));
    }
    Ok(())
}

async fn find(db: &impl ConnectionTrait, ws: Uuid, id: Uuid) -> Result<predictions::Model> {
    predictions::Entity::find_by_id(id)
        .filter(predictions::Column::WorkspaceId.eq(ws))
        .one(db)
        .await?
        .ok_or(Error::NotFound { what: "prediction" })
}

fn output_name(name: &str, output: Output) -> String {
    match output {
        Output::Score => name.to_owned(),
        Output::Percentile => format!("{name} (percentile)"),
        Output::Risk => format!("{name} (risk)"),
    }
}

fn output_trait(
    p: &predictions::Model,
    players: Uuid,
    output: Output,
    now: DateTime<Utc>,
) -> traits::Model {
    traits::Model {
        id: output.trait_id(p),
        workspace_id: p.workspace_id,
        parent_model_id: players,
        name: output_name(&p.name, output),
        slug: format!("{}{}", p.slug, output.suffix()),
        description: format!("Written by prediction `{}`.", p.slug),
        trait_type: TraitType::Prediction,
        config: json!({ "prediction_id": p.id, "output": output.key() }),
        result_type: output.result_type(),
        status: TraitStatus::Active,
        status_error: String::new(),
        refresh: crate::traits::service::REFRESH_MANUAL.into(),
        version: 1,
        created_by: None,
        created_at: now,
        updated_at: now,
        last_computed_at: None,
        stale_since: None,
    }
}

/// Trains a prediction as of `now − window`, measures it, and scores everyone.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct TrainPredictive {
    pub prediction_id: Uuid,
}

/// Scores everyone with the trained model (the daily rescoring).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ScorePredictive {
    pub prediction_id: Uuid,
}

async fn fail(
    tx: &sea_orm::DatabaseTransaction,
    id: Uuid,
    status: PredictiveStatus,
    reason: &str,
) -> Result<()> {
    predictions::Entity::update_many()
        .col_expr(predictions::Column::Status, Expr::value(status))
        .col_expr(predictions::Column::StatusError, Expr::value(reason))
        .filter(predictions::Column::Id.eq(id))
        .exec(tx)
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl JobHandler for TrainPredictive {
    const KIND: JobKind = JobKind::TrainPredictive;
    const HEAVY: bool = true;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.execute_training(self.prediction_id).await
    }

    async fn abandon(&self, tx: &sea_orm::DatabaseTransaction, reason: &str) -> Result<()> {
        fail(tx, self.prediction_id, PredictiveStatus::Failed, reason).await
    }
}

#[async_trait::async_trait]
impl JobHandler for ScorePredictive {
    const KIND: JobKind = JobKind::ScorePredictive;
    const HEAVY: bool = true;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.execute_scoring(self.prediction_id).await
    }

    async fn abandon(&self, tx: &sea_orm::DatabaseTransaction, reason: &str) -> Result<()> {
        fail(tx, self.prediction_id, PredictiveStatus::Failed, reason).await
    }
}
