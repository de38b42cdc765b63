//! Test harness: the real server on port 0 against a fresh database per test.
//!
//! Backend: SQLite (a new file) unless `TEST_POSTGRES_URL` points at a
//! PostgreSQL server, in which case each test gets a new database there.
//! PostgreSQL needs a Redis queue: `TEST_REDIS_URL` (each test gets its own
//! queue name). `scripts/test.sh` starts both and runs the suite on each backend.

use std::{path::PathBuf, time::Duration};

use api::{
    auth::HttpsPolicy,
    server::{RunningServer, ServerOptions},
};
use engine::{Engine, EngineConfig};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use uuid::Uuid;

pub struct TestDb {
    pub url: String,
    file: Option<PathBuf>,
    /// PostgreSQL: the server's admin URL and the test database's name.
    postgres: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            for suffix in ["", "-wal", "-shm", ".secrets-key"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", f.display()));
            }
        }
        // Dropped on a thread of its own: this may run inside the test's runtime.
        if let Some((admin, name)) = self.postgres.take() {
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let conn = Database::connect(&admin).await.ok()?;
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    conn.execute_unprepared(&sql).await.ok()?;
                    conn.close().await.ok()
                })
            });
            let _ = dropped.join();
        }
    }
}

pub fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

pub fn redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Redis is required where the behaviour under test is the Redis queue.
pub fn require_redis() -> String {
    redis_url().expect("TEST_REDIS_URL must point at a Redis server (scripts/test.sh starts one)")
}

/// A brand-new empty database on the backend under test.
pub async fn fresh_db() -> TestDb {
    fresh_db_on(postgres_admin_url()).await
}

/// A brand-new database on the PostgreSQL server of `admin`, or a SQLite file.
pub async fn fresh_db_on(admin: Option<String>) -> TestDb {
    let name = format!("tf_test_{}", Uuid::new_v4().simple());
    match admin {
        Some(admin) => {
            let conn = Database::connect(&admin)
                .await
                .expect("connect to TEST_POSTGRES_URL");
            conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            conn.close().await.unwrap();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            TestDb {
                url: format!("{base}/{name}"),
                file: None,
                postgres: Some((admin.clone(), name)),
            }
        }
        None => {
            let file = std::env::temp_dir().join(format!("{name}.db"));
            TestDb {
                url: format!("sqlite://{}?mode=rwc", file.display()),
                file: Some(file),
                postgres: None,
            }
        }
    }
}

/// Each test process reads local sources from one folder under the temp dir.
pub fn local_source_root() -> PathBuf {
    let root = std::env::temp_dir().join("traitforge-test-sources");
    std::fs::create_dir_all(&root).unwrap();
    root
}

pub fn queue_config(db: &TestDb, use_redis: bool) -> EngineConfig {
    queue_config_on(db, use_redis.then(require_redis))
}

/// With `redis`, the queue lives there; without it, on the test's Redis
/// where PostgreSQL needs one, else in the SQLite file.
pub fn queue_config_on(db: &TestDb, redis: Option<String>) -> EngineConfig {
    let redis_url = redis.or_else(|| postgres_admin_url().map(|_| require_redis()));
    EngineConfig {
        database_url: db.url.clone(),
        redis_url,
        // One queue per test, so parallel tests on one Redis never take each other's jobs.
        queue_name: format!("traitforge.test.{}", Uuid::new_v4().simple()),
        local_source_root: Some(local_source_root()),
        max_line_bytes: engine::ingest::DEFAULT_MAX_LINE_BYTES,
        prediction_min_completes: engine::prediction::DEFAULT_MIN_COMPLETES,
        // Trainings follow completions at once, unless a test debounces them.
        survey: engine::survey::SurveySettings {
            prediction_retrain: Duration::ZERO,
            ..Default::default()
        },
        secrets_key: Some(engine::secrets::SecretsKey::generate().unwrap()),
        secrets_key_previous: None,
        outbound_allow: None,
        storage_timeout: engine::ingest::DEFAULT_STORAGE_TIMEOUT,
        segment_changes_days: engine::segments::changes::DEFAULT_KEPT_DAYS,
        history: Default::default(),
    }
}

pub struct TestApp {
    pub server: Option<RunningServer>,
    pub engine: Engine,
    pub config: EngineConfig,
    pub url: String,
    pub workspace_id: Uuid,
    pub admin_key: String,
    pub http: reqwest::Client,
    /// Held so the database outlives the server (SQLite files are removed on drop).
    pub _db: TestDb,
}

