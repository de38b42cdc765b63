//! The traits API (`/api/v1/workspaces/{id}/…`), wire-compatible with
//! `traits-api-reference.md`.

use super::enums::{ResultType, RunStatus, TraitStatus, TraitType, Trigger};
use chrono::{DateTime, SecondsFormat, Utc};
use engine::{
    Engine, Error,
    entity::{trait_passes, trait_runs, traits},
    traits::TraitInput,
};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    WorkspaceScope, path_uuid,
    text::{Text, text},
};
use crate::errors::RestError;

pub struct TraitsApi;

/// RFC 3339 to the second, as the reference's timestamps are written.
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The trait object of the reference.
#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct TraitObject {
    id: String,
    workspace_id: String,
    parent_model_id: String,
    name: String,
    slug: String,
    description: String,
    trait_type: TraitType,
    config: Value,
    result_type: ResultType,
    status: TraitStatus,
    status_error: String,
    /// `manual`, `on_load` or a cron expression (beyond the reference).
    refresh: String,
    created_by: Option<String>,
    created_at: String,
    updated_at: String,
    last_computed_at: Option<String>,
}

impl From<traits::Model> for TraitObject {
    fn from(t: traits::Model) -> Self {
        TraitObject {
            id: t.id.to_string(),
            workspace_id: t.workspace_id.to_string(),
            parent_model_id: t.parent_model_id.to_string(),
            name: t.name,
            slug: t.slug,
            description: t.description,
            trait_type: t.trait_type.into(),
            config: t.config,
            result_type: t.result_type.into(),
            status: t.status.into(),
            status_error: t.status_error,
            refresh: t.refresh,
            created_by: t.created_by.map(|u| u.to_string()),
            created_at: iso(t.created_at),
            updated_at: iso(t.updated_at),
            last_computed_at: t.last_computed_at.map(iso),
        }
    }
}

/// A trait run: `queued` → `running` → `succeeded` | `failed`.
#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct TraitRunObject {
    id: String,
    workspace_id: String,
    trait_id: String,
    status: RunStatus,
    trigger: Trigger,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    duration_ms: Option<i64>,
    rows_computed: Option<i64>,
    rows_changed: Option<i64>,
    error: Option<String>,
}

impl From<trait_runs::Model> for TraitRunObject {
    fn from(r: trait_runs::Model) -> Self {
        TraitRunObject {
            id: r.id.to_string(),
            workspace_id: r.workspace_id.to_string(),
            trait_id: r.trait_id.to_string(),
            status: r.status.into(),
            trigger: r.trigger.into(),
            created_at: iso(r.queued_at),
            started_at: r.started_at.map(iso),
            finished_at: r.finished_at.map(iso),
            duration_ms: r.duration_ms,
            rows_computed: r.rows_computed,
            rows_changed: r.rows_changed,
            error: r.error,
        }
    }
}

/// One incremental pass over a trait: the players new data touched,
/// recomputed (see the README's "Incremental evaluation").
#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct TraitPassObject {
    id: String,
    trait_id: String,
    /// Players the pass recomputed.
    entities: i64,
    /// Source rows it read (theirs only).
    rows_read: i64,
    /// Values written or removed.
    rows_changed: i64,
    duration_ms: i64,
    finished_at: String,
}

impl From<trait_passes::Model> for TraitPassObject {
    fn from(p: trait_passes::Model) -> Self {
        TraitPassObject {
            id: p.id.to_string(),
            trait_id: p.trait_id.to_string(),
            entities: p.entities,
            rows_read: p.rows_read,
            rows_changed: p.rows_changed,
            duration_ms: p.duration_ms,
            finished_at: iso(p.finished_at),
        }
    }
}

/// Create: all of name, parent_model_id, trait_type, config, result_type.
/// Update: only the fields sent change.
#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct TraitBody {
    name: Option<Text>,
    description: Option<Text>,
    parent_model_id: Option<Text>,
    trait_type: Option<Text>,
    config: Option<Value>,
    result_type: Option<Text>,
    /// `draft` or `active` (default).
    status: Option<Text>,
    refresh: Option<Text>,
}

impl TraitBody {
    fn into_input(self) -> Result<TraitInput, Error> {
        let parent_model_id = self
            .parent_model_id
            .map(|Text(s)| {
                Uuid::parse_str(&s)
                    .map_err(|_| Error::invalid("parent_model_id", format!("'{s}' is not a UUID")))
            })
            .transpose()?;
        Ok(TraitInput {
            name: text(self.name),
            description: text(self.description),
            parent_model_id,
            trait_type: text(self.trait_type),
            config: self.config,
            result_type: text(self.result_type),
            status: text(self.status),
            refresh: text(self.refresh),
        })
    }
}

/// The one answer of a deletion.
#[derive(poem_openapi::Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
pub enum DeletedStatus {
    Deleted,
}

#[derive(Object)]
pub struct Deleted {
    status: DeletedStatus,
}

