//! The Traitforge domain: every rule lives here, behind [`Engine`]. Transports
//! (`api`, `worker`) authenticate, call a service method and render its result.

pub mod auth;
pub mod catalog;
pub mod console_sessions;
pub mod custom_models;
pub mod db;
pub mod erasure;
mod error;
pub mod ingest;
mod job_kinds;
pub mod jobs;
pub mod keys;
#[cfg(test)]
mod layers;
pub mod limits;
pub mod metrics;
pub mod models;
mod norm_version;
pub mod outbound;
pub mod overview;
pub mod pagination;
pub mod prediction;
pub mod predictive;
pub mod retention;
pub mod secrets;
pub mod segments;
pub mod slug;
pub mod survey;
#[cfg(test)]
mod test_engine;
mod text_enum;
pub mod traits;
pub mod workspaces;
mod zscore;

pub use entity;
pub use error::{Error, Result};

use sea_orm::{DatabaseConnection, DbBackend};

use jobs::queue::Queue;

/// Where the engine keeps its data and its queue.
#[derive(Clone)]
pub struct EngineConfig {
    pub database_url: String,
    pub redis_url: Option<String>,
    pub queue_name: String,
    /// The only folder `local` sources may read from (none: local sources are refused).
    pub local_source_root: Option<std::path::PathBuf>,
    /// Longer input lines are quarantined, never buffered further.
    pub max_line_bytes: usize,
    /// Survey completes needed before psych scores are predicted.
    pub prediction_min_completes: u64,
    /// Norms, retraining and rate limits of the survey.
    pub survey: survey::SurveySettings,
    /// `SECRETS_KEY`: seals bucket credentials at rest (see `secrets`).
    pub secrets_key: Option<String>,
    /// `SECRETS_KEY_PREVIOUS`: the key being rotated away from (opens only).
    pub secrets_key_previous: Option<String>,
    /// `OUTBOUND_ALLOW`: ranges and hosts a workspace may make the server call
    /// although private or loopback (see `outbound`).
    pub outbound_allow: Option<String>,
    /// `STORAGE_TIMEOUT`: the longest one request to a bucket may take.
    pub storage_timeout: std::time::Duration,
    /// `SEGMENT_CHANGES_DAYS`: how long segment entries and exits are kept.
    pub segment_changes_days: u32,
    /// `HISTORY_DAYS`, `TRAIT_RUNS_KEPT`: how much finished history is kept.
    pub history: retention::HistoryRetention,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("database_url", &db::redact(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(db::redact))
            .field("queue_name", &self.queue_name)
            .field("local_source_root", &self.local_source_root)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("prediction_min_completes", &self.prediction_min_completes)
            .field("survey", &self.survey)
            .field("secrets_key", &self.secrets_key.as_ref().map(|_| "…"))
            .field(
                "secrets_key_previous",
                &self.secrets_key_previous.as_ref().map(|_| "…"),
            )
            .field("outbound_allow", &self.outbound_allow)
            .field("storage_timeout", &self.storage_timeout)
            .finish()
    }
}

/// Cheap to clone: a connection pool and a queue handle.
#[derive(Clone)]
pub struct Engine {
    db: DatabaseConnection,
    queue: Queue,
    local_source_root: Option<std::path::PathBuf>,
    max_line_bytes: usize,
    prediction_min_completes: u64,
    survey_settings: survey::SurveySettings,
    /// Page submits per survey link (see `survey::rate_limit`).
    survey_limiter: std::sync::Arc<survey::RateLimiter>,
    secrets: Option<secrets::SecretsKey>,
    route_cache: std::sync::Arc<segments::route_cache::RouteCache>,
    key_cache: std::sync::Arc<auth::KeyCache>,
    /// Job kinds → their handlers (see `job_kinds`).
    registry: std::sync::Arc<jobs::Registry>,
    /// Jobs running in this process (see `jobs::recovery`).
    local_jobs: std::sync::Arc<jobs::LocalJobs>,
    /// SQLite: one write-heavy job at a time (see `JobHandler::HEAVY`).
    heavy_jobs: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    /// Every request made for a workspace goes through it.
    outbound: std::sync::Arc<outbound::OutboundPolicy>,
    storage_timeout: std::time::Duration,
    segment_changes_days: u32,
    history: retention::HistoryRetention,
}

impl Engine {
    /// Connects to the database and the queue. Does not migrate: the server
    /// does that at start-up (`traitforge serve` / `traitforge migrate`).
    pub async fn open(config: &EngineConfig) -> Result<Engine> {
        let secrets = secrets::engine_key(
            config.secrets_key.as_deref(),
            config.secrets_key_previous.as_deref(),
            &config.database_url,
        )?;
        let outbound = outbound::OutboundPolicy::parse(config.outbound_allow.as_deref())?;
        let db = db::connect(&config.database_url).await?;
        let queue = match (&config.redis_url, db.get_database_backend()) {
            (Some(url), _) => Queue::redis(url, &config.queue_name).await?,
            (None, DbBackend::Sqlite) => {
                Queue::sqlite(&db, &config.database_url, &config.queue_name).await?
            }
            (None, _) => {
                return Err(Error::invalid(
                    "REDIS_URL",
                    "is required when DATABASE_URL is not SQLite (the queue runs on Redis)",
                ));
            }
        };
        let heavy_jobs = (db.get_database_backend() == DbBackend::Sqlite)
            .then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(1)));
        Ok(Engine {
            db,
            queue,
            local_source_root: config.local_source_root.clone(),
            max_line_bytes: config.max_line_bytes.max(1),
            prediction_min_completes: config.prediction_min_completes.max(2),
            survey_settings: survey::SurveySettings {
                norm_min_completes: config.survey.norm_min_completes.max(2),
                ..config.survey
            },
            survey_limiter: std::sync::Arc::new(survey::RateLimiter::new(
                config.survey.submits_per_minute,
            )),
            secrets,
            route_cache: Default::default(),
            key_cache: Default::default(),
            registry: std::sync::Arc::new(job_kinds::registry()),
            local_jobs: Default::default(),
            heavy_jobs,
            outbound: std::sync::Arc::new(outbound),
            storage_timeout: config.storage_timeout,
            segment_changes_days: config.segment_changes_days,
            history: config.history,
        })
    }

    pub async fn migrate(&self) -> Result<()> {
        db::migrate(&self.db).await?;
        self.seal_stored_credentials().await
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Readiness: the database answers and, when configured, Redis does.
    pub async fn ready(&self) -> Result<()> {
        self.db
            .ping()
            .await
            .map_err(|e| Error::Unavailable(format!("database: {e}")))?;
        self.queue.ping().await
    }
}
