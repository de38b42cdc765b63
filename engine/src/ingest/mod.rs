//! Ingestion: behavioural records in, validated, loaded or quarantined.

mod load;
pub mod records;

pub use load::Rejected;
pub use records::RecordType;

use chrono::Utc;
use serde_json::Value;

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
};

/// The longest line accepted; longer ones are quarantined, never buffered further.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
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
        let record_type = RecordType::parse(record_type).ok_or_else(|| Error::NotFound {
            what: "record type",
        })?;
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
            let reject =
                |field: Option<String>, message: String, user_id: Option<String>| Rejected {
                    line_number: i as i64 + 1,
                    byte_offset: start as i64,
                    field,
                    message,
                    excerpt: excerpt(line),
                    user_id,
                };
            if line.len() > MAX_LINE_BYTES {
                rejected.push(reject(
                    None,
                    format!("the line is longer than {MAX_LINE_BYTES} bytes"),
                    None,
                ));
                continue;
            }
            let text = match std::str::from_utf8(line) {
                Ok(t) => t,
                Err(e) => {
                    rejected.push(reject(
                        None,
                        format!("the line is not valid UTF-8 (at byte {})", e.valid_up_to()),
                        None,
                    ));
                    continue;
                }
            };
            let object = match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(o)) => o,
                Ok(_) => {
                    rejected.push(reject(
                        None,
                        "each line must be one JSON object".into(),
                        None,
                    ));
                    continue;
                }
                Err(e) => {
                    rejected.push(reject(None, format!("not valid JSON: {e}"), None));
                    continue;
                }
            };
            let user_id = object.get("user_id").and_then(|u| match u {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            match records::parse(record_type, p.workspace_id, object, now) {
                Ok(row) => rows.push(row),
                Err(e) => rejected.push(reject(e.field, e.message, user_id)),
            }
        }
        let workspace_id = p.workspace_id;
        let to_quarantine = rejected.clone();
        let accepted = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                load::write(
                    tx,
                    workspace_id,
                    record_type,
                    "post",
                    rows,
                    &to_quarantine,
                    now,
                )
                .await
            })
        })
        .await?;
        let rejected_count = rejected.len() as u64;
        rejected.truncate(REPORTED_ERRORS);
        Ok(LoadSummary {
            accepted,
            rejected: rejected_count,
            errors: rejected,
        })
    }
}
