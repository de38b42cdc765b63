//! GraphQL for data sources: definitions (credentials are write-only),
//! tests, scans, the file ledger, notifications and the quarantine.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use engine::{
    entity::{data_sources, ingestion_runs, notifications, quarantined_lines, source_files},
    ingest::sources::{SourceInput, SourceKind as EngineSourceKind},
};

use super::{
    connection::{Conn, connection, id_cursor, page_request, parse_id},
    enums::{
        DeliveryStatus, FileFormat, FileStatus, LineOrigin, NotificationKind, RunStatus,
        SourceKind, SourceStatus,
    },
    query::scope,
};
use crate::errors::GqlResultExt;

#[derive(Default)]
pub struct SourceQuery;

#[derive(Default)]
pub struct SourceMutation;

/// A folder or bucket the workspace's files are loaded from.
#[derive(Clone)]
pub struct DataSource(data_sources::Model);

#[Object]
impl DataSource {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> SourceKind {
        self.0.kind.into()
    }
    /// Kind-specific settings, without credentials.
    async fn config(&self) -> Json<serde_json::Value> {
        Json(self.0.config.clone())
    }
    /// Whether credentials are stored; they are never returned.
    async fn has_credentials(&self) -> bool {
        self.0.credentials.is_some()
    }
    async fn scan_interval_minutes(&self) -> i32 {
        self.0.scan_interval_minutes
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Whether a file that reappears changed is loaded again (its rows replaced).
    async fn reload_overwritten(&self) -> bool {
        self.0.reload_overwritten
    }
    /// `new`, then `ok` or `error` (until a scan succeeds).
    async fn status(&self) -> SourceStatus {
        self.0.status.into()
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn last_scan_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_scan_at
    }
    /// The ledger: every file seen, with its load status, in path order.
    async fn files(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<SourceFile>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let page = engine.source_files(p, self.0.id, page).await.gql()?;
        connection(page, |f| f.path.clone(), SourceFile::try_from).gql()
    }
}

#[derive(SimpleObject, Clone)]
pub struct SourceFile {
    pub id: ID,
    pub path: String,
    /// A built-in record type or a custom model's slug.
    pub record_type: String,
    pub format: FileFormat,
    pub size: i64,
    pub status: FileStatus,
    pub rows_loaded: i64,
    pub rows_rejected: i64,
    pub error: Option<String>,
    pub discovered_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<source_files::Model> for SourceFile {
    type Error = engine::Error;
    fn try_from(f: source_files::Model) -> std::result::Result<Self, engine::Error> {
        Ok(SourceFile {
            id: f.id.into(),
            path: f.path,
            record_type: f.record_type,
            format: f.format.into(),
            size: f.size,
            status: f.status.into(),
            rows_loaded: f.rows_loaded,
            rows_rejected: f.rows_rejected,
            error: f.error,
            discovered_at: f.discovered_at,
            finished_at: f.finished_at,
        })
    }
}

/// One scan of a source.
#[derive(SimpleObject, Clone)]
pub struct IngestionRun {
    pub id: ID,
    pub source_id: ID,
    pub status: RunStatus,
    pub files_found: i32,
    pub files_queued: i32,
    pub files_skipped: i32,
    /// Files in the root folders that are neither NDJSON nor CSV.
    pub skipped_paths: Json<serde_json::Value>,
    pub error: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<ingestion_runs::Model> for IngestionRun {
    type Error = engine::Error;
    fn try_from(r: ingestion_runs::Model) -> std::result::Result<Self, engine::Error> {
        Ok(IngestionRun {
            id: r.id.into(),
            source_id: r.source_id.into(),
            status: r.status.into(),
            files_found: r.files_found,
            files_queued: r.files_queued,
            files_skipped: r.files_skipped,
            skipped_paths: Json(r.skipped_paths),
            error: r.error,
            queued_at: r.queued_at,
            finished_at: r.finished_at,
        })
    }
}

#[derive(SimpleObject, Clone)]
pub struct Notification {
    pub id: ID,
    pub source_id: Option<ID>,
    pub kind: NotificationKind,
    pub path: Option<String>,
    pub message: String,
    pub created_at: DateTime<Utc>,
    /// Delivery to the workspace's webhook: null when none was set, else
    /// pending, delivered or failed (after the last of its attempts).
    pub delivery_status: Option<DeliveryStatus>,
    pub delivery_attempts: i32,
    pub delivery_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl TryFrom<notifications::Model> for Notification {
    type Error = engine::Error;
    fn try_from(n: notifications::Model) -> std::result::Result<Self, engine::Error> {
        Ok(Notification {
            id: n.id.into(),
            source_id: n.source_id.map(Into::into),
            kind: n.kind.into(),
            path: n.path,
            message: n.message,
            created_at: n.created_at,
            delivery_status: n.delivery_status.map(Into::into),
            delivery_attempts: n.delivery_attempts,
            delivery_error: n.delivery_error,
            delivered_at: n.delivered_at,
        })
    }
}

/// A line that could not be loaded.
#[derive(SimpleObject, Clone)]
pub struct QuarantinedLine {
    pub id: ID,
    pub origin: LineOrigin,
    /// A built-in record type or a custom model's slug.
    pub record_type: String,
    pub path: Option<String>,
    pub line_number: i64,
    pub byte_offset: i64,
    pub field: Option<String>,
    pub message: String,
    pub excerpt: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<quarantined_lines::Model> for QuarantinedLine {
    type Error = engine::Error;
    fn try_from(q: quarantined_lines::Model) -> std::result::Result<Self, engine::Error> {
        Ok(QuarantinedLine {
            id: q.id.into(),
            origin: q.origin.into(),
            record_type: q.record_type,
            path: q.path,
            line_number: q.line_number,
            byte_offset: q.byte_offset,
            field: q.field,
            message: q.message,
            excerpt: q.excerpt,
            created_at: q.created_at,
        })
    }
}

#[derive(SimpleObject)]
pub struct SourceCheck {
    pub ok: bool,
    pub message: String,
}

#[derive(InputObject)]
pub struct CreateDataSourceInput {
    pub name: String,
    pub kind: SourceKind,
    /// local: `{"path": "<folder below LOCAL_SOURCE_ROOT>", "prefix": "<optional>"}`;
    /// s3: `{"bucket", "region", "endpoint": "<optional, S3-compatible>", "prefix"}`;
    /// gcs: `{"bucket", "prefix"}`; azure: `{"account", "container", "endpoint": "<optional account URL>", "prefix"}`.
    pub config: Json<serde_json::Value>,
    /// Write-only. s3: `{"access_key_id", "secret_access_key"}`; gcs:
    /// `{"service_account": <service-account JSON>}`; azure: `{"sas_token"}` (or `{"access_key"}`).
    pub credentials: Option<Json<serde_json::Value>>,
    /// Default 15.
    pub scan_interval_minutes: Option<i32>,
    pub enabled: Option<bool>,
    /// Load a file again when it reappears changed, replacing its rows (default false).
    pub reload_overwritten: Option<bool>,
}

impl From<CreateDataSourceInput> for SourceInput {
    fn from(i: CreateDataSourceInput) -> Self {
        SourceInput {
            name: Some(i.name),
            kind: Some(EngineSourceKind::from(i.kind).as_str().to_owned()),
            config: Some(i.config.0),
            credentials: i.credentials.map(|c| c.0),
            scan_interval_minutes: i.scan_interval_minutes,
            enabled: i.enabled,
            reload_overwritten: i.reload_overwritten,
        }
    }
}

/// Only the fields given change; credentials sent replace the stored ones whole.
#[derive(InputObject)]
pub struct UpdateDataSourceInput {
    pub name: Option<String>,
    pub config: Option<Json<serde_json::Value>>,
    /// Write-only.
    pub credentials: Option<Json<serde_json::Value>>,
    pub scan_interval_minutes: Option<i32>,
    pub enabled: Option<bool>,
    pub reload_overwritten: Option<bool>,
}

impl From<UpdateDataSourceInput> for SourceInput {
    fn from(i: UpdateDataSourceInput) -> Self {
        SourceInput {
            name: i.name,
            kind: None,
            config: i.config.map(|c| c.0),
            credentials: i.credentials.map(|c| c.0),
            scan_interval_minutes: i.scan_interval_minutes,
            enabled: i.enabled,
            reload_overwritten: i.reload_overwritten,
        }
    }
}

#[Object]
impl SourceQuery {
    /// The workspace's sources, oldest first.
    async fn data_sources(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<DataSource>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let page = engine.sources_page(p, page).await.gql()?;
        connection(page, |s| id_cursor(s.id), |s| Ok(DataSource(s))).gql()
    }

