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

/// How often a Redis worker proves it is alive, and how many proofs it may
/// miss before its unfinished jobs go back on the queue.
pub const REDIS_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
pub const REDIS_MISSED_HEARTBEATS: usize = 3;

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
        // A worker that dies (SIGKILL, lost node) holds its jobs until others
        // see it missed its heartbeats: 3 × 5 s, not apalis' default 5 min.
        let config = apalis_redis::Config::default()
            .queue(name)
            .heartbeat_interval(REDIS_HEARTBEAT)
            .missed_heartbeats(REDIS_MISSED_HEARTBEATS);
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
