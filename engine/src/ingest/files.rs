//! The `LoadFile` job: streams one file of the ledger with bounded memory,
//! loads it in batches, each committed with the ledger's checkpoint.
//!
//! Exactly once: every event row carries (file, line) under a unique key and
//! is inserted with ON CONFLICT DO NOTHING, and each batch commits its rows,
//! quarantined lines and the checkpoint together. A retry after a crash
//! resumes after the checkpoint; a batch that committed is never written twice.

use std::io;

use async_compression::tokio::bufread::GzipDecoder;
use chrono::Utc;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, path::Path as ObjectPath};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, QuerySelect};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, BufReader};
use tokio_util::io::StreamReader;
use uuid::Uuid;

use entity::{data_sources, source_files};

use super::{
    Rejected,
    decode::{Line, LineReader, csv_fields},
    load::{self, Origin},
    parse_line, parse_object,
    records::{RecordType, Row},
    sources::{FileFormat, NotificationKind, classify},
    target::{self, Target},
};
use crate::{Engine, Error, Result};

pub use entity::states::FileStatus;

/// Lines per committed batch (and checkpoint): large enough that commits are
/// not the cost, small enough to keep memory bounded.
const FILE_BATCH: usize = 10_000;
/// A file this large changes its table's statistics enough to refresh them.
const ANALYZE_AFTER_LINES: u64 = 100_000;

const BOM: &[u8] = b"\xEF\xBB\xBF";

struct Batch {
    rows: Vec<Row>,
    rejected: Vec<Rejected>,
    /// The checkpoint this batch continues from, and its last line.
    from_line: u64,
    last_line: u64,
    /// No row of the file lies beyond the checkpoint (see `Origin::File`).
    fresh: bool,
}

