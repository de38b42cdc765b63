//! SQLite stores whatever an expression returns in any column (a text in the
//! number column, an integer in the timestamp column), and reading such a
//! value back fails. After a `sql` or `formula` trait's values are written,
//! one set-based query looks for a value that does not fit the trait's
//! result type; finding one fails the run (its transaction rolls back), with
//! the trait, the entity and the value named. PostgreSQL's typed columns
//! refuse such values by themselves.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use uuid::Uuid;

use super::definition::ResultType;
use crate::{Error, Result};

/// The SQLite condition a stored value of `result_type` must meet to be read back.
pub(crate) fn fits(result_type: ResultType) -> &'static str {
    match result_type {
        ResultType::Number => "typeof(value_number) IN ('integer', 'real')",
        ResultType::Boolean => "typeof(value_boolean) = 'integer' AND value_boolean IN (0, 1)",
        ResultType::Text => "typeof(value_text) = 'text'",
        ResultType::Timestamp => {
            "typeof(value_timestamp) = 'text' \
             AND value_timestamp GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:[0-9][0-9]:[0-9][0-9]*' \
             AND julianday(value_timestamp) IS NOT NULL"
        }
        ResultType::Array => {
            "typeof(value_json) = 'text' AND json_valid(value_json) AND json_type(value_json) = 'array'"
        }
    }
}

/// Fails with the first value of the trait that does not fit its result type.
pub(crate) async fn check(
    tx: &DatabaseTransaction,
    workspace_id: Uuid,
    trait_id: Uuid,
    slug: &str,
    result_type: ResultType,
) -> Result<()> {
    check_in(tx, workspace_id, trait_id, slug, result_type, None).await
}

/// [`check`] among the values of an incremental pass's players (`keys`: its
/// table of user ids) only.
pub(crate) async fn check_in(
    tx: &DatabaseTransaction,
    workspace_id: Uuid,
    trait_id: Uuid,
    slug: &str,
    result_type: ResultType,
    keys: Option<&str>,
) -> Result<()> {
    let column = result_type.value_column();
    let among = keys
        .map(|k| format!(" AND entity_id IN (SELECT user_id FROM \"{k}\")"))
        .unwrap_or_default();
    let sql = format!(
        "SELECT entity_id, CAST({column} AS TEXT) AS v, typeof({column}) AS t FROM trait_values \
         WHERE workspace_id = ? AND trait_id = ? AND {column} IS NOT NULL AND NOT ({}){among} LIMIT 1",
        fits(result_type)
    );
    let found = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            [workspace_id.into(), trait_id.into()],
        ))
        .await?;
    let Some(row) = found else {
        return Ok(());
    };
    let entity: String = row.try_get("", "entity_id")?;
    let value: String = row.try_get("", "v")?;
    let stored_as: String = row.try_get("", "t")?;
    let shown: String = value.chars().take(80).collect();
    Err(Error::invalid(
        "result_type",
        format!(
            "trait `{slug}` computed {stored_as} '{shown}' for `{entity}`, which is not a {}; cast it in the expression or change result_type",
            result_type.as_str()
        ),
    ))
}
