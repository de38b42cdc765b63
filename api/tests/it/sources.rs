//! Local folder sources: the reference's examples in NDJSON and CSV, flat and
//! hive-partitioned, gzipped or not, each file loaded exactly once; malformed
//! files become notifications or quarantine entries; paths stay inside
//! LOCAL_SOURCE_ROOT.

use std::path::{Path, PathBuf};

use engine::entity::{ingestion_runs, source_files, trait_values};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    ingest::reference_examples,
    support::{TestApp, error_code, local_source_root},
};

/// A new folder inside the app's workspace folder, and its path as a local source names it.
pub(crate) fn folder(app: &TestApp) -> (PathBuf, String) {
    let name = format!("src-{}", Uuid::new_v4().simple());
    let dir = local_source_root()
        .join(app.workspace_id.to_string())
        .join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    (dir, name)
}

pub(crate) fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

async fn gzip(bytes: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    async_compression::tokio::bufread::GzipEncoder::new(bytes)
        .read_to_end(&mut out)
        .await
        .unwrap();
    out
}

pub(crate) fn to_csv(records: &[Value]) -> Vec<u8> {
    let mut header: Vec<String> = Vec::new();
    for r in records {
        for k in r.as_object().unwrap().keys() {
            if !header.contains(k) {
                header.push(k.clone());
            }
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).unwrap();
    for r in records {
        w.write_record(header.iter().map(|h| match r.get(h) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            // Parameter lists travel as JSON text in their column.
            Some(other) => other.to_string(),
        }))
        .unwrap();
    }
    w.into_inner().unwrap()
}

impl TestApp {
    pub(crate) async fn local_source(&self, path: &str) -> (reqwest::StatusCode, Value) {
        self.gql_as(
            Some(&self.admin_key),
            "mutation($c: JSON!) { createDataSource(input: { name: \"Studio bucket\", kind: local, config: $c }) { id kind status hasCredentials } }",
            json!({ "c": { "path": path } }),
        )
        .await
    }

    pub(crate) async fn scan(&self, source_id: &str) -> Value {
        let run = self
            .gql(
                "mutation($id: ID!) { scanDataSource(id: $id) { id status } }",
                json!({ "id": source_id }),
            )
            .await;
        self.drain().await;
        self.gql(
            "query($id: ID!) { ingestionRun(id: $id) { status filesFound filesQueued filesSkipped skippedPaths error } }",
            json!({ "id": run["scanDataSource"]["id"] }),
        )
        .await["ingestionRun"]
            .clone()
    }

    pub(crate) async fn files(&self, source_id: &str) -> Vec<Value> {
        self.gql(
            "query($id: ID!) { dataSource(id: $id) { files { nodes { path format status rowsLoaded rowsRejected error } } } }",
            json!({ "id": source_id }),
        )
        .await["dataSource"]["files"]["nodes"]
            .as_array()
            .unwrap()
            .clone()
    }
}

pub(crate) async fn table_count(app: &TestApp, table: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.engine.db();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM \"{table}\""),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

