//! A worker process killed with SIGKILL in the middle of a large file, then
//! a new worker process (a new identity, as after a restart: `host:pid`):
//! once the dead one misses its heartbeats its job goes back on the queue,
//! and every line is loaded exactly once.

use std::{process::Stdio, time::Duration};

use engine::entity::source_files;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::{
    jobs::worker_bin,
    sources::{folder, table_count, write},
    support::TestApp,
};

const LINES: i64 = 60_000;

fn spawn_worker(app: &TestApp, worker_id: &str) -> tokio::process::Child {
    spawn_worker_with(app, worker_id, 1)
}

/// `traitforge-worker` on the test's database and queue, running `concurrency` jobs at once.
pub(crate) fn spawn_worker_with(
    app: &TestApp,
    worker_id: &str,
    concurrency: usize,
) -> tokio::process::Child {
    tokio::process::Command::new(worker_bin())
        .env("DATABASE_URL", &app.config.database_url)
        .env("REDIS_URL", app.config.redis_url.as_deref().unwrap())
        .env("QUEUE_NAME", &app.config.queue_name)
        .env("WORKER_ID", worker_id)
        .env("WORKER_CONCURRENCY", concurrency.to_string())
        .env(
            "LOCAL_SOURCE_ROOT",
            app.config.local_source_root.as_deref().unwrap(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn traitforge-worker")
}

async fn the_file(app: &TestApp) -> Option<source_files::Model> {
    source_files::Entity::find()
        .one(app.engine.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_worker_killed_mid_file_and_restarted_loads_every_line_once() {
    let app = TestApp::spawn_for_separate_workers().await;
    let (dir, name) = folder(&app);
    let body: String = (0..LINES)
        .map(|n| {
            format!(
                "{}\n",
                json!({ "timestamp": "2020-09-14 13:22:31", "user_id": format!("u{}", n % 977), "price": n })
            )
        })
        .collect();
    write(&dir, "purchases/big.ndjson", body.as_bytes());
    let (_, created) = app.local_source(&name).await;
    let source = created["data"]["createDataSource"]["id"].as_str().unwrap();
    app.gql(
        "mutation($id: ID!) { scanDataSource(id: $id) { id } }",
        json!({ "id": source }),
    )
    .await;

    let worker_id = format!("crash-{}", uuid::Uuid::new_v4().simple());
    let mut first = spawn_worker(&app, &worker_id);
    // Kill it once some batches have committed and before the file is done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        if let Some(f) = the_file(&app).await
            && f.checkpoint_line > 0
        {
            break f;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let after_kill = the_file(&app).await.unwrap();
    assert!(
        after_kill.checkpoint_line < LINES && after_kill.status.as_str() == "loading",
        "the file finished before the kill ({} of {LINES} at first sight, now {:?}); the test needs a larger file",
        at_kill.checkpoint_line,
        after_kill.status
    );
    let rows_at_kill = table_count(&app, "purchases").await;
    assert_eq!(
        rows_at_kill, after_kill.checkpoint_line,
        "rows beyond the checkpoint"
    );

    let mut second = spawn_worker(&app, &format!("{worker_id}-restarted"));
    // 3 missed heartbeats of 5 s, then the load itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let f = the_file(&app).await.unwrap();
        if f.status.as_str() == "loaded" {
            assert_eq!(f.rows_loaded, LINES);
            assert_eq!(f.rows_rejected, 0);
            break;
        }
        assert_ne!(f.status.as_str(), "failed", "{f:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finished: {f:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        table_count(&app, "purchases").await,
        LINES,
        "every line exactly once"
    );
    assert_eq!(
        engine::entity::quarantined_lines::Entity::find()
            .count(app.engine.db())
            .await
            .unwrap(),
        0
    );
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}
