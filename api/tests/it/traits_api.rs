//! The traits REST API against `traits-api-reference.md`: its curl examples
//! as written (host, ids and token substituted), response shapes, and the
//! documented status codes.

use chrono::Utc;
use engine::entity::{model_columns, models, relationships};
use insta::assert_json_snapshot;
use reqwest::{Method, StatusCode};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{fixtures, support::TestApp};

/// The reference's examples read an `orders` model (order_id, order_total,
/// order_date, category). These tests register one in the catalog over a view
/// of the purchases table, so that the fixtures' independent computations
/// apply; `custom_models.rs` runs the same examples on a model created through
/// the API with a table of its own.
async fn orders_model(app: &TestApp) -> (Uuid, Uuid, Uuid) {
    let db = app.engine.db();
    db.execute_unprepared(
        "CREATE VIEW orders AS SELECT workspace_id, id, user_id, timestamp, CAST(id AS TEXT) AS order_id, \
         price AS order_total, timestamp AS order_date, platform AS category FROM purchases",
    )
    .await
    .unwrap();
    let ws = app.workspace_id;
    let players = models::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.workspace_id == ws && m.slug == "players")
        .unwrap();
    let orders = Uuid::now_v7();
    models::Entity::insert(models::ActiveModel {
        id: Set(orders),
        workspace_id: Set(ws),
        name: Set("Orders".into()),
        slug: Set("orders".into()),
        kind: Set(engine::catalog::ModelKind::Event),
        table_name: Set("orders".into()),
        primary_key: Set("id".into()),
        timestamp_column: Set(Some("order_date".into())),
        // A view: erasure and loads leave it alone.
        user_column: Set(None),
        built_in: Set(false),
        created_at: Set(Utc::now()),
    })
    .exec(db)
    .await
    .unwrap();
    let cols = [
        ("user_id", "text"),
        ("order_id", "text"),
        ("order_total", "number"),
        ("order_date", "timestamp"),
        ("category", "text"),
    ];
    model_columns::Entity::insert_many(cols.iter().enumerate().map(|(i, (n, t))| {
        model_columns::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(ws),
            model_id: Set(orders),
            name: Set((*n).into()),
            data_type: Set(engine::catalog::DataType::parse(t).unwrap()),
            nullable: Set(true),
            position: Set(i as i32),
        }
    }))
    .exec(db)
    .await
    .unwrap();
    let rel = Uuid::now_v7();
    relationships::Entity::insert(relationships::ActiveModel {
        id: Set(rel),
        workspace_id: Set(ws),
        from_model_id: Set(orders),
        to_model_id: Set(players.id),
        from_column: Set("user_id".into()),
        to_column: Set("user_id".into()),
        cardinality: Set(engine::catalog::Cardinality::ManyToOne),
        created_at: Set(Utc::now()),
    })
    .exec(db)
    .await
    .unwrap();
    (players.id, orders, rel)
}

/// The curl example of "Create Trait", then each trait type's example body, verbatim.
pub(crate) const REFERENCE_EXAMPLES: [&str; 6] = [
    r#"{"name": "Total Purchases", "parent_model_id": "770e8400-e29b-41d4-a716-446655440000", "trait_type": "aggregation", "config": {"source_model_id": "880e8400-e29b-41d4-a716-446655440000", "relationship_id": "990e8400-e29b-41d4-a716-446655440000", "aggregation": "count", "column": "order_id"}, "result_type": "number"}"#,
    r#"{"name": "Total Revenue", "parent_model_id": "770e8400-e29b-41d4-a716-446655440000", "trait_type": "aggregation", "config": {"source_model_id": "880e8400-e29b-41d4-a716-446655440000", "relationship_id": "990e8400-e29b-41d4-a716-446655440000", "aggregation": "sum", "column": "order_total"}, "result_type": "number"}"#,
    r#"{"name": "Last Purchase Date", "parent_model_id": "770e8400-e29b-41d4-a716-446655440000", "trait_type": "occurrence", "config": {"source_model_id": "880e8400-e29b-41d4-a716-446655440000", "relationship_id": "990e8400-e29b-41d4-a716-446655440000", "occurrence": "last", "column": "order_date"}, "result_type": "timestamp"}"#,
    r#"{"name": "Product Categories", "parent_model_id": "770e8400-e29b-41d4-a716-446655440000", "trait_type": "list", "config": {"source_model_id": "880e8400-e29b-41d4-a716-446655440000", "relationship_id": "990e8400-e29b-41d4-a716-446655440000", "column": "category"}, "result_type": "array"}"#,
    r#"{"name": "Customer Tier", "parent_model_id": "770e8400-e29b-41d4-a716-446655440000", "trait_type": "sql", "config": {"sql_expression": "CASE WHEN lifetime_value > 10000 THEN 'platinum' WHEN lifetime_value > 1000 THEN 'gold' ELSE 'standard' END"}, "result_type": "text"}"#,
    r#"{"name": "Average Order Value", "parent_model_id": "770e8400-e29b-41d4-a716-446655440000", "trait_type": "formula", "config": {"expression": "{total_revenue} / NULLIF({total_purchases}, 0)"}, "result_type": "number"}"#,
];

