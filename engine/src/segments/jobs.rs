//! The segments' job kinds: members, then personas.

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, sea_query::Expr};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use entity::segments;

use super::ComputeStatus;
use crate::{
    Engine, Result,
    jobs::{JobHandler, JobKind},
};

/// Recomputes a segment's members (then its personas).
#[derive(Serialize, Deserialize)]
pub struct ComputeSegment {
    pub segment_id: Uuid,
}

/// Clusters a segment's scored members into personas.
#[derive(Serialize, Deserialize)]
pub struct ComputePersonas {
    pub segment_id: Uuid,
}

#[async_trait::async_trait]
impl JobHandler for ComputeSegment {
    const KIND: JobKind = JobKind::ComputeSegment;
    const HEAVY: bool = true;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.execute_segment_members(self.segment_id).await
    }

    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()> {
        fail(
            tx,
            self.segment_id,
            segments::Column::MembersStatus,
            segments::Column::MembersError,
            reason,
        )
        .await
    }
}

#[async_trait::async_trait]
impl JobHandler for ComputePersonas {
    const KIND: JobKind = JobKind::ComputePersonas;
    const HEAVY: bool = true;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.execute_personas(self.segment_id).await
    }

    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()> {
        fail(
            tx,
            self.segment_id,
            segments::Column::PersonasStatus,
            segments::Column::PersonasError,
            reason,
        )
        .await
    }
}

async fn fail(
    tx: &DatabaseTransaction,
    segment_id: Uuid,
    status: segments::Column,
    error: segments::Column,
    reason: &str,
) -> Result<()> {
    segments::Entity::update_many()
        .col_expr(status, Expr::value(ComputeStatus::Failed))
        .col_expr(error, Expr::value(Some(reason)))
        .filter(segments::Column::Id.eq(segment_id))
        .exec(tx)
        .await?;
    Ok(())
}
