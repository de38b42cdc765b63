//! What the console shows at a glance: counts per model, the last loads,
//! failing jobs, stale traits, and a trait's value distribution. Every figure
//! is one aggregate query in the database.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};
use uuid::Uuid;

use entity::{job_records, models, source_files, traits};

use crate::{
    Engine, Result,
    auth::{Permission, Principal},
    ingest::{RecordType, files::FileStatus},
    jobs::JobStatus,
    traits::definition::ResultType,
};

/// Rows of each list on the overview.
const RECENT: u64 = 10;
/// Bins of a numeric trait's histogram.
const BINS: i64 = 12;
/// Values of a text trait's top list.
const TOP: i64 = 10;

pub struct Overview {
    pub players: i64,
    /// (model slug, rows) for the event streams and the workspace's own models.
    pub rows_per_model: Vec<(String, i64)>,
    pub recent_files: Vec<source_files::Model>,
    pub failed_jobs: Vec<job_records::Model>,
    pub stale_traits: Vec<traits::Model>,
}

/// How a trait's values spread over the entities that have one.
pub enum Distribution {
    /// (from, to, entities) of equal-width bins.
    Histogram(Vec<(f64, f64, i64)>),
    /// The most frequent values (as text), with their entities.
    Top(Vec<(String, i64)>),
    /// No values yet, or values the console does not chart (lists).
    Empty,
}

async fn count(db: &impl ConnectionTrait, table: &str, ws: Uuid) -> Result<i64> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            format!("SELECT COUNT(*) AS n FROM \"{table}\" WHERE workspace_id = $1")
        }
        _ => format!("SELECT COUNT(*) AS n FROM \"{table}\" WHERE workspace_id = ?"),
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [ws.into()]))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0))
}

impl Engine {
    pub async fn overview(&self, p: &Principal) -> Result<Overview> {
        p.require(Permission::Read)?;
        let ws = p.workspace_id;
        let players = count(&self.db, "players", ws).await?;
        let mut rows_per_model = Vec::new();
        for t in RecordType::ALL.iter().filter(|t| **t != RecordType::Items) {
            rows_per_model.push((
                t.as_str().to_owned(),
                count(&self.db, t.as_str(), ws).await?,
            ));
        }
        for m in models::Entity::find()
            .filter(models::Column::WorkspaceId.eq(ws))
            .filter(models::Column::BuiltIn.eq(false))
            .order_by_asc(models::Column::Slug)
            .all(&self.db)
            .await?
        {
            rows_per_model.push((m.slug, count(&self.db, &m.table_name, ws).await?));
        }
        let recent_files = source_files::Entity::find()
            .filter(source_files::Column::WorkspaceId.eq(ws))
            .filter(source_files::Column::Status.is_in([FileStatus::Loaded, FileStatus::Failed]))
            .order_by_desc(source_files::Column::FinishedAt)
            .limit(RECENT)
            .all(&self.db)
            .await?;
        let failed_jobs = job_records::Entity::find()
            .filter(job_records::Column::WorkspaceId.eq(ws))
            .filter(job_records::Column::Status.eq(JobStatus::Failed))
            .order_by_desc(job_records::Column::Id)
            .limit(RECENT)
            .all(&self.db)
            .await?;
        let stale_traits = traits::Entity::find()
            .filter(traits::Column::WorkspaceId.eq(ws))
            .filter(traits::Column::StaleSince.is_not_null())
            .order_by_asc(traits::Column::Slug)
            .all(&self.db)
            .await?;
        Ok(Overview {
            players,
            rows_per_model,
            recent_files,
            failed_jobs,
            stale_traits,
        })
    }

    /// The distribution of a trait's values: a histogram for numbers, the
    /// most frequent values otherwise.
    pub async fn trait_distribution(&self, p: &Principal, id: Uuid) -> Result<Distribution> {
        let t = self.get_trait(p, id).await?;
        let backend = self.db.get_database_backend();
        let param = |n: usize| match backend {
            DbBackend::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        };
        let scope = format!("workspace_id = {} AND trait_id = {}", param(1), param(2));
        let values = || [t.workspace_id.into(), t.id.into()];
        match Some(t.result_type) {
            Some(ResultType::Number) => {
                let sql = format!(
                    "SELECT MIN(value_number) AS lo, MAX(value_number) AS hi FROM trait_values \
                     WHERE {scope} AND value_number IS NOT NULL"
                );
                let Some(row) = self
                    .db
                    .query_one_raw(Statement::from_sql_and_values(backend, sql, values()))
                    .await?
                else {
                    return Ok(Distribution::Empty);
                };
                let (Some(lo), Some(hi)) = (
                    row.try_get::<Option<f64>>("", "lo")?,
                    row.try_get::<Option<f64>>("", "hi")?,
                ) else {
                    return Ok(Distribution::Empty);
                };
                let width = ((hi - lo) / BINS as f64).max(f64::EPSILON);
                // The bin of each value, the maximum in the last bin; one GROUP BY.
                let bin = match backend {
                    DbBackend::Postgres => format!(
                        "LEAST(FLOOR((value_number - {lo}) / {width})::bigint, {last})",
                        last = BINS - 1
                    ),
                    _ => format!(
                        "MIN(CAST((value_number - {lo}) / {width} AS INTEGER), {last})",
                        last = BINS - 1
                    ),
                };
                let sql = format!(
                    "SELECT {bin} AS bin, COUNT(*) AS n FROM trait_values \
                     WHERE {scope} AND value_number IS NOT NULL GROUP BY 1 ORDER BY 1"
                );
                let mut counts = vec![0_i64; BINS as usize];
                for row in self
                    .db
                    .query_all_raw(Statement::from_sql_and_values(backend, sql, values()))
                    .await?
                {
                    let b = row.try_get::<i64>("", "bin")?.clamp(0, BINS - 1) as usize;
                    counts[b] += row.try_get::<i64>("", "n")?;
                }
                if hi == lo {
                    return Ok(Distribution::Histogram(vec![(lo, hi, counts.iter().sum())]));
                }
                Ok(Distribution::Histogram(
                    counts
                        .into_iter()
                        .enumerate()
                        .map(|(i, n)| (lo + width * i as f64, lo + width * (i + 1) as f64, n))
                        .collect(),
                ))
            }
            Some(ResultType::Text | ResultType::Boolean | ResultType::Timestamp) => {
                let column = match Some(t.result_type) {
                    Some(ResultType::Text) => "value_text",
                    Some(ResultType::Boolean) => "value_boolean",
                    _ => "value_timestamp",
                };
                let sql = format!(
                    "SELECT CAST({column} AS TEXT) AS v, COUNT(*) AS n FROM trait_values \
                     WHERE {scope} AND {column} IS NOT NULL GROUP BY {column} \
                     ORDER BY 2 DESC, 1 LIMIT {TOP}"
                );
                let top = self
                    .db
                    .query_all_raw(Statement::from_sql_and_values(backend, sql, values()))
                    .await?
                    .iter()
                    .map(|row| {
                        Ok((
                            row.try_get::<String>("", "v")?,
                            row.try_get::<i64>("", "n")?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(if top.is_empty() {
                    Distribution::Empty
                } else {
                    Distribution::Top(top)
                })
            }
            _ => Ok(Distribution::Empty),
        }
    }
}
