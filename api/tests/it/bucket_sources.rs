//! Cloud bucket sources against emulators that speak the real protocols,
//! started by scripts/test.sh: moto's S3 server (`TEST_S3_ENDPOINT`),
//! fake-gcs-server (`TEST_GCS_ENDPOINT`) and Azurite (`TEST_AZURE_ENDPOINT`,
//! the account URL). The same folders and ledger as local sources; credentials
//! are write-only.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    ingest::reference_examples,
    sources::{table_count, to_csv},
    support::TestApp,
};

/// Azurite's well-known development account (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Clone, Copy, Debug)]
enum Cloud {
    S3,
    Gcs,
    Azure,
}

fn env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} must point at a storage emulator (scripts/test.sh starts one)")
        })
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// An account SAS for Azurite's development account, signed as Azure signs it.
fn azure_sas(permissions: &str) -> String {
    let (version, expiry) = ("2019-12-12", "2099-01-01T00:00:00Z");
    let to_sign =
        format!("{AZURITE_ACCOUNT}\n{permissions}\nb\nsco\n\n{expiry}\n\nhttps,http\n{version}\n");
    let key = STANDARD.decode(AZURITE_KEY).unwrap();
    let sig = STANDARD.encode(hmac_sha256(&key, to_sign.as_bytes()));
    let sig: String = url_encode(&sig);
    format!("sv={version}&ss=b&srt=sco&sp={permissions}&se={expiry}&spr=https,http&sig={sig}")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Cloud {
    /// Creates an empty bucket (container) with the emulator's own API.
    async fn create_bucket(self, bucket: &str) {
        let http = reqwest::Client::new();
        let req = match self {
            // moto accepts unsigned requests.
            Cloud::S3 => http.put(format!("{}/{bucket}", env("TEST_S3_ENDPOINT"))),
            Cloud::Gcs => http
                .post(format!(
                    "{}/storage/v1/b?project=test",
                    env("TEST_GCS_ENDPOINT")
                ))
                .json(&json!({ "name": bucket })),
            Cloud::Azure => http.put(format!(
                "{}/{bucket}?restype=container&{}",
                env("TEST_AZURE_ENDPOINT"),
                azure_sas("rwdlac")
            )),
        };
        let res = req.send().await.unwrap();
        assert!(
            res.status().is_success(),
            "{self:?} bucket {bucket}: {}",
            res.status()
        );
    }

    async fn put(self, bucket: &str, path: &str, body: Vec<u8>) {
        let http = reqwest::Client::new();
        let req = match self {
            Cloud::S3 => http.put(format!("{}/{bucket}/{path}", env("TEST_S3_ENDPOINT"))),
            Cloud::Gcs => http.post(format!(
                "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
                env("TEST_GCS_ENDPOINT"),
                url_encode(path)
            )),
            Cloud::Azure => http
                .put(format!(
                    "{}/{bucket}/{path}?{}",
                    env("TEST_AZURE_ENDPOINT"),
                    azure_sas("rwdlac")
                ))
                .header("x-ms-blob-type", "BlockBlob"),
        };
        let res = req.body(body).send().await.unwrap();
        assert!(
            res.status().is_success(),
            "{self:?} {path}: {}",
            res.status()
        );
    }

    fn kind(self) -> &'static str {
        match self {
            Cloud::S3 => "s3",
            Cloud::Gcs => "gcs",
            Cloud::Azure => "azure",
        }
    }

    /// The source's config and (write-only) credentials; each secret contains `s3cr3t`.
    fn settings(self, bucket: &str) -> (Value, Value) {
        match self {
            Cloud::S3 => (
                json!({ "bucket": bucket, "region": "eu-west-1", "endpoint": env("TEST_S3_ENDPOINT") }),
                json!({ "access_key_id": "AKIATEST", "secret_access_key": "s3cr3t-never-shown" }),
            ),
            Cloud::Gcs => (
                json!({ "bucket": bucket }),
                json!({ "service_account": {
                    "gcs_base_url": env("TEST_GCS_ENDPOINT"),
                    "disable_oauth": true,
                    "client_email": "loader@studio.iam.gserviceaccount.com",
                    "private_key_id": "s3cr3t-key-id",
                    "private_key": "s3cr3t",
                } }),
            ),
            Cloud::Azure => (
                json!({ "account": AZURITE_ACCOUNT, "container": bucket, "endpoint": env("TEST_AZURE_ENDPOINT") }),
                // Read and list only: what a studio would grant us.
                json!({ "sas_token": format!("{}&x=s3cr3t", azure_sas("rl")) }),
            ),
        }
    }
}

