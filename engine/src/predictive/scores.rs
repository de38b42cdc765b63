//! Training and scoring runs of a prediction, the atomic switch of its
//! scores, and its schedule (retrain on its cron, rescore daily).

use chrono::{DateTime, Duration, Utc};
use ndarray::Axis;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    sea_query::Expr,
};
use uuid::Uuid;

use entity::{predictions, trait_values, traits};

use super::{
    Output, PredictiveStatus, ScorePredictive, TrainPredictive, check_classes,
    dataset::Snapshot,
    fail, in_holdout,
    model::{self, Trained},
    quality::{self, Report},
};
use crate::{
    Engine, Error, Result, db::Binds, jobs::outbox::enqueue_once_in, traits::scope::Scope,
};

/// Risk bands by percentile: `high` from this percentile up …
pub const HIGH_FROM_PERCENTILE: f64 = 80.0;
/// … `medium` from this one, `low` below.
pub const MEDIUM_FROM_PERCENTILE: f64 = 50.0;
/// Players written per statement.
const WRITE_CHUNK: usize = 20_000;

pub fn risk_band(percentile: f64) -> &'static str {
    if percentile >= HIGH_FROM_PERCENTILE {
        "high"
    } else if percentile >= MEDIUM_FROM_PERCENTILE {
        "medium"
    } else {
        "low"
    }
}

/// Cut points kept of a full scoring's distribution: one per 0.1 %.
const CUTS: usize = 1_001;

/// Per score, the share of scores strictly below it, in percent (one
/// decimal), and the distribution's [`CUTS`] cut points.
pub fn percentiles(scores: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = scores.len().max(1) as f64;
    let percentiles = scores
        .iter()
        .map(|s| {
            let below = sorted.partition_point(|v| v < s) as f64;
            (1000.0 * below / n).round() / 10.0
        })
        .collect();
    let cuts = if sorted.is_empty() {
        Vec::new()
    } else {
        (0..CUTS)
            .map(|k| sorted[k * (sorted.len() - 1) / (CUTS - 1)])
            .collect()
    };
    (percentiles, cuts)
}

/// A score's percentile among the last full scoring's, from its cut points
/// (to within 0.1 point).
pub fn percentile_among(cuts: &[f64], score: f64) -> f64 {
    let below = cuts.partition_point(|v| *v < score) as f64;
    (1000.0 * below / cuts.len().max(1) as f64).round() / 10.0
}

