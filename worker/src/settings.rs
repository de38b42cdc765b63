//! Settings shared by both binaries (environment variables with clap flags of the same meaning).

use clap::{Args, ValueEnum};
use engine::{EngineConfig, jobs::queue::DEFAULT_QUEUE_NAME};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
pub struct CommonArgs {
    /// Database: `sqlite://FILE?mode=rwc` (embedded) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://traitforge.db?mode=rwc",
        global = true
    )]
    pub database_url: String,
    /// Redis for the job queue; without it the queue lives in the SQLite file.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// Queue name on the backend; change it only to run several instances on one Redis.
    #[arg(long, env = "QUEUE_NAME", default_value = DEFAULT_QUEUE_NAME, global = true)]
    pub queue_name: String,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Jobs run at once by a worker (in-process or `traitforge-worker`).
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4, global = true)]
    pub worker_concurrency: usize,
    /// The only folder `local` data sources may read from.
    #[arg(long, env = "LOCAL_SOURCE_ROOT", global = true)]
    pub local_source_root: Option<std::path::PathBuf>,
    /// Input lines longer than this (bytes) are quarantined, never buffered.
    #[arg(long, env = "MAX_LINE_BYTES", default_value_t = engine::ingest::DEFAULT_MAX_LINE_BYTES, global = true)]
    pub max_line_bytes: usize,
    /// Survey completes needed before psych scores are predicted for everyone else.
    #[arg(long, env = "PREDICTION_MIN_COMPLETES", default_value_t = engine::prediction::DEFAULT_MIN_COMPLETES, global = true)]
    pub prediction_min_completes: u64,
    /// Complete respondents from whom the workspace's own norms replace the
    /// instrument's provisional ones (T = 50 + 10·(raw − mean)/sd over them).
    #[arg(long, env = "NORM_MIN_COMPLETES", default_value_t = engine::survey::norms::DEFAULT_NORM_MIN_COMPLETES, global = true)]
    pub norm_min_completes: u64,
    /// After the first training, survey completions retrain the prediction
    /// at most once per this many minutes (fractions allowed).
    #[arg(long, env = "PREDICTION_RETRAIN_MINUTES", default_value_t = engine::survey::norms::DEFAULT_RETRAIN_MINUTES, global = true)]
    pub prediction_retrain_minutes: f64,
    /// Page submits one survey link may make per minute (429 beyond).
    #[arg(long, env = "SURVEY_SUBMITS_PER_MINUTE", default_value_t = engine::survey::norms::DEFAULT_SUBMITS_PER_MINUTE, global = true)]
    pub survey_submits_per_minute: u32,
    /// Seals bucket credentials at rest: 32 random bytes in base64, the same on
    /// every api and worker process. Optional with SQLite (a key file is made
    /// beside the database); needed with PostgreSQL to store credentials.
    #[arg(long, env = "SECRETS_KEY", hide_env_values = true, global = true)]
    pub secrets_key: Option<String>,
    /// While rotating `SECRETS_KEY`: the old key. Credentials it sealed are
    /// sealed again with the new one at start-up; then remove it.
    #[arg(
        long,
        env = "SECRETS_KEY_PREVIOUS",
        hide_env_values = true,
        global = true
    )]
    pub secrets_key_previous: Option<String>,
    /// Comma-separated CIDR ranges and host names a workspace may make the
    /// server call although they are private or loopback (storage emulators,
    /// an internal webhook receiver). Empty: none.
    #[arg(long, env = "OUTBOUND_ALLOW", global = true)]
    pub outbound_allow: Option<String>,
    /// Seconds one request to a bucket may take before it fails.
    #[arg(long, env = "STORAGE_TIMEOUT", default_value_t = engine::ingest::DEFAULT_STORAGE_TIMEOUT.as_secs(), global = true)]
    pub storage_timeout: u64,
    /// Days a segment's entries and exits (`segmentChanges`) are kept.
    #[arg(long, env = "SEGMENT_CHANGES_DAYS", default_value_t = engine::segments::changes::DEFAULT_KEPT_DAYS, global = true)]
    pub segment_changes_days: u32,
    /// Days finished job records, trait runs, settled notifications and
    /// source scans are kept (pruned hourly).
    #[arg(long, env = "HISTORY_DAYS", default_value_t = engine::retention::DEFAULT_HISTORY_DAYS, global = true)]
    pub history_days: u32,
    /// A trait's newest runs kept whatever their age.
    #[arg(long, env = "TRAIT_RUNS_KEPT", default_value_t = engine::retention::DEFAULT_TRAIT_RUNS_KEPT, global = true)]
    pub trait_runs_kept: u32,
}

/// By hand, so that `SECRETS_KEY` never reaches a log.
impl std::fmt::Debug for CommonArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommonArgs")
            .field("engine", &self.engine_config())
            .field("log_format", &self.log_format)
            .field("worker_concurrency", &self.worker_concurrency)
            .finish()
    }
}

impl CommonArgs {
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            queue_name: self.queue_name.clone(),
            local_source_root: self.local_source_root.clone(),
            max_line_bytes: self.max_line_bytes,
            prediction_min_completes: self.prediction_min_completes,
            survey: engine::survey::SurveySettings {
                norm_min_completes: self.norm_min_completes,
                prediction_retrain: std::time::Duration::try_from_secs_f64(
                    self.prediction_retrain_minutes.max(0.0) * 60.0,
                )
                .unwrap_or(std::time::Duration::MAX),
                submits_per_minute: self.survey_submits_per_minute,
            },
            secrets_key: self.secrets_key.clone(),
            secrets_key_previous: self.secrets_key_previous.clone(),
            outbound_allow: self.outbound_allow.clone(),
            storage_timeout: std::time::Duration::from_secs(self.storage_timeout),
            segment_changes_days: self.segment_changes_days,
            history: engine::retention::HistoryRetention {
                days: self.history_days,
                trait_runs_kept: self.trait_runs_kept,
            },
        }
    }

    /// Logs go to stderr so that CLI output on stdout stays machine-readable.
    pub fn init_tracing(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            // Our own events at info; libraries' chatter (migrations applied,
            // workers started, the listener) only when asked for.
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }
}

/// `RUST_LOG` when unset.
pub const DEFAULT_LOG_FILTER: &str = "info,sea_orm_migration=warn,apalis=warn,apalis_core=warn,apalis_sql=warn,apalis_redis=warn,poem=warn,sqlx=warn";