/// The reference's example text with its placeholder ids replaced.
pub(crate) fn substitute(text: &str, parent: Uuid, source: Uuid, rel: Uuid) -> Value {
    let text = text
        .replace("770e8400-e29b-41d4-a716-446655440000", &parent.to_string())
        .replace("880e8400-e29b-41d4-a716-446655440000", &source.to_string())
        .replace("990e8400-e29b-41d4-a716-446655440000", &rel.to_string());
    serde_json::from_str(&text).unwrap()
}

impl TestApp {
    pub(crate) async fn rest(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.rest_as(
            &self.admin_key,
            Some(self.workspace_id.to_string()),
            method,
            path,
            body,
        )
        .await
    }

    async fn rest_as(
        &self,
        key: &str,
        header: Option<String>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}/api/v1/workspaces/{}{path}", self.url, self.workspace_id);
        let mut req = self.http.request(method, url).bearer_auth(key);
        if let Some(h) = header {
            req = req.header("X-Workspace-ID", h);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

#[tokio::test]
async fn the_reference_examples_work_as_written() {
    let app = TestApp::spawn().await;
    fixtures::load(&app).await;
    let (parent, orders, rel) = orders_model(&app).await;

    // `Customer Tier` reads a `lifetime_value` trait: define it first.
    let (s, ltv) = app
        .rest(
            Method::POST,
            "/traits",
            Some(json!({ "name": "Lifetime Value", "parent_model_id": parent, "trait_type": "aggregation",
                "config": { "source_model_id": orders, "relationship_id": rel, "aggregation": "sum", "column": "order_total" },
                "result_type": "number" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ltv}");

    let examples = REFERENCE_EXAMPLES;
    let mut created = Vec::new();
    for text in examples {
        let (status, body) = app
            .rest(
                Method::POST,
                "/traits",
                Some(substitute(text, parent, orders, rel)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        created.push(body);
    }
    assert_json_snapshot!("create_trait", created[0], {
        ".id" => "[uuid]", ".workspace_id" => "[uuid]", ".parent_model_id" => "[uuid]", ".created_by" => "[uuid]",
        ".config.source_model_id" => "[uuid]", ".config.relationship_id" => "[uuid]",
        ".created_at" => "[time]", ".updated_at" => "[time]",
    });
    let slugs: Vec<&str> = created
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        slugs,
        [
            "total_purchases",
            "total_revenue",
            "last_purchase_date",
            "product_categories",
            "customer_tier",
            "average_order_value"
        ]
    );
    app.drain().await;

    // List Traits: every trait, computed.
    let (status, list) = app.rest(Method::GET, "/traits", None).await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 7);
    assert!(
        list.iter().all(|t| t["status"] == "active"
            && t["status_error"] == ""
            && t["last_computed_at"].is_string()),
        "{list:?}"
    );
    let id = created[0]["id"].as_str().unwrap();

    // Get Trait.
    let (status, got) = app.rest(Method::GET, &format!("/traits/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "Total Purchases");

    // Update Trait, with the reference's body: only those fields change; the slug stays.
    let (status, updated) = app
        .rest(
            Method::PUT,
            &format!("/traits/{id}"),
            Some(json!({ "name": "Total Purchases (All Time)", "description": "Count of all orders per customer" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Total Purchases (All Time)");
    assert_eq!(updated["description"], "Count of all orders per customer");
    assert_eq!(updated["slug"], "total_purchases");
    assert_eq!(updated["config"], got["config"]);
    assert_eq!(updated["result_type"], "number");

    // List Traits by Model.
    let (status, by_model) = app
        .rest(Method::GET, &format!("/models/{parent}/traits"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_model.as_array().unwrap().len(), 7);
    let (status, none) = app
        .rest(Method::GET, &format!("/models/{orders}/traits"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none, json!([]));

    // Trigger Trait Evaluation: 201 with the run; List Trait Runs: newest first.
    let (status, run) = app
        .rest(Method::POST, &format!("/traits/{id}/trigger"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["status"], "queued");
    assert_eq!(run["trigger"], "manual");
    app.drain().await;
    let (status, runs) = app
        .rest(Method::GET, &format!("/traits/{id}/runs"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs[0]["id"], run["id"]);
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs.last().unwrap()["trigger"], "definition");
    assert!(
        runs[0]["duration_ms"].is_i64()
            && runs[0]["rows_computed"] == 12
            && runs[0]["rows_changed"] == 0,
        "{}",
        runs[0]
    );
    assert_json_snapshot!("trait_run", runs[0], {
        ".id" => "[uuid]", ".workspace_id" => "[uuid]", ".trait_id" => "[uuid]",
        ".created_at" => "[time]", ".started_at" => "[time]", ".finished_at" => "[time]", ".duration_ms" => "[ms]",
    });

    // Delete Trait: refused while the formula reads it, then allowed for a trait nobody reads.
    let (status, body) = app
        .rest(Method::DELETE, &format!("/traits/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("average_order_value"),
        "{body}"
    );
    let categories = created[3]["id"].as_str().unwrap();
    let (status, body) = app
        .rest(Method::DELETE, &format!("/traits/{categories}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "status": "deleted" }));
    let (status, _) = app
        .rest(Method::GET, &format!("/traits/{categories}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn workspace_addressing_and_roles_are_enforced() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_id.to_string();
    let (status, _) = app
        .rest_as(&app.admin_key, None, Method::GET, "/traits", None)
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "X-Workspace-ID is required"
    );
    let (status, body) = app
        .rest_as(
            &app.admin_key,
            Some(Uuid::new_v4().to_string()),
            Method::GET,
            "/traits",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Workspace-ID")
    );
    let (status, _) = app
        .rest_as("tf_nope", Some(ws.clone()), Method::GET, "/traits", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Another workspace's key: the path's workspace does not exist for it.
    let other = app.engine.create_workspace("Other", None).await.unwrap();
    let (status, _) = app
        .rest_as(
            &other.admin_key.secret,
            Some(ws.clone()),
            Method::GET,
            "/traits",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A viewer reads but does not define.
    let (viewer, _) = app.create_key("viewer").await;
    let (status, _) = app
        .rest_as(&viewer, Some(ws.clone()), Method::GET, "/traits", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .rest_as(
            &viewer,
            Some(ws),
            Method::POST,
            "/traits",
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn invalid_definitions_get_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let ctx = crate::trait_values::catalog_ids(&app).await;
    let base = json!({ "name": "T", "parent_model_id": ctx.players, "trait_type": "aggregation",
        "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "sum", "column": "price" },
        "result_type": "number" });
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if let Some(rest) = k.strip_prefix("config.") {
                b["config"][rest] = v.clone();
            } else if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let cases = [
        (with(json!({ "name": null })), "name", "required"),
        (
            with(json!({ "trait_type": "magic" })),
            "trait_type",
            "magic",
        ),
        (
            with(json!({ "result_type": "text" })),
            "result_type",
            "number",
        ),
        (
            with(json!({ "parent_model_id": ctx.purchases })),
            "parent_model_id",
            "event model",
        ),
        (
            with(json!({ "parent_model_id": "not-a-uuid" })),
            "parent_model_id",
            "UUID",
        ),
        (
            with(json!({ "config.column": "nope" })),
            "config.column",
            "nope",
        ),
        (
            with(json!({ "config.column": "platform" })),
            "config.column",
            "number",
        ),
        (
            with(json!({ "config.aggregation": "geometric_mean" })),
            "config.aggregation",
            "geometric_mean",
        ),
        (
            with(json!({ "config.relationship_id": ctx.actions_rel })),
            "config.relationship_id",
            "does not connect",
        ),
        (
            with(json!({ "config.source_model_id": Uuid::new_v4() })),
            "config.source_model_id",
            "no such model",
        ),
        (
            with(json!({ "config.filters": [{ "column": "price", "op": "~", "value": 1 }] })),
            "config.filters[0].op",
            "~",
        ),
        (
            with(json!({ "config.filters": [{ "column": "price", "op": ">", "value": "lots" }] })),
            "config.filters[0].value",
            "number",
        ),
        (
            with(json!({ "config.window": { "within_days": 0 } })),
            "config.window.within_days",
            "between",
        ),
        (with(json!({ "config.bogus": 1 })), "config", "bogus"),
        (
            with(json!({ "refresh": "every tuesday" })),
            "refresh",
            "cron",
        ),
        (
            json!({ "name": "F", "parent_model_id": ctx.players, "trait_type": "formula", "config": { "expression": "{missing} + 1" }, "result_type": "number" }),
            "config.expression",
            "missing",
        ),
        (
            json!({ "name": "S", "parent_model_id": ctx.players, "trait_type": "sql", "config": { "sql_expression": "pg_sleep(10)" }, "result_type": "number" }),
            "config.sql_expression",
            "pg_sleep",
        ),
        (
            json!({ "name": "L", "parent_model_id": ctx.players, "trait_type": "list", "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "column": "platform" }, "result_type": "text" }),
            "result_type",
            "array",
        ),
        (
            json!({ "name": "E", "parent_model_id": ctx.players, "trait_type": "occurrence", "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "occurrence": "exists" }, "result_type": "number" }),
            "result_type",
            "boolean",
        ),
    ];
    for (body, field, mention) in cases {
        let (status, resp) = app.rest(Method::POST, "/traits", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {resp}");
        assert_eq!(resp["error"]["field"], field, "{body} → {resp}");
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(mention),
            "{resp} should mention {mention}"
        );
    }
    // Nothing was written.
    let (_, list) = app.rest(Method::GET, "/traits", None).await;
    assert_eq!(list, json!([]));

    // Same name twice on one model: conflict.
    let (status, _) = app.rest(Method::POST, "/traits", Some(base.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.rest(Method::POST, "/traits", Some(base)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    app.drain().await;
    app.stop().await;
}

#[tokio::test]
async fn cycles_are_refused_with_the_path_and_history_is_kept() {
    let app = TestApp::spawn().await;
    let ctx = crate::trait_values::catalog_ids(&app).await;
    let formula = |name: &str, expr: &str| json!({ "name": name, "parent_model_id": ctx.players, "trait_type": "formula", "config": { "expression": expr }, "result_type": "number" });
    let (_, base) = app
        .rest(
            Method::POST,
            "/traits",
            Some(json!({ "name": "Base", "parent_model_id": ctx.players, "trait_type": "aggregation",
                "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "count" }, "result_type": "number" })),
        )
        .await;
    let (_, a) = app
        .rest(Method::POST, "/traits", Some(formula("A", "{base} + 1")))
        .await;
    let (_, b) = app
        .rest(Method::POST, "/traits", Some(formula("B", "{a} * 2")))
        .await;
    let a_id = a["id"].as_str().unwrap();

    let (status, body) = app
        .rest(
            Method::PUT,
            &format!("/traits/{a_id}"),
            Some(json!({ "config": { "expression": "{b} + 1" } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "config.expression");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a → b → a"),
        "{body}"
    );
    let (status, body) = app
        .rest(
            Method::PUT,
            &format!("/traits/{a_id}"),
            Some(json!({ "config": { "expression": "{a} + 1" } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("a → a"),
        "{body}"
    );

    // A valid change is recorded in the history.
    let (status, _) = app
        .rest(
            Method::PUT,
            &format!("/traits/{a_id}"),
            Some(json!({ "config": { "expression": "{base} + 10" }, "description": "ten more" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.drain().await;
    let d = app
        .gql(
            "query($id: ID!) { trait(id: $id) { version versions { nodes { version changedFields definition changedBy changedAt } } } }",
            json!({ "id": a_id }),
        )
        .await;
    assert_eq!(d["trait"]["version"], 2);
    let v = &d["trait"]["versions"]["nodes"][0];
    assert_eq!(v["version"], 1);
    let mut fields: Vec<&str> = v["changedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["config", "description"]);
    assert_eq!(v["definition"]["config"]["expression"], "{base} + 1");
    assert!(v["changedBy"].is_string());

    // Deleting A is refused while B reads it; the message names B.
    let (status, body) = app
        .rest(Method::DELETE, &format!("/traits/{a_id}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"].as_str().unwrap().contains('b'));
    let _ = (base, b);
    app.stop().await;
}

#[tokio::test]
async fn a_recomputed_trait_cascades_to_its_dependents_in_order() {
    let app = TestApp::spawn().await;
    fixtures::load(&app).await;
    let ctx = crate::trait_values::catalog_ids(&app).await;
    let (_, rev) = app
        .rest(
            Method::POST,
            "/traits",
            Some(json!({ "name": "Revenue", "parent_model_id": ctx.players, "trait_type": "aggregation",
                "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "sum", "column": "price" }, "result_type": "number" })),
        )
        .await;
    let formula = |name: &str, expr: &str| json!({ "name": name, "parent_model_id": ctx.players, "trait_type": "formula", "config": { "expression": expr }, "result_type": "number" });
    let (_, double) = app
        .rest(
            Method::POST,
            "/traits",
            Some(formula("Double", "COALESCE({revenue}, 0) * 2")),
        )
        .await;
    let (_, total) = app
        .rest(
            Method::POST,
            "/traits",
            Some(formula("Total", "{revenue} + {double}")),
        )
        .await;
    app.drain().await;

    // New data arrives for u00 (who had none), then Revenue is re-evaluated by hand.
    engine::entity::purchases::Entity::insert(engine::entity::purchases::ActiveModel {
        workspace_id: Set(app.workspace_id),
        id: Set(Uuid::now_v7()),
        user_id: Set("u00".into()),
        timestamp: Set(Utc::now()),
        item_id: Set(None),
        count: Set(Some(1)),
        price: Set(Some(7.0)),
        platform: Set(None),
        extra: Set(None),
        source_file_id: Set(None),
        line_number: Set(None),
        loaded_at: Set(Utc::now()),
    })
    .exec(app.engine.db())
    .await
    .unwrap();
    let rev_id = rev["id"].as_str().unwrap();
    let (status, _) = app
        .rest(Method::POST, &format!("/traits/{rev_id}/trigger"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.drain().await;

    let values = crate::trait_values::values(&app, total["id"].as_str().unwrap()).await;
    assert_eq!(values["u00"], json!(21.0), "revenue 7 + double 14");
    // Each dependent got a dependency run, Double before Total.
    let mut finished = Vec::new();
    for t in [&double, &total] {
        let (_, runs) = app
            .rest(
                Method::GET,
                &format!("/traits/{}/runs", t["id"].as_str().unwrap()),
                None,
            )
            .await;
        let latest = &runs[0];
        assert_eq!(latest["trigger"], "dependency", "{runs}");
        assert_eq!(latest["status"], "succeeded");
        assert_eq!(latest["rows_changed"], 1, "only u00 changed: {latest}");
        finished.push(latest["finished_at"].as_str().unwrap().to_owned());
    }
    assert!(finished[0] <= finished[1]);
    app.stop().await;
}

#[tokio::test]
async fn refresh_schedules_queue_one_run_per_fire_time() {
    let app = TestApp::spawn().await;
    let ctx = crate::trait_values::catalog_ids(&app).await;
    let (status, t) = app
        .rest(
            Method::POST,
            "/traits",
            Some(json!({ "name": "Hourly", "parent_model_id": ctx.players, "trait_type": "aggregation", "refresh": "0 * * * *",
                "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "count" }, "result_type": "number" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!(t["refresh"], "0 * * * *");
    app.drain().await;
    // The last top of the hour: ticks come at or after the time they stand for.
    let fire =
        chrono::DurationRound::duration_trunc(Utc::now(), chrono::Duration::hours(1)).unwrap();
    let minute = chrono::Duration::minutes(1);
    let refresh = |since, now| app.engine.queue_scheduled_refreshes(since, now);

    // (fire - 1 min, fire] holds a fire time; two workers ticking queue one
    // run (counted below: in the first second of an hour the worker's own
    // minute tick may be the one that queues it).
    refresh(fire - minute, fire).await.unwrap();
    assert_eq!(refresh(fire - minute, fire).await.unwrap(), 0);
    // (fire, fire + 1 min] does not.
    assert_eq!(refresh(fire, fire + minute).await.unwrap(), 0);
    app.drain().await;
    let (_, runs) = app
        .rest(
            Method::GET,
            &format!("/traits/{}/runs", t["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(runs[0]["trigger"], "schedule");
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(
        runs.as_array().unwrap().len(),
        2,
        "definition run + one scheduled run: {runs}"
    );
    app.stop().await;
}

#[tokio::test]
async fn unreadable_bodies_get_the_json_error_shape() {
    let app = TestApp::spawn().await;
    let url = format!("{}/api/v1/workspaces/{}/traits", app.url, app.workspace_id);
    for body in ["{not json", "[1, 2]"] {
        let resp = app
            .http
            .post(&url)
            .bearer_auth(&app.admin_key)
            .header("X-Workspace-ID", app.workspace_id.to_string())
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let err: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["error"]["code"], "bad_request", "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("request body"),
            "{err}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_failing_run_sets_the_error_status_and_a_later_success_clears_it() {
    let app = TestApp::spawn().await;
    fixtures::load(&app).await;
    let (parent, orders, rel) = orders_model(&app).await;
    let (_, t) = app
        .rest(
            Method::POST,
            "/traits",
            Some(json!({ "name": "Order total", "parent_model_id": parent, "trait_type": "aggregation",
                "config": { "source_model_id": orders, "relationship_id": rel, "aggregation": "sum", "column": "order_total" },
                "result_type": "number" })),
        )
        .await;
    let (_, f) = app
        .rest(
            Method::POST,
            "/traits",
            Some(
                json!({ "name": "Doubled", "parent_model_id": parent, "trait_type": "formula",
                "config": { "expression": "{order_total} * 2" }, "result_type": "number" }),
            ),
        )
        .await;
    app.drain().await;
    let id = t["id"].as_str().unwrap();

    // The model's table disappears: the next run fails, visibly.
    app.engine
        .db()
        .execute_unprepared("DROP VIEW orders")
        .await
        .unwrap();
    let (status, _) = app
        .rest(Method::POST, &format!("/traits/{id}/trigger"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.drain().await;
    let (_, got) = app.rest(Method::GET, &format!("/traits/{id}"), None).await;
    assert_eq!(got["status"], "error", "{got}");
    assert!(
        got["status_error"].as_str().unwrap().contains("orders"),
        "{got}"
    );
    let (_, runs) = app
        .rest(Method::GET, &format!("/traits/{id}/runs"), None)
        .await;
    assert_eq!(runs[0]["status"], "failed");
    assert!(runs[0]["error"].as_str().unwrap().contains("orders"));
    // Nothing was cascaded from a failed run; the formula keeps its values.
    let (_, f_runs) = app
        .rest(
            Method::GET,
            &format!("/traits/{}/runs", f["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(
        f_runs
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "succeeded"),
        "{f_runs}"
    );

    // The table is back: a successful run clears the error.
    app.engine
        .db()
        .execute_unprepared(
            "CREATE VIEW orders AS SELECT workspace_id, id, user_id, timestamp, CAST(id AS TEXT) AS order_id, \
             price AS order_total, timestamp AS order_date, platform AS category FROM purchases",
        )
        .await
        .unwrap();
    app.rest(Method::POST, &format!("/traits/{id}/trigger"), None)
        .await;
    app.drain().await;
    let (_, got) = app.rest(Method::GET, &format!("/traits/{id}"), None).await;
    assert_eq!(got["status"], "active");
    assert_eq!(got["status_error"], "");
    app.stop().await;
}
