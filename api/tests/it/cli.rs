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

/// A `traitforge serve` started at the default log level, as a new user
/// starts it, with what it printed up to the key.
struct Served {
    child: tokio::process::Child,
    lines: Vec<String>,
    url: Option<String>,
    workspace: Option<String>,
    key: Option<String>,
}

async fn serve(db_url: &str, envs: &[(&str, &str)]) -> Served {
    let mut child = traitforge(db_url)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .envs(envs.iter().copied())
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
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    Served {
        child,
        lines,
        url,
        workspace,
        key,
    }
}

/// The server's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test]
async fn first_start_prints_a_default_workspace_and_key_that_work() {
    let db = fresh_db().await;
    let Served {
        mut child,
        lines,
        url,
        workspace,
        key,
    } = serve(&db.url, &[]).await;
    assert!(
        lines.len() <= 15,
        "the key comes within the first 15 lines: {lines:#?}"
    );
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

/// A 4 MiB document of 200 000 aliases (well under the body limit) is refused
/// before it is parsed, in GraphQL's error shape, and costs the server next
/// to no memory; a real query still answers.
#[tokio::test]
async fn a_huge_graphql_document_is_refused_before_parsing() {
    let db = fresh_db().await;
    let served = serve(&db.url, &[("MAX_BODY_BYTES", "16777216")]).await;
    let (url, key) = (served.url.unwrap(), served.key.unwrap());
    let pid = served.child.id().unwrap();
    let http = reqwest::Client::new();
    let ask = |query: String| {
        http.post(format!("{url}/graphql"))
            .bearer_auth(&key)
            .json(&json!({ "query": query }))
            .send()
    };
    let small = ask("{ viewer { role } }".into()).await.unwrap();
    assert_eq!(small.status(), 200);
    let before = peak_rss_kib(pid);
    let aliases: String = (0..200_000)
        .map(|i| format!("alias{i}: __typename "))
        .collect();
    let huge = format!("{{ {aliases} }}");
    assert!(huge.len() > 4_000_000, "{}", huge.len());
    let answer = ask(huge).await.unwrap();
    assert_eq!(answer.status(), 413);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "payload_too_large",
        "{body}"
    );
    assert!(body["data"].is_null());
    let grown = peak_rss_kib(pid).saturating_sub(before);
    assert!(grown < 32 * 1024, "peak RSS grew by {grown} KiB");
    let again = ask("{ viewer { role } }".into()).await.unwrap();
    assert_eq!(again.status(), 200);
}