impl Engine {
    pub async fn execute_load_file(&self, file_id: Uuid) -> Result<()> {
        let Some(file) = source_files::Entity::find_by_id(file_id)
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        if file.status == FileStatus::Loaded || file.status == FileStatus::Failed {
            return Ok(());
        }
        let Some(source) = data_sources::Entity::find_by_id(file.source_id)
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        let mut loading: source_files::ActiveModel = file.clone().into();
        loading.status = Set(FileStatus::Loading);
        if file.started_at.is_none() {
            loading.started_at = Set(Some(Utc::now()));
        }
        let file = loading.update(&self.db).await?;

        let outcome = match self.load_file(&source, &file).await {
            // Another worker is loading this file (a duplicate delivery): it
            // owns the ledger row from here.
            Err(Error::Conflict(reason)) => {
                tracing::info!(file_id = %file.id, %reason, "load handed over");
                return Ok(());
            }
            other => other,
        };
        let Some(file) = source_files::Entity::find_by_id(file_id)
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        let mut done: source_files::ActiveModel = file.clone().into();
        done.finished_at = Set(Some(Utc::now()));
        match outcome {
            Ok(()) => {
                done.status = Set(FileStatus::Loaded);
                if file.rows_loaded > 0
                    && let Ok(t) =
                        target::resolve(&self.db, file.workspace_id, &file.record_type).await
                {
                    self.after_load(file.workspace_id, &[t]).await;
                }
                if file.rows_loaded == 0 && file.rows_rejected == 0 {
                    self.notify(
                        file.workspace_id,
                        Some(source.id),
                        NotificationKind::InvalidFormat,
                        Some(&file.path),
                        format!("{} is empty", file.path),
                    )
                    .await?;
                } else if file.rows_loaded == 0 {
                    self.notify(
                        file.workspace_id,
                        Some(source.id),
                        NotificationKind::InvalidFormat,
                        Some(&file.path),
                        format!(
                            "every line of {} was rejected ({} lines); see the quarantine",
                            file.path, file.rows_rejected
                        ),
                    )
                    .await?;
                }
            }
            // The database failed, not the file: the job runs again from the checkpoint.
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                let message = e.cause();
                let kind = match e {
                    Error::Unavailable(_) => NotificationKind::StorageUnreachable,
                    _ => NotificationKind::InvalidFormat,
                };
                self.notify(
                    file.workspace_id,
                    Some(source.id),
                    kind,
                    Some(&file.path),
                    message.clone(),
                )
                .await?;
                done.status = Set(FileStatus::Failed);
                done.error = Set(Some(message));
            }
        }
        done.update(&self.db).await?;
        Ok(())
    }

    async fn load_file(
        &self,
        source: &data_sources::Model,
        file: &source_files::Model,
    ) -> Result<()> {
        // A custom model deleted since the file was found: the load fails with that reason.
        let target = target::resolve(&self.db, file.workspace_id, &file.record_type)
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::invalid(
                    "file",
                    format!("the model `{}` no longer exists", file.record_type),
                ),
                e => e,
            })?;
        let (format, gzip) =
            classify(&file.path).ok_or_else(|| Error::internal("stored file name"))?;
        let mut lines = self.open_lines(source, file, gzip).await?;
        let io_error =
            |e: io::Error| Error::invalid("file", format!("{} cannot be decoded: {e}", file.path));

        let mut header: Option<Vec<String>> = None;
        let fresh = !self.rows_beyond_checkpoint(&target, file).await?;
        let mut batch = Batch {
            rows: Vec::new(),
            rejected: Vec::new(),
            from_line: file.checkpoint_line as u64,
            last_line: file.checkpoint_line as u64,
            fresh,
        };
        let now = Utc::now();
        // One batch commits while the next is read and parsed; commits stay in
        // order (each waits for the one before), so the checkpoint still moves
        // one batch at a time.
        let mut in_flight: Option<tokio::task::JoinHandle<Result<()>>> = None;
        let read = async {
            loop {
                let next = match format {
                    FileFormat::Ndjson => lines.next_line().await.map_err(io_error)?,
                    FileFormat::Csv => lines.next_csv_record().await.map_err(io_error)?,
                };
                let Some((number, offset, line)) = next else {
                    break;
                };
                let line = match line {
                    Line::Text(t) if number == 1 => {
                        Line::Text(t.strip_prefix(BOM).map(<[u8]>::to_vec).unwrap_or(t))
                    }
                    other => other,
                };
                if format == FileFormat::Csv && header.is_none() {
                    header = Some(csv_header(&target, &line, &file.path)?);
                    continue;
                }
                if number <= file.checkpoint_line as u64 {
                    continue;
                }
                if matches!(&line, Line::Text(t) if t.iter().all(u8::is_ascii_whitespace)) {
                    continue;
                }
                let parsed = match (format, &header) {
                    (FileFormat::Csv, Some(h)) => {
                        csv_row(&target, file.workspace_id, h, line, number, offset, now)
                    }
                    _ => parse_line(&target, file.workspace_id, line, number, offset, now),
                };
                match parsed {
                    Ok(mut row) => {
                        row.stamp(file.id, number as i64);
                        batch.rows.push(row);
                    }
                    Err(r) => batch.rejected.push(r),
                }
                batch.last_line = number;
                if batch.rows.len() + batch.rejected.len() >= FILE_BATCH {
                    let commit = self.commit_batch(file, &target, &mut batch, now);
                    if let Some(previous) = in_flight.take() {
                        joined(previous.await)?;
                    }
                    in_flight = Some(tokio::spawn(commit));
                }
            }
            if format == FileFormat::Csv && header.is_none() {
                return Err(Error::invalid(
                    "file",
                    format!("{} has no CSV header row", file.path),
                ));
            }
            Ok(())
        }
        .await;
        // Whatever happened while reading, the batch already sent finishes first.
        if let Some(previous) = in_flight.take() {
            joined(previous.await)?;
        }
        read?;
        self.commit_batch(file, &target, &mut batch, now).await?;
        self.file_loaded(file, &target, batch.last_line, now).await
    }

    /// The file's lines, streamed (and decompressed) from its store; a local
    /// file reached through a symbolic link is refused.
    async fn open_lines(
        &self,
        source: &data_sources::Model,
        file: &source_files::Model,
        gzip: bool,
    ) -> Result<LineReader<Box<dyn AsyncBufRead + Unpin + Send>>> {
        if !self.readable_local_file(source, &file.path)? {
            return Err(Error::invalid(
                "file",
                format!(
                    "{} is or goes through a symbolic link, which local sources never follow",
                    file.path
                ),
            ));
        }
        let store = self.object_store(source)?;
        let stream = store
            .get(&ObjectPath::from(file.path.as_str()))
            .await
            .map_err(|e| {
                Error::Unavailable(format!(
                    "reading {}: {}",
                    file.path,
                    super::stores::store_failure(&e)
                ))
            })?
            .into_stream()
            .map_err(io::Error::other);
        let raw = BufReader::new(StreamReader::new(stream));
        let reader: Box<dyn AsyncBufRead + Unpin + Send> = if gzip {
            Box::new(BufReader::new(GzipDecoder::new(raw)))
        } else {
            Box::new(raw)
        };
        Ok(LineReader::new(reader, self.max_line_bytes, 0))
    }

    /// After the last batch: statistics for a large file, then the file's players.
    async fn file_loaded(
        &self,
        file: &source_files::Model,
        target: &Target,
        last_line: u64,
        now: chrono::DateTime<Utc>,
    ) -> Result<()> {
        if last_line - file.checkpoint_line as u64 >= ANALYZE_AFTER_LINES
            && self.db.get_database_backend() == sea_orm::DbBackend::Postgres
        {
            // Fresh statistics, so the players aggregate below (and the next
            // trait runs) plan for the rows just added, not for an empty table.
            use sea_orm::ConnectionTrait;
            self.db
                .execute_unprepared(&format!("ANALYZE \"{}\"", target.table()))
                .await?;
        }
        // Every line is in: the file's players, in one statement.
        let ws = file.workspace_id;
        let file_id = file.id;
        let target = target.clone();
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                use sea_orm::ConnectionTrait;
                if tx.get_database_backend() == sea_orm::DbBackend::Postgres {
                    // One group per player of the file: let the aggregate stay in
                    // memory instead of spilling at the default 4 MB.
                    tx.execute_unprepared("SET LOCAL work_mem = '64MB'").await?;
                }
                load::players_from_file(tx, ws, &target, file_id, now).await
            })
        })
        .await
    }

    /// Rows, quarantined lines and the checkpoint, in one transaction that
    /// first locks the file's ledger row: if the checkpoint moved since this
    /// batch began, another loader has these lines and this one stops. Takes
    /// the batch's lines at once and returns the commit as an owned future,
    /// so that it can run while the next batch is read.
    fn commit_batch(
        &self,
        file: &source_files::Model,
        target: &Target,
        batch: &mut Batch,
        now: chrono::DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let mut rows = std::mem::take(&mut batch.rows);
        let mut rejected = std::mem::take(&mut batch.rejected);
        let (file_id, workspace_id) = (file.id, file.workspace_id);
        let (from, checkpoint, fresh) =
            (batch.from_line as i64, batch.last_line as i64, batch.fresh);
        batch.from_line = batch.last_line;
        let path = file.path.clone();
        let db = self.db.clone();
        // No line of this file is past the checkpoint: COPY, no conflict
        // handling needed. The rows are rendered here, in the reading task.
        let copy_type = target.record_type().filter(|t| *t != RecordType::Items);
        let copy = copy_type
            .filter(|_| fresh && db.get_database_backend() == sea_orm::DbBackend::Postgres)
            .map(|record_type| {
                super::copy::prepare(super::copy::Batch {
                    workspace_id,
                    file_id,
                    path: &path,
                    record_type,
                    from_line: from,
                    checkpoint,
                    rows: std::mem::take(&mut rows),
                    rejected: std::mem::take(&mut rejected),
                    now,
                })
            });
        let target = target.clone();
        async move {
            if let Some(prepared) = copy {
                return super::copy::commit(db.get_postgres_connection_pool(), prepared?).await;
            }
            crate::db::write_tx(&db, |tx| {
                Box::pin(async move {
                    let current = source_files::Entity::find_by_id(file_id)
                        // SQLite needs no row lock: its write transactions are exclusive.
                        .lock_exclusive()
                        .one(tx)
                        .await?
                        .ok_or(Error::NotFound {
                            what: "source file",
                        })?;
                    super::copy::check_checkpoint(from, current.checkpoint_line)?;
                    let origin = Origin::File {
                        id: file_id,
                        path: &path,
                        fresh,
                    };
                    let accepted =
                        load::write(tx, workspace_id, &target, origin, rows, &rejected, now)
                            .await?;
                    let mut f: source_files::ActiveModel = current.clone().into();
                    f.checkpoint_line = Set(checkpoint);
                    f.rows_loaded = Set(current.rows_loaded + accepted as i64);
                    f.rows_rejected = Set(current.rows_rejected + rejected.len() as i64);
                    f.update(tx).await?;
                    Ok(())
                })
            })
            .await
        }
    }

    /// Whether rows of the file exist past its checkpoint (only after a
    /// checkpoint was rewound by hand: commits carry rows and checkpoint together).
    async fn rows_beyond_checkpoint(
        &self,
        target: &Target,
        file: &source_files::Model,
    ) -> Result<bool> {
        use sea_orm::{
            ConnectionTrait,
            sea_query::{Alias, Expr, ExprTrait, Query},
        };
        if target.upserts() {
            // Items and custom models are upserts by key: loading a line twice changes nothing.
            return Ok(false);
        }
        let q = Query::select()
            .expr(Expr::val(1))
            .from(Alias::new(target.table()))
            .and_where(Expr::col(Alias::new("workspace_id")).eq(file.workspace_id))
            .and_where(Expr::col(Alias::new("source_file_id")).eq(file.id))
            .and_where(Expr::col(Alias::new("line_number")).gt(file.checkpoint_line))
            .limit(1)
            .to_owned();
        let statement = self.db.get_database_backend().build(&q);
        Ok(self.db.query_one_raw(statement).await?.is_some())
    }
}

