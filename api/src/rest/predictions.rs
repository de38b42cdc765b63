//! Predictive traits in the traits-API family
//! (`/api/v1/workspaces/{id}/predictions`): snake_case, RFC 3339 to the
//! second, `201` on create, `{"status":"deleted"}` on delete.

use engine::{Engine, entity::predictions, predictive::PredictionInput};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use serde_json::Value;

use super::{
    WorkspaceScope,
    enums::{PredictionGoal, PredictiveStatus},
    path_uuid,
    text::{Text, text},
    traits::{ApiTags, Deleted, iso},
};
use crate::errors::RestError;

pub struct PredictionsApi;

#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct PredictionObject {
    id: String,
    workspace_id: String,
    name: String,
    /// The score trait's slug; the percentile and risk traits add `_percentile` and `_risk`.
    slug: String,
    description: String,
    goal: PredictionGoal,
    window_days: i32,
    config: Value,
    /// Cron expression of the retraining, or `manual`.
    retrain: String,
    status: PredictiveStatus,
    status_error: String,
    score_trait_id: String,
    percentile_trait_id: String,
    risk_trait_id: String,
    /// The holdout's quality report (null before the first training).
    quality: Option<Value>,
    cutoff: Option<String>,
    trained_at: Option<String>,
    scored_at: Option<String>,
    scored_players: i64,
    created_at: String,
    updated_at: String,
}

impl From<predictions::Model> for PredictionObject {
    fn from(p: predictions::Model) -> Self {
        PredictionObject {
            id: p.id.to_string(),
            workspace_id: p.workspace_id.to_string(),
            name: p.name,
            slug: p.slug,
            description: p.description,
            goal: p.goal.into(),
            window_days: p.window_days,
            config: p.config,
            retrain: p.retrain,
            status: p.status.into(),
            status_error: p.status_error,
            score_trait_id: p.score_trait_id.to_string(),
            percentile_trait_id: p.percentile_trait_id.to_string(),
            risk_trait_id: p.risk_trait_id.to_string(),
            quality: p.quality,
            cutoff: p.cutoff.map(iso),
            trained_at: p.trained_at.map(iso),
            scored_at: p.scored_at.map(iso),
            scored_players: p.scored_players,
            created_at: iso(p.created_at),
            updated_at: iso(p.updated_at),
        }
    }
}

/// Create: name, goal and window_days. Update: only the fields sent change.
#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct PredictionBody {
    name: Option<Text>,
    description: Option<Text>,
    /// `churn`, `purchase`, `custom` or `spend`.
    goal: Option<Text>,
    /// 7 to 120.
    window_days: Option<i64>,
    config: Option<Value>,
    retrain: Option<Text>,
}

impl From<PredictionBody> for PredictionInput {
    fn from(b: PredictionBody) -> Self {
        PredictionInput {
            name: text(b.name),
            description: text(b.description),
            goal: text(b.goal),
            window_days: b.window_days,
            config: b.config,
            retrain: text(b.retrain),
        }
    }
}

#[derive(ApiResponse)]
pub enum CreatedPrediction {
    #[oai(status = 201)]
    Created(Json<PredictionObject>),
}

#[derive(ApiResponse)]
pub enum AcceptedPrediction {
    #[oai(status = 202)]
    Accepted(Json<PredictionObject>),
}

fn prediction_id(id: &Path<String>) -> Result<uuid::Uuid, RestError> {
    path_uuid(id, "prediction")
}

#[OpenApi(tag = "ApiTags::Traits")]
impl PredictionsApi {
    /// The workspace's predictive traits, by slug.
    #[oai(path = "/api/v1/workspaces/:id/predictions", method = "get")]
    async fn list(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
    ) -> Result<Json<Vec<PredictionObject>>, RestError> {
        let list = engine.list_predictions(&scope.0).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Create a prediction (checked against the data: 422 naming the field,
    /// 409 for too short a history or too few players on a side); its
    /// training is queued.
    #[oai(path = "/api/v1/workspaces/:id/predictions", method = "post")]
    async fn create(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        body: Json<PredictionBody>,
    ) -> Result<CreatedPrediction, RestError> {
        let p = engine.create_prediction(&scope.0, body.0.into()).await?;
        Ok(CreatedPrediction::Created(Json(p.into())))
    }

    /// Get a prediction with its quality report.
    #[oai(
        path = "/api/v1/workspaces/:id/predictions/:prediction_id",
        method = "get"
    )]
    async fn get(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        prediction_id: Path<String>,
    ) -> Result<Json<PredictionObject>, RestError> {
        let p = engine
            .get_prediction(&scope.0, self::prediction_id(&prediction_id)?)
            .await?;
        Ok(Json(p.into()))
    }

    /// Update a prediction: only the fields sent change; a new goal, window
    /// or config retrains it.
    #[oai(
        path = "/api/v1/workspaces/:id/predictions/:prediction_id",
        method = "patch"
    )]
    async fn update(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        prediction_id: Path<String>,
        body: Json<PredictionBody>,
    ) -> Result<Json<PredictionObject>, RestError> {
        let p = engine
            .update_prediction(
                &scope.0,
                self::prediction_id(&prediction_id)?,
                body.0.into(),
            )
            .await?;
        Ok(Json(p.into()))
    }

    /// Delete a prediction and its traits (409 while a segment or trait reads them).
    #[oai(
        path = "/api/v1/workspaces/:id/predictions/:prediction_id",
        method = "delete"
    )]
    async fn delete(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        prediction_id: Path<String>,
    ) -> Result<Json<Deleted>, RestError> {
        engine
            .delete_prediction(&scope.0, self::prediction_id(&prediction_id)?)
            .await?;
        Ok(Json(Deleted::status_deleted()))
    }

    /// Retrain now; the prediction is answered with its training queued.
    #[oai(
        path = "/api/v1/workspaces/:id/predictions/:prediction_id/train",
        method = "post"
    )]
    async fn train(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        prediction_id: Path<String>,
    ) -> Result<AcceptedPrediction, RestError> {
        let p = engine
            .retrain_prediction(&scope.0, self::prediction_id(&prediction_id)?)
            .await?;
        Ok(AcceptedPrediction::Accepted(Json(p.into())))
    }
}
