//! Bucket and folder sources: definitions (credentials write-only), the
//! object store behind each kind, connectivity tests and scans that fill the
//! ledger and queue one load job per new file.

use chrono::Utc;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Alias, Expr, Query},
};
use serde_json::{Value, json};
use uuid::Uuid;

use entity::{data_sources, ingestion_runs, quarantined_lines, source_files};

use super::{
    jobs::{LoadFile, ScanSource},
    records::RecordType,
    stores::{config_str, store_failure},
    target::Target,
};
use crate::pagination::{Direction, Page, PageRequest, keyset, paginate};
use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    jobs::enqueue_in,
};

pub use entity::states::SourceStatus;

pub use entity::states::SourceKind;

pub use entity::states::NotificationKind;

pub use entity::states::DeliveryStatus;

pub use entity::states::FileFormat;
use entity::states::{FileStatus, RunStatus};

pub const DEFAULT_SCAN_INTERVAL_MINUTES: i32 = 15;

/// `testDataSource` answers within this long, whatever the endpoint does.
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A scan in these states is open: one per source (a unique partial index),
/// which later requests join.
const OPEN_SCAN: [RunStatus; 2] = [RunStatus::Queued, RunStatus::Running];

#[derive(Clone, Debug, Default)]
pub struct SourceInput {
    pub name: Option<String>,
    pub kind: Option<String>,
    /// Kind-specific: `path` (local), `bucket`/`region`/`endpoint` (s3),
    /// `bucket` (gcs), `account`/`container`/`endpoint` (azure), and an optional `prefix`.
    pub config: Option<Value>,
    /// Write-only: never returned, never logged.
    pub credentials: Option<Value>,
    pub scan_interval_minutes: Option<i32>,
    pub enabled: Option<bool>,
    /// Load a file again when it reappears changed (its earlier rows are replaced).
    pub reload_overwritten: Option<bool>,
}

/// The result of `testDataSource`.
#[derive(Clone, Debug)]
pub struct SourceCheck {
    pub ok: bool,
    pub message: String,
}

/// `(format, gzip)` for a file name, or `None` for files that are skipped.
pub fn classify(path: &str) -> Option<(FileFormat, bool)> {
    let lower = path.to_ascii_lowercase();
    let (name, gz) = match lower.strip_suffix(".gz") {
        Some(n) => (n.to_owned(), true),
        None => (lower, false),
    };
    let format = if [".json", ".ndjson", ".jsonl"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        FileFormat::Ndjson
    } else if name.ends_with(".csv") {
        FileFormat::Csv
    } else {
        return None;
    };
    Some((format, gz))
}

/// Applies the fields present in `input`, each checked.
fn apply_input(source: &mut data_sources::Model, input: SourceInput) -> Result<()> {
    if let Some(name) = input.name {
        source.name = crate::limits::name(&name, "name")?;
    }
    if let Some(kind) = input.kind {
        let parsed = SourceKind::parse(&kind).ok_or_else(|| {
            Error::invalid(
                "kind",
                format!("'{kind}' is not one of: {}", SourceKind::expected()),
            )
        })?;
        source.kind = parsed;
    }
    if let Some(config) = input.config {
        if !config.is_object() {
            return Err(Error::invalid("config", "must be an object"));
        }
        source.config = config;
    }
    if let Some(credentials) = input.credentials {
        source.credentials = Some(credentials);
    }
    if let Some(interval) = input.scan_interval_minutes {
        if !(1..=10_080).contains(&interval) {
            return Err(Error::invalid(
                "scan_interval_minutes",
                "must be between 1 and 10080",
            ));
        }
        source.scan_interval_minutes = interval;
    }
    if let Some(enabled) = input.enabled {
        source.enabled = enabled;
    }
    if let Some(reload) = input.reload_overwritten {
        source.reload_overwritten = reload;
    }
    Ok(())
}

impl Engine {
    pub async fn create_source(
        &self,
        p: &Principal,
        input: SourceInput,
    ) -> Result<data_sources::Model> {
        p.require(Permission::Write)?;
        if input.name.is_none() {
            return Err(Error::invalid("name", "must be 1 to 200 characters"));
        }
        if input.kind.is_none() {
            return Err(Error::invalid("kind", "is required"));
        }
        let now = Utc::now();
        let mut model = data_sources::Model {
            id: Uuid::now_v7(),
            workspace_id: p.workspace_id,
            name: String::new(),
            kind: SourceKind::Local,
            config: json!({}),
            credentials: None,
            scan_interval_minutes: DEFAULT_SCAN_INTERVAL_MINUTES,
            enabled: true,
            reload_overwritten: false,
            status: SourceStatus::New,
            last_error: None,
            last_scan_at: None,
            created_at: now,
            updated_at: now,
        };
        apply_input(&mut model, input)?;
        // Refuse what cannot work before storing it (bad kind, folder outside the root).
        self.object_store(&model)?;
        self.seal_credentials(&mut model)?;
        Ok(data_sources::ActiveModel::from(model)
            .insert(&self.db)
            .await?)
    }

