//! Loads make the traits that read them stale; `refresh: on_load` traits are
//! recomputed by a queued run, others wait (and show since when they are
//! stale) until they run again.

use serde_json::{Value, json};

use crate::{
    sources::{folder, write},
    support::TestApp,
    trait_values::{catalog_ids, create, values},
};

async fn state(app: &TestApp, id: &str) -> Value {
    app.gql(
        "query($id: ID!) { trait(id: $id) { staleSince lastPass { entities rowsRead } runs { nodes { trigger status } } } }",
        json!({ "id": id }),
    )
    .await["trait"]
        .clone()
}

async fn post(app: &TestApp, record_type: &str, lines: &[Value]) {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let (status, res) = app
        .post_events(Some(&app.admin_key), record_type, body)
        .await;
    assert_eq!(status, 200, "{res}");
}

#[tokio::test]
async fn loads_mark_readers_stale_and_recompute_on_load_traits() {
    let app = TestApp::spawn().await;
    let ids = catalog_ids(&app).await;
    let source = |aggregation: &str, column: Option<&str>| {
        let mut c = json!({ "source_model_id": ids.purchases, "relationship_id": ids.purchases_rel, "aggregation": aggregation });
        if let Some(col) = column {
            c["column"] = json!(col);
        }
        c
    };
    let live = create(
        &app,
        json!({ "name": "Purchase count", "parent_model_id": ids.players, "trait_type": "aggregation",
                "result_type": "number", "config": source("count", None), "refresh": "on_load" }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let manual = create(
        &app,
        json!({ "name": "Revenue", "parent_model_id": ids.players, "trait_type": "aggregation",
                "result_type": "number", "config": source("sum", Some("price")) }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reader = create(
        &app,
        json!({ "name": "Revenue x2", "parent_model_id": ids.players, "trait_type": "formula",
                "result_type": "number", "config": { "expression": "{revenue} * 2" } }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.drain().await;
    for id in [&live, &manual, &reader] {
        assert!(
            state(&app, id).await["staleSince"].is_null(),
            "fresh after its first run"
        );
    }

    // Logins do not touch purchase traits (but they do upsert players).
    post(
        &app,
        "logins",
        &[json!({ "timestamp": "2020-09-14 13:22:31", "user_id": "u1" })],
    )
    .await;
    app.drain().await;
    assert!(state(&app, &manual).await["staleSince"].is_null());

    post(
        &app,
        "purchases",
        &[
            json!({ "timestamp": "2020-09-14 13:22:31", "user_id": "u1", "price": 2.5 }),
            json!({ "timestamp": "2020-09-14 13:23:31", "user_id": "u1", "price": 1.5 }),
        ],
    )
    .await;
    app.drain().await;

    // The on_load trait followed the data in an incremental pass over u1
    // alone (no full run), and is fresh again.
    let l = state(&app, &live).await;
    assert!(l["staleSince"].is_null(), "{l}");
    assert_eq!(l["lastPass"]["entities"], 1, "{l}");
    assert_eq!(l["lastPass"]["rowsRead"], 2, "{l}");
    assert!(
        l["runs"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["trigger"] != "data"),
        "{l}"
    );
    assert_eq!(values(&app, &live).await["u1"], 2.0);
    // The manual trait and the formula reading it wait, marked stale, with no run queued.
    for id in [&manual, &reader] {
        let s = state(&app, id).await;
        assert!(s["staleSince"].is_string(), "{s}");
        assert!(
            s["runs"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["trigger"] != "data"),
            "{s}"
        );
    }
    assert!(!values(&app, &manual).await.contains_key("u1"));

    // Running it brings the values and clears the mark; its reader follows in the cascade.
    app.gql(
        "mutation($id: ID!) { triggerTrait(id: $id) { id } }",
        json!({ "id": manual }),
    )
    .await;
    app.drain().await;
    assert!(state(&app, &manual).await["staleSince"].is_null());
    assert!(state(&app, &reader).await["staleSince"].is_null());
    assert_eq!(values(&app, &reader).await["u1"], 8.0);

    // A file loaded from a source does the same once it has committed.
    let (dir, name) = folder(&app);
    write(
        &dir,
        "purchases/p.json",
        b"{\"timestamp\": \"2020-09-15 10:00:00\", \"user_id\": \"u2\", \"price\": 1}\n",
    );
    let (_, created) = app.local_source(&name).await;
    app.scan(created["data"]["createDataSource"]["id"].as_str().unwrap())
        .await;
    assert_eq!(values(&app, &live).await["u2"], 1.0);
    assert!(state(&app, &manual).await["staleSince"].is_string());
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn refresh_accepts_on_load_and_names_the_choices() {
    let app = TestApp::spawn().await;
    let ids = catalog_ids(&app).await;
    let (status, body) = app
        .rest(
            reqwest::Method::POST,
            "/traits",
            Some(json!({ "name": "Bad", "parent_model_id": ids.players, "trait_type": "aggregation",
                         "result_type": "number", "refresh": "whenever",
                         "config": { "source_model_id": ids.purchases, "relationship_id": ids.purchases_rel, "aggregation": "count" } })),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["field"], "refresh");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("on_load"),
        "{body}"
    );
    app.stop().await;
}
