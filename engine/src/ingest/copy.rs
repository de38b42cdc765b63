//! PostgreSQL's fast path for a batch of file lines: the rows and the
//! quarantined lines go in with `COPY … FROM STDIN` (text format), in the same
//! transaction as the ledger's checkpoint, which it first locks. sea-orm's
//! transactions do not expose their connection, so this batch runs on a sqlx
//! transaction of the same pool.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, IdenStatic, Iterable, TryIntoModel};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use entity::{
    actions, kpis, level_ups, logins, purchases, quarantined_lines, social_dynamics,
    virtual_purchases,
};

use super::{
    load::{Origin, Rejected, quarantine_rows},
    records::{RecordType, Row},
};
use crate::{Error, Result};

/// One batch of a file: where it starts, where its checkpoint moves to, and its lines.
pub(crate) struct Batch<'a> {
    pub workspace_id: Uuid,
    pub file_id: Uuid,
    pub path: &'a str,
    pub record_type: RecordType,
    pub from_line: i64,
    pub checkpoint: i64,
    pub rows: Vec<Row>,
    pub rejected: Vec<Rejected>,
    pub now: DateTime<Utc>,
}

fn db(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            Error::Unavailable(format!("database: {e}"))
        }
        e => Error::internal(e),
    }
}

/// A batch turned into COPY input, ready to send.
pub(crate) struct Prepared {
    file_id: Uuid,
    from_line: i64,
    checkpoint: i64,
    accepted: i64,
    rejected: i64,
    /// `COPY … FROM STDIN` statements with their text-format input.
    copies: Vec<(String, String)>,
}

/// Renders the batch's rows and quarantined lines as COPY input. This is the
/// CPU part of a commit: the loader does it while the batch before is still
/// being written.
pub(crate) fn prepare(b: Batch<'_>) -> Result<Prepared> {
    let accepted = b.rows.len() as i64;
    let rejected = b.rejected.len() as i64;
    let mut copies = Vec::with_capacity(2);
    macro_rules! copy_rows {
        ($variant:ident, $entity:ty) => {{
            let models = b.rows.into_iter().filter_map(|r| match r {
                Row::$variant(m) => Some(m),
                _ => None,
            });
            copies.extend(copy_input::<$entity>(models)?)
        }};
    }
    match b.record_type {
        RecordType::Purchases => copy_rows!(Purchase, purchases::Entity),
        RecordType::Logins => copy_rows!(Login, logins::Entity),
        RecordType::Actions => copy_rows!(Action, actions::Entity),
        RecordType::Kpis => copy_rows!(Kpi, kpis::Entity),
        RecordType::VirtualPurchases => copy_rows!(VirtualPurchase, virtual_purchases::Entity),
        RecordType::LevelUps => copy_rows!(LevelUp, level_ups::Entity),
        RecordType::SocialDynamics => copy_rows!(SocialDynamic, social_dynamics::Entity),
        RecordType::Items => return Err(Error::internal("items are upserts, not copied")),
    }
    let origin = Origin::File {
        id: b.file_id,
        path: b.path,
        fresh: true,
    };
    let quarantined = quarantine_rows(
        b.workspace_id,
        b.record_type.as_str(),
        &origin,
        &b.rejected,
        b.now,
    );
    copies.extend(copy_input::<quarantined_lines::Entity>(
        quarantined.into_iter(),
    )?);
    Ok(Prepared {
        file_id: b.file_id,
        from_line: b.from_line,
        checkpoint: b.checkpoint,
        accepted,
        rejected,
        copies,
    })
}

/// Commits a prepared batch, or hands over with `Conflict` when the
/// checkpoint moved under this loader (another one owns the file now).
pub(crate) async fn commit(pool: &PgPool, b: Prepared) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db)?;
    let current: Option<i64> =
        sqlx::query_scalar("SELECT checkpoint_line FROM source_files WHERE id = $1 FOR UPDATE")
            .bind(b.file_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    match current {
        None => {
            return Err(Error::NotFound {
                what: "source file",
            });
        }
        Some(line) => check_checkpoint(b.from_line, line)?,
    }
    for (statement, text) in b.copies {
        let mut copy = tx.copy_in_raw(&statement).await.map_err(db)?;
        copy.send(text.into_bytes()).await.map_err(db)?;
        copy.finish().await.map_err(db)?;
    }
    sqlx::query(
        "UPDATE source_files SET checkpoint_line = $1, rows_loaded = rows_loaded + $2, \
         rows_rejected = rows_rejected + $3 WHERE id = $4",
    )
    .bind(b.checkpoint)
    .bind(b.accepted)
    .bind(b.rejected)
    .bind(b.file_id)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// The `COPY table (columns) FROM STDIN` statement and its text-format input
/// (none for no rows): columns in the entity's order, values as the model
/// serializes them (what PostgreSQL's input functions read: RFC 3339 times,
/// JSON text, numbers).
fn copy_input<E>(rows: impl Iterator<Item = E::ActiveModel>) -> Result<Option<(String, String)>>
where
    E: EntityTrait,
    E::Model: serde::Serialize,
    E::ActiveModel: TryIntoModel<E::Model>,
{
    let columns: Vec<&str> = E::Column::iter().map(|c| c.as_str()).collect();
    let mut text = String::new();
    let mut count = 0usize;
    for row in rows {
        let model = row.try_into_model().map_err(Error::internal)?;
        let Value::Object(fields) = serde_json::to_value(&model).map_err(Error::internal)? else {
            return Err(Error::internal("a model serialized to a non-object"));
        };
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                text.push('\t');
            }
            write_value(&mut text, fields.get(*column).unwrap_or(&Value::Null));
        }
        text.push('\n');
        count += 1;
    }
    if count == 0 {
        return Ok(None);
    }
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let statement = format!(
        "COPY \"{}\" ({}) FROM STDIN",
        E::default().table_name(),
        quoted.join(", ")
    );
    Ok(Some((statement, text)))
}

/// A batch continues from the checkpoint it was read after; if the ledger's
/// checkpoint moved, another loader owns the file and this one hands over.
pub(crate) fn check_checkpoint(from: i64, current: i64) -> Result<()> {
    if current == from {
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "the checkpoint moved from line {from} to {current} under this loader"
    )))
}

/// One value in COPY's text format: `\N` for NULL, backslash escapes for the
/// delimiter, line breaks and the backslash itself.
fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("\\N"),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => escape(out, s),
        other => escape(out, &other.to_string()),
    }
}

fn escape(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_for_copy_text() {
        let mut out = String::new();
        for v in [
            Value::Null,
            Value::Bool(true),
            serde_json::json!(1.5),
            serde_json::json!("a\tb\\c\nd\re"),
            serde_json::json!({"k": "v\n"}),
        ] {
            write_value(&mut out, &v);
            out.push('|');
        }
        assert_eq!(out, "\\N|t|1.5|a\\tb\\\\c\\nd\\re|{\"k\":\"v\\\\n\"}|");
    }
}
