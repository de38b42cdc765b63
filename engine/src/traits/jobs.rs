//! The trait runs' job kinds.

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use entity::trait_runs;

use crate::{
    Engine, Result,
    jobs::{JobHandler, JobKind},
};
use entity::states::RunStatus;

/// Evaluates one trait run (and queues the dependency runs after it).
#[derive(Serialize, Deserialize)]
pub struct EvaluateTrait {
    pub run_id: Uuid,
}

/// Evaluates runs of traits that share one scan of their source.
#[derive(Serialize, Deserialize)]
pub struct EvaluateTraits {
    pub run_ids: Vec<Uuid>,
}

#[async_trait::async_trait]
impl JobHandler for EvaluateTrait {
    const KIND: JobKind = JobKind::EvaluateTrait;
    const HEAVY: bool = true;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.execute_trait_run(self.run_id).await
    }

    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()> {
        fail_open_runs(tx, &[self.run_id], reason).await
    }
}

#[async_trait::async_trait]
impl JobHandler for EvaluateTraits {
    const KIND: JobKind = JobKind::EvaluateTraits;
    const HEAVY: bool = true;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.execute_trait_runs(&self.run_ids).await
    }

    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()> {
        fail_open_runs(tx, &self.run_ids, reason).await
    }
}

/// Fails the runs among `run_ids` that are still queued or running.
async fn fail_open_runs(tx: &impl ConnectionTrait, run_ids: &[Uuid], reason: &str) -> Result<()> {
    trait_runs::Entity::update_many()
        .col_expr(trait_runs::Column::Status, Expr::value(RunStatus::Failed))
        .col_expr(trait_runs::Column::Error, Expr::value(Some(reason)))
        .col_expr(
            trait_runs::Column::FinishedAt,
            Expr::value(Some(Utc::now())),
        )
        .filter(trait_runs::Column::Id.is_in(run_ids.to_vec()))
        .filter(trait_runs::Column::Status.is_in([RunStatus::Queued, RunStatus::Running]))
        .exec(tx)
        .await?;
    Ok(())
}
