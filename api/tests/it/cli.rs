//! The `traitforge` binary as an operator runs it.

use std::{process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{fresh_db, postgres_admin_url, redis_url};

fn traitforge(db_url: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_traitforge"));
    cmd.env("DATABASE_URL", db_url)
        .env_remove("REDIS_URL")
        .env_remove("BIND");
    if postgres_admin_url().is_some() {
        cmd.env("REDIS_URL", redis_url().expect("TEST_REDIS_URL"));
        cmd.env(
            "QUEUE_NAME",
            format!("traitforge.test.{}", uuid::Uuid::new_v4().simple()),
        );
    }
    cmd.kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn first_start_prints_a_default_workspace_and_key_that_work() {
    let db = fresh_db().await;
    // At the default log level, as a new user starts it.
    let mut child = traitforge(&db.url)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    // Both streams, in the order the lines arrive, until the key.
    let mut lines: Vec<String> = Vec::new();
    let (mut url, mut workspace, mut key) = (None, None, None);
    while key.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::select! {
                l = stdout.next_line() => l.unwrap().expect("stdout closed"),
                l = stderr.next_line() => l.unwrap().expect("stderr closed"),
            }
        })
        .await
        .expect("server printed nothing");
        if let Some(u) = line.split("is running at ").nth(1) {
            url = Some(u.trim().to_owned());
        }
        if let Some(id) = line.strip_prefix("Created workspace \"default\": ") {
            workspace = Some(id.to_owned());
        }
        key = line
            .split_whitespace()
            .find(|w| w.starts_with("tf_"))
            .map(str::to_owned);
        lines.push(line);
    }
    assert!(
        lines.len() <= 15,
        "the key comes within the first 15 lines: {lines:#?}"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let url = url.expect("the banner names the URL");
    let http = reqwest::Client::new();
    let body: Value = http
        .post(format!("{url}/graphql"))
        .bearer_auth(key.unwrap())
        .json(&json!({ "query": "{ viewer { workspace { id name } role } models { nodes { slug } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["data"]["viewer"]["workspace"]["id"],
        workspace.unwrap().as_str(),
        "{body}"
    );
    assert_eq!(body["data"]["viewer"]["workspace"]["name"], "default");
    assert_eq!(body["data"]["models"]["nodes"].as_array().unwrap().len(), 9);
    // The start page says where to go.
    let landing = http.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(landing.status(), 200);
    let page = landing.text().await.unwrap();
    for link in ["href=\"/graphql\"", "href=\"/docs\"", "href=\"/console\""] {
        assert!(page.contains(link), "{link} in {page}");
    }
    child.kill().await.unwrap();
}

#[tokio::test]
async fn workspace_and_key_commands_print_json_with_working_keys() {
    let db = fresh_db().await;
    let out = traitforge(&db.url)
        .args([
            "workspace",
            "create",
            "--name",
            "Night Owl Games",
            "--owner-email",
            "Lead@Example.com",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let workspace_id = created["workspace_id"].as_str().unwrap();
    assert!(created["api_key"].as_str().unwrap().starts_with("tf_"));

    let out = traitforge(&db.url)
        .args([
            "key",
            "create",
            "--workspace",
            workspace_id,
            "--role",
            "viewer",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(key["role"], "viewer");

    let engine = engine::Engine::open(&crate::support::queue_config(&db, false))
        .await
        .unwrap();
    let principal = engine
        .authenticate(key["api_key"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(principal.workspace_id.to_string(), workspace_id);
    assert_eq!(principal.role, engine::auth::Role::Viewer);

    // Same name again: a clear conflict, nothing written.
    let out = traitforge(&db.url)
        .args(["workspace", "create", "--name", "Night Owl Games"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // An unknown workspace id is refused.
    let out = traitforge(&db.url)
        .args([
            "key",
            "create",
            "--workspace",
            &uuid::Uuid::new_v4().to_string(),
            "--role",
            "admin",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("workspace not found"));
}