impl Engine {
    pub async fn execute_training(&self, id: Uuid) -> Result<()> {
        let Some(row) = predictions::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(());
        };
        match self.train(&row).await {
            Err(e) if !e.is_transient() => {
                let status = match e {
                    Error::Conflict(_) | Error::InvalidInput { .. } => {
                        PredictiveStatus::Insufficient
                    }
                    _ => PredictiveStatus::Failed,
                };
                let reason = e.cause();
                crate::db::write_tx(&self.db, |tx| {
                    Box::pin(async move { fail(tx, id, status, &reason).await })
                })
                .await?;
                // The data, not the job, is what failed.
                if status == PredictiveStatus::Insufficient {
                    return Ok(());
                }
                Err(e)
            }
            outcome => outcome,
        }
    }

    async fn train(&self, row: &predictions::Model) -> Result<()> {
        let now = Utc::now();
        let clock = std::time::Instant::now();
        let target = self.stored_target(row).await?;
        self.check_history(row.workspace_id, &target, now).await?;
        let cutoff = now - Duration::days(i64::from(target.window_days));
        let features = self.predictive_features(row.workspace_id).await?;
        let data = self
            .dataset(row.workspace_id, &features, &target, cutoff, true)
            .await?;
        let features_ms = clock.elapsed().as_millis();
        let y = data.y.as_deref().unwrap_or_default();
        let (holdout, training): (Vec<usize>, Vec<usize>) =
            (0..data.users.len()).partition(|&i| in_holdout(&data.users[i]));
        let y_train: Vec<f64> = training.iter().map(|&i| y[i]).collect();
        // Training labels are 1 for the outcome the prediction names (churned, bought, spent).
        let labelled = y_train.iter().filter(|v| **v > 0.0).count() as u64;
        let with_outcome = match target.goal {
            super::PredictionGoal::Churn => y_train.len() as u64 - labelled,
            _ => labelled,
        };
        check_classes(&target, y_train.len() as u64, with_outcome)?;
        let x_train = data.x.select(Axis(0), &training);
        let trained = model::train(
            &features.specs,
            &x_train.view(),
            &y_train,
            target.is_regression(),
        );
        let x_holdout = data.x.select(Axis(0), &holdout);
        let y_holdout: Vec<f64> = holdout.iter().map(|&i| y[i]).collect();
        let positives = y_train.iter().filter(|v| **v > 0.0).count() as u64;
        let mut report = Report {
            training_players: training.len() as u64,
            positives,
            negatives: training.len() as u64 - positives,
            base_rate: y_train.iter().filter(|v| **v > 0.0).count() as f64
                / training.len().max(1) as f64,
            top_features: trained.top_features(10),
            penalty: trained.penalty,
            ..Report::default()
        };
        quality::measure(
            &mut report,
            target.is_regression(),
            &trained.score(&x_holdout.view()),
            &y_holdout,
        );
        tracing::info!(
            prediction = %row.slug,
            players = data.users.len(),
            features = features.specs.len(),
            features_ms,
            fit_ms = clock.elapsed().as_millis() - features_ms,
            "prediction trained"
        );
        let model = serde_json::to_value(&trained).map_err(Error::internal)?;
        let quality = serde_json::to_value(&report).map_err(Error::internal)?;
        self.score(row, &trained, Some((cutoff, model, quality)))
            .await
    }

    pub async fn execute_scoring(&self, id: Uuid) -> Result<()> {
        let Some(row) = predictions::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(());
        };
        let Some(stored) = &row.model else {
            // Never trained: a training scores too.
            return Ok(());
        };
        let trained: Trained = serde_json::from_value(stored.clone()).map_err(Error::internal)?;
        self.score(&row, &trained, None).await
    }

    /// Scores the population as of now and switches the prediction's traits
    /// to the new scores (and, after a training, its model) in one transaction.
    async fn score(
        &self,
        row: &predictions::Model,
        trained: &Trained,
        training: Option<(DateTime<Utc>, serde_json::Value, serde_json::Value)>,
    ) -> Result<()> {
        let now = Utc::now();
        let clock = std::time::Instant::now();
        let target = self.stored_target(row).await?;
        // The features the model knows, computed as of now.
        let mut features = self.predictive_features(row.workspace_id).await?;
        features.specs = trained.specs();
        let data = self
            .dataset(row.workspace_id, &features, &target, now, false)
            .await?;
        let features_ms = clock.elapsed().as_millis();
        let scores = trained.score(&data.x.view());
        let (percentiles, cuts) = percentiles(&scores);
        let cuts = serde_json::to_value(cuts).map_err(Error::internal)?;
        let (id, version) = (row.id, row.version);
        let rows: Vec<(String, f64, f64)> = data
            .users
            .into_iter()
            .zip(scores)
            .zip(percentiles)
            .map(|((u, s), p)| (u, s, p))
            .collect();
        let scored = rows.len() as i64;
        let written = crate::db::write_tx(&self.db, |tx| {
            let rows = rows.clone();
            let training = training.clone();
            let cuts = cuts.clone();
            Box::pin(async move {
                let Some(current) = predictions::Entity::find_by_id(id).one(tx).await? else {
                    return Ok(None);
                };
                if current.version != version {
                    // Changed while this ran: its own training follows.
                    return Ok(None);
                }
                clear_scores(tx, &current, None).await?;
                insert_scores(tx, &current, &rows, now).await?;
                let mut update = predictions::Entity::update_many()
                    .col_expr(
                        predictions::Column::Status,
                        Expr::value(PredictiveStatus::Ready),
                    )
                    .col_expr(predictions::Column::StatusError, Expr::value(""))
                    .col_expr(predictions::Column::ScoredAt, Expr::value(now))
                    .col_expr(predictions::Column::ScoredPlayers, Expr::value(scored))
                    .col_expr(predictions::Column::ScoreCuts, Expr::value(cuts));
                if let Some((cutoff, model, quality)) = training {
                    update = update
                        .col_expr(predictions::Column::Cutoff, Expr::value(cutoff))
                        .col_expr(predictions::Column::TrainedAt, Expr::value(now))
                        .col_expr(predictions::Column::Model, Expr::value(model))
                        .col_expr(predictions::Column::Quality, Expr::value(quality));
                }
                update
                    .filter(predictions::Column::Id.eq(id))
                    .exec(tx)
                    .await?;
                traits::Entity::update_many()
                    .col_expr(traits::Column::LastComputedAt, Expr::value(now))
                    .filter(traits::Column::Id.is_in(Output::ALL.map(|o| o.trait_id(&current))))
                    .exec(tx)
                    .await?;
                Ok(Some(current))
            })
        })
        .await?;
        tracing::info!(
            prediction = %row.slug,
            players = scored,
            features_ms,
            score_and_write_ms = clock.elapsed().as_millis() - features_ms,
            "prediction scored"
        );
        if let Some(current) = written {
            crate::db::analyze_after_bulk_write(&self.db, "trait_values", 3 * scored as u64).await;
            // Segments and traits reading the scores follow them.
            let outputs = traits::Entity::find()
                .filter(traits::Column::Id.is_in(Output::ALL.map(|o| o.trait_id(&current))))
                .all(&self.db)
                .await?;
            for t in &outputs {
                if let Err(e) = self.trait_values_changed(t).await {
                    tracing::warn!(trait_id = %t.id, error = %e, "could not queue updates after scoring");
                }
            }
            if !outputs.is_empty() {
                self.start_chain(&outputs).await?;
            }
        }
        Ok(())
    }

    /// Rescores the players of an incremental pass with each ready model, in
    /// the pass's transaction: their features as of now, their scores, and
    /// percentiles placed among the last full scoring's ([`percentile_among`]).
    /// Players the pass took who are no longer scored (inactive, erased) lose
    /// their scores.
    pub(crate) async fn rescore_predictions_in(
        &self,
        tx: &DatabaseTransaction,
        ws: Uuid,
        scope: &Scope,
    ) -> Result<()> {
        let ready = predictions::Entity::find()
            .filter(predictions::Column::WorkspaceId.eq(ws))
            .filter(predictions::Column::Status.eq(PredictiveStatus::Ready))
            .all(tx)
            .await?;
        if ready.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        // The workspace's computable traits, planned once per pass for every prediction.
        let mut features = self.predictive_features(ws).await?;
        for row in ready {
            let (Some(model), Some(cuts)) = (&row.model, &row.score_cuts) else {
                continue;
            };
            let trained: Trained =
                serde_json::from_value(model.clone()).map_err(Error::internal)?;
            let cuts: Vec<f64> = serde_json::from_value(cuts.clone()).map_err(Error::internal)?;
            let target = self.stored_target(&row).await?;
            features.specs = trained.specs();
            let snapshot = Snapshot {
                at: now,
                labels: false,
                scope: Some(scope),
            };
            let data = self
                .dataset_in(tx, ws, &features, &target, snapshot)
                .await?;
            let rows: Vec<(String, f64, f64)> = data
                .users
                .into_iter()
                .zip(trained.score(&data.x.view()))
                .map(|(u, s)| {
                    let p = percentile_among(&cuts, s);
                    (u, s, p)
                })
                .collect();
            clear_scores(tx, &row, Some(scope)).await?;
            insert_scores(tx, &row, &rows, now).await?;
        }
        Ok(())
    }

    /// Every minute: queue the trainings whose `retrain` schedule fired in
    /// `(since, now]`, and a rescoring of predictions scored more than
    /// [`super::RESCORE_AFTER_HOURS`] ago.
    pub async fn queue_scheduled_predictions(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let mut queued = 0;
        for row in predictions::Entity::find().all(&self.db).await? {
            let fired = crate::traits::service::parse_cron(&row.retrain, "retrain", "")
                .ok()
                .and_then(|s| s.after(&since).next())
                .is_some_and(|fire| fire <= now);
            let stale = row
                .scored_at
                .is_some_and(|at| at < now - Duration::hours(super::RESCORE_AFTER_HOURS));
            let job = if fired {
                enqueue_once_in(
                    &self.db,
                    row.workspace_id,
                    &TrainPredictive {
                        prediction_id: row.id,
                    },
                )
                .await?
            } else if stale && row.status == PredictiveStatus::Ready {
                enqueue_once_in(
                    &self.db,
                    row.workspace_id,
                    &ScorePredictive {
                        prediction_id: row.id,
                    },
                )
                .await?
            } else {
                continue;
            };
            self.dispatch(&job).await;
            queued += 1;
        }
        Ok(queued)
    }
}