#[tokio::test]
async fn every_record_type_loads_from_ndjson_and_csv_flat_and_partitioned_once() {
    let app = TestApp::spawn().await;
    let (dir, name) = folder(&app);
    let examples = reference_examples();
    for (folder, records) in &examples {
        let ndjson: String = records.iter().map(|r| format!("{r}\n")).collect();
        // Flat, with a timestamp in the name; and hive-partitioned CSV; and gzipped NDJSON.
        write(
            &dir,
            &format!("{folder}/{folder}_1600089751.json"),
            ndjson.as_bytes(),
        );
        write(
            &dir,
            &format!("{folder}/date=16000000000/load_id=fgdhb4gwv34t/{folder}.csv"),
            &to_csv(records),
        );
        write(
            &dir,
            &format!("{folder}/archive/{folder}_1600089777.ndjson.gz"),
            &gzip(ndjson.as_bytes()).await,
        );
    }
    write(&dir, "purchases/README.txt", b"not data");
    write(&dir, "elsewhere/purchases.json", b"{}\n");

    let (_, created) = app.local_source(&name).await;
    let source = created["data"]["createDataSource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created["data"]["createDataSource"]["hasCredentials"], false);
    let check = app
        .gql(
            "mutation($id: ID!) { testDataSource(id: $id) { ok message } }",
            json!({ "id": source }),
        )
        .await;
    assert_eq!(check["testDataSource"]["ok"], true, "{check}");

    let run = app.scan(&source).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["filesQueued"], 24);
    assert_eq!(run["skippedPaths"], json!(["purchases/README.txt"]));
    let files = app.files(&source).await;
    assert!(
        files
            .iter()
            .all(|f| f["status"] == "loaded" && f["rowsRejected"] == 0),
        "{files:?}"
    );

    for (folder, records) in &examples {
        let n = table_count(&app, folder).await;
        let want = if folder == "items" {
            1
        } else {
            3 * records.len() as i64
        };
        assert_eq!(n, want, "{folder}: rows in the table");
    }

    // A second scan finds nothing new and loads nothing again.
    let again = app.scan(&source).await;
    assert_eq!(again["filesQueued"], 0);
    assert_eq!(
        table_count(&app, "actions").await,
        3 * examples
            .iter()
            .find(|(f, _)| f == "actions")
            .unwrap()
            .1
            .len() as i64
    );

    // An overwritten file is reported once, not reloaded.
    write(&dir, "purchases/purchases_1600089751.json", b"{\"timestamp\": \"2020-01-01 00:00:00\", \"user_id\": \"9\"}\n{\"timestamp\": \"2020-01-01 00:00:00\", \"user_id\": \"9\"}\n");
    app.scan(&source).await;
    app.scan(&source).await;
    let notes = app
        .gql(
            "{ notifications { nodes { kind path message } } }",
            json!({}),
        )
        .await;
    let overwritten: Vec<&Value> = notes["notifications"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "file_overwritten")
        .collect();
    assert_eq!(overwritten.len(), 1, "{notes}");
    assert_eq!(
        overwritten[0]["path"],
        "purchases/purchases_1600089751.json"
    );
    assert_eq!(table_count(&app, "purchases").await, 3);
    let _ = trait_values::Entity::find()
        .count(app.engine.db())
        .await
        .unwrap();
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn malformed_files_are_reported_and_nothing_is_half_written() {
    let app = TestApp::spawn().await;
    let (dir, name) = folder(&app);
    let good = r#"{"timestamp": "2019-01-01 15:04:05", "user_id": "1001", "price": 1.5}"#;
    write(&dir, "purchases/empty.json", b"");
    write(
        &dir,
        "purchases/bom_crlf.json",
        format!("\u{feff}{good}\r\n{good}\r\n").as_bytes(),
    );
    write(
        &dir,
        "purchases/all_bad.json",
        b"{\"user_id\": 1}\nnot json\n",
    );
    write(
        &dir,
        "purchases/long_line.json",
        // A 10 MiB line: quarantined without being buffered whole.
        format!("{good}\n{{\"x\": \"{}\"}}\n{good}\n", "y".repeat(10 << 20)).as_bytes(),
    );
    write(
        &dir,
        "purchases/mixed.json",
        format!(
            "{good}\n{}\n{}\n{}\n",
            r#"{"timestamp": "2019-01-01 15:04:05", "user_id": "10"#,
            r#"{"timestamp": "2019-01-01 15:04:05", "user_id": "1001", "price": "a lot"}"#,
            r#"{"timestamp": "2019-13-45 25:61:00", "user_id": "1001"}"#,
        )
        .as_bytes(),
    );
    write(
        &dir,
        "purchases/no_header.csv",
        b"2019-01-01 15:04:05,1001,1.5\n",
    );
    write(&dir, "purchases/broken.json.gz", b"this is not gzip");
    write(
        &dir,
        "purchases/bad_utf8.csv",
        b"timestamp,user_id,price\n2019-01-01 15:04:05,\xff\xfe,1\n2019-01-01 15:04:05,7,2\n",
    );
    let (_, created) = app.local_source(&name).await;
    let source = created["data"]["createDataSource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.scan(&source).await;

    let files = app.files(&source).await;
    let file = |p: &str| {
        files
            .iter()
            .find(|f| f["path"] == p)
            .unwrap_or_else(|| panic!("{p}: {files:?}"))
            .clone()
    };
    assert_eq!(file("purchases/bom_crlf.json")["rowsLoaded"], 2);
    assert_eq!(file("purchases/long_line.json")["rowsLoaded"], 2);
    assert_eq!(file("purchases/long_line.json")["rowsRejected"], 1);
    assert_eq!(file("purchases/all_bad.json")["rowsRejected"], 2);
    assert_eq!(file("purchases/no_header.csv")["status"], "failed");
    assert!(
        file("purchases/no_header.csv")["error"]
            .as_str()
            .unwrap()
            .contains("header")
    );
    assert_eq!(file("purchases/broken.json.gz")["status"], "failed");
    assert_eq!(file("purchases/bad_utf8.csv")["rowsLoaded"], 1);
    assert_eq!(file("purchases/bad_utf8.csv")["rowsRejected"], 1);
    assert_eq!(file("purchases/mixed.json")["rowsLoaded"], 1);
    assert_eq!(file("purchases/mixed.json")["rowsRejected"], 3);
    assert_eq!(table_count(&app, "purchases").await, 2 + 2 + 1 + 1);

    let notes = app
        .gql(
            "{ notifications { nodes { kind path message } } }",
            json!({}),
        )
        .await;
    let kinds: Vec<(String, String)> = notes["notifications"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["path"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for path in [
        "purchases/empty.json",
        "purchases/all_bad.json",
        "purchases/no_header.csv",
        "purchases/broken.json.gz",
    ] {
        assert!(
            kinds.contains(&("invalid_format".to_owned(), path.to_owned())),
            "{path}: {kinds:?}"
        );
    }
    let q = app
        .gql(
            "{ quarantinedLines { nodes { path lineNumber byteOffset field message } } }",
            json!({}),
        )
        .await;
    let long = q["quarantinedLines"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["path"] == "purchases/long_line.json")
        .unwrap()
        .clone();
    assert_eq!(long["lineNumber"], 2);
    assert_eq!(long["byteOffset"], good.len() + 1);
    assert!(long["message"].as_str().unwrap().contains("longer than"));
    // Truncated JSON, a wrong type and an impossible timestamp, each named.
    let mixed: Vec<(i64, Value)> = q["quarantinedLines"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["path"] == "purchases/mixed.json")
        .map(|l| (l["lineNumber"].as_i64().unwrap(), l["field"].clone()))
        .collect();
    assert!(mixed.contains(&(3, json!("price"))), "{mixed:?}");
    assert!(mixed.contains(&(4, json!("timestamp"))), "{mixed:?}");
    assert!(mixed.iter().any(|(line, _)| *line == 2), "{mixed:?}");
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// A load that crashed after committing rows but before the job finished is
/// run again from the start of the file: no line is loaded twice.
#[tokio::test]
async fn a_rerun_load_writes_each_line_once() {
    let app = TestApp::spawn().await;
    let (dir, name) = folder(&app);
    let lines: String = (0..5000)
        .map(|i| {
            format!(
                "{{\"timestamp\": {}, \"user_id\": \"u{}\", \"price\": 1}}\n",
                1_600_000_000 + i,
                i % 50
            )
        })
        .collect();
    write(&dir, "purchases/big.json", lines.as_bytes());
    let (_, created) = app.local_source(&name).await;
    let source = created["data"]["createDataSource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.scan(&source).await;
    assert_eq!(table_count(&app, "purchases").await, 5000);

    let file = source_files::Entity::find()
        .one(app.engine.db())
        .await
        .unwrap()
        .unwrap();
    let mut crashed: source_files::ActiveModel = file.clone().into();
    crashed.status = Set(engine::ingest::files::FileStatus::Loading);
    crashed.checkpoint_line = Set(0);
    crashed.update(app.engine.db()).await.unwrap();
    app.engine.execute_load_file(file.id).await.unwrap();
    assert_eq!(table_count(&app, "purchases").await, 5000);
    let reloaded = source_files::Entity::find_by_id(file.id)
        .one(app.engine.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reloaded.status.as_str(), "loaded");
    assert_eq!(reloaded.checkpoint_line, 5000);
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn local_sources_stay_inside_the_root() {
    let app = TestApp::spawn().await;
    for path in ["../", "/etc", "does-not-exist"] {
        let (_, body) = app.local_source(path).await;
        assert_eq!(error_code(&body), "invalid_input", "{path}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "config.path");
    }
    let (_, body) = app
        .gql_as(
            Some(&app.admin_key),
            "mutation { createDataSource(input: { name: \"s3\", kind: ftp, config: {} }) { id } }",
            json!({}),
        )
        .await;
    // The schema itself refuses an unknown kind, naming the enum.
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("SourceKind") && message.contains("ftp"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn sources_are_scanned_on_their_interval() {
    let app = TestApp::spawn().await;
    let (dir, name) = folder(&app);
    write(
        &dir,
        "level_ups/a.json",
        b"{\"timestamp\": \"2019-01-01 15:04:05\", \"user_id\": \"1\", \"level\": 2}\n",
    );
    let (_, created) = app.local_source(&name).await;
    let id: Uuid = created["data"]["createDataSource"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = chrono::Utc::now();
    // Never scanned: due now, once (two workers ticking queue one scan; the
    // worker's own minute tick may be one of them).
    app.engine.queue_due_scans(now).await.unwrap();
    app.engine.queue_due_scans(now).await.unwrap();
    let runs = ingestion_runs::Entity::find()
        .filter(ingestion_runs::Column::SourceId.eq(id))
        .count(app.engine.db())
        .await
        .unwrap();
    assert_eq!(runs, 1);
    app.drain().await;
    assert_eq!(table_count(&app, "level_ups").await, 1);
    // Just scanned: due again after the default 15 minutes.
    assert_eq!(
        app.engine
            .queue_due_scans(chrono::Utc::now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        app.engine
            .queue_due_scans(now + chrono::Duration::minutes(16))
            .await
            .unwrap(),
        1
    );
    app.drain().await;
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sources_over_rest_are_created_scanned_and_deleted() {
    let app = TestApp::spawn().await;
    let (dir, name) = folder(&app);
    write(
        &dir,
        "level_ups/l.json",
        b"{\"timestamp\": \"2020-09-14 13:22:31\", \"user_id\": \"1\", \"level\": 2}\n",
    );
    use reqwest::Method;
    let (status, body) = app
        .rest(
            Method::POST,
            "/sources",
            Some(json!({ "name": "x", "kind": "ftp", "config": {} })),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["field"], "kind", "{body}");

    let (status, source) = app
        .rest(
            Method::POST,
            "/sources",
            Some(json!({ "name": "Folder", "kind": "local", "config": { "path": name }, "credentials": { "token": "hidden-value" } })),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(source["has_credentials"], true);
    assert!(!source.to_string().contains("hidden-value"), "{source}");
    let path = format!("/sources/{}", source["id"].as_str().unwrap());

    let (_, list) = app.rest(Method::GET, "/sources", None).await;
    assert_eq!(list[0]["id"], source["id"]);
    let (status, _) = app.rest(Method::POST, &format!("{path}/scan"), None).await;
    assert_eq!(status, 202);
    app.drain().await;
    assert_eq!(table_count(&app, "level_ups").await, 1);
    let (_, got) = app.rest(Method::GET, &path, None).await;
    assert_eq!(got["status"], "ok", "{got}");
    let (status, put) = app
        .rest(
            Method::PUT,
            &path,
            Some(json!({ "scan_interval_minutes": 60, "enabled": false })),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(
        (
            put["scan_interval_minutes"].clone(),
            put["enabled"].clone(),
            put["name"].clone()
        ),
        (json!(60), json!(false), json!("Folder"))
    );
    assert_eq!(
        put["has_credentials"], true,
        "credentials kept when not sent"
    );

    let (_, deleted) = app.rest(Method::DELETE, &path, None).await;
    assert_eq!(deleted, json!({ "status": "deleted" }));
    let (status, _) = app.rest(Method::GET, &path, None).await;
    assert_eq!(status, 404);
    assert_eq!(table_count(&app, "source_files").await, 0);
    // Loaded rows stay.
    assert_eq!(table_count(&app, "level_ups").await, 1);
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sources_can_be_changed_and_reload_overwritten_files_in_place() {
    let app = TestApp::spawn().await;
    let (dir, name) = folder(&app);
    let line = |user: &str| {
        format!(
            "{{\"timestamp\": \"2020-09-14 13:22:31\", \"user_id\": \"{user}\", \"price\": 1}}\n"
        )
    };
    write(
        &dir,
        "purchases/p.json",
        format!("{}not json\n", line("a")).as_bytes(),
    );
    let (_, created) = app.local_source(&name).await;
    let id = created["data"]["createDataSource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Checked as at creation: a bad interval names the field and changes nothing.
    let (_, refused) = app
        .gql_as(
            Some(&app.admin_key),
            "mutation($id: ID!) { updateDataSource(id: $id, input: { scanIntervalMinutes: 0 }) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["field"],
        "scan_interval_minutes"
    );
    let changed = app
        .gql(
            "mutation($id: ID!) { updateDataSource(id: $id, input: { name: \"Renamed\", reloadOverwritten: true }) { name scanIntervalMinutes reloadOverwritten kind } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        changed["updateDataSource"],
        json!({ "name": "Renamed", "scanIntervalMinutes": 15, "reloadOverwritten": true, "kind": "local" })
    );

    app.scan(&id).await;
    assert_eq!(table_count(&app, "purchases").await, 1);
    assert_eq!(table_count(&app, "quarantined_lines").await, 1);

    // The file is replaced by a longer version: its old rows and quarantine go, the new ones load.
    write(
        &dir,
        "purchases/p.json",
        format!("{}{}{}", line("b"), line("c"), line("d")).as_bytes(),
    );
    let run = app.scan(&id).await;
    assert_eq!(run["filesQueued"], 1, "{run}");
    assert_eq!(table_count(&app, "purchases").await, 3);
    assert_eq!(table_count(&app, "quarantined_lines").await, 0);
    let files = app.files(&id).await;
    assert_eq!(files[0]["rowsLoaded"], 3, "{files:?}");
    let notes = app
        .gql("{ notifications { nodes { kind message } } }", json!({}))
        .await;
    assert!(
        notes["notifications"]["nodes"][0]["message"]
            .as_str()
            .unwrap()
            .contains("replaced"),
        "{notes}"
    );
    // Unchanged since: nothing more happens.
    assert_eq!(app.scan(&id).await["filesQueued"], 0);
    assert_eq!(table_count(&app, "purchases").await, 3);

    let (_, deleted) = app
        .gql_as(
            Some(&app.admin_key),
            "mutation($id: ID!) { deleteDataSource(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(deleted["data"]["deleteDataSource"], true, "{deleted}");
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_loaded_file_upserts_its_players_with_the_latest_login() {
    use engine::entity::players;
    let app = TestApp::spawn().await;
    let (dir, name) = folder(&app);
    write(
        &dir,
        "logins/l.json",
        concat!(
            "{\"timestamp\": \"2020-09-14 10:00:00\", \"user_id\": \"u1\", \"level\": 3, \"country\": \"FR\"}\n",
            "{\"timestamp\": \"2020-09-16 10:00:00\", \"user_id\": \"u1\", \"level\": 7, \"country\": \"DE\"}\n",
            "{\"timestamp\": \"2020-09-15 10:00:00\", \"user_id\": \"u1\", \"level\": 5, \"country\": \"ES\"}\n",
        )
        .as_bytes(),
    );
    write(
        &dir,
        "purchases/p.json",
        concat!(
            "{\"timestamp\": \"2020-09-10 08:00:00\", \"user_id\": \"u1\", \"price\": 1}\n",
            "{\"timestamp\": \"2020-09-12 08:00:00\", \"user_id\": \"u2\", \"price\": 1}\n",
        )
        .as_bytes(),
    );
    let (_, created) = app.local_source(&name).await;
    app.scan(created["data"]["createDataSource"]["id"].as_str().unwrap())
        .await;
    let get = |u: &'static str| {
        let db = app.engine.db().clone();
        async move {
            players::Entity::find_by_id((app.workspace_id, u.to_owned()))
                .one(&db)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let at = |s: &str| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
    };
    let u1 = get("u1").await;
    // Widened by both files, whichever loaded first; attributes from the latest login.
    assert_eq!(u1.first_seen_at, Some(at("2020-09-10 08:00:00")));
    assert_eq!(u1.last_seen_at, Some(at("2020-09-16 10:00:00")));
    assert_eq!((u1.level, u1.country.as_deref()), (Some(7), Some("DE")));
    assert_eq!(u1.last_login_at, Some(at("2020-09-16 10:00:00")));
    let u2 = get("u2").await;
    assert_eq!(u2.first_seen_at, u2.last_seen_at);
    assert_eq!(u2.level, None);
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn two_loaders_of_one_file_load_each_line_once() {
    use sea_orm::{ColumnTrait, QueryFilter};
    let app = TestApp::spawn().await;
    let (dir, name) = folder(&app);
    let lines: String = (0..25_000)
        .map(|i| {
            format!(
                "{{\"timestamp\": {}, \"user_id\": \"u{}\", \"price\": 1}}\n",
                1_600_000_000 + i,
                i % 97
            )
        })
        .collect();
    write(&dir, "purchases/big.json", lines.as_bytes());
    let (_, created) = app.local_source(&name).await;
    app.scan(created["data"]["createDataSource"]["id"].as_str().unwrap())
        .await;
    let file = source_files::Entity::find()
        .one(app.engine.db())
        .await
        .unwrap()
        .unwrap();

    // As if the job were delivered twice before anything loaded: two loads at once.
    let db = app.engine.db();
    engine::entity::purchases::Entity::delete_many()
        .filter(engine::entity::purchases::Column::SourceFileId.eq(file.id))
        .exec(db)
        .await
        .unwrap();
    let mut fresh: source_files::ActiveModel = file.clone().into();
    fresh.status = Set(engine::ingest::files::FileStatus::Queued);
    fresh.checkpoint_line = Set(0);
    fresh.rows_loaded = Set(0);
    fresh.update(db).await.unwrap();
    let (a, b) = tokio::join!(
        app.engine.execute_load_file(file.id),
        app.engine.execute_load_file(file.id)
    );
    a.unwrap();
    b.unwrap();
    let done = source_files::Entity::find_by_id(file.id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status.as_str(), "loaded", "{done:?}");
    assert_eq!(
        (done.rows_loaded, done.checkpoint_line),
        (25_000, 25_000),
        "counted once"
    );
    assert_eq!(table_count(&app, "purchases").await, 25_000);
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// The minute cron and a user asking for a scan of a new source must not race
/// (each would queue only the files it recorded first): a scan asked for while
/// one is open joins it.
#[tokio::test]
async fn a_scan_asked_for_while_one_is_open_joins_it() {
    let app = TestApp::spawn_with(crate::support::Options {
        embedded_worker: false,
        ..Default::default()
    })
    .await;
    let (dir, name) = folder(&app);
    write(
        &dir,
        "logins/l.json",
        b"{\"user_id\":\"u1\",\"timestamp\":1600089751}\n",
    );
    let (_, created) = app.local_source(&name).await;
    let id = created["data"]["createDataSource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask = "mutation($id: ID!) { scanDataSource(id: $id) { id status } }";

    let first = app.gql(ask, json!({ "id": id })).await["scanDataSource"].clone();
    assert_eq!(first["status"], "queued");
    let second = app.gql(ask, json!({ "id": id })).await["scanDataSource"].clone();
    assert_eq!(
        second["id"], first["id"],
        "a second open scan of one source"
    );
    // The new source is due for the cron, which joins the open run too.
    assert_eq!(
        app.engine
            .queue_due_scans(chrono::Utc::now())
            .await
            .unwrap(),
        0
    );

    let run_id: Uuid = first["id"].as_str().unwrap().parse().unwrap();
    app.engine.execute_scan(run_id).await.unwrap();
    let run = app
        .gql(
            "query($id: ID!) { ingestionRun(id: $id) { status filesFound filesQueued } }",
            json!({ "id": first["id"] }),
        )
        .await;
    assert_eq!(
        run["ingestionRun"],
        json!({ "status": "succeeded", "filesFound": 1, "filesQueued": 1 })
    );
    // Once it has finished, asking again opens a new run.
    let third = app.gql(ask, json!({ "id": id })).await["scanDataSource"].clone();
    assert_ne!(third["id"], first["id"]);
    app.stop().await;
}

/// Bucket keys are sealed in the database (a dump alone does not hand them
/// out), keys stored in clear by earlier versions are sealed at migration, a
/// rotated key takes over at migration, and a PostgreSQL server without
/// SECRETS_KEY refuses to store any.
#[tokio::test]
async fn credentials_are_sealed_at_rest() {
    use engine::{entity::data_sources, ingest::sources::SourceInput, secrets::SecretsKey};
    let app = TestApp::spawn().await;
    let plain = json!({ "access_key_id": "AKIA", "secret_access_key": "s3cr3t" });
    let input = || SourceInput {
        name: Some("Bucket".into()),
        kind: Some("s3".into()),
        config: Some(json!({ "bucket": "bkt", "region": "eu-west-1" })),
        credentials: Some(plain.clone()),
        ..Default::default()
    };
    let p = app.engine.authenticate(&app.admin_key).await.unwrap();
    let id = app.engine.create_source(&p, input()).await.unwrap().id;
    let db = app.engine.db();
    let stored_of = move |id: Uuid| async move {
        data_sources::Entity::find_by_id(id)
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .credentials
            .unwrap()
    };
    let stored = || stored_of(id);
    let key = SecretsKey::from_base64(app.config.secrets_key.as_deref().unwrap()).unwrap();
    let sealed = stored().await;
    assert!(!sealed.to_string().contains("s3cr3t"), "{sealed}");
    assert_eq!(key.open(id, &sealed).unwrap(), plain);

    // Another key cannot open them, and says so where the user looks.
    let other = engine::Engine::open(&engine::EngineConfig {
        secrets_key: Some(SecretsKey::generate().unwrap()),
        ..app.config.clone()
    })
    .await
    .unwrap();
    let check = other.test_source(&p, id).await.unwrap();
    assert!(
        !check.ok && check.message.contains("SECRETS_KEY"),
        "{}",
        check.message
    );

    // Stored in clear by an earlier version: sealed when the server migrates.
    data_sources::ActiveModel {
        id: Set(id),
        credentials: Set(Some(plain.clone())),
        ..Default::default()
    }
    .update(app.engine.db())
    .await
    .unwrap();
    app.engine.migrate().await.unwrap();
    let resealed = stored().await;
    assert!(!resealed.to_string().contains("s3cr3t"), "{resealed}");
    assert_eq!(key.open(id, &resealed).unwrap(), plain);

    // Rotation: the new key with the old one as SECRETS_KEY_PREVIOUS; after
    // the migration the new key alone opens them.
    let new_key = SecretsKey::generate().unwrap();
    let rotating = engine::Engine::open(&engine::EngineConfig {
        secrets_key: Some(new_key.clone()),
        secrets_key_previous: app.config.secrets_key.clone(),
        ..app.config.clone()
    })
    .await
    .unwrap();
    rotating.migrate().await.unwrap();
    let rotated = stored().await;
    let new_only = SecretsKey::from_base64(&new_key).unwrap();
    assert_eq!(new_only.open(id, &rotated).unwrap(), plain);
    assert!(
        key.open(id, &rotated).is_err(),
        "still sealed with the old key"
    );

    let keyless = engine::Engine::open(&engine::EngineConfig {
        secrets_key: None,
        ..app.config.clone()
    })
    .await
    .unwrap();
    let created = keyless.create_source(&p, input()).await;
    if app.config.database_url.starts_with("sqlite:") {
        // The embedded database keeps a key file beside it (see `secrets`).
        let sealed = stored_of(created.unwrap().id).await;
        assert!(!sealed.to_string().contains("s3cr3t"), "{sealed}");
    } else {
        let e = created.unwrap_err();
        assert_eq!(e.code(), "unavailable");
        assert!(e.to_string().contains("SECRETS_KEY"), "{e}");
    }
    app.stop().await;
}