/// A commit task's outcome; a panic in it is an internal error.
fn joined(outcome: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    outcome.map_err(Error::internal)?
}

/// The header row: names the columns, and must name the type's required ones.
fn csv_header(target: &Target, line: &Line, path: &str) -> Result<Vec<String>> {
    let Line::Text(t) = line else {
        return Err(Error::invalid(
            "file",
            format!("{path}: the CSV header row is too long"),
        ));
    };
    let names: Vec<String> = csv_fields(t)
        .map_err(|e| Error::invalid("file", format!("{path}: bad CSV header: {e}")))?
        .into_iter()
        .map(|n| n.trim().to_owned())
        .collect();
    let required: Vec<&str> = match target {
        Target::Record(RecordType::Items) => vec!["item_id"],
        Target::Record(RecordType::Kpis) => vec!["timestamp", "user_id", "kpi_id", "value"],
        Target::Record(_) => vec!["timestamp", "user_id"],
        Target::Custom(m) => m.required_fields(),
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|r| !names.iter().any(|n| n == r))
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(
            "file",
            format!(
                "{path}: the CSV header row lacks {} (is the header missing?)",
                missing.join(", ")
            ),
        ));
    }
    Ok(names)
}

fn csv_row(
    target: &Target,
    workspace_id: Uuid,
    header: &[String],
    line: Line,
    number: u64,
    offset: u64,
    now: chrono::DateTime<Utc>,
) -> std::result::Result<Row, Rejected> {
    let text = match line {
        Line::Text(t) => t,
        too_long => return parse_line(target, workspace_id, too_long, number, offset, now),
    };
    let reject = |field: Option<String>, message: String, user_id: Option<String>| Rejected {
        line_number: number as i64,
        byte_offset: offset as i64,
        field,
        message,
        excerpt: super::excerpt(&text),
        user_id,
    };
    if std::str::from_utf8(&text).is_err() {
        return Err(reject(None, "the line is not valid UTF-8".into(), None));
    }
    let fields = csv_fields(&text).map_err(|m| reject(None, m, None))?;
    if fields.len() != header.len() {
        return Err(reject(
            None,
            format!(
                "{} fields where the header has {}",
                fields.len(),
                header.len()
            ),
            None,
        ));
    }
    let object: Map<String, Value> = header
        .iter()
        .cloned()
        .zip(fields.into_iter().map(Value::String))
        .collect();
    parse_object(target, workspace_id, object, now).map_err(|(f, m, u)| reject(f, m, u))
}