/// Removes the values of the prediction's three traits (of a pass's players only, with a scope).
async fn clear_scores(
    tx: &DatabaseTransaction,
    p: &predictions::Model,
    scope: Option<&Scope>,
) -> Result<()> {
    let mut delete = trait_values::Entity::delete_many()
        .filter(trait_values::Column::WorkspaceId.eq(p.workspace_id))
        .filter(trait_values::Column::TraitId.is_in(Output::ALL.map(|o| o.trait_id(p))));
    if let Some(scope) = scope {
        delete = delete.filter(trait_values::Column::EntityId.in_subquery(scope.keys()));
    }
    delete.exec(tx).await?;
    Ok(())
}

/// Writes `rows` (user, score, percentile) as the values of the
/// prediction's three traits, on `tx`.
async fn insert_scores(
    tx: &DatabaseTransaction,
    p: &predictions::Model,
    rows: &[(String, f64, f64)],
    now: DateTime<Utc>,
) -> Result<()> {
    let backend = tx.get_database_backend();
    for chunk in rows.chunks(WRITE_CHUNK) {
        // One JSON array per chunk, unpacked by the database: a handful of
        // statements per million players instead of one bind per value.
        let json = serde_json::Value::Array(
            chunk
                .iter()
                .map(|(u, s, pct)| serde_json::json!([u, s, pct, risk_band(*pct)]))
                .collect(),
        )
        .to_string();
        for output in Output::ALL {
            let (column, element) = match output {
                Output::Score => ("value_number", 1),
                Output::Percentile => ("value_number", 2),
                Output::Risk => ("value_text", 3),
            };
            let mut b = Binds::new(backend);
            let (ws, trait_id, at, rows) = (
                b.bind(p.workspace_id),
                b.bind(output.trait_id(p)),
                b.bind(now),
                b.bind(json.clone()),
            );
            let (user, value, from) = match backend {
                DbBackend::Postgres => (
                    "r->>0".to_owned(),
                    match column {
                        "value_text" => format!("r->>{element}"),
                        _ => format!("(r->>{element})::double precision"),
                    },
                    format!("jsonb_array_elements(CAST({rows} AS jsonb)) AS r"),
                ),
                _ => (
                    "json_extract(r.value, '$[0]')".to_owned(),
                    format!("json_extract(r.value, '$[{element}]')"),
                    format!("json_each({rows}) AS r"),
                ),
            };
            let sql = format!(
                "INSERT INTO trait_values (workspace_id, trait_id, entity_id, {column}, updated_at) \
                 SELECT {ws}, {trait_id}, {user}, {value}, {at} FROM {from}"
            );
            tx.execute_raw(b.statement(sql)).await?;
        }
    }
    Ok(())
}
