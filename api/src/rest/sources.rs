//! Data sources over REST (`/api/v1/workspaces/{id}/sources…`), beside the
//! traits API and with its addressing rules. Credentials are write-only.

use super::enums::{RunStatus, SourceKind, SourceStatus};
use super::text::{Text, text};
use engine::{Engine, entity::data_sources, ingest::sources::SourceInput};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use serde_json::Value;

use super::{
    WorkspaceScope, path_uuid,
    traits::{Deleted, iso},
};
use crate::errors::RestError;

pub struct SourcesApi;

/// A bucket or folder source; its credentials are never returned.
#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct SourceObject {
    id: String,
    workspace_id: String,
    name: String,
    /// `local`, `s3`, `gcs` or `azure`.
    kind: SourceKind,
    config: Value,
    has_credentials: bool,
    scan_interval_minutes: i32,
    enabled: bool,
    reload_overwritten: bool,
    /// `new` until the first scan, then `ok` or `error`.
    status: SourceStatus,
    last_error: Option<String>,
    last_scan_at: Option<String>,
    created_at: String,
}

impl From<data_sources::Model> for SourceObject {
    fn from(s: data_sources::Model) -> Self {
        SourceObject {
            id: s.id.to_string(),
            workspace_id: s.workspace_id.to_string(),
            name: s.name,
            kind: s.kind.into(),
            config: s.config,
            has_credentials: s.credentials.is_some(),
            scan_interval_minutes: s.scan_interval_minutes,
            enabled: s.enabled,
            reload_overwritten: s.reload_overwritten,
            status: s.status.into(),
            last_error: s.last_error,
            last_scan_at: s.last_scan_at.map(iso),
            created_at: iso(s.created_at),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct SourceBody {
    name: Option<Text>,
    kind: Option<Text>,
    /// local: `{"path", "prefix"}`; s3: `{"bucket", "region", "endpoint", "prefix"}`;
    /// gcs: `{"bucket", "prefix"}`; azure: `{"account", "container", "endpoint", "prefix"}`.
    config: Option<Value>,
    /// Write-only. s3: `{"access_key_id", "secret_access_key"}`; gcs:
    /// `{"service_account"}`; azure: `{"sas_token"}` or `{"access_key"}`.
    credentials: Option<Value>,
    scan_interval_minutes: Option<i32>,
    enabled: Option<bool>,
    /// Load a file again when it reappears changed, replacing its rows.
    reload_overwritten: Option<bool>,
}

impl From<SourceBody> for SourceInput {
    fn from(b: SourceBody) -> Self {
        SourceInput {
            name: text(b.name),
            kind: text(b.kind),
            config: b.config,
            credentials: b.credentials,
            scan_interval_minutes: b.scan_interval_minutes,
            enabled: b.enabled,
            reload_overwritten: b.reload_overwritten,
        }
    }
}

/// A queued scan; poll it with GraphQL `ingestionRun(id)`.
#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct ScanObject {
    id: String,
    source_id: String,
    status: RunStatus,
}

#[derive(ApiResponse)]
pub enum CreatedSource {
    #[oai(status = 201)]
    Created(Json<SourceObject>),
}

#[derive(ApiResponse)]
pub enum QueuedScan {
    #[oai(status = 202)]
    Accepted(Json<ScanObject>),
}

#[OpenApi(tag = "super::traits::ApiTags::Ingestion")]
impl SourcesApi {
    /// List the workspace's data sources.
    #[oai(path = "/api/v1/workspaces/:id/sources", method = "get")]
    async fn list(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
    ) -> Result<Json<Vec<SourceObject>>, RestError> {
        let p = scope.0;
        let list = engine.list_sources(&p).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Create a data source (its folder or bucket settings are checked first).
    #[oai(path = "/api/v1/workspaces/:id/sources", method = "post")]
    async fn create(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        body: Json<SourceBody>,
    ) -> Result<CreatedSource, RestError> {
        let p = scope.0;
        let source = engine.create_source(&p, body.0.into()).await?;
        Ok(CreatedSource::Created(Json(source.into())))
    }

    /// Change a data source: only the fields sent (credentials are replaced whole).
    #[oai(path = "/api/v1/workspaces/:id/sources/:source_id", method = "put")]
    async fn update(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        source_id: Path<String>,
        body: Json<SourceBody>,
    ) -> Result<Json<SourceObject>, RestError> {
        let p = scope.0;
        let source = engine
            .update_source(&p, path_uuid(&source_id, "data source")?, body.0.into())
            .await?;
        Ok(Json(source.into()))
    }

    /// Get a data source.
    #[oai(path = "/api/v1/workspaces/:id/sources/:source_id", method = "get")]
    async fn get(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        source_id: Path<String>,
    ) -> Result<Json<SourceObject>, RestError> {
        let p = scope.0;
        let source = engine
            .source(&p, path_uuid(&source_id, "data source")?)
            .await?;
        Ok(Json(source.into()))
    }

    /// Delete a data source and its file ledger (loaded rows stay).
    #[oai(path = "/api/v1/workspaces/:id/sources/:source_id", method = "delete")]
    async fn delete(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        source_id: Path<String>,
    ) -> Result<Json<Deleted>, RestError> {
        let p = scope.0;
        engine
            .delete_source(&p, path_uuid(&source_id, "data source")?)
            .await?;
        Ok(Json(Deleted::status_deleted()))
    }

    /// Queue a scan of the source now.
    #[oai(
        path = "/api/v1/workspaces/:id/sources/:source_id/scan",
        method = "post"
    )]
    async fn scan(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        source_id: Path<String>,
    ) -> Result<QueuedScan, RestError> {
        let p = scope.0;
        let run = engine
            .scan_source(&p, path_uuid(&source_id, "data source")?)
            .await?;
        Ok(QueuedScan::Accepted(Json(ScanObject {
            id: run.id.to_string(),
            source_id: run.source_id.to_string(),
            status: run.status.into(),
        })))
    }
}
