//! The job queue handle: apalis SQLite storage in the embedded database file,
//! or apalis Redis storage when `REDIS_URL` is set. The queue name is fixed
//! here (not apalis' default, the Rust type path) so refactors never orphan jobs.

use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use sea_orm::DatabaseConnection;

use super::Job;
use crate::{Error, Result};

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

/// The SQLite queue's own connections wait this long for the write lock: a
/// long load or trait run holds it for seconds, and a queue write that gives
/// up (5 s is sqlx' default) used to kill the worker.
pub const SQLITE_QUEUE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// The SQLite worker writes a heartbeat this often (apalis' default is 30 s);
/// `/readyz` reads worker liveness from these.
pub const SQLITE_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

impl Queue {
    /// On its own small pool of the database file (with a long busy timeout),
    /// or on sea-orm's pool for an in-memory database (another pool would be
    /// another database); creates apalis' own tables if needed.
    pub async fn sqlite(db: &DatabaseConnection, url: &str, name: &str) -> Result<Queue> {
        let unavailable =
            |e: &dyn std::fmt::Display| Error::Unavailable(format!("job queue setup: {e}"));
        let pool = if url.contains(":memory:") || url.contains("mode=memory") {
            db.get_sqlite_connection_pool().clone()
        } else {
            let options = url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .map_err(|e| unavailable(&e))?
                .busy_timeout(SQLITE_QUEUE_BUSY_TIMEOUT);
            sqlx::sqlite::SqlitePoolOptions::new()
                // The worker's fetches and heartbeats beside the pushes of requests.
                .max_connections(4)
                .connect_with(options)
                .await
                .map_err(|e| unavailable(&e))?
        };
        SqliteStorage::setup(&pool)
            .await
            .map_err(|e| unavailable(&e))?;
        let config = apalis_sqlite::Config::default()
            .queue(name)
            .heartbeat_interval(SQLITE_HEARTBEAT)
            .missed_heartbeats(REDIS_MISSED_HEARTBEATS);
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

    /// The Redis server's `run_id`, new after every restart (a restart
    /// without persistence loses the jobs it held).
    pub async fn redis_run_id(&self) -> Result<String> {
        let Queue::Redis(s) = self else {
            return Ok(String::new());
        };
        let mut conn = s.clone().get_connection().clone();
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .map_err(|e| Error::Unavailable(format!("redis: {e}")))?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .unwrap_or_default()
            .trim()
            .to_owned())
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
