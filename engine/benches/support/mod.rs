//! Set-up shared by the benchmarks (also included by `api`'s): a new
//! PostgreSQL database with the schema, an engine on it with a Redis queue
//! nothing consumes (jobs run inline), and a workspace with its admin key.
//!
//! `BENCH_POSTGRES_URL=postgres://…/postgres` and `BENCH_REDIS_URL=redis://…`.

// Each benchmark binary compiles this module and reads only some fields.
#![allow(dead_code)]

use std::path::PathBuf;

use engine::{Engine, EngineConfig, auth::Principal};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

pub struct Bench {
    pub engine: Engine,
    pub principal: Principal,
    pub admin_key: String,
    pub workspace_id: Uuid,
    /// The database's name (also names its queue and any scratch folder).
    pub name: String,
    pub url: String,
    admin: DatabaseConnection,
}

impl Bench {
    /// `local_root` gets the database's name and returns the folder local
    /// sources may read, if the benchmark needs one.
    pub async fn start(local_root: impl FnOnce(&str) -> Option<PathBuf>) -> Bench {
        let admin_url = std::env::var("BENCH_POSTGRES_URL")
            .expect("BENCH_POSTGRES_URL=postgres://user@host:port/postgres");
        let redis = std::env::var("BENCH_REDIS_URL")
            .expect("BENCH_REDIS_URL=redis://host:port (the queue; jobs run inline here)");
        let name = format!("tf_bench_{}", Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
        let engine = Engine::open(&EngineConfig {
            database_url: url.clone(),
            redis_url: Some(redis),
            queue_name: format!("traitforge.bench.{name}"),
            local_source_root: local_root(&name),
            max_line_bytes: engine::ingest::DEFAULT_MAX_LINE_BYTES,
            prediction_min_completes: engine::prediction::DEFAULT_MIN_COMPLETES,
            survey: Default::default(),
            secrets_key: Some(engine::secrets::SecretsKey::generate().unwrap()),
            secrets_key_previous: None,
            outbound_allow: None,
            storage_timeout: engine::ingest::DEFAULT_STORAGE_TIMEOUT,
            segment_changes_days: engine::segments::changes::DEFAULT_KEPT_DAYS,
            history: Default::default(),
        })
        .await
        .unwrap();
        engine.migrate().await.unwrap();
        let ws = engine.create_workspace("bench", None).await.unwrap();
        let principal = engine.authenticate(&ws.admin_key.secret).await.unwrap();
        Bench {
            engine,
            principal,
            admin_key: ws.admin_key.secret,
            workspace_id: ws.workspace.id,
            name,
            url,
            admin,
        }
    }

    /// Drops the benchmark's database.
    pub async fn finish(self) {
        let Bench {
            engine,
            admin,
            name,
            ..
        } = self;
        drop(engine);
        admin
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
}
