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
    if exclusive {
        crate::db::advisory_xact_lock(tx, NORMS_LOCK, ws).await
    } else {
        crate::db::advisory_xact_lock_shared(tx, NORMS_LOCK, ws).await
    }
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
