//! S3 sources against moto's S3 server (`TEST_S3_ENDPOINT`, started by
//! scripts/test.sh): the same folders and ledger as local sources, over the
//! real S3 protocol; credentials are write-only.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    ingest::reference_examples,
    sources::{table_count, to_csv},
    support::TestApp,
};

fn endpoint() -> String {
    std::env::var("TEST_S3_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
        .expect("TEST_S3_ENDPOINT must point at an S3 emulator (scripts/test.sh starts moto)")
}

/// moto accepts unsigned requests, which keeps bucket setup free of an S3 client.
async fn put(path: &str, body: Vec<u8>) {
    let res = reqwest::Client::new()
        .put(format!("{}/{path}", endpoint()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "PUT {path}: {}", res.status());
}

impl TestApp {
    async fn s3_source(&self, bucket: &str, prefix: Option<&str>) -> Value {
        let mut config = json!({ "bucket": bucket, "region": "eu-west-1", "endpoint": endpoint() });
        if let Some(prefix) = prefix {
            config["prefix"] = json!(prefix);
        }
        let (_, body) = self
            .gql_as(
                Some(&self.admin_key),
                "mutation($c: JSON!, $k: JSON!) { createDataSource(input: { name: \"S3\", kind: \"s3\", config: $c, credentials: $k }) { id kind config hasCredentials } }",
                json!({ "c": config, "k": { "access_key_id": "AKIATEST", "secret_access_key": "s3cr3t-never-shown" } }),
            )
            .await;
        body
    }
}

#[tokio::test]
async fn s3_bucket_loads_every_type_once_and_never_returns_credentials() {
    let app = TestApp::spawn().await;
    let bucket = format!("tf-{}", Uuid::new_v4().simple());
    put(&bucket, Vec::new()).await;
    let examples = reference_examples();
    for (folder, records) in &examples {
        let ndjson: String = records.iter().map(|r| format!("{r}\n")).collect();
        put(
            &format!("{bucket}/studio/{folder}/dt=2020-09-14/{folder}_1600089751.json"),
            ndjson.into_bytes(),
        )
        .await;
        put(
            &format!("{bucket}/studio/{folder}/{folder}_1600089752.csv"),
            to_csv(records),
        )
        .await;
    }
    // Outside the prefix: never listed.
    put(
        &format!("{bucket}/other/purchases/p.json"),
        b"{}\n".to_vec(),
    )
    .await;

    let created = app.s3_source(&bucket, Some("studio")).await;
    let source = &created["data"]["createDataSource"];
    assert_eq!(source["hasCredentials"], true, "{created}");
    assert!(
        !created.to_string().contains("s3cr3t"),
        "a secret came back: {created}"
    );
    let id = source["id"].as_str().unwrap().to_owned();
    let check = app
        .gql(
            "mutation($id: ID!) { testDataSource(id: $id) { ok message } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(check["testDataSource"]["ok"], true, "{check}");

    let run = app.scan(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["filesQueued"], 16, "{run}");
    let files = app.files(&id).await;
    assert!(files.iter().all(|f| f["status"] == "loaded"), "{files:?}");
    for (folder, records) in &examples {
        let want = if folder == "items" {
            1
        } else {
            2 * records.len() as i64
        };
        assert_eq!(table_count(&app, folder).await, want, "{folder}");
    }
    assert_eq!(app.scan(&id).await["filesQueued"], 0);

    // Nothing in the API hands the secret back.
    let listed = app
        .gql("{ dataSources { id config hasCredentials } }", json!({}))
        .await;
    assert!(!listed.to_string().contains("s3cr3t"), "{listed}");
    app.stop().await;
}

#[tokio::test]
async fn a_missing_bucket_is_a_precise_test_failure_and_a_notification() {
    let app = TestApp::spawn().await;
    let bucket = format!("tf-missing-{}", Uuid::new_v4().simple());
    let created = app.s3_source(&bucket, None).await;
    let id = created["data"]["createDataSource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let check = app
        .gql(
            "mutation($id: ID!) { testDataSource(id: $id) { ok message } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(check["testDataSource"]["ok"], false);
    let message = check["testDataSource"]["message"].as_str().unwrap();
    assert!(message.contains("NoSuchBucket"), "{message}");

    let run = app.scan(&id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let notes = app
        .gql("{ notifications { kind message } }", json!({}))
        .await;
    assert_eq!(
        notes["notifications"][0]["kind"], "storage_unreachable",
        "{notes}"
    );
    let status = app
        .gql(
            "query($id: ID!) { dataSource(id: $id) { status lastError } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(status["dataSource"]["status"], "error", "{status}");
    assert!(
        status["dataSource"]["lastError"]
            .as_str()
            .unwrap()
            .contains("NoSuchBucket"),
        "{status}"
    );
    app.stop().await;
}

#[tokio::test]
async fn s3_sources_need_a_bucket_and_credentials() {
    let app = TestApp::spawn().await;
    let (_, body) = app
        .gql_as(
            Some(&app.admin_key),
            "mutation { createDataSource(input: { name: \"S3\", kind: \"s3\", config: { region: \"eu-west-1\" } }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "invalid_input",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("config.bucket"),
        "{body}"
    );
    let (_, body) = app
        .gql_as(
            Some(&app.admin_key),
            "mutation { createDataSource(input: { name: \"S3\", kind: \"s3\", config: { bucket: \"b\" } }) { id } }",
            json!({}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("credentials.access_key_id"),
        "{body}"
    );
    app.stop().await;
}
