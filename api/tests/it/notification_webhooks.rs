//! Notifications POSTed to the workspace's webhook, retried with backoff
//! until the receiver takes them (or given up after the last attempt).

use std::sync::{Arc, Mutex};

use engine::entity::notifications;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    sources::{folder, write},
    support::TestApp,
};

/// A webhook receiver on a real socket: answers 500 to the first `failures`
/// requests, then 200; returns its URL and the JSON bodies it was sent.
async fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            let body = loop {
                let n = socket.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len || n == 0 {
                        break body.to_owned();
                    }
                }
            };
            let count = {
                let mut b = seen.lock().unwrap();
                b.push(serde_json::from_str(&body).unwrap_or(Value::Null));
                b.len()
            };
            let status = if count <= failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = socket
                .write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    (url, bodies)
}

impl TestApp {
    async fn set_webhook(&self, url: &str) {
        let d = self
            .gql(
                "mutation($u: String) { setNotificationWebhook(url: $u) }",
                json!({ "u": url }),
            )
            .await;
        assert_eq!(d["setNotificationWebhook"], url);
    }

    /// Scans a folder holding one empty file: one invalid_format notification.
    async fn raise_notification(&self) -> std::path::PathBuf {
        let (dir, name) = folder(self);
        write(&dir, "logins/empty.json", b"");
        let (_, created) = self.local_source(&name).await;
        self.scan(created["data"]["createDataSource"]["id"].as_str().unwrap())
            .await;
        dir
    }

    async fn notifications(&self) -> Value {
        self.gql(
            "{ notifications { nodes { kind path deliveryStatus deliveryAttempts deliveryError deliveredAt } } }",
            json!({}),
        )
        .await["notifications"]["nodes"]
            .clone()
    }
}

#[tokio::test]
async fn notifications_reach_the_webhook_after_retries() {
    let app = TestApp::spawn().await;
    let (url, bodies) = receiver(2).await;
    app.set_webhook(&url).await;
    let dir = app.raise_notification().await;
    app.drain().await;

    let notes = app.notifications().await;
    let note = &notes[0];
    assert_eq!(note["kind"], "invalid_format", "{notes}");
    assert_eq!(note["deliveryStatus"], "delivered", "{notes}");
    assert_eq!(note["deliveryAttempts"], 3);
    assert!(note["deliveredAt"].is_string());
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "two failures, then the delivery");
    let sent = &bodies[2];
    assert_eq!(sent["kind"], "invalid_format");
    assert_eq!(sent["path"], "logins/empty.json");
    assert_eq!(sent["workspace_id"], app.workspace_id.to_string());
    assert!(
        sent["message"].as_str().unwrap().contains("empty"),
        "{sent}"
    );
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_given_up_on_with_the_reason() {
    let app = TestApp::spawn().await;
    let (url, bodies) = receiver(usize::MAX).await;
    app.set_webhook(&url).await;
    let dir = app.raise_notification().await;
    app.drain().await;
    let note = &app.notifications().await[0];
    assert_eq!(note["deliveryStatus"], "failed", "{note}");
    assert_eq!(
        note["deliveryAttempts"],
        engine::ingest::webhooks::MAX_ATTEMPTS
    );
    assert!(
        note["deliveryError"].as_str().unwrap().contains("500"),
        "{note}"
    );
    assert_eq!(
        bodies.lock().unwrap().len(),
        engine::ingest::webhooks::MAX_ATTEMPTS as usize
    );
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn without_a_webhook_nothing_is_sent_and_bad_urls_are_refused() {
    let app = TestApp::spawn().await;
    let dir = app.raise_notification().await;
    app.drain().await;
    assert!(app.notifications().await[0]["deliveryStatus"].is_null());
    for bad in ["not a url", "ftp://example.com/x"] {
        let (_, body) = app
            .gql_as(
                Some(&app.admin_key),
                "mutation($u: String) { setNotificationWebhook(url: $u) }",
                json!({ "u": bad }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["field"], "url",
            "{bad}: {body}"
        );
    }
    let (editor, _) = app.create_key("editor").await;
    let (_, body) = app
        .gql_as(
            Some(&editor),
            "mutation { setNotificationWebhook(url: \"http://127.0.0.1:9/x\") }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "forbidden",
        "{body}"
    );
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn segment_entries_and_exits_are_recorded_and_sent_to_the_webhook() {
    let app = TestApp::spawn().await;
    let (url, bodies) = receiver(0).await;
    app.set_webhook(&url).await;
    let buy = |user: &str, price: f64| {
        serde_json::json!({ "timestamp": "2026-11-20 10:00:00", "user_id": user, "price": price })
            .to_string()
            + "\n"
    };
    let body = buy("u1", 10.0) + &buy("u2", 50.0) + &buy("u3", 100.0);
    app.post_events(Some(&app.admin_key), "purchases", body)
        .await;
    let ctx = crate::trait_values::catalog_ids(&app).await;
    crate::trait_values::create(
        &app,
        serde_json::json!({ "name": "Spend", "parent_model_id": ctx.players, "trait_type": "aggregation",
            "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "sum", "column": "price" },
            "result_type": "number", "refresh": "on_load" }),
    )
    .await;
    app.drain().await;
    let (status, _) = crate::segments::create_segment(
        &app,
        serde_json::json!({ "name": "Big", "filter": { "trait": "spend", "op": ">", "value": 40 } }),
    )
    .await;
    assert_eq!(status, 201);
    app.drain().await;
    // The first computation makes the members: nothing entered or left.
    assert_eq!(changes(&app).await["nodes"], serde_json::json!([]));

    // New data: u1 enters. A narrower filter: u1 and u2 leave.
    app.post_events(Some(&app.admin_key), "purchases", buy("u1", 40.0))
        .await;
    app.drain().await;
    let (status, _) = app
        .rest(
            reqwest::Method::PUT,
            "/segments/big",
            Some(serde_json::json!({ "filter": { "trait": "spend", "op": ">", "value": 60 } })),
        )
        .await;
    assert_eq!(status, 200);
    app.drain().await;
    let got = changes(&app).await;
    let mut listed: Vec<(String, String)> = got["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["userId"].as_str().unwrap().into(),
                n["change"].as_str().unwrap().into(),
            )
        })
        .collect();
    // Newest first: the exits, then the entry.
    assert_eq!(listed.pop(), Some(("u1".into(), "ENTERED".into())), "{got}");
    listed.sort();
    assert_eq!(
        listed,
        [
            ("u1".into(), "EXITED".into()),
            ("u2".into(), "EXITED".into())
        ],
        "{got}"
    );
    assert!(got["pageInfo"]["endCursor"].is_null());

    let sent: Vec<Value> = bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b["kind"] == "segment_membership")
        .cloned()
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0]["segment"], "big");
    assert_eq!(sent[0]["entered"], serde_json::json!(["u1"]));
    assert_eq!(sent[0]["exited"], serde_json::json!([]));
    let mut exited: Vec<String> = serde_json::from_value(sent[1]["exited"].clone()).unwrap();
    exited.sort();
    assert_eq!(exited, ["u1", "u2"]);
    assert!(sent[1]["at"].is_string());

    // Erasure removes the player's changes, and their id from the
    // notifications that announced them; no table names u2 any more.
    assert!(
        !tables_naming(&app, "u2").await.is_empty(),
        "u2 is there before"
    );
    crate::erasure::erase(&app, &app.admin_key, "u2").await;
    let got = changes(&app).await;
    assert!(!got.to_string().contains("\"u2\""), "{got}");
    assert_eq!(tables_naming(&app, "u2").await, Vec::<String>::new());
    let payloads = notifications::Entity::find()
        .all(app.engine.db())
        .await
        .unwrap();
    let exited: Vec<Value> = payloads
        .iter()
        .filter_map(|n| n.payload.as_ref().map(|p| p["exited"].clone()))
        .collect();
    assert!(
        exited.contains(&json!(["u1"])),
        "u1 still announced: {exited:?}"
    );
    app.stop().await;
}

