//! Psych-score prediction: per facet, a ridge regression (`ridge`, its
//! penalty chosen by cross-validation) from the players model's
//! standardized numeric and boolean traits, trained on the players who
//! completed the survey, its R² measured out of fold. The models are stored
//! as weights and the database predicts every other player in one
//! `INSERT … SELECT` (`source = predicted`).
//!
//! Features know a zero from a gap: a count or sum over no events is 0 (see
//! `traits::definition::value_over_no_events`); any other missing value
//! takes the training mean, and a missing-value indicator joins the features.

pub mod ridge;

use std::collections::HashMap;

use chrono::Utc;
use ndarray::{Array1, Array2, Axis, concatenate};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use uuid::Uuid;

use crate::traits::scope::Scope;

use entity::{
    job_records, prediction_models, prediction_status, prediction_weights, psych_scores,
    trait_values, traits,
};

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    jobs::{JobHandler, JobKind},
    traits::definition::{ResultType, TraitStatus},
};

pub const DEFAULT_MIN_COMPLETES: u64 = 30;
/// Advisory lock class of a workspace's prediction models (PostgreSQL).
const PREDICTION_LOCK: i32 = 7304;

pub use entity::states::ScoreSource;

pub use entity::states::PredictionStatus;

/// A trait as a feature: what a player without a value counts as, and the
/// column of its missing-value indicator (when values are missing and not known zeros).
struct Feature {
    trait_id: Uuid,
    fill: Option<f64>,
    indicator: Option<usize>,
}

/// The trained models, ready to be written.
struct Trained {
    facets: Vec<(String, String)>,
    features: Vec<Feature>,
    /// Per column (the traits, then the indicators).
    means: Array1<f64>,
    sds: Array1<f64>,
    /// (columns × facets), for standardized columns.
    weights: Array2<f64>,
    intercepts: Array1<f64>,
    r2: Vec<f64>,
    penalty: Vec<f64>,
    train_size: usize,
}

impl Trained {
    /// What the indicator of feature `f` adds to facet `t` when the value is missing, and when not.
    fn missing(&self, f: &Feature, t: usize) -> (f64, f64) {
        match f.indicator {
            Some(c) => {
                let w = self.weights[[c, t]] / self.sds[c];
                (w * (1.0 - self.means[c]), -w * self.means[c])
            }
            None => (0.0, 0.0),
        }
    }
}

impl Engine {
    pub async fn prediction_status(
        &self,
        p: &Principal,
    ) -> Result<Option<prediction_status::Model>> {
        p.require(Permission::Read)?;
        Ok(prediction_status::Entity::find_by_id(p.workspace_id)
            .one(&self.db)
            .await?)
    }

    /// Per-facet models with their cross-validated R², by category and facet.
    pub async fn prediction_models(&self, p: &Principal) -> Result<Vec<prediction_models::Model>> {
        p.require(Permission::Read)?;
        Ok(prediction_models::Entity::find()
            .filter(prediction_models::Column::WorkspaceId.eq(p.workspace_id))
            .order_by_asc(prediction_models::Column::Category)
            .order_by_asc(prediction_models::Column::Facet)
            .all(&self.db)
            .await?)
    }

    /// Queues training and prediction now (it also runs after completions and trait runs).
    pub async fn train_prediction(&self, p: &Principal) -> Result<job_records::Model> {
        p.require(Permission::Write)?;
        self.enqueue_once(
            p.workspace_id,
            TrainPrediction {
                workspace_id: p.workspace_id,
            },
        )
        .await
    }

