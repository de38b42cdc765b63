//! `traitforge demo`'s studio: filled through the product's own paths, it
//! serves what the first hour needs (persona routes with every category,
//! computed traits, segments with members, a trained prediction, churn and
//! spend predictions), once.

use serde_json::{Value, json};

use crate::support::TestApp;

#[tokio::test]
async fn the_demo_studio_serves_personas_traits_segments_and_prediction() {
    let app = TestApp::spawn().await;
    let filled = api::demo::fill(&app.engine, app.workspace_id, 400)
        .await
        .unwrap()
        .expect("an empty workspace is filled");
    assert_eq!(filled.players, 400);
    assert_eq!(filled.surveys, 40);
    assert!(filled.rows > 10_000, "{} rows", filled.rows);

    // Loaded by a local source, every record type.
    let d = app
        .gql(
            "{ dataSources { nodes { name files(first: 100) { nodes { recordType status } } } } }",
            json!({}),
        )
        .await;
    let files = d["dataSources"]["nodes"][0]["files"]["nodes"]
        .as_array()
        .unwrap();
    let mut types: Vec<&str> = files
        .iter()
        .map(|f| f["recordType"].as_str().unwrap())
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(types.len(), 8, "{types:?}");
    assert!(files.iter().all(|f| f["status"] == "loaded"), "{d}");

    // Computed traits, segments with members, a trained prediction.
    let d = app
        .gql(
            "{ traits { nodes { slug status lastComputedAt } } segments { nodes { slug memberCount personasStatus } } prediction { status }
               predictions { slug goal status statusError quality { auc spearman quality } } }",
            json!({}),
        )
        .await;
    let computed = d["traits"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "active" && t["lastComputedAt"].is_string())
        .count();
    assert!(computed >= 5, "{d}");
    let segments: Vec<&Value> = d["segments"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["slug"] != "default" && s["memberCount"].as_i64() > Some(0))
        .collect();
    assert!(segments.len() >= 2, "{d}");
    assert_eq!(d["prediction"]["status"], "trained", "{d}");
    // Planted churners and spenders: both predictions train, and learn.
    let predictions = d["predictions"].as_array().unwrap();
    let goals: Vec<&str> = predictions
        .iter()
        .map(|p| p["goal"].as_str().unwrap())
        .collect();
    assert_eq!(goals, ["churn", "spend"], "{d}");
    for p in predictions {
        assert_eq!(p["status"], "ready", "{p}");
    }
    assert!(
        predictions[0]["quality"]["auc"].as_f64().unwrap() > 0.7,
        "{d}"
    );

    // The player API's persona route: a profile over all twelve categories.
    let resp = app
        .http
        .get(format!("{}/v1/segments/default/personas/1/traits", app.url))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["data"].as_object().map(|o| o.len()),
        Some(12),
        "{body}"
    );

    // A player's memberships: a whale is in `default` and `whales`, with a persona in each.
    let d = app
        .gql(
            "{ segment(segment: \"whales\") { members(first: 1) { nodes { userId } } } }",
            json!({}),
        )
        .await;
    let whale = d["segment"]["members"]["nodes"][0]["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = app
        .gql(
            "query($u: String!) { player(userId: $u) { segments { slug } personas { segment index } } }",
            json!({ "u": whale }),
        )
        .await;
    let slugs: Vec<&str> = d["player"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["slug"].as_str().unwrap())
        .collect();
    assert!(
        slugs.contains(&"default") && slugs.contains(&"whales"),
        "{d}"
    );
    assert!(!slugs.contains(&"nobody"), "{d}");
    let persona_segments: Vec<&str> = d["player"]["personas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["segment"].as_str().unwrap())
        .collect();
    assert!(persona_segments.contains(&"whales"), "{d}");
    let d = app
        .gql(
            "{ player(userId: \"nobody\") { segments { slug } personas { index } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["player"]["segments"], json!([]), "{d}");

    // Once: a workspace with data is left as it is.
    assert!(
        api::demo::fill(&app.engine, app.workspace_id, 400)
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}