/// `table.column` of every text column (of every table of the product) whose
/// value is `id`, or holds it as a JSON string.
async fn tables_naming(app: &TestApp, id: &str) -> Vec<String> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let db = app.engine.db();
    let backend = db.get_database_backend();
    let columns = match backend {
        DbBackend::Postgres => {
            "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
             WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying', 'jsonb', 'json')"
        }
        _ => {
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'"
        }
    };
    let quoted = json!(id).to_string();
    let mut naming = Vec::new();
    for row in db
        .query_all_raw(Statement::from_string(backend, columns))
        .await
        .unwrap()
    {
        let (t, c): (String, String) =
            (row.try_get("", "t").unwrap(), row.try_get("", "c").unwrap());
        // apalis' own tables hold queued job payloads, never user ids.
        if ["Jobs", "Workers", "_sqlx_migrations", "seaql_migrations"].contains(&t.as_str()) {
            continue;
        }
        let sql = match backend {
            DbBackend::Postgres => format!(
                "SELECT COUNT(*) AS n FROM \"{t}\" WHERE CAST(\"{c}\" AS text) = $1 OR strpos(CAST(\"{c}\" AS text), $2) > 0"
            ),
            _ => format!(
                "SELECT COUNT(*) AS n FROM \"{t}\" WHERE CAST(\"{c}\" AS TEXT) = ? OR instr(CAST(\"{c}\" AS TEXT), ?) > 0"
            ),
        };
        let stmt = Statement::from_sql_and_values(backend, sql, [id.into(), quoted.clone().into()]);
        let n: i64 = db
            .query_one_raw(stmt)
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
        if n > 0 {
            naming.push(format!("{t}.{c}"));
        }
    }
    naming
}

/// The segment `big`'s changes, newest first.
async fn changes(app: &TestApp) -> Value {
    app.gql(
        "{ segmentChanges(segment: \"big\", first: 10) { nodes { userId change } pageInfo { endCursor } } }",
        json!({}),
    )
    .await["segmentChanges"]
        .clone()
}
