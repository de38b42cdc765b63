//! Custom models: a workspace's own `orders` model with the traits
//! reference's columns, filled by NDJSON posts and a bucket file, read by the
//! reference's example traits verbatim, changed, erased and dropped.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    erasure::erase,
    segments::{create_segment, members},
    sources::{folder, table_count, write},
    support::TestApp,
    trait_values::values,
    traits_api::{REFERENCE_EXAMPLES, substitute},
};

/// The model the reference's examples read.
fn orders_body() -> Value {
    json!({
        "name": "Orders",
        "columns": [
            { "name": "order_id", "data_type": "text", "nullable": false },
            { "name": "user_id", "data_type": "text", "nullable": false },
            { "name": "order_total", "data_type": "number" },
            { "name": "order_date", "data_type": "timestamp", "nullable": false },
            { "name": "category", "data_type": "text" }
        ],
        "primary_key": "order_id",
        "user_id_column": "user_id",
        "timestamp_column": "order_date"
    })
}

struct Orders {
    players: Uuid,
    orders: Uuid,
    relationship: Uuid,
    table: String,
}

async fn create_orders(app: &TestApp) -> Orders {
    let (status, model) = app.rest(Method::POST, "/models", Some(orders_body())).await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    assert_eq!(model["slug"], "orders");
    assert_eq!(model["kind"], "event");
    assert_eq!(model["built_in"], false);
    let (_, all) = app.rest(Method::GET, "/models", None).await;
    let players = all
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["slug"] == "players")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let rels = model["relationships"].as_array().unwrap();
    assert_eq!(rels.len(), 1, "{model}");
    assert_eq!(rels[0]["to_model_id"], json!(players));
    assert_eq!(rels[0]["from_column"], "user_id");
    let orders: Uuid = model["id"].as_str().unwrap().parse().unwrap();
    let table = app
        .gql(
            "query($id: ID!) { model(id: $id) { table } }",
            json!({ "id": orders }),
        )
        .await["model"]["table"]
        .as_str()
        .unwrap()
        .to_owned();
    Orders {
        players,
        orders,
        relationship: rels[0]["id"].as_str().unwrap().parse().unwrap(),
        table,
    }
}

fn ndjson(rows: &[Value]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

/// Per player, the reference's definitions computed by hand over the model's table.
async fn expected(app: &TestApp, table: &str) -> HashMap<String, Value> {
    let db = app.engine.db();
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT user_id, COUNT(order_id) AS n, SUM(order_total) AS revenue, \
         CASE WHEN SUM(order_total) > 10000 THEN 'platinum' WHEN SUM(order_total) > 1000 THEN 'gold' ELSE 'standard' END AS tier, \
         SUM(order_total) / NULLIF(COUNT(order_id), 0) AS aov \
         FROM \"{table}\" GROUP BY user_id"
    );
    let mut out = HashMap::new();
    for row in db
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
    {
        let user: String = row.try_get("", "user_id").unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        let revenue: f64 = row.try_get("", "revenue").unwrap();
        let tier: String = row.try_get("", "tier").unwrap();
        let aov: f64 = row.try_get("", "aov").unwrap();
        out.insert(
            user,
            json!({ "n": n, "revenue": revenue, "tier": tier, "aov": aov }),
        );
    }
    let sql = format!(
        "SELECT DISTINCT user_id, category FROM \"{table}\" WHERE category IS NOT NULL ORDER BY user_id, category"
    );
    for row in db
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
    {
        let user: String = row.try_get("", "user_id").unwrap();
        let category: String = row.try_get("", "category").unwrap();
        let e = out.get_mut(&user).unwrap();
        e["categories"]
            .as_array_mut()
            .map(|a| a.push(json!(category)))
            .unwrap_or_else(|| e["categories"] = json!([category]));
    }
    out
}

