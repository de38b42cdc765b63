use engine::entity::api_keys;
use sea_orm::EntityTrait;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{TestApp, error_code};

#[tokio::test]
async fn secrets_are_shown_once_and_stored_only_as_sha256() {
    let app = TestApp::spawn().await;
    let data = app
        .gql(
            "mutation { createApiKey(name: \"ci\", role: EDITOR) { secret apiKey { id name prefix role } } }",
            json!({}),
        )
        .await;
    let created = &data["createApiKey"];
    let secret = created["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43);
    assert!(secret.starts_with("tf_") && secret[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(created["apiKey"]["role"], "EDITOR");
    assert_eq!(created["apiKey"]["prefix"], &secret[..11]);

    let rows = api_keys::Entity::find().all(app.engine.db()).await.unwrap();
    let row = rows
        .iter()
        .find(|k| k.id.to_string() == created["apiKey"]["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        row.secret_hash,
        hex::encode(Sha256::digest(secret.as_bytes()))
    );
    for k in &rows {
        let stored = serde_json::to_string(k).unwrap();
        assert!(
            !stored.contains(&secret[3..]),
            "a secret is stored in clear: {stored}"
        );
        assert!(
            !stored.contains(&app.admin_key[3..]),
            "a secret is stored in clear: {stored}"
        );
    }

    // Listing shows the prefix, never the secret.
    let list = app
        .gql(
            "{ apiKeys { nodes { name prefix role revokedAt } } }",
            json!({}),
        )
        .await;
    let text = list.to_string();
    assert!(!text.contains(secret));
    assert_eq!(list["apiKeys"]["nodes"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn bad_key_input_names_the_field() {
    let app = TestApp::spawn().await;
    let (_, body) = app
        .gql_as(
            Some(&app.admin_key),
            "mutation { createApiKey(name: \"   \", role: VIEWER) { secret } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "invalid_input");
    assert_eq!(body["errors"][0]["extensions"]["field"], "name");

    let (_, body) = app
        .gql_as(
            Some(&app.admin_key),
            "mutation { revokeApiKey(id: \"nope\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "invalid_input");
    assert_eq!(body["errors"][0]["extensions"]["field"], "id");
    app.stop().await;
}

/// Using a key marks its `last_used_at`, but never inside the request: a
/// read answers while another transaction holds the key's row (on SQLite,
/// the database's write lock, as a long trait run does), and the mark lands
/// once that transaction ends.
#[tokio::test]
async fn a_read_does_not_wait_for_the_last_use_mark() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let app = TestApp::spawn().await;
    let (secret, id) = app.create_key("viewer").await;
    let held = app.engine.db().begin().await.unwrap();
    held.execute_unprepared(&format!(
        "UPDATE api_keys SET name = name WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let (status, body) = app
        .gql_as(Some(&secret), "{ traits { nodes { slug } } }", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the read waited {:?} for the write",
        started.elapsed()
    );
    held.commit().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let key = api_keys::Entity::find_by_id(id.parse::<uuid::Uuid>().unwrap())
            .one(app.engine.db())
            .await
            .unwrap()
            .unwrap();
        if key.last_used_at.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last_used_at never set"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}
