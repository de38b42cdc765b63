//! Operational counts for `/metrics`: set-based counts over the job records,
//! the file ledger and notification delivery, across workspaces (an
//! operator's view; no tenant data beyond counts).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QuerySelect, Statement};
use uuid::Uuid;

use entity::touched_players;

use crate::{Engine, Result};

/// One labelled gauge value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// (metric, help, SQL returning label columns then one numeric value, label names).
const QUERIES: [(&str, &str, &str, &[&str]); 5] = [
    (
        "traitforge_jobs",
        "Job records by kind and status.",
        "SELECT kind, status, COUNT(*) FROM job_records GROUP BY kind, status",
        &["kind", "status"],
    ),
    (
        "traitforge_outbox_waiting",
        "Queued jobs not yet handed to the queue (the outbox), by kind.",
        "SELECT kind, COUNT(*) FROM job_records WHERE status = 'queued' \
         AND dispatched_at IS NULL GROUP BY kind",
        &["kind"],
    ),
    (
        "traitforge_source_files",
        "Files in the ingestion ledger by status.",
        "SELECT status, COUNT(*) FROM source_files GROUP BY status",
        &["status"],
    ),
    (
        "traitforge_source_file_rows",
        "Rows loaded and rejected from files, over the whole ledger.",
        "SELECT 'loaded', CAST(COALESCE(SUM(rows_loaded), 0) AS BIGINT) FROM source_files \
         UNION ALL SELECT 'rejected', CAST(COALESCE(SUM(rows_rejected), 0) AS BIGINT) FROM source_files",
        &["outcome"],
    ),
    (
        "traitforge_notifications",
        "Notifications by webhook delivery status.",
        "SELECT COALESCE(delivery_status, 'none'), COUNT(*) FROM notifications \
         GROUP BY COALESCE(delivery_status, 'none')",
        &["delivery_status"],
    ),
];

impl Engine {
    pub async fn metrics(&self) -> Result<Vec<Sample>> {
        let backend = self.db.get_database_backend();
        let mut samples = Vec::new();
        for (name, help, sql, labels) in QUERIES {
            for row in self
                .db
                .query_all_raw(Statement::from_string(backend, sql))
                .await?
            {
                let mut values = Vec::new();
                for (i, label) in labels.iter().enumerate() {
                    let v: Option<String> = row.try_get_by_index(i)?;
                    values.push((*label, v.unwrap_or_default()));
                }
                let value = row.try_get_by_index::<i64>(labels.len())? as f64;
                samples.push(Sample {
                    name,
                    help,
                    labels: values,
                    value,
                });
            }
        }
        self.incremental_lag(&mut samples).await?;
        Ok(samples)
    }

    /// Per workspace: players committed by loads and not yet taken by an
    /// incremental pass, and how long the oldest of them has waited.
    async fn incremental_lag(&self, samples: &mut Vec<Sample>) -> Result<()> {
        let waiting: Vec<(Uuid, i64, Option<DateTime<Utc>>)> = touched_players::Entity::find()
            .select_only()
            .column(touched_players::Column::WorkspaceId)
            .column_as(touched_players::Column::Seq.count(), "n")
            .column_as(touched_players::Column::CommittedAt.min(), "oldest")
            .group_by(touched_players::Column::WorkspaceId)
            .into_tuple()
            .all(&self.db)
            .await?;
        let now = Utc::now();
        for (ws, n, oldest) in waiting {
            let labels = vec![("workspace", ws.to_string())];
            samples.push(Sample {
                name: "traitforge_incremental_waiting_players",
                help: "Players new data touched, waiting for their workspace's incremental pass.",
                labels: labels.clone(),
                value: n as f64,
            });
            let lag = oldest.map_or(0.0, |t| (now - t).num_milliseconds() as f64 / 1000.0);
            samples.push(Sample {
                name: "traitforge_incremental_lag_seconds",
                help: "Age of the oldest committed load an incremental pass has not taken yet.",
                labels,
                value: lag,
            });
        }
        Ok(())
    }
}
