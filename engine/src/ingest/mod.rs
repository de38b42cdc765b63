//! Ingestion: behavioural records in, validated, loaded or quarantined.

mod copy;
mod decode;
pub mod files;
pub mod jobs;
mod load;
pub mod notifications;
pub mod playfab;
pub mod records;
pub mod sources;
mod stores;
pub mod target;
pub mod webhooks;

pub use load::{LineOrigin, Rejected};
pub use records::RecordType;
pub use target::Target;

use decode::Line;
use serde_json::Map;
use uuid::Uuid;

use chrono::Utc;
use serde_json::Value;

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
};

/// The longest line accepted; longer ones are quarantined, never buffered further.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// The longest one request to a bucket may take (`STORAGE_TIMEOUT`).
pub const DEFAULT_STORAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Errors returned in a response (all are in the quarantine).
const REPORTED_ERRORS: usize = 20;
const EXCERPT_CHARS: usize = 200;

#[derive(Clone, Debug)]
pub struct LoadSummary {
    pub accepted: u64,
    pub rejected: u64,
    /// The first rejected lines, in order.
    pub errors: Vec<Rejected>,
}

fn excerpt(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(EXCERPT_CHARS * 4)])
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
}

impl Engine {
    /// Loads an NDJSON body of one record type (`POST /v1/events/{type}`).
    /// Good lines are loaded and bad ones quarantined in one transaction:
    /// either all of it is written or none of it.
    pub async fn ingest_ndjson(
        &self,
        p: &Principal,
        record_type: &str,
        body: &[u8],
    ) -> Result<LoadSummary> {
        p.require(Permission::Ingest)?;
        let target = target::resolve(&self.db, p.workspace_id, record_type).await?;
        // A UTF-8 byte order mark is skipped; offsets still count it, so they
        // point into the body exactly as it was sent.
        let (body, mut offset) = match body.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) => (rest, 3usize),
            None => (body, 0usize),
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::BadRequest(
                "the body is empty: send one JSON object per line".into(),
            ));
        }
        let now = Utc::now();
        let mut rows = Vec::new();
        let mut rejected = Vec::new();
        for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
            let start = offset;
            offset += raw.len() + 1;
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (number, at) = (i as u64 + 1, start as u64);
            let line = if line.len() > self.max_line_bytes {
                Line::TooLong(line.len())
            } else {
                Line::Text(line.to_vec())
            };
            match parse_line(&target, p.workspace_id, line, number, at, now) {
                Ok(row) => rows.push(row),
                Err(r) => rejected.push(r),
            }
        }
        let workspace_id = p.workspace_id;
        let to_quarantine = rejected.clone();
        let written = target.clone();
        let accepted = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                load::write(
                    tx,
                    workspace_id,
                    &written,
                    load::Origin::Post,
                    rows,
                    &to_quarantine,
                    now,
                )
                .await
            })
        })
        .await?;
        if accepted > 0 {
            self.after_load(workspace_id, &[target]).await;
        }
        let rejected_count = rejected.len() as u64;
        rejected.truncate(REPORTED_ERRORS);
        Ok(LoadSummary {
            accepted,
            rejected: rejected_count,
            errors: rejected,
        })
    }
}

fn too_long(len: usize, line_number: u64, byte_offset: u64) -> Rejected {
    Rejected {
        line_number: line_number as i64,
        byte_offset: byte_offset as i64,
        field: None,
        message: format!("the line is {len} bytes, longer than the limit (MAX_LINE_BYTES)"),
        excerpt: String::new(),
        user_id: None,
    }
}

/// One NDJSON line to a row, or the reason it is refused.
pub(crate) fn parse_line(
    target: &Target,
    workspace_id: Uuid,
    line: Line,
    line_number: u64,
    byte_offset: u64,
    now: chrono::DateTime<Utc>,
) -> std::result::Result<records::Row, Rejected> {
    let line = match line {
        Line::Text(t) => t,
        Line::TooLong(len) => return Err(too_long(len, line_number, byte_offset)),
    };
    let reject = |field: Option<String>, message: String, user_id: Option<String>| Rejected {
        line_number: line_number as i64,
        byte_offset: byte_offset as i64,
        field,
        message,
        excerpt: excerpt(&line),
        user_id,
    };
    let text = std::str::from_utf8(&line).map_err(|e| {
        reject(
            None,
            format!("the line is not valid UTF-8 (at byte {})", e.valid_up_to()),
            None,
        )
    })?;
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return Err(reject(
                None,
                "each line must be one JSON object".into(),
                None,
            ));
        }
        Err(e) => return Err(reject(None, format!("not valid JSON: {e}"), None)),
    };
    parse_object(target, workspace_id, object, now)
        .map_err(|(field, message, user)| reject(field, message, user))
}

/// Field, message and (when readable) user id of a refused record.
pub(crate) type ObjectError = (Option<String>, String, Option<String>);

pub(crate) fn parse_object(
    target: &Target,
    workspace_id: Uuid,
    object: Map<String, Value>,
    now: chrono::DateTime<Utc>,
) -> std::result::Result<records::Row, ObjectError> {
    let user_id = target.user_id_of(&object);
    target
        .parse(workspace_id, object, now)
        .map_err(|e| (e.field, e.message, user_id))
}

impl Engine {
    /// Once loaded rows are committed, whatever the path (post, PlayFab,
    /// bucket file): traits reading them go stale (and `on_load` ones are
    /// queued); events may bring new players, whom segments, personas and
    /// predictions take in. The load itself has succeeded, so a failure here
    /// is logged, not returned.
    pub(crate) async fn after_load(&self, workspace_id: Uuid, targets: &[Target]) {
        // Stale first: the pass clears marks made before it started.
        if let Err(e) = self.data_loaded(workspace_id, targets).await {
            tracing::warn!(%workspace_id, error = %e.cause(), "could not mark traits stale after a load");
        }
        if let Err(e) = self.queue_incremental(workspace_id).await {
            // The touched players are recorded: the workers' clock queues the pass.
            tracing::warn!(%workspace_id, error = %e.cause(), "could not queue the incremental pass after a load");
        }
        if targets.iter().any(Target::touches_players)
            && let Err(e) = self.players_loaded(workspace_id).await
        {
            tracing::warn!(%workspace_id, error = %e.cause(), "could not queue segment updates after a load");
        }
    }
}