    async fn data_source(&self, ctx: &Context<'_>, id: ID) -> Result<DataSource> {
        let (engine, p) = scope(ctx)?;
        Ok(DataSource(
            engine.source(p, parse_id("id", &id).gql()?).await.gql()?,
        ))
    }

    async fn ingestion_run(&self, ctx: &Context<'_>, id: ID) -> Result<IngestionRun> {
        let (engine, p) = scope(ctx)?;
        IngestionRun::try_from(
            engine
                .ingestion_run(p, parse_id("id", &id).gql()?)
                .await
                .gql()?,
        )
        .gql()
    }

    /// Newest first.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Notification>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let page = engine.notifications(p, page).await.gql()?;
        connection(page, |n| id_cursor(n.id), Notification::try_from).gql()
    }

    /// Newest first.
    async fn quarantined_lines(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<QuarantinedLine>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let page = engine.quarantine(p, page).await.gql()?;
        connection(page, |q| id_cursor(q.id), QuarantinedLine::try_from).gql()
    }
}

#[Object]
impl SourceMutation {
    async fn create_data_source(
        &self,
        ctx: &Context<'_>,
        input: CreateDataSourceInput,
    ) -> Result<DataSource> {
        let (engine, p) = scope(ctx)?;
        Ok(DataSource(
            engine.create_source(p, input.into()).await.gql()?,
        ))
    }