impl Deleted {
    pub fn status_deleted() -> Self {
        Deleted {
            status: DeletedStatus::Deleted,
        }
    }
}

#[derive(ApiResponse)]
pub enum CreatedTrait {
    #[oai(status = 201)]
    Created(Json<TraitObject>),
}

#[derive(ApiResponse)]
pub enum CreatedRun {
    #[oai(status = 201)]
    Created(Json<TraitRunObject>),
}

#[OpenApi(tag = "ApiTags::Traits")]
impl TraitsApi {
    /// List all traits in the workspace.
    #[oai(path = "/api/v1/workspaces/:id/traits", method = "get")]
    async fn list(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
    ) -> Result<Json<Vec<TraitObject>>, RestError> {
        let p = scope.0;
        let list = engine.list_traits(&p, None).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Create a trait.
    #[oai(path = "/api/v1/workspaces/:id/traits", method = "post")]
    async fn create(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        body: Json<TraitBody>,
    ) -> Result<CreatedTrait, RestError> {
        let p = scope.0;
        let input = body.0.into_input()?;
        let t = engine.create_trait(&p, input).await?;
        Ok(CreatedTrait::Created(Json(t.into())))
    }

    /// Get a trait.
    #[oai(path = "/api/v1/workspaces/:id/traits/:trait_id", method = "get")]
    async fn get(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        trait_id: Path<String>,
    ) -> Result<Json<TraitObject>, RestError> {
        let p = scope.0;
        let t = engine.get_trait(&p, path_uuid(&trait_id, "trait")?).await?;
        Ok(Json(t.into()))
    }

    /// Update a trait: only the fields sent change.
    #[oai(path = "/api/v1/workspaces/:id/traits/:trait_id", method = "put")]
    async fn update(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        trait_id: Path<String>,
        body: Json<TraitBody>,
    ) -> Result<Json<TraitObject>, RestError> {
        let p = scope.0;
        let input = body.0.into_input()?;
        let t = engine
            .update_trait(&p, path_uuid(&trait_id, "trait")?, input)
            .await?;
        Ok(Json(t.into()))
    }

    /// Delete a trait (refused with 409 while other traits or segments use it).
    #[oai(path = "/api/v1/workspaces/:id/traits/:trait_id", method = "delete")]
    async fn delete(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        trait_id: Path<String>,
    ) -> Result<Json<Deleted>, RestError> {
        let p = scope.0;
        engine
            .delete_trait(&p, path_uuid(&trait_id, "trait")?)
            .await?;
        Ok(Json(Deleted::status_deleted()))
    }

    /// List traits attached to one parent model.
    #[oai(
        path = "/api/v1/workspaces/:id/models/:model_id/traits",
        method = "get"
    )]
    async fn list_by_model(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        model_id: Path<String>,
    ) -> Result<Json<Vec<TraitObject>>, RestError> {
        let p = scope.0;
        let list = engine
            .list_traits(&p, Some(path_uuid(&model_id, "model")?))
            .await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Trigger an evaluation; returns the queued run.
    #[oai(
        path = "/api/v1/workspaces/:id/traits/:trait_id/trigger",
        method = "post"
    )]
    async fn trigger(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        trait_id: Path<String>,
    ) -> Result<CreatedRun, RestError> {
        let p = scope.0;
        let run = engine
            .trigger_trait(&p, path_uuid(&trait_id, "trait")?)
            .await?;
        Ok(CreatedRun::Created(Json(run.into())))
    }

    /// The trait's evaluation history, newest first: the newest `limit`
    /// runs (default 50, at most 500).
    #[oai(path = "/api/v1/workspaces/:id/traits/:trait_id/runs", method = "get")]
    async fn runs(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        trait_id: Path<String>,
        limit: Query<Option<u64>>,
    ) -> Result<Json<Vec<TraitRunObject>>, RestError> {
        let p = scope.0;
        let runs = engine
            .newest_trait_runs(&p, path_uuid(&trait_id, "trait")?, limit.0)
            .await?;
        Ok(Json(runs.into_iter().map(Into::into).collect()))
    }

    /// The trait's incremental passes, newest first: the newest `limit`
    /// (default 50, at most 500). Full runs are under `/runs`.
    #[oai(
        path = "/api/v1/workspaces/:id/traits/:trait_id/passes",
        method = "get"
    )]
    async fn passes(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        trait_id: Path<String>,
        limit: Query<Option<u64>>,
    ) -> Result<Json<Vec<TraitPassObject>>, RestError> {
        let p = scope.0;
        let passes = engine
            .newest_trait_passes(&p, path_uuid(&trait_id, "trait")?, limit.0)
            .await?;
        Ok(Json(passes.into_iter().map(Into::into).collect()))
    }
}

#[derive(poem_openapi::Tags)]
pub enum ApiTags {
    /// Traits: computed per-entity properties.
    Traits,
    /// Behavioural data sent over HTTP.
    Ingestion,
    /// The player API: survey registration and status, erasure, personas.
    Players,
    /// Segments: filter trees over traits and psych facets.
    Segments,
}
