//! The norm version psych scores stand on, and the lock that keeps writers
//! of scores off norms being replaced. Shared by the survey (norms, answers)
//! and prediction (predicted scores), which both write scores.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use entity::survey_norms;

use crate::Result;

/// Advisory lock class of a workspace's norms (PostgreSQL).
const NORMS_LOCK: i32 = 7302;

/// Writers of scores hold it shared (a completion, a training, a pass's
/// rescoring); a norm change holds it exclusively, so no score is written on
/// norms that are being replaced. SQLite's write lock already serializes them.
pub(crate) async fn lock(tx: &DatabaseTransaction, ws: Uuid, exclusive: bool) -> Result<()> {
    if tx.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    let key = lock_key(ws);
    let function = if exclusive {
        "pg_advisory_xact_lock"
    } else {
        "pg_advisory_xact_lock_shared"
    };
    tx.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        format!("SELECT {function}($1, $2)"),
        [NORMS_LOCK.into(), key.into()],
    ))
    .await?;
    Ok(())
}

fn lock_key(ws: Uuid) -> i32 {
    i32::from_be_bytes(ws.as_bytes()[12..].try_into().expect("4 bytes"))
}

/// The current norm version (in a transaction holding [`lock`]).
pub(crate) async fn current_version<C: ConnectionTrait>(conn: &C, ws: Uuid) -> Result<i32> {
    let v: Option<Option<i32>> = survey_norms::Entity::find()
        .select_only()
        .column_as(survey_norms::Column::Version.max(), "v")
        .filter(survey_norms::Column::WorkspaceId.eq(ws))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(v.flatten().unwrap_or(0))
}