    async fn update_data_source(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateDataSourceInput,
    ) -> Result<DataSource> {
        let (engine, p) = scope(ctx)?;
        let id = parse_id("id", &id).gql()?;
        Ok(DataSource(
            engine.update_source(p, id, input.into()).await.gql()?,
        ))
    }

    /// Deletes a source with its file ledger and scan runs (loaded rows stay).
    async fn delete_data_source(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (engine, p) = scope(ctx)?;
        engine
            .delete_source(p, parse_id("id", &id).gql()?)
            .await
            .gql()?;
        Ok(true)
    }

    /// Lists the source and says precisely what failed, if anything.
    async fn test_data_source(&self, ctx: &Context<'_>, id: ID) -> Result<SourceCheck> {
        let (engine, p) = scope(ctx)?;
        let check = engine
            .test_source(p, parse_id("id", &id).gql()?)
            .await
            .gql()?;
        Ok(SourceCheck {
            ok: check.ok,
            message: check.message,
        })
    }

    /// Queues a scan now; poll `ingestionRun(id)`. While a scan of the source
    /// is queued or running (by schedule or by request), that run is returned.
    async fn scan_data_source(&self, ctx: &Context<'_>, id: ID) -> Result<IngestionRun> {
        let (engine, p) = scope(ctx)?;
        IngestionRun::try_from(
            engine
                .scan_source(p, parse_id("id", &id).gql()?)
                .await
                .gql()?,
        )
        .gql()
    }

    /// Sets the URL every new notification is POSTed to as JSON (retried with
    /// backoff); null removes it. Admin only. Returns the URL now set.
    async fn set_notification_webhook(
        &self,
        ctx: &Context<'_>,
        url: Option<String>,
    ) -> Result<Option<String>> {
        let (engine, p) = scope(ctx)?;
        Ok(engine
            .set_notification_webhook(p, url)
            .await
            .gql()?
            .notification_webhook_url)
    }
}
