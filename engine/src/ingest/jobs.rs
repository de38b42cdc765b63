//! Ingestion's job kinds: scanning a source, loading a file, delivering a
//! notification.

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, sea_query::Expr};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use entity::{
    ingestion_runs, notifications, source_files,
    states::{DeliveryStatus, FileStatus, RunStatus},
};

use crate::{
    Engine, Result,
    jobs::{JobHandler, JobKind},
};

/// Lists a source and queues a load per new file.
#[derive(Serialize, Deserialize)]
pub struct ScanSource {
    pub run_id: Uuid,
}

/// Loads one file of the ledger.
#[derive(Serialize, Deserialize)]
pub struct LoadFile {
    pub file_id: Uuid,
}

/// POSTs a notification to the workspace's webhook, with retries.
#[derive(Serialize, Deserialize)]
pub struct DeliverNotification {
    pub notification_id: Uuid,
}

#[async_trait::async_trait]
impl JobHandler for ScanSource {
    const KIND: JobKind = JobKind::ScanSource;
    const HEAVY: bool = false;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.execute_scan(self.run_id).await
    }

    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()> {
        ingestion_runs::Entity::update_many()
            .col_expr(
                ingestion_runs::Column::Status,
                Expr::value(RunStatus::Failed),
            )
            .col_expr(ingestion_runs::Column::Error, Expr::value(Some(reason)))
            .col_expr(
                ingestion_runs::Column::FinishedAt,
                Expr::value(Some(Utc::now())),
            )
            .filter(ingestion_runs::Column::Id.eq(self.run_id))
            .filter(ingestion_runs::Column::Status.is_in([RunStatus::Queued, RunStatus::Running]))
            .exec(tx)
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl JobHandler for LoadFile {
    const KIND: JobKind = JobKind::LoadFile;
    const HEAVY: bool = true;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.execute_load_file(self.file_id).await
    }

    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()> {
        source_files::Entity::update_many()
            .col_expr(
                source_files::Column::Status,
                Expr::value(FileStatus::Failed),
            )
            .col_expr(source_files::Column::Error, Expr::value(Some(reason)))
            .col_expr(
                source_files::Column::FinishedAt,
                Expr::value(Some(Utc::now())),
            )
            .filter(source_files::Column::Id.eq(self.file_id))
            .filter(source_files::Column::Status.is_in([FileStatus::Queued, FileStatus::Loading]))
            .exec(tx)
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl JobHandler for DeliverNotification {
    const KIND: JobKind = JobKind::DeliverNotification;
    const HEAVY: bool = false;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.deliver_notification(self.notification_id).await
    }

    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()> {
        notifications::Entity::update_many()
            .col_expr(
                notifications::Column::DeliveryStatus,
                Expr::value(Some(DeliveryStatus::Failed)),
            )
            .col_expr(
                notifications::Column::DeliveryError,
                Expr::value(Some(reason)),
            )
            .filter(notifications::Column::Id.eq(self.notification_id))
            .filter(notifications::Column::DeliveryStatus.eq(DeliveryStatus::Pending))
            .exec(tx)
            .await?;
        Ok(())
    }
}
