//! A key of workspace A never reads or changes anything of workspace B, and
//! cannot even tell B's objects exist (404, not 403).

use serde_json::json;

use crate::support::{TestApp, error_code};

#[tokio::test]
async fn another_workspace_objects_are_not_found() {
    let app = TestApp::spawn().await;
    let other = app
        .engine
        .create_workspace("Rival Studio", None)
        .await
        .unwrap();
    let other_key = other.admin_key.secret.clone();

    // Objects of workspace A.
    let a = app
        .gql(
            "{ models(first: 1) { nodes { id slug } } relationships(first: 1) { nodes { id } } apiKeys { nodes { id } } }",
            json!({}),
        )
        .await;
    let model_id = a["models"]["nodes"][0]["id"].as_str().unwrap().to_owned();
    let key_id = a["apiKeys"]["nodes"][0]["id"].as_str().unwrap().to_owned();
    let job = app
        .gql("mutation { runDiagnosticJob { id } }", json!({}))
        .await;
    let job_id = job["runDiagnosticJob"]["id"].as_str().unwrap().to_owned();

    for (query, id) in [
        ("query($id: ID!) { model(id: $id) { id } }", &model_id),
        ("query($id: ID!) { job(id: $id) { id } }", &job_id),
        (
            "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
            &key_id,
        ),
    ] {
        let (_, body) = app
            .gql_as(Some(&other_key), query, json!({ "id": id }))
            .await;
        assert_eq!(error_code(&body), "not_found", "{query}: {body}");
    }

    // Lists are scoped too: B sees its own nine models and one key, nothing of A.
    let (_, body) = app
        .gql_as(
            Some(&other_key),
            "{ models { nodes { id } } apiKeys { nodes { id } } jobs { nodes { id } } }",
            json!({}),
        )
        .await;
    let ids = body["data"].to_string();
    assert!(!ids.contains(&model_id) && !ids.contains(&key_id) && !ids.contains(&job_id));
    assert_eq!(body["data"]["models"]["nodes"].as_array().unwrap().len(), 9);
    assert_eq!(
        body["data"]["apiKeys"]["nodes"].as_array().unwrap().len(),
        1
    );
    assert_eq!(body["data"]["jobs"]["nodes"].as_array().unwrap().len(), 0);

    // And A's key still works: B's revocation attempt changed nothing.
    let still = app.gql("{ viewer { role } }", json!({})).await;
    assert_eq!(still["viewer"]["role"], "ADMIN");
    app.drain().await;
    app.stop().await;
}