    /// Changes the fields sent (credentials are replaced whole when sent);
    /// the result is checked as at creation.
    pub async fn update_source(
        &self,
        p: &Principal,
        id: Uuid,
        input: SourceInput,
    ) -> Result<data_sources::Model> {
        p.require(Permission::Write)?;
        let mut model = self.source(p, id).await?;
        apply_input(&mut model, input)?;
        model.updated_at = Utc::now();
        self.object_store(&model)?;
        self.seal_credentials(&mut model)?;
        Ok(data_sources::ActiveModel::from(model)
            .reset_all()
            .update(&self.db)
            .await?)
    }

    pub async fn list_sources(&self, p: &Principal) -> Result<Vec<data_sources::Model>> {
        p.require(Permission::Read)?;
        Ok(sources_of(p)
            .order_by_asc(data_sources::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// The workspace's sources, oldest first, a page at a time.
    pub async fn sources_page(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> Result<Page<data_sources::Model>> {
        p.require(Permission::Read)?;
        let q = sources_of(p);
        paginate(
            &self.db,
            q,
            data_sources::Column::Id,
            Direction::Forward,
            page,
        )
        .await
    }

    pub async fn source(&self, p: &Principal, id: Uuid) -> Result<data_sources::Model> {
        p.require(Permission::Read)?;
        data_sources::Entity::find_by_id(id)
            .filter(data_sources::Column::WorkspaceId.eq(p.workspace_id))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound {
                what: "data source",
            })
    }

    /// Deletes a source with its ledger and scan runs; rows already loaded stay.
    /// Load jobs still queued for its files find nothing and end.
    pub async fn delete_source(&self, p: &Principal, id: Uuid) -> Result<()> {
        p.require(Permission::Write)?;
        let source = self.source(p, id).await?;
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                source_files::Entity::delete_many()
                    .filter(source_files::Column::SourceId.eq(source.id))
                    .exec(tx)
                    .await?;
                ingestion_runs::Entity::delete_many()
                    .filter(ingestion_runs::Column::SourceId.eq(source.id))
                    .exec(tx)
                    .await?;
                data_sources::Entity::delete_by_id(source.id)
                    .exec(tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Lists the source's root and reports what failed, precisely.
    pub async fn test_source(&self, p: &Principal, id: Uuid) -> Result<SourceCheck> {
        let source = self.source(p, id).await?;
        p.require(Permission::Write)?;
        let check = match self.object_store(&source) {
            Err(e) => Err(e.to_string()),
            Ok(store) => {
                match tokio::time::timeout(TEST_TIMEOUT, store.list_with_delimiter(None)).await {
                    Ok(listed) => listed.map(|_| ()).map_err(|e| store_failure(&e)),
                    Err(_) => Err(format!("no answer within {} s", TEST_TIMEOUT.as_secs())),
                }
            }
        };
        Ok(match check {
            Ok(()) => SourceCheck {
                ok: true,
                message: "listed the source's root".into(),
            },
            Err(message) => SourceCheck { ok: false, message },
        })
    }

    /// Queues a scan; poll the returned run. While a scan of the source is
    /// queued or running, that run is returned instead of a second one.
    pub async fn scan_source(&self, p: &Principal, id: Uuid) -> Result<ingestion_runs::Model> {
        p.require(Permission::Write)?;
        let source = self.source(p, id).await?;
        Ok(self.queue_scan(&source).await?.0)
    }

    /// Queues scans of enabled sources whose interval has passed since their
    /// last scan (and that have none waiting). Called every minute by the worker.
    pub async fn queue_due_scans(&self, now: chrono::DateTime<Utc>) -> Result<usize> {
        let mut queued = 0;
        for source in data_sources::Entity::find()
            .filter(data_sources::Column::Enabled.eq(true))
            .all(&self.db)
            .await?
        {
            let due = source.last_scan_at.is_none_or(|t| {
                t + chrono::Duration::minutes(i64::from(source.scan_interval_minutes)) <= now
            });
            if due && self.queue_scan(&source).await?.1 {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// The source's open run if there is one (joined, `false`), else a new
    /// queued run (`true`). A unique index allows one open run per source, so
    /// the cron and a user asking at the same moment end up with the same run.
    async fn queue_scan(
        &self,
        source: &data_sources::Model,
    ) -> Result<(ingestion_runs::Model, bool)> {
        // An open scan always has its job: it runs, or the job system gives
        // it up (closing the scan) when its workers keep dying.
        if let Some(open) = self.open_scan(source.id).await? {
            return Ok((open, false));
        }
        let inserted = ingestion_runs::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(source.workspace_id),
            source_id: Set(source.id),
            status: Set(RunStatus::Queued),
            files_found: Set(0),
            files_queued: Set(0),
            files_skipped: Set(0),
            skipped_paths: Set(json!([])),
            error: Set(None),
            queued_at: Set(Utc::now()),
            finished_at: Set(None),
        };
        let inserted = self
            .insert_with_job(source.workspace_id, inserted, |run| ScanSource {
                run_id: run.id,
            })
            .await;
        let run = match inserted {
            Ok(run) => run,
            // Another caller opened one in between.
            Err(e) => {
                return self
                    .open_scan(source.id)
                    .await?
                    .map(|r| (r, false))
                    .ok_or(e);
            }
        };
        Ok((run, true))
    }

    async fn open_scan(&self, source_id: Uuid) -> Result<Option<ingestion_runs::Model>> {
        Ok(ingestion_runs::Entity::find()
            .filter(ingestion_runs::Column::SourceId.eq(source_id))
            .filter(ingestion_runs::Column::Status.is_in(OPEN_SCAN))
            .one(&self.db)
            .await?)
    }

    pub async fn ingestion_run(&self, p: &Principal, id: Uuid) -> Result<ingestion_runs::Model> {
        p.require(Permission::Read)?;
        ingestion_runs::Entity::find_by_id(id)
            .filter(ingestion_runs::Column::WorkspaceId.eq(p.workspace_id))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound {
                what: "ingestion run",
            })
    }

    pub async fn source_files(
        &self,
        p: &Principal,
        source_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<source_files::Model>> {
        self.source(p, source_id).await?;
        let q = source_files::Entity::find()
            .filter(source_files::Column::WorkspaceId.eq(p.workspace_id))
            .filter(source_files::Column::SourceId.eq(source_id));
        // Paths are unique per source: the ledger reads in path order.
        let (limit, after) = (page.limit()?, page.after);
        keyset(
            &self.db,
            q,
            source_files::Column::Path,
            Direction::Forward,
            after,
            limit,
        )
        .await
    }

    /// The `ScanSource` job: lists the eight root folders (at any depth),
    /// records new files in the ledger and queues a load for each.
    pub async fn execute_scan(&self, run_id: Uuid) -> Result<()> {
        let Some(run) = ingestion_runs::Entity::find_by_id(run_id)
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        // `running` too: a redelivered job whose worker died mid-listing runs again
        // (the ledger makes a second listing harmless).
        if !OPEN_SCAN.contains(&run.status) {
            return Ok(());
        }
        let Some(source) = data_sources::Entity::find_by_id(run.source_id)
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        let mut running: ingestion_runs::ActiveModel = run.into();
        running.status = Set(RunStatus::Running);
        let run = running.update(&self.db).await?;
        let outcome = self.scan(&source).await;
        let mut done: ingestion_runs::ActiveModel = run.into();
        let mut src: data_sources::ActiveModel = source.clone().into();
        src.last_scan_at = Set(Some(Utc::now()));
        match outcome {
            Ok((found, queued, skipped)) => {
                done.status = Set(RunStatus::Succeeded);
                done.files_found = Set(found);
                done.files_queued = Set(queued);
                done.files_skipped = Set(skipped.len() as i32);
                done.skipped_paths = Set(json!(skipped));
                src.status = Set(SourceStatus::Ok);
                src.last_error = Set(None);
            }
            // The database failed, not the bucket: the job lists it again.
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                let message = e.to_string();
                self.notify(
                    source.workspace_id,
                    Some(source.id),
                    NotificationKind::StorageUnreachable,
                    None,
                    message.clone(),
                )
                .await?;
                done.status = Set(RunStatus::Failed);
                done.error = Set(Some(message.clone()));
                src.status = Set(SourceStatus::Error);
                src.last_error = Set(Some(message));
            }
        }
        done.finished_at = Set(Some(Utc::now()));
        done.update(&self.db).await?;
        src.update(&self.db).await?;
        Ok(())
    }

    async fn scan(&self, source: &data_sources::Model) -> Result<(i32, i32, Vec<String>)> {
        let store = self.object_store(source)?;
        let prefix = config_str(&source.config, "prefix").map(|p| p.trim_matches('/').to_owned());
        let (mut found, mut queued, mut skipped) = (0, 0, Vec::new());
        // One root folder per built-in record type and per custom model, named by its slug.
        let mut targets: Vec<Target> = RecordType::ALL
            .iter()
            .copied()
            .map(Target::Record)
            .collect();
        targets.extend(super::target::custom_targets(&self.db, source.workspace_id).await?);
        for target in &targets {
            let root = match &prefix {
                Some(p) => format!("{p}/{}", target.slug()),
                None => target.slug().to_owned(),
            };
            let objects: Vec<_> = store
                .list(Some(&ObjectPath::from(root.as_str())))
                .try_collect()
                .await
                .map_err(|e| {
                    Error::Unavailable(format!("listing {root}/: {}", store_failure(&e)))
                })?;
            for meta in objects {
                found += 1;
                let path = meta.location.to_string();
                if !self.readable_local_file(source, &path)? {
                    // A symbolic link (to a file or a folder): never followed.
                    skipped.push(path);
                    continue;
                }
                let Some((format, _)) = classify(&path) else {
                    skipped.push(path);
                    continue;
                };
                let known = source_files::Entity::find()
                    .filter(source_files::Column::WorkspaceId.eq(source.workspace_id))
                    .filter(source_files::Column::SourceId.eq(source.id))
                    .filter(source_files::Column::Path.eq(&path))
                    .one(&self.db)
                    .await?;
                if let Some(known) = known {
                    let changed = known.size != meta.size as i64 || known.etag != meta.e_tag;
                    if changed {
                        self.notify_overwritten(source, &path, &known, meta.size)
                            .await?;
                        if source.reload_overwritten {
                            self.reload_file(known, target, &meta).await?;
                            queued += 1;
                        }
                    }
                    continue;
                }
                let file = source_files::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    workspace_id: Set(source.workspace_id),
                    source_id: Set(source.id),
                    path: Set(path.clone()),
                    record_type: Set(target.slug().into()),
                    format: Set(format),
                    size: Set(meta.size as i64),
                    etag: Set(meta.e_tag.clone()),
                    last_modified: Set(Some(meta.last_modified)),
                    status: Set(FileStatus::Queued),
                    rows_loaded: Set(0),
                    rows_rejected: Set(0),
                    checkpoint_line: Set(0),
                    error: Set(None),
                    discovered_at: Set(Utc::now()),
                    started_at: Set(None),
                    finished_at: Set(None),
                };
                // A concurrent scan that recorded the file first wins (unique path).
                let recorded = self
                    .insert_with_job(source.workspace_id, file, |file| LoadFile {
                        file_id: file.id,
                    })
                    .await;
                if recorded.is_ok() {
                    queued += 1;
                }
            }
        }
        Ok((found, queued, skipped))
    }

    /// Files are loaded once: a changed file is reported, once per change, not reloaded.
    /// Forgets what a file loaded (its event rows and quarantined lines; items
    /// are upserts and are simply updated again) and queues it as new, in one
    /// transaction with its ledger row.
    async fn reload_file(
        &self,
        known: source_files::Model,
        target: &Target,
        meta: &object_store::ObjectMeta,
    ) -> Result<()> {
        use sea_orm::sea_query::ExprTrait;
        let table = target.table().to_owned();
        let keeps_rows = target.record_type() == Some(RecordType::Items);
        let (size, etag, modified) = (meta.size as i64, meta.e_tag.clone(), meta.last_modified);
        let file = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                if !keeps_rows {
                    let q = Query::delete()
                        .from_table(Alias::new(&table))
                        .and_where(Expr::col(Alias::new("workspace_id")).eq(known.workspace_id))
                        .and_where(Expr::col(Alias::new("source_file_id")).eq(known.id))
                        .to_owned();
                    tx.execute(&q).await?;
                }
                quarantined_lines::Entity::delete_many()
                    .filter(quarantined_lines::Column::WorkspaceId.eq(known.workspace_id))
                    .filter(quarantined_lines::Column::SourceFileId.eq(known.id))
                    .exec(tx)
                    .await?;
                let mut f: source_files::ActiveModel = known.into();
                f.size = Set(size);
                f.etag = Set(etag);
                f.last_modified = Set(Some(modified));
                f.status = Set(FileStatus::Queued);
                f.rows_loaded = Set(0);
                f.rows_rejected = Set(0);
                f.checkpoint_line = Set(0);
                f.error = Set(None);
                f.started_at = Set(None);
                f.finished_at = Set(None);
                let file = f.update(tx).await?;
                let work = LoadFile { file_id: file.id };
                enqueue_in(tx, Some(file.workspace_id), &work).await
            })
        })
        .await?;
        self.dispatch(&file).await;
        Ok(())
    }
}

fn sources_of(p: &Principal) -> sea_orm::Select<data_sources::Entity> {
    data_sources::Entity::find().filter(data_sources::Column::WorkspaceId.eq(p.workspace_id))
}