    /// A trait of the players model was recomputed: if it is a prediction
    /// input and anyone completed the survey, the models are trained again.
    pub(crate) async fn prediction_inputs_changed(&self, t: &traits::Model) -> Result<()> {
        let numeric = [ResultType::Number, ResultType::Boolean];
        if !numeric.contains(&t.result_type)
            || t.parent_model_id != self.players_model_id(t.workspace_id).await?
        {
            return Ok(());
        }
        if self.any_survey_complete(t.workspace_id).await? {
            self.enqueue_once(
                t.workspace_id,
                TrainPrediction {
                    workspace_id: t.workspace_id,
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Whether any player of the workspace has psych scores (survey or predicted).
    pub(crate) async fn any_psych_scores(&self, ws: Uuid) -> Result<bool> {
        Ok(psych_scores::Entity::find()
            .filter(psych_scores::Column::WorkspaceId.eq(ws))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// Whether any player of the workspace has survey scores.
    pub(crate) async fn any_survey_complete(&self, ws: Uuid) -> Result<bool> {
        Ok(psych_scores::Entity::find()
            .filter(psych_scores::Column::WorkspaceId.eq(ws))
            .filter(psych_scores::Column::Source.eq(ScoreSource::Survey))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// The body of the `TrainPrediction` job; afterwards personas follow the new scores.
    pub async fn execute_prediction(&self, ws: Uuid) -> Result<()> {
        let completes = self.survey_completes(ws).await?;
        let outcome = self.train_and_predict(ws, &completes).await;
        if let Err(e) = &outcome {
            if e.is_transient() {
                // Run again (the database went away, or the norms changed under the training).
                return outcome;
            }
            let (status, message) = match e {
                Error::Conflict(m) => (PredictionStatus::Insufficient, m.clone()),
                e => (PredictionStatus::Failed, e.cause()),
            };
            let completes = completes.len() as i64;
            let required = self.prediction_min_completes as i64;
            crate::db::write_tx(&self.db, |tx| {
                Box::pin(async move {
                    if status == PredictionStatus::Insufficient {
                        // No model stands behind the old predictions any more.
                        clear_predictions(tx, ws).await?;
                    }
                    write_status(tx, ws, status, &message, completes, required, 0).await
                })
            })
            .await?;
            if status == PredictionStatus::Failed {
                return outcome;
            }
            // Completions that reached the minimum while this training read
            // too few would otherwise wait for the debounce: train again now.
            let min = self.prediction_min_completes;
            if status == PredictionStatus::Insufficient
                && (completes as u64) < min
                && self.survey_completes(ws).await?.len() as u64 >= min
            {
                let record = crate::jobs::outbox::enqueue_once_after(
                    &self.db,
                    ws,
                    &TrainPrediction { workspace_id: ws },
                    None,
                )
                .await?;
                self.dispatch(&record).await;
            }
        }
        self.scores_changed(ws).await
    }

    async fn survey_completes(&self, ws: Uuid) -> Result<Vec<String>> {
        Ok(psych_scores::Entity::find()
            .select_only()
            .column(psych_scores::Column::UserId)
            .distinct()
            .filter(psych_scores::Column::WorkspaceId.eq(ws))
            .filter(psych_scores::Column::Source.eq(ScoreSource::Survey))
            .order_by_asc(psych_scores::Column::UserId)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    async fn train_and_predict(&self, ws: Uuid, completes: &[String]) -> Result<()> {
        let required = self.prediction_min_completes as usize;
        if completes.len() < required {
            return Err(Error::Conflict(format!(
                "{} players completed the survey; prediction needs at least {required}",
                completes.len()
            )));
        }
        let players_model = self.players_model_id(ws).await?;
        let norm_version = crate::norm_version::current_version(&self.db, ws).await?;
        let feature_traits: Vec<traits::Model> = traits::Entity::find()
            .filter(traits::Column::WorkspaceId.eq(ws))
            .filter(traits::Column::ParentModelId.eq(players_model))
            .filter(traits::Column::Status.eq(TraitStatus::Active))
            .filter(traits::Column::ResultType.is_in([ResultType::Number, ResultType::Boolean]))
            .order_by_asc(traits::Column::Slug)
            .all(&self.db)
            .await?;
        let features: Vec<Uuid> = feature_traits.iter().map(|t| t.id).collect();
        let fills: Vec<Option<f64>> = feature_traits
            .iter()
            .map(|t| crate::traits::definition::value_over_no_events(t.trait_type, &t.config))
            .collect();
        if features.is_empty() {
            return Err(Error::Conflict(
                "the players model has no active number or boolean traits to predict from".into(),
            ));
        }
        let row_of: HashMap<&str, usize> = completes
            .iter()
            .enumerate()
            .map(|(i, u)| (u.as_str(), i))
            .collect();
        let col_of: HashMap<Uuid, usize> =
            features.iter().enumerate().map(|(i, f)| (*f, i)).collect();
        let survey_players = Query::select()
            .column(psych_scores::Column::UserId)
            .from(psych_scores::Entity)
            .and_where(Expr::col(psych_scores::Column::WorkspaceId).eq(ws))
            .and_where(Expr::col(psych_scores::Column::Source).eq(ScoreSource::Survey))
            .to_owned();
        let mut x = Array2::from_elem((completes.len(), features.len()), f64::NAN);
        for (entity, trait_id, number, boolean) in trait_values::Entity::find()
            .select_only()
            .column(trait_values::Column::EntityId)
            .column(trait_values::Column::TraitId)
            .column(trait_values::Column::ValueNumber)
            .column(trait_values::Column::ValueBoolean)
            .filter(trait_values::Column::WorkspaceId.eq(ws))
            .filter(trait_values::Column::TraitId.is_in(features.clone()))
            .filter(trait_values::Column::EntityId.in_subquery(survey_players))
            .into_tuple::<(String, Uuid, Option<f64>, Option<bool>)>()
            .all(&self.db)
            .await?
        {
            let value = number.or(boolean.map(|b| if b { 1.0 } else { 0.0 }));
            if let (Some(r), Some(c), Some(v)) =
                (row_of.get(entity.as_str()), col_of.get(&trait_id), value)
            {
                x[[*r, *c]] = v;
            }
        }
        let scores: Vec<(String, String, String, f64)> = psych_scores::Entity::find()
            .select_only()
            .column(psych_scores::Column::UserId)
            .column(psych_scores::Column::Category)
            .column(psych_scores::Column::Facet)
            .column(psych_scores::Column::Score)
            .filter(psych_scores::Column::WorkspaceId.eq(ws))
            .filter(psych_scores::Column::Source.eq(ScoreSource::Survey))
            .into_tuple()
            .all(&self.db)
            .await?;
        let trained = train(completes, features, fills, x, &scores)?;
        self.write_prediction(ws, trained, completes.len() as i64, norm_version)
            .await
    }

    async fn write_prediction(
        &self,
        ws: Uuid,
        m: Trained,
        completes: i64,
        norm_version: i32,
    ) -> Result<()> {
        let required = self.prediction_min_completes as i64;
        let backend = self.db.get_database_backend();
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                crate::norm_version::lock(tx, ws, false).await?;
                // Two trainings of a workspace replace the models one after the other.
                crate::db::advisory_xact_lock(tx, PREDICTION_LOCK, ws).await?;
                if crate::norm_version::current_version(tx, ws).await? != norm_version {
                    // The scores trained on were rescored meanwhile: train again.
                    return Err(Error::Unavailable(format!(
                        "{}: the survey norms changed during training",
                        crate::error::DATABASE
                    )));
                }
                clear_predictions(tx, ws).await?;
                let now = Utc::now();
                prediction_models::Entity::insert_many(m.facets.iter().enumerate().map(
                    |(t, (category, facet))| prediction_models::ActiveModel {
                        workspace_id: Set(ws),
                        category: Set(category.clone()),
                        facet: Set(facet.clone()),
                        intercept: Set(m.intercepts[t]),
                        r2: Set(m.r2[t]),
                        penalty: Set(m.penalty[t]),
                        train_size: Set(m.train_size as i64),
                        trained_at: Set(now),
                    },
                ))
                .exec(tx)
                .await?;
                let weights: Vec<prediction_weights::ActiveModel> = m
                    .facets
                    .iter()
                    .enumerate()
                    .flat_map(|(t, (category, facet))| {
                        let m = &m;
                        m.features.iter().enumerate().map(move |(j, f)| {
                            let (missing_on, missing_off) = m.missing(f, t);
                            prediction_weights::ActiveModel {
                                workspace_id: Set(ws),
                                category: Set(category.clone()),
                                facet: Set(facet.clone()),
                                trait_id: Set(f.trait_id),
                                mean: Set(m.means[j]),
                                sd: Set(m.sds[j]),
                                weight: Set(m.weights[[j, t]]),
                                fill: Set(f.fill),
                                missing_on: Set(missing_on),
                                missing_off: Set(missing_off),
                            }
                        })
                    })
                    .collect();
                for chunk in weights.chunks(2000) {
                    prediction_weights::Entity::insert_many(chunk.to_vec()).exec(tx).await?;
                }
                let features: Vec<Uuid> = m.features.iter().map(|f| f.trait_id).collect();
                let predicted = tx
                    .execute_raw(predict_statement(
                        backend,
                        ws,
                        now,
                        norm_version,
                        "players",
                        &features,
                    ))
                    .await?
                    .rows_affected();
                let players = predicted / m.facets.len().max(1) as u64;
                write_status(
                    tx,
                    ws,
                    PredictionStatus::Trained,
                    &format!(
                        "trained on {completes} survey completes with {} traits; predicted {players} players",
                        m.features.len()
                    ),
                    completes,
                    required,
                    players as i64,
                )
                .await
            })
        })
        .await
    }
}

/// In an incremental pass: its players' predicted scores are recomputed
/// with the current models (no training: that stays a job of its own), in
/// the pass's transaction, before their personas are placed.
pub(crate) async fn rescore_in(tx: &DatabaseTransaction, ws: Uuid, scope: &Scope) -> Result<()> {
    let trained = prediction_models::Entity::find()
        .filter(prediction_models::Column::WorkspaceId.eq(ws))
        .one(tx)
        .await?
        .is_some();
    if !trained {
        return Ok(());
    }
    crate::norm_version::lock(tx, ws, false).await?;
    let norm_version = crate::norm_version::current_version(tx, ws).await?;
    psych_scores::Entity::delete_many()
        .filter(psych_scores::Column::WorkspaceId.eq(ws))
        .filter(psych_scores::Column::Source.eq(ScoreSource::Predicted))
        .filter(Expr::col(psych_scores::Column::UserId).in_subquery(scope.keys()))
        .exec(tx)
        .await?;
    let backend = tx.get_database_backend();
    let features = model_features(tx, ws).await?;
    tx.execute_raw(predict_statement(
        backend,
        ws,
        Utc::now(),
        norm_version,
        &scope.players,
        &features,
    ))
    .await?;
    Ok(())
}

/// Every player (of `players`: the table, or a pass's rows of it) without
/// survey scores (also one whose answers commit meanwhile: a survey score is
/// never overwritten, a concurrent prediction is) gets, per facet, the
/// intercept plus the weighted standardized traits; a missing trait value
/// counts as its fill (a known zero) or else its training mean, plus what its
/// missing indicator adds. Each feature is joined once per player and each
/// facet's weights once per facet, so no aggregate runs over players × facets
/// × features (at 1M players and 69 facets that sort spilled for minutes).
fn predict_statement(
    backend: sea_orm::DbBackend,
    ws: Uuid,
    now: chrono::DateTime<Utc>,
    norm_version: i32,
    players: &str,
    features: &[Uuid],
) -> Statement {
    let mut b = crate::db::Binds::new(backend);
    let terms: String = (0..features.len())
        .map(|j| {
            let x = format!(
                "COALESCE(v{j}.value_number, CASE WHEN v{j}.value_boolean THEN 1.0 WHEN NOT v{j}.value_boolean THEN 0.0 END)"
            );
            format!(
                " + w{j}.weight * (COALESCE({x}, w{j}.fill, w{j}.mean) - w{j}.mean) / w{j}.sd \
                 + CASE WHEN {x} IS NULL THEN w{j}.missing_on ELSE w{j}.missing_off END"
            )
        })
        .collect();
    let mut sql = format!(
        "INSERT INTO psych_scores (workspace_id, user_id, category, facet, score, source, computed_at, norm_version) \
         SELECT p.workspace_id, p.user_id, m.category, m.facet, m.intercept{terms}, 'predicted', {}, {} \
         FROM \"{players}\" p",
        b.bind(now),
        b.bind(norm_version),
    );
    for (j, t) in features.iter().enumerate() {
        sql.push_str(&format!(
            " LEFT JOIN trait_values v{j} ON v{j}.workspace_id = p.workspace_id AND v{j}.trait_id = {} AND v{j}.entity_id = p.user_id",
            b.bind(*t)
        ));
    }
    sql.push_str(" JOIN prediction_models m ON m.workspace_id = p.workspace_id");
    for (j, t) in features.iter().enumerate() {
        sql.push_str(&format!(
            " JOIN prediction_weights w{j} ON w{j}.workspace_id = m.workspace_id AND w{j}.category = m.category \
              AND w{j}.facet = m.facet AND w{j}.trait_id = {}",
            b.bind(*t)
        ));
    }
    sql.push_str(&format!(
        " WHERE p.workspace_id = {} \
           AND NOT EXISTS (SELECT 1 FROM psych_scores s WHERE s.workspace_id = p.workspace_id \
                           AND s.user_id = p.user_id AND s.source = 'survey') \
         ON CONFLICT (workspace_id, user_id, category, facet) DO UPDATE \
           SET score = excluded.score, computed_at = excluded.computed_at, norm_version = excluded.norm_version \
           WHERE psych_scores.source = 'predicted'",
        b.bind(ws)
    ));
    b.statement(sql)
}

/// The traits a workspace's trained models read, in a stable order.
async fn model_features(tx: &DatabaseTransaction, ws: Uuid) -> Result<Vec<Uuid>> {
    Ok(prediction_weights::Entity::find()
        .select_only()
        .column(prediction_weights::Column::TraitId)
        .distinct()
        .filter(prediction_weights::Column::WorkspaceId.eq(ws))
        .order_by_asc(prediction_weights::Column::TraitId)
        .into_tuple()
        .all(tx)
        .await?)
}

async fn clear_predictions(tx: &DatabaseTransaction, ws: Uuid) -> Result<()> {
    psych_scores::Entity::delete_many()
        .filter(psych_scores::Column::WorkspaceId.eq(ws))
        .filter(psych_scores::Column::Source.eq(ScoreSource::Predicted))
        .exec(tx)
        .await?;
    prediction_weights::Entity::delete_many()
        .filter(prediction_weights::Column::WorkspaceId.eq(ws))
        .exec(tx)
        .await?;
    prediction_models::Entity::delete_many()
        .filter(prediction_models::Column::WorkspaceId.eq(ws))
        .exec(tx)
        .await?;
    Ok(())
}

async fn write_status(
    tx: &DatabaseTransaction,
    ws: Uuid,
    status: PredictionStatus,
    message: &str,
    completes: i64,
    required: i64,
    predicted: i64,
) -> Result<()> {
    prediction_status::Entity::insert(prediction_status::ActiveModel {
        workspace_id: Set(ws),
        status: Set(status),
        message: Set(message.into()),
        completes: Set(completes),
        required: Set(required),
        predicted_players: Set(predicted),
        finished_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(prediction_status::Column::WorkspaceId)
            .update_columns([
                prediction_status::Column::Status,
                prediction_status::Column::Message,
                prediction_status::Column::Completes,
                prediction_status::Column::Required,
                prediction_status::Column::PredictedPlayers,
                prediction_status::Column::FinishedAt,
            ])
            .to_owned(),
    )
    .exec(tx)
    .await?;
    Ok(())
}

/// Fills known zeros, adds missing indicators, standardizes, and fits one
/// cross-validated ridge per facet.
fn train(
    users: &[String],
    features: Vec<Uuid>,
    fills: Vec<Option<f64>>,
    mut x: Array2<f64>,
    scores: &[(String, String, String, f64)],
) -> Result<Trained> {
    let n = users.len();
    let row_of: HashMap<&str, usize> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.as_str(), i))
        .collect();
    // Facets every complete has a score for (an instrument change can leave gaps).
    let mut per_facet: HashMap<(String, String), Vec<(usize, f64)>> = HashMap::new();
    for (user, category, facet, score) in scores {
        if let Some(r) = row_of.get(user.as_str()) {
            per_facet
                .entry((category.clone(), facet.clone()))
                .or_default()
                .push((*r, *score));
        }
    }
    let mut facets: Vec<(String, String)> = per_facet
        .iter()
        .filter(|(_, v)| v.len() == n)
        .map(|(k, _)| k.clone())
        .collect();
    facets.sort();
    let mut y = Array2::zeros((n, facets.len()));
    for (t, f) in facets.iter().enumerate() {
        for (r, score) in &per_facet[f] {
            y[[*r, t]] = *score;
        }
    }
    let mut indicators: Vec<Array1<f64>> = Vec::new();
    let traits = x.ncols();
    let mut specs = Vec::with_capacity(features.len());
    for (j, (trait_id, fill)) in features.into_iter().zip(fills).enumerate() {
        let mut column = x.column_mut(j);
        let indicator = match fill {
            Some(zero) => {
                column.mapv_inplace(|v| if v.is_nan() { zero } else { v });
                None
            }
            None if column.iter().any(|v| v.is_nan()) => {
                indicators.push(column.mapv(|v| if v.is_nan() { 1.0 } else { 0.0 }));
                Some(traits + indicators.len() - 1)
            }
            None => None,
        };
        specs.push(Feature {
            trait_id,
            fill,
            indicator,
        });
    }
    if !indicators.is_empty() {
        let views: Vec<_> = indicators
            .iter()
            .map(|c| c.view().insert_axis(Axis(1)))
            .collect();
        let mut parts = vec![x.view()];
        parts.extend(views.iter().map(|v| v.view()));
        x = concatenate(Axis(1), &parts).map_err(Error::internal)?;
    }
    // Other missing values become the mean (0); constant columns carry no signal.
    let (means, sds): (Vec<f64>, Vec<f64>) = crate::zscore::standardize(&mut x).into_iter().unzip();
    let selected = ridge::cross_validated(&x.view(), &y.view());
    Ok(Trained {
        facets,
        features: specs,
        means: Array1::from(means),
        sds: Array1::from(sds),
        weights: selected.fit.weights,
        intercepts: selected.fit.intercepts,
        r2: selected.r2,
        penalty: selected.penalty,
        train_size: n,
    })
}

/// Trains the psych-score models of a workspace and predicts every other player.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct TrainPrediction {
    pub workspace_id: Uuid,
}

#[async_trait::async_trait]
impl JobHandler for TrainPrediction {
    const KIND: JobKind = JobKind::TrainPrediction;
    const HEAVY: bool = true;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.execute_prediction(self.workspace_id).await
    }

    async fn abandon(&self, tx: &sea_orm::DatabaseTransaction, reason: &str) -> Result<()> {
        prediction_status::Entity::update_many()
            .col_expr(
                prediction_status::Column::Status,
                Expr::value(PredictionStatus::Failed),
            )
            .col_expr(prediction_status::Column::Message, Expr::value(reason))
            .col_expr(
                prediction_status::Column::FinishedAt,
                Expr::value(Utc::now()),
            )
            .filter(prediction_status::Column::WorkspaceId.eq(self.workspace_id))
            .exec(tx)
            .await?;
        Ok(())
    }
}
