//! The aggregations beyond the reference: `count_distinct`, `most_frequent`,
//! `least_frequent`, `median` and `percentile`, and windows between two days, on planted purchases with ties, nulls, a player
//! without events and a window, checked against values worked out by hand.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::{
    support::TestApp,
    trait_values::{catalog_ids, create, values},
};

fn day(days_ago: i64) -> String {
    (Utc::now() - Duration::days(days_ago))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[tokio::test]
async fn distinct_counts_and_most_and_least_frequent_values() {
    let app = TestApp::spawn().await;
    let purchase = |user: &str, item: Value, price: f64, days_ago: i64| json!({ "timestamp": day(days_ago), "user_id": user, "item_id": item, "price": price });
    let rows = [
        // p1: a once, b twice, c once but 20 days ago.
        purchase("p1", json!("a"), 1.0, 2),
        purchase("p1", json!("b"), 2.0, 2),
        purchase("p1", json!("b"), 2.0, 1),
        purchase("p1", json!("c"), 5.0, 20),
        // p2: a tie between x and y (and between 3 and 4).
        purchase("p2", json!("y"), 4.0, 1),
        purchase("p2", json!("x"), 3.0, 1),
        // p3: purchases without an item.
        purchase("p3", Value::Null, 1.0, 1),
    ];
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let (status, answer) = app
        .post_events(Some(&app.admin_key), "purchases", body)
        .await;
    assert_eq!(status, 200, "{answer}");
    // p4 plays but never buys.
    let login = json!({ "timestamp": day(1), "user_id": "p4" }).to_string();
    app.post_events(Some(&app.admin_key), "logins", login).await;

    let ctx = catalog_ids(&app).await;
    let def = |name: &str, config: Value, result: &str| {
        let mut c =
            json!({ "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel });
        c.as_object_mut()
            .unwrap()
            .extend(config.as_object().unwrap().clone());
        json!({ "name": name, "parent_model_id": ctx.players, "trait_type": "aggregation", "config": c, "result_type": result })
    };
    let traits = [
        (
            "Distinct items",
            json!({ "aggregation": "count_distinct", "column": "item_id" }),
            "number",
        ),
        (
            "Distinct items this week",
            json!({ "aggregation": "count_distinct", "column": "item_id", "window": { "within_days": 7 } }),
            "number",
        ),
        (
            "Top item",
            json!({ "aggregation": "most_frequent", "column": "item_id" }),
            "text",
        ),
        (
            "Rare item",
            json!({ "aggregation": "least_frequent", "column": "item_id" }),
            "text",
        ),
        (
            "Rare item this week",
            json!({ "aggregation": "least_frequent", "column": "item_id", "window": { "within_days": 7 } }),
            "text",
        ),
        (
            "Usual price",
            json!({ "aggregation": "most_frequent", "column": "price" }),
            "number",
        ),
    ];
    let mut ids = Vec::new();
    for (name, config, result) in traits {
        ids.push(
            create(&app, def(name, config, result)).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.drain().await;

    let want = [
        json!({ "p1": 3, "p2": 2, "p3": 0, "p4": 0 }),
        json!({ "p1": 2, "p2": 2, "p3": 0, "p4": 0 }),
        json!({ "p1": "b", "p2": "x", "p3": null, "p4": null }),
        json!({ "p1": "a", "p2": "x", "p3": null, "p4": null }),
        json!({ "p1": "a", "p2": "x", "p3": null, "p4": null }),
        json!({ "p1": 2.0, "p2": 3.0, "p3": 1.0, "p4": null }),
        // Linear interpolation between the closest ranks, as percentile_cont:
        // p1 [1, 2, 2, 5], p2 [3, 4], p3 [1].
        json!({ "p1": 2.0, "p2": 3.5, "p3": 1.0, "p4": null }),
        json!({ "p1": 4.1, "p2": 3.9, "p3": 1.0, "p4": null }),
        json!({ "p1": 2.0, "p2": 3.5, "p3": 1.0, "p4": null }),
        // Only p1's purchase of 20 days ago lies in [10, 30] days ago.
        json!({ "p1": 1, "p2": 0, "p3": 0, "p4": 0 }),
    ];
    for (id, want) in ids.iter().zip(want) {
        let got = values(&app, id).await;
        for (player, w) in want.as_object().unwrap() {
            let g = got.get(player).cloned().unwrap_or(Value::Null);
            let same = match (g.as_f64(), w.as_f64()) {
                (Some(g), Some(w)) => (g - w).abs() < 1e-9,
                _ => &g == w,
            };
            assert!(same, "trait {id}, {player}: expected {w}, got {g}");
        }
    }

    // A preview computes the same values with the same statement, and writes nothing.
    let before = (
        crate::sources::table_count(&app, "traits").await,
        crate::sources::table_count(&app, "trait_values").await,
    );
    let preview = |config: Value, result: &str| {
        let body = def("Preview", config, result);
        let app = &app;
        async move {
            app.gql(
                "query($i: CreateTraitInput!) { previewTrait(input: $i, sample: 3) { values { entityId value } count nulls min max mean top { value count } } }",
                json!({ "i": {
                    "name": body["name"], "parentModelId": body["parent_model_id"], "traitType": body["trait_type"],
                    "config": body["config"], "resultType": body["result_type"]
                } }),
            )
            .await["previewTrait"]
                .clone()
        }
    };
    let top = preview(
        json!({ "aggregation": "most_frequent", "column": "item_id" }),
        "text",
    )
    .await;
    assert_eq!(
        top["values"],
        json!([{ "entityId": "p1", "value": "b" }, { "entityId": "p2", "value": "x" }, { "entityId": "p3", "value": null }]),
        "{top}"
    );
    assert_eq!(
        (top["count"].as_i64(), top["nulls"].as_i64()),
        (Some(2), Some(2)),
        "{top}"
    );
    assert_eq!(
        top["top"],
        json!([{ "value": "b", "count": 1 }, { "value": "x", "count": 1 }]),
        "{top}"
    );
    let median = preview(
        json!({ "aggregation": "median", "column": "price" }),
        "number",
    )
    .await;
    assert_eq!(
        (
            median["min"].as_f64(),
            median["max"].as_f64(),
            median["count"].as_i64()
        ),
        (Some(1.0), Some(3.5), Some(3)),
        "{median}"
    );
    let after = (
        crate::sources::table_count(&app, "traits").await,
        crate::sources::table_count(&app, "trait_values").await,
    );
    assert_eq!(before, after, "a preview wrote nothing");

    // A preview takes no write lock: it answers while another transaction
    // writes (on SQLite, while that one holds the database's write lock).
    {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        let held = app.engine.db().begin().await.unwrap();
        held.execute_unprepared("UPDATE traits SET name = name")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let median = preview(
            json!({ "aggregation": "median", "column": "price" }),
            "number",
        )
        .await;
        assert_eq!(median["count"].as_i64(), Some(3), "{median}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the preview waited {:?} for the writer",
            started.elapsed()
        );
        held.commit().await.unwrap();
    }

    // Refused definitions name their field: the result type is the column's,
    // a percentile needs its fraction, a window one well-formed range.
    for (config, field) in [
        (
            json!({ "aggregation": "most_frequent", "column": "item_id" }),
            "result_type",
        ),
        (
            json!({ "aggregation": "percentile", "column": "price" }),
            "config.percentile",
        ),
        (
            json!({ "aggregation": "percentile", "percentile": 1.5, "column": "price" }),
            "config.percentile",
        ),
        (
            json!({ "aggregation": "median", "column": "item_id" }),
            "config.column",
        ),
        (
            json!({ "aggregation": "count", "window": { "between_days": [30, 10] } }),
            "config.window.between_days",
        ),
        (
            json!({ "aggregation": "count", "window": { "within_days": 7, "between_days": [1, 2] } }),
            "config.window",
        ),
    ] {
        let resp = app
            .http
            .post(format!(
                "{}/api/v1/workspaces/{}/traits",
                app.url, app.workspace_id
            ))
            .bearer_auth(&app.admin_key)
            .header("X-Workspace-ID", app.workspace_id.to_string())
            .json(&def("Bad", config, "number"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{field}");
        let body: Value = resp.json().await.unwrap();
        assert!(body.to_string().contains(field), "{field}: {body}");
    }
    app.stop().await;
}
