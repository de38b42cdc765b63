use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, error_code};

const VIEWER: &str = "{ viewer { role workspace { id } } }";

#[tokio::test]
async fn missing_malformed_or_unknown_keys_get_401() {
    let app = TestApp::spawn().await;
    let (status, body) = app.gql_as(None, VIEWER, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthenticated");

    let (status, body) = app
        .gql_as(
            Some("tf_notarealkeyatall0000000000000000000000000"),
            VIEWER,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthenticated");

    let resp = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("Authorization", format!("Basic {}", app.admin_key))
        .json(&json!({ "query": VIEWER }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn a_valid_key_sees_its_workspace_and_role() {
    let app = TestApp::spawn().await;
    let data = app.gql(VIEWER, json!({})).await;
    assert_eq!(data["viewer"]["role"], "ADMIN");
    assert_eq!(
        data["viewer"]["workspace"]["id"],
        app.workspace_id.to_string()
    );

    // The scheme name is case-insensitive (RFC 7235).
    let resp = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("Authorization", format!("bearer {}", app.admin_key))
        .json(&json!({ "query": VIEWER }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let (secret, id) = app.create_key("viewer").await;
    let (status, _) = app.gql_as(Some(&secret), VIEWER, json!({})).await;
    assert_eq!(status, StatusCode::OK);

    let data = app
        .gql(
            "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert!(data["revokeApiKey"]["revokedAt"].is_string());

    let (status, body) = app.gql_as(Some(&secret), VIEWER, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthenticated");
    app.stop().await;
}

#[tokio::test]
async fn roles_limit_what_a_key_may_do() {
    let app = TestApp::spawn().await;
    let (viewer, _) = app.create_key("viewer").await;
    let (ingest, _) = app.create_key("ingest").await;
    let (editor, _) = app.create_key("editor").await;

    // Reading the catalog: viewer and editor yes, ingest no.
    for key in [&viewer, &editor] {
        let (_, body) = app
            .gql_as(Some(key), "{ models { nodes { slug } } }", json!({}))
            .await;
        assert_eq!(
            body["data"]["models"]["nodes"].as_array().unwrap().len(),
            9,
            "{body}"
        );
    }
    let (_, body) = app
        .gql_as(Some(&ingest), "{ models { nodes { slug } } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "forbidden");

    // Keys are admin business only.
    for key in [&viewer, &editor, &ingest] {
        let (_, body) = app
            .gql_as(
                Some(key),
                "mutation { createApiKey(name: \"x\", role: ADMIN) { secret } }",
                json!({}),
            )
            .await;
        assert_eq!(error_code(&body), "forbidden", "{body}");
        let (_, body) = app
            .gql_as(Some(key), "{ apiKeys { nodes { id } } }", json!({}))
            .await;
        assert_eq!(error_code(&body), "forbidden", "{body}");
    }
    app.stop().await;
}
