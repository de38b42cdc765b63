use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::json;
use uuid::Uuid;

use crate::support::TestApp;

const ENQUEUE: &str = "mutation { runDiagnosticJob(message: \"hello\") { id status } }";
const POLL: &str = "query($id: ID!) { job(id: $id) { status worker attempts error finishedAt } }";

/// `traitforge-worker`, built next to this test binary (`scripts/test.sh` builds it first).
pub(crate) fn worker_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("traitforge-worker");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p worker` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

#[tokio::test]
async fn the_embedded_worker_runs_jobs_in_process() {
    let app = TestApp::spawn().await;
    let data = app.gql(ENQUEUE, json!({})).await;
    assert_eq!(data["runDiagnosticJob"]["status"], "QUEUED");
    let id = data["runDiagnosticJob"]["id"].clone();
    app.drain().await;

    let job = app.gql(POLL, json!({ "id": id })).await;
    assert_eq!(job["job"]["status"], "SUCCEEDED");
    assert_eq!(job["job"]["attempts"], 1);
    assert_eq!(job["job"]["worker"], worker::default_identity());
    assert!(job["job"]["finishedAt"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn jobs_cross_redis_to_a_separate_worker_process() {
    let app = TestApp::spawn_for_separate_workers().await;
    let worker_id = format!("it-worker-{}", Uuid::new_v4().simple());
    let mut child = tokio::process::Command::new(worker_bin())
        .env("DATABASE_URL", &app.config.database_url)
        .env("REDIS_URL", app.config.redis_url.as_deref().unwrap())
        .env("QUEUE_NAME", &app.config.queue_name)
        .env("WORKER_ID", &worker_id)
        .env("WORKER_CONCURRENCY", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn traitforge-worker");

    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.gql(ENQUEUE, json!({})).await["runDiagnosticJob"]["id"].clone());
    }
    app.drain().await;
    for id in ids {
        let job = app.gql(POLL, json!({ "id": id })).await;
        assert_eq!(job["job"]["status"], "SUCCEEDED", "{job}");
        assert_eq!(
            job["job"]["worker"],
            worker_id.as_str(),
            "not run by the separate process"
        );
    }

    // SIGTERM: the worker drains and exits cleanly.
    let pid = child.id().unwrap() as i32;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .expect("worker did not stop after SIGTERM")
        .unwrap();
    assert!(exit.success(), "worker exited with {exit}");
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_jobs_and_files_in_prometheus_text() {
    let app = TestApp::spawn().await;
    app.gql(
        "mutation { runDiagnosticJob(message: \"m\") { id } }",
        json!({}),
    )
    .await;
    app.drain().await;
    let resp = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    let text = resp.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        value("traitforge_jobs{kind=\"diagnostic\",status=\"succeeded\"}"),
        1.0
    );
    // The GraphQL call above (and the drain's requests) were counted.
    assert!(value("traitforge_http_requests_total{status=\"2xx\"}") >= 1.0);
    assert_eq!(
        value("traitforge_http_request_duration_seconds_count"),
        value("traitforge_http_requests_total{status=\"2xx\"}")
            + value("traitforge_http_requests_total{status=\"4xx\"}")
            + value("traitforge_http_requests_total{status=\"5xx\"}")
            + value("traitforge_http_requests_total{status=\"1xx\"}")
            + value("traitforge_http_requests_total{status=\"3xx\"}")
    );
    assert_eq!(
        value("traitforge_source_file_rows{outcome=\"loaded\"}"),
        0.0
    );
    app.stop().await;
}