#[tokio::test]
async fn the_reference_examples_run_on_an_orders_model_loaded_by_post_and_bucket() {
    let app = TestApp::spawn().await;
    let o = create_orders(&app).await;

    // A post: good lines loaded, a bad one quarantined naming its field.
    let posted = [
        json!({ "order_id": "o1", "user_id": "u1", "order_total": 1200, "order_date": "2026-11-01 10:00:00", "category": "skins" }),
        json!({ "order_id": "o2", "user_id": "u1", "order_total": 9000.5, "order_date": "2026-11-03T10:00:00Z", "category": "gems" }),
        json!({ "order_id": "o3", "user_id": "u2", "order_total": 20, "order_date": 1793000000, "category": "skins" }),
        json!({ "order_id": "o4", "user_id": "u2", "order_total": "lots", "order_date": "2026-11-05 10:00:00" }),
    ];
    let (status, body) = app
        .post_events(Some(&app.admin_key), "orders", ndjson(&posted))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["accepted"], 3, "{body}");
    assert_eq!(body["data"]["rejected"], 1, "{body}");
    assert!(body.to_string().contains("order_total"), "{body}");

    // A bucket file in the folder named after the model: CSV, with an order
    // already posted (o3, now larger) replacing its row instead of adding one.
    let (dir, path) = folder(&app);
    write(
        &dir,
        "orders/2026-11.csv",
        b"order_id,user_id,order_total,order_date,category\n\
          o3,u2,35,2026-11-06 09:00:00,gems\n\
          o5,u3,15000,2026-11-07 09:00:00,bundles\n\
          o6,u3,,2026-11-08 09:00:00,\n",
    );
    let (_, source) = app.local_source(&path).await;
    let source_id = source["data"]["createDataSource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = app.scan(&source_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let files = app.files(&source_id).await;
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["status"], "loaded", "{files:?}");
    assert_eq!(files[0]["rowsLoaded"], 3, "{files:?}");

    // The model's players became players.
    assert_eq!(table_count(&app, "players").await, 3);

    // `Customer Tier` reads a `lifetime_value` trait; then the examples, verbatim.
    let (status, ltv) = app
        .rest(
            Method::POST,
            "/traits",
            Some(json!({ "name": "Lifetime Value", "parent_model_id": o.players, "trait_type": "aggregation",
                "config": { "source_model_id": o.orders, "relationship_id": o.relationship, "aggregation": "sum", "column": "order_total" },
                "result_type": "number" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ltv}");
    let mut ids = Vec::new();
    for text in REFERENCE_EXAMPLES {
        let body = substitute(text, o.players, o.orders, o.relationship);
        let (status, t) = app.rest(Method::POST, "/traits", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    app.drain().await;

    let want = expected(&app, &o.table).await;
    assert_eq!(want.len(), 3);
    let got: Vec<HashMap<String, Value>> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(values(&app, id).await);
        }
        v
    };
    for (user, w) in &want {
        let close = |g: &Value, w: &Value| (g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-9;
        assert!(
            close(&got[0][user], &w["n"]),
            "count {user}: {}",
            got[0][user]
        );
        assert!(
            close(&got[1][user], &w["revenue"]),
            "sum {user}: {}",
            got[1][user]
        );
        assert_eq!(got[3][user], w["categories"], "list {user}");
        assert_eq!(got[4][user], w["tier"], "tier {user}");
        assert!(
            close(&got[5][user], &w["aov"]),
            "aov {user}: {}",
            got[5][user]
        );
    }
    // Last purchase date: the latest order_date, with o3 replaced by the file.
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(at(&got[2]["u2"]), at(&json!("2026-11-06T09:00:00Z")));
    assert_eq!(at(&got[2]["u3"]), at(&json!("2026-11-08T09:00:00Z")));
    assert_eq!(want["u2"]["revenue"], json!(35.0));
    assert_eq!(want["u3"]["tier"], json!("platinum"));

    // Segments filter on traits over the custom model like on any other.
    let (status, seg) = create_segment(
        &app,
        json!({ "name": "Big spenders", "filter": { "trait": "total_revenue", "op": ">", "value": 1000 } }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{seg}");
    app.drain().await;
    let big: Vec<String> = members(&app, "big_spenders").await.into_iter().collect();
    assert_eq!(big, ["u1", "u3"]);
    app.stop().await;
}

#[tokio::test]
async fn models_change_as_migrations_are_erased_with_the_player_and_are_dropped() {
    let app = TestApp::spawn().await;

    // Refused definitions name their field.
    let mut bad = orders_body();
    bad["columns"][0]["name"] = json!("Order Id");
    let (status, body) = app.rest(Method::POST, "/models", Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("columns[0].name"), "{body}");
    let mut bad = orders_body();
    bad["primary_key"] = json!("nope");
    let (status, body) = app.rest(Method::POST, "/models", Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("primary_key"), "{body}");
    let mut taken = orders_body();
    taken["slug"] = json!("purchases");
    let (status, body) = app.rest(Method::POST, "/models", Some(taken)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Over GraphQL this time.
    let created = app
        .gql(
            "mutation($i: CreateModelInput!) { createModel(input: $i) { id slug kind userIdColumn relationships { id } } }",
            json!({ "i": {
                "name": "Orders",
                "columns": [
                    { "name": "order_id", "dataType": "TEXT", "nullable": false },
                    { "name": "user_id", "dataType": "TEXT", "nullable": false },
                    { "name": "order_total", "dataType": "NUMBER" },
                    { "name": "order_date", "dataType": "TIMESTAMP", "nullable": false },
                    { "name": "category", "dataType": "TEXT" }
                ],
                "primaryKey": "order_id", "userIdColumn": "user_id", "timestampColumn": "order_date"
            } }),
        )
        .await;
    let model = &created["createModel"];
    assert_eq!(model["userIdColumn"], "user_id", "{created}");
    let id = model["id"].as_str().unwrap().to_owned();
    let rel = model["relationships"][0]["id"].as_str().unwrap().to_owned();
    let players = app
        .gql("{ model(slug: \"players\") { id } }", json!({}))
        .await["model"]["id"]
        .clone();
    let (status, t) = app
        .rest(
            Method::POST,
            "/traits",
            Some(json!({ "name": "Spend", "parent_model_id": players, "trait_type": "aggregation",
                "config": { "source_model_id": id, "relationship_id": rel, "aggregation": "sum", "column": "order_total" },
                "result_type": "number" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");

    // Adding a nullable column migrates the table; a required one is refused.
    let mut cols = orders_body()["columns"].clone();
    cols.as_array_mut()
        .unwrap()
        .push(json!({ "name": "coupon", "data_type": "text" }));
    let (status, body) = app
        .rest(
            Method::PUT,
            &format!("/models/{id}"),
            Some(json!({ "columns": cols })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["columns"].as_array().unwrap().len(), 6);
    let mut required = cols.clone();
    required
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "region", "data_type": "text", "nullable": false }));
    let (status, body) = app
        .rest(
            Method::PUT,
            &format!("/models/{id}"),
            Some(json!({ "columns": required })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("columns[6].nullable"), "{body}");

    let rows = [
        json!({ "order_id": "a", "user_id": "gone", "order_total": 5, "order_date": "2026-11-01 10:00:00", "coupon": "XMAS" }),
        json!({ "order_id": "b", "user_id": "gone", "order_total": 7, "order_date": "2026-11-02 10:00:00" }),
        json!({ "order_id": "c", "user_id": "stays", "order_total": 9, "order_date": "2026-11-02 10:00:00" }),
    ];
    let (status, body) = app
        .post_events(Some(&app.admin_key), "orders", ndjson(&rows))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["accepted"], 3, "{body}");
    let table = app
        .gql("{ model(slug: \"orders\") { table } }", json!({}))
        .await["model"]["table"]
        .as_str()
        .unwrap()
        .to_owned();
    let count = |sql: String| {
        let app = &app;
        async move {
            let db = app.engine.db();
            let row = db
                .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "n").unwrap()
        }
    };
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) AS n FROM \"{table}\" WHERE coupon = 'XMAS'"
        ))
        .await,
        1
    );

    // Removing a column a trait reads: 409 naming the trait; another one goes.
    let without = |name: &str| {
        let mut c = cols.clone();
        c.as_array_mut().unwrap().retain(|c| c["name"] != name);
        json!({ "columns": c })
    };
    let (status, body) = app
        .rest(
            Method::PUT,
            &format!("/models/{id}"),
            Some(without("order_total")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("spend"),
        "{body}"
    );
    let (status, body) = app
        .rest(
            Method::PUT,
            &format!("/models/{id}"),
            Some(without("category")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.to_string().contains("\"category\""), "{body}");

    // Erasure reaches the model's rows.
    let (status, report) = erase(&app, &app.admin_key, "gone").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["data"]["removed"]["orders"], 2, "{report}");
    assert_eq!(
        count(format!("SELECT COUNT(*) AS n FROM \"{table}\"")).await,
        1
    );

    // Dropping: refused while the trait reads it, then the table goes too.
    let (status, body) = app
        .rest(Method::DELETE, &format!("/models/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("spend"),
        "{body}"
    );
    let t_id = t["id"].as_str().unwrap();
    let (status, _) = app
        .rest(Method::DELETE, &format!("/traits/{t_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .rest(Method::DELETE, &format!("/models/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post_events(Some(&app.admin_key), "orders", ndjson(&rows))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let db = app.engine.db();
    let gone = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM \"{table}\""),
        ))
        .await;
    assert!(gone.is_err(), "the table is dropped");
    // Built-in models stay as they are.
    let (status, body) = app
        .rest(
            Method::DELETE,
            &format!("/models/{}", players.as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    app.stop().await;
}
