use serde_json::json;

use crate::support::{TestApp, error_code};

#[tokio::test]
async fn overly_deep_queries_are_refused_before_execution() {
    let app = TestApp::spawn().await;
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }";
    let (_, body) = app.gql_as(Some(&app.admin_key), deep, json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nested too deep"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "bad_request");
    assert!(body["data"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn the_checked_in_schema_is_what_the_server_exports() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let checked_in = std::fs::read_to_string(path).expect("schema.graphql at the repository root");
    // No assert_eq!: printing two whole schemas buries the one line that matters.
    assert!(
        checked_in == api::graphql::sdl(),
        "schema.graphql is stale: run `cargo run -- export-schema > schema.graphql`"
    );
}

#[tokio::test]
async fn malformed_documents_carry_a_code_too() {
    let app = TestApp::spawn().await;
    for doc in [
        "{ viewer { role ",
        "{ nope }",
        "mutation { createApiKey(name: \"x\", role: ROOT) { secret } }",
    ] {
        let (_, body) = app
            .gql_as(Some(&app.admin_key), doc, serde_json::json!({}))
            .await;
        assert_eq!(error_code(&body), "bad_request", "{doc}: {body}");
    }
    app.stop().await;
}
