//! The job queue handle: apalis SQLite storage in the embedded database file,
//! or apalis Redis storage when `REDIS_URL` is set. The queue name is fixed
//! here (not apalis' default, the Rust type path) so refactors never orphan jobs.

use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use sea_orm::DatabaseConnection;

use crate::{Error, Result, jobs::Job};

pub const DEFAULT_QUEUE_NAME: &str = "traitforge.jobs";

#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteStorage<Job>),
    Redis(RedisStorage<Job>),
}

impl Queue {
    /// Shares sea-orm's SQLite pool; creates apalis' own tables if needed.
    pub async fn sqlite(db: &DatabaseConnection, name: &str) -> Result<Queue> {
        let pool = db.get_sqlite_connection_pool().clone();
        SqliteStorage::setup(&pool)
            .await
            .map_err(|e| Error::Unavailable(format!("job queue setup: {e}")))?;
        let config = apalis_sqlite::Config::default().queue(name);
        Ok(Queue::Sqlite(SqliteStorage::new(&pool).with_config(config)))
    }

    pub async fn redis(url: &str, name: &str) -> Result<Queue> {
        let conn = apalis_redis::connect(url)
            .await
            .map_err(|e| Error::Unavailable(format!("redis {}: {e}", crate::db::redact(url))))?;
        let config = apalis_redis::Config::default().queue(name);
        Ok(Queue::Redis(RedisStorage::new(conn).with_config(config)))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Queue::Sqlite(_) => "sqlite",
            Queue::Redis(_) => "redis",
        }
    }

    pub async fn push(&self, job: Job) -> Result<()> {
        let result = match self {
            Queue::Sqlite(s) => s.clone().push(job).await.map_err(|e| e.to_string()),
            Queue::Redis(s) => s.clone().push(job).await.map_err(|e| e.to_string()),
        };
        result.map_err(|e| Error::Unavailable(format!("job queue: {e}")))
    }

    /// Redis must answer PING; the SQLite queue lives in the database already checked.
    pub async fn ping(&self) -> Result<()> {
        if let Queue::Redis(s) = self {
            let mut conn = s.clone().get_connection().clone();
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| Error::Unavailable(format!("redis: {e}")))?;
        }
        Ok(())
    }
}
