use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn overly_deep_queries_are_refused_before_execution() {
    let app = TestApp::spawn().await;
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }";
    let (_, body) = app.gql_as(Some(&app.admin_key), deep, json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nested too deep"), "{body}");
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