pub struct Options {
    pub embedded_worker: bool,
    pub redis_queue: bool,
    pub https: HttpsPolicy,
    pub tls: Option<api::server::TlsFiles>,
    pub max_body_bytes: usize,
    pub worker_stall_limit: Duration,
    /// The queue on this Redis instead of `TEST_REDIS_URL`.
    pub redis_url: Option<String>,
    /// The database on this PostgreSQL server instead of `TEST_POSTGRES_URL`.
    pub postgres_admin_url: Option<String>,
    /// `OUTBOUND_ALLOW`: loopback by default, where the storage emulators and
    /// the tests' receivers listen; `None` for the policy as shipped.
    pub outbound_allow: Option<String>,
    /// `PREDICTION_RETRAIN_MINUTES` (tests retrain at once by default).
    pub prediction_retrain: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            embedded_worker: true,
            redis_queue: false,
            https: HttpsPolicy::default(),
            tls: None,
            max_body_bytes: api::rest::ingest::DEFAULT_MAX_BODY_BYTES,
            worker_stall_limit: worker::health::DEFAULT_STALL_LIMIT,
            redis_url: None,
            postgres_admin_url: None,
            outbound_allow: Some("127.0.0.1/32".into()),
            prediction_retrain: None,
        }
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Options::default()).await
    }

    /// No worker in the server, its queue on Redis: for tests that run (and
    /// kill) `traitforge-worker` processes of their own.
    pub async fn spawn_for_separate_workers() -> TestApp {
        TestApp::spawn_with(Options {
            embedded_worker: false,
            redis_queue: true,
            ..Options::default()
        })
        .await
    }

    pub async fn spawn_with(opts: Options) -> TestApp {
        show_logs();
        let db = match opts.postgres_admin_url {
            Some(admin) => fresh_db_on(Some(admin)).await,
            None => fresh_db().await,
        };
        let redis = opts
            .redis_url
            .or_else(|| opts.redis_queue.then(require_redis));
        let mut config = EngineConfig {
            outbound_allow: opts.outbound_allow,
            ..queue_config_on(&db, redis)
        };
        if let Some(retrain) = opts.prediction_retrain {
            config.survey.prediction_retrain = retrain;
        }
        let engine = Engine::open(&config).await.expect("open engine");
        engine.migrate().await.expect("migrate");
        let created = engine
            .create_workspace("Acme Games", None)
            .await
            .expect("workspace");
        let server = api::server::start(
            engine.clone(),
            ServerOptions {
                bind: "127.0.0.1:0".into(),
                tls: opts.tls,
                https: opts.https,
                embedded_worker: opts.embedded_worker.then_some(2),
                max_body_bytes: opts.max_body_bytes,
                graphql_max_bytes: api::server::DEFAULT_GRAPHQL_MAX_BYTES,
                worker_stall_limit: opts.worker_stall_limit,
            },
        )
        .await
        .expect("start server");
        TestApp {
            url: server.url(),
            server: Some(server),
            engine,
            config,
            workspace_id: created.workspace.id,
            admin_key: created.admin_key.secret,
            http: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap(),
            _db: db,
        }
    }

    /// POSTs a GraphQL document with `key` (or none) and returns status and body.
    pub async fn gql_as(
        &self,
        key: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.expect("json body"))
    }

    /// As the workspace's admin; panics on GraphQL errors and returns `data`.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.gql_as(Some(&self.admin_key), query, variables).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn create_key(&self, role: &str) -> (String, String) {
        let data = self
            .gql(
                "mutation($role: Role!) { createApiKey(name: \"test\", role: $role) { secret apiKey { id } } }",
                json!({ "role": role.to_uppercase() }),
            )
            .await;
        let k = &data["createApiKey"];
        (
            k["secret"].as_str().unwrap().into(),
            k["apiKey"]["id"].as_str().unwrap().into(),
        )
    }

    /// Waits until every queued job has finished, failing after 90 s.
    pub async fn drain(&self) {
        // Generous: object_store retries a stalled S3 request after its 30 s
        // timeout (seen once against moto), and that must not fail a test.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            if self.engine.unfinished_jobs().await.unwrap() == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job queue did not drain within 90 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
    }
}

/// `TEST_LOG=1` (or a filter such as `TEST_LOG=engine=debug`) prints the
/// server's logs with a test's output, so a failing test shows what the
/// server did; cargo shows them for failing tests only.
fn show_logs() {
    if let Some(filter) = std::env::var("TEST_LOG").ok().filter(|v| !v.is_empty()) {
        let filter = if filter == "1" {
            "info".to_owned()
        } else {
            filter
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// The GraphQL error code of the first error in a response body.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// Runs one of `e2e/`'s browser scripts with node and the Chromium of
/// `TEST_CHROMIUM`; its JSON summary (panics with its stderr if it failed).
pub async fn run_e2e(script: &str, args: &[String]) -> Value {
    let chromium = std::env::var("TEST_CHROMIUM")
        .ok()
        .filter(|s| !s.is_empty())
        .expect("TEST_CHROMIUM must name a Chromium binary (scripts/test.sh installs one)");
    let path = format!("{}/../e2e/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("node")
        .arg(path)
        .args(args)
        .env("CHROMIUM", chromium)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .expect("node (scripts/test.sh installs Node.js and e2e/node_modules)");
    assert!(
        out.status.success(),
        "browser run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints its summary as JSON")
}