impl TestApp {
    async fn cloud_source(&self, cloud: Cloud, bucket: &str, prefix: Option<&str>) -> Value {
        let (mut config, credentials) = cloud.settings(bucket);
        if let Some(prefix) = prefix {
            config["prefix"] = json!(prefix);
        }
        let (_, body) = self
            .gql_as(
                Some(&self.admin_key),
                "mutation($k: String!, $c: JSON!, $s: JSON!) { createDataSource(input: { name: \"Bucket\", kind: $k, config: $c, credentials: $s }) { id kind config hasCredentials } }",
                json!({ "k": cloud.kind(), "c": config, "s": credentials }),
            )
            .await;
        body
    }
}

async fn loads_every_type_once_and_never_returns_credentials(cloud: Cloud) {
    let app = TestApp::spawn().await;
    let bucket = format!("tf-{}", Uuid::new_v4().simple());
    cloud.create_bucket(&bucket).await;
    let examples = reference_examples();
    for (folder, records) in &examples {
        let ndjson: String = records.iter().map(|r| format!("{r}\n")).collect();
        cloud
            .put(
                &bucket,
                &format!("studio/{folder}/dt=2020-09-14/{folder}_1600089751.json"),
                ndjson.into_bytes(),
            )
            .await;
        cloud
            .put(
                &bucket,
                &format!("studio/{folder}/{folder}_1600089752.csv"),
                to_csv(records),
            )
            .await;
    }
    // Outside the prefix: never listed.
    cloud
        .put(&bucket, "other/purchases/p.json", b"{}\n".to_vec())
        .await;

    let created = app.cloud_source(cloud, &bucket, Some("studio")).await;
    let source = &created["data"]["createDataSource"];
    assert_eq!(source["hasCredentials"], true, "{created}");
    assert!(
        !created.to_string().contains("s3cr3t"),
        "a secret came back: {created}"
    );
    let id = source["id"].as_str().unwrap().to_owned();
    // Nor does the database hold them in clear (yet the scan below opens them).
    let stored = engine::entity::data_sources::Entity::find_by_id(id.parse::<Uuid>().unwrap())
        .one(app.engine.db())
        .await
        .unwrap()
        .unwrap()
        .credentials;
    assert!(
        !format!("{stored:?}").contains("s3cr3t"),
        "{cloud:?}: {stored:?}"
    );
    let check = app
        .gql(
            "mutation($id: ID!) { testDataSource(id: $id) { ok message } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(check["testDataSource"]["ok"], true, "{cloud:?}: {check}");

    let run = app.scan(&id).await;
    assert_eq!(run["status"], "succeeded", "{cloud:?}: {run}");
    assert_eq!(run["filesQueued"], 16, "{cloud:?}: {run}");
    let files = app.files(&id).await;
    assert!(
        files.iter().all(|f| f["status"] == "loaded"),
        "{cloud:?}: {files:?}"
    );
    for (folder, records) in &examples {
        let want = if folder == "items" {
            1
        } else {
            2 * records.len() as i64
        };
        assert_eq!(table_count(&app, folder).await, want, "{cloud:?}: {folder}");
    }
    assert_eq!(
        app.scan(&id).await["filesQueued"],
        0,
        "{cloud:?}: loaded twice"
    );

    // Nothing in the API hands a secret back.
    let listed = app
        .gql(
            "{ dataSources { nodes { id config hasCredentials } } }",
            json!({}),
        )
        .await;
    assert!(!listed.to_string().contains("s3cr3t"), "{listed}");
    app.stop().await;
}

#[tokio::test]
async fn s3_bucket_loads_every_type_once_and_never_returns_credentials() {
    loads_every_type_once_and_never_returns_credentials(Cloud::S3).await;
}

#[tokio::test]
async fn gcs_bucket_loads_every_type_once_and_never_returns_credentials() {
    loads_every_type_once_and_never_returns_credentials(Cloud::Gcs).await;
}

#[tokio::test]
async fn azure_container_loads_every_type_once_and_never_returns_credentials() {
    loads_every_type_once_and_never_returns_credentials(Cloud::Azure).await;
}

async fn a_missing_bucket_is_a_precise_failure(cloud: Cloud, provider_error: &str) {
    let app = TestApp::spawn().await;
    let bucket = format!("tf-missing-{}", Uuid::new_v4().simple());
    let created = app.cloud_source(cloud, &bucket, None).await;
    let id = created["data"]["createDataSource"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let check = app
        .gql(
            "mutation($id: ID!) { testDataSource(id: $id) { ok message } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(check["testDataSource"]["ok"], false);
    let message = check["testDataSource"]["message"].as_str().unwrap();
    assert!(message.contains(provider_error), "{cloud:?}: {message}");

    let run = app.scan(&id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let notes = app
        .gql("{ notifications { nodes { kind message } } }", json!({}))
        .await;
    assert_eq!(
        notes["notifications"]["nodes"][0]["kind"], "storage_unreachable",
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
            .contains(provider_error),
        "{status}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_missing_s3_bucket_is_a_precise_failure_and_a_notification() {
    a_missing_bucket_is_a_precise_failure(Cloud::S3, "NoSuchBucket").await;
}

#[tokio::test]
async fn a_missing_azure_container_is_a_precise_failure_and_a_notification() {
    a_missing_bucket_is_a_precise_failure(Cloud::Azure, "ContainerNotFound").await;
}

#[tokio::test]
async fn each_kind_names_the_setting_it_is_missing() {
    let app = TestApp::spawn().await;
    for (kind, config, credentials, field) in [
        (
            "s3",
            json!({ "region": "eu-west-1" }),
            json!({}),
            "config.bucket",
        ),
        (
            "s3",
            json!({ "bucket": "bkt" }),
            json!({}),
            "credentials.access_key_id",
        ),
        (
            "gcs",
            json!({ "bucket": "bkt" }),
            json!({}),
            "credentials.service_account",
        ),
        (
            "gcs",
            json!({ "bucket": "bkt" }),
            json!({ "service_account": "{nope" }),
            "credentials.service_account",
        ),
        (
            "azure",
            json!({ "container": "cnt" }),
            json!({ "sas_token": "sv=1" }),
            "config.account",
        ),
        (
            "azure",
            json!({ "account": "acct", "container": "cnt" }),
            json!({}),
            "credentials.sas_token",
        ),
    ] {
        let (_, body) = app
            .gql_as(
                Some(&app.admin_key),
                "mutation($k: String!, $c: JSON!, $s: JSON!) { createDataSource(input: { name: \"B\", kind: $k, config: $c, credentials: $s }) { id } }",
                json!({ "k": kind, "c": config, "s": credentials }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "invalid_input",
            "{kind}: {body}"
        );
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{kind}: {body}"
        );
    }
    assert_eq!(
        app.gql("{ dataSources { nodes { id } } }", json!({})).await["dataSources"]["nodes"],
        json!([]),
        "a refused source was stored"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_missing_gcs_bucket_is_a_precise_failure_and_a_notification() {
    // fake-gcs-server answers 500 where GCS answers 404; the status reaches
    // the user (its body never does: see the outbound policy).
    a_missing_bucket_is_a_precise_failure(Cloud::Gcs, "answered 500").await;
}
