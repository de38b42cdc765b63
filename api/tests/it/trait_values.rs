//! Every trait type, filter, window and parameter path, checked against values
//! computed in Rust from the fixture rows (on the backend under test).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::{fixtures, support::TestApp};

pub struct Ctx {
    pub players: String,
    pub purchases: String,
    pub purchases_rel: String,
    pub actions: String,
    pub actions_rel: String,
}

pub async fn catalog_ids(app: &TestApp) -> Ctx {
    let d = app
        .gql(
            "{ players: model(slug: \"players\") { id } purchases: model(slug: \"purchases\") { id relationships { id toModelId } } actions: model(slug: \"actions\") { id relationships { id toModelId } } }",
            json!({}),
        )
        .await;
    let players = d["players"]["id"].as_str().unwrap().to_owned();
    let rel = |m: &str| {
        d[m]["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["toModelId"] == players.as_str())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    Ctx {
        purchases: d["purchases"]["id"].as_str().unwrap().into(),
        purchases_rel: rel("purchases"),
        actions: d["actions"]["id"].as_str().unwrap().into(),
        actions_rel: rel("actions"),
        players,
    }
}

/// POST /traits as the admin; panics unless 201.
pub async fn create(app: &TestApp, body: Value) -> Value {
    let resp = app
        .http
        .post(format!(
            "{}/api/v1/workspaces/{}/traits",
            app.url, app.workspace_id
        ))
        .bearer_auth(&app.admin_key)
        .header("X-Workspace-ID", app.workspace_id.to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

pub async fn values(app: &TestApp, trait_id: &str) -> HashMap<String, Value> {
    let d = app
        .gql(
            "query($id: ID!) { trait(id: $id) { status statusError values(first: 500) { nodes { entityId value } } } }",
            json!({ "id": trait_id }),
        )
        .await;
    assert_eq!(d["trait"]["status"], "active", "{d}");
    d["trait"]["values"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["entityId"].as_str().unwrap().to_owned(),
                n["value"].clone(),
            )
        })
        .collect()
}

fn assert_number(got: &Value, want: Option<f64>, what: &str) {
    match want {
        None => assert!(got.is_null(), "{what}: expected null, got {got}"),
        Some(w) => {
            let g = got
                .as_f64()
                .unwrap_or_else(|| panic!("{what}: expected {w}, got {got}"));
            assert!((g - w).abs() < 1e-6, "{what}: expected {w}, got {g}");
        }
    }
}

fn assert_time(got: &Value, want: Option<DateTime<Utc>>, what: &str) {
    match want {
        None => assert!(got.is_null(), "{what}: expected null, got {got}"),
        Some(w) => {
            let g = DateTime::parse_from_rfc3339(
                got.as_str().unwrap_or_else(|| panic!("{what}: {got}")),
            )
            .unwrap();
            assert!(
                (g.with_timezone(&Utc) - w).num_milliseconds().abs() < 1,
                "{what}: expected {w}, got {g}"
            );
        }
    }
}

fn source(ctx: &Ctx, extra: Value) -> Value {
    let mut c = json!({ "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

#[tokio::test]
async fn every_trait_type_matches_values_computed_from_the_rows() {
    let app = TestApp::spawn().await;
    let fx = fixtures::load(&app).await;
    let ctx = catalog_ids(&app).await;
    let def = |name: &str, ty: &str, config: Value, result: &str| json!({ "name": name, "parent_model_id": ctx.players, "trait_type": ty, "config": config, "result_type": result });
    let mut ids = HashMap::new();
    for (slug, body) in [
        (
            "purchase_rows",
            def(
                "Purchase rows",
                "aggregation",
                source(&ctx, json!({"aggregation": "count"})),
                "number",
            ),
        ),
        (
            "priced_purchases",
            def(
                "Priced purchases",
                "aggregation",
                source(&ctx, json!({"aggregation": "count", "column": "price"})),
                "number",
            ),
        ),
        (
            "total_revenue",
            def(
                "Total Revenue",
                "aggregation",
                source(&ctx, json!({"aggregation": "sum", "column": "price"})),
                "number",
            ),
        ),
        (
            "avg_price",
            def(
                "Avg price",
                "aggregation",
                source(&ctx, json!({"aggregation": "avg", "column": "price"})),
                "number",
            ),
        ),
        (
            "min_price",
            def(
                "Min price",
                "aggregation",
                source(&ctx, json!({"aggregation": "min", "column": "price"})),
                "number",
            ),
        ),
        (
            "max_price",
            def(
                "Max price",
                "aggregation",
                source(&ctx, json!({"aggregation": "max", "column": "price"})),
                "number",
            ),
        ),
        (
            "first_purchase",
            def(
                "First purchase",
                "occurrence",
                source(&ctx, json!({"occurrence": "first", "column": "timestamp"})),
                "timestamp",
            ),
        ),
        (
            "last_purchase",
            def(
                "Last purchase",
                "occurrence",
                source(&ctx, json!({"occurrence": "last", "column": "timestamp"})),
                "timestamp",
            ),
        ),
        (
            "is_buyer",
            def(
                "Is buyer",
                "occurrence",
                source(&ctx, json!({"occurrence": "exists"})),
                "boolean",
            ),
        ),
        (
            "platforms",
            def(
                "Platforms",
                "list",
                source(&ctx, json!({"column": "platform", "limit": 2})),
                "array",
            ),
        ),
        (
            "steam_purchases",
            def(
                "Steam purchases",
                "aggregation",
                source(
                    &ctx,
                    json!({"aggregation": "count", "filters": [{"column": "platform", "op": "=", "value": "Steam"}]}),
                ),
                "number",
            ),
        ),
        (
            "big_spend",
            def(
                "Big spend",
                "aggregation",
                source(
                    &ctx,
                    json!({"aggregation": "sum", "column": "price", "filters": [{"column": "price", "op": ">", "value": 50}, {"column": "platform", "op": "in", "value": ["iOS", "Android"]}]}),
                ),
                "number",
            ),
        ),
        (
            "recent_purchases",
            def(
                "Recent purchases",
                "aggregation",
                source(
                    &ctx,
                    json!({"aggregation": "count", "window": {"within_days": 30}}),
                ),
                "number",
            ),
        ),
        (
            "fight_damage",
            def(
                "Fight damage",
                "aggregation",
                json!({"source_model_id": ctx.actions, "relationship_id": ctx.actions_rel, "aggregation": "sum", "column": "action_params.damage", "filters": [{"column": "action_name", "op": "=", "value": "fight_won"}]}),
                "number",
            ),
        ),
        (
            "damage_values",
            def(
                "Damage values",
                "list",
                json!({"source_model_id": ctx.actions, "relationship_id": ctx.actions_rel, "column": "action_params.damage"}),
                "array",
            ),
        ),
        (
            "big_hits",
            def(
                "Big hits",
                "aggregation",
                json!({"source_model_id": ctx.actions, "relationship_id": ctx.actions_rel, "aggregation": "count", "filters": [{"column": "action_params.damage", "op": ">=", "value": 250}]}),
                "number",
            ),
        ),
        (
            "level_band",
            def(
                "Level band",
                "sql",
                json!({"sql_expression": "CASE WHEN level > 20 THEN 'high' WHEN level IS NULL THEN 'unknown' ELSE 'low' END"}),
                "text",
            ),
        ),
        (
            "aov",
            def(
                "AOV",
                "formula",
                json!({"expression": "ROUND({total_revenue} / NULLIF({priced_purchases}, 0), 2)"}),
                "number",
            ),
        ),
        (
            "spend_score",
            def(
                "Spend score",
                "formula",
                json!({"expression": "GREATEST(COALESCE({total_revenue}, 0) - {purchase_rows} * 10, 0) + LEAST({steam_purchases}, 1)"}),
                "number",
            ),
        ),
        (
            "whale",
            def(
                "Whale",
                "sql",
                json!({"sql_expression": "total_revenue > 100 AND country = 'DE'"}),
                "boolean",
            ),
        ),
    ] {
        let created = create(&app, body).await;
        assert_eq!(created["slug"], slug);
        ids.insert(slug, created["id"].as_str().unwrap().to_owned());
    }
    app.drain().await;

    check(&app, &fx, &ids).await;

    // Again through `refreshTraits`, from empty: the traits reading purchases
    // (and those reading actions) are computed from one scan of their source.
    app.engine
        .db()
        .execute_unprepared("DELETE FROM trait_values")
        .await
        .unwrap();
    let refreshed = app
        .gql(
            "mutation($p: ID!) { refreshTraits(parentModelId: $p) { traitId trigger } }",
            json!({ "p": ctx.players }),
        )
        .await;
    // Formulas and trait-reading SQL are left to the cascade.
    assert_eq!(
        refreshed["refreshTraits"].as_array().unwrap().len(),
        17,
        "{refreshed}"
    );
    app.drain().await;
    let jobs = app
        .gql("{ jobs(first: 500) { nodes { kind status } } }", json!({}))
        .await;
    let shared = jobs["jobs"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "evaluate_traits")
        .count();
    assert_eq!(
        shared, 2,
        "one shared scan of purchases, one of actions: {jobs}"
    );
    check(&app, &fx, &ids).await;
    app.stop().await;
}

async fn check(app: &TestApp, fx: &fixtures::Fixture, ids: &HashMap<&str, String>) {
    let v = |slug: &str| {
        let id = ids[slug].clone();
        async move { values(app, &id).await }
    };
    let window_start = fx.now - Duration::days(30);
    let got: HashMap<&str, HashMap<String, Value>> = {
        let mut m = HashMap::new();
        for slug in ids.keys() {
            m.insert(*slug, v(slug).await);
        }
        m
    };
    for u in &fx.users {
        let ps: Vec<_> = fx.purchases_of(u).collect();
        let prices: Vec<f64> = ps.iter().filter_map(|p| p.price).collect();
        let g = |slug: &str| {
            got[slug]
                .get(u)
                .cloned()
                .unwrap_or_else(|| panic!("no {slug} value for {u}"))
        };
        let sum = (!prices.is_empty()).then(|| prices.iter().sum::<f64>());
        assert_number(&g("purchase_rows"), Some(ps.len() as f64), "purchase_rows");
        assert_number(
            &g("priced_purchases"),
            Some(prices.len() as f64),
            "priced_purchases",
        );
        assert_number(&g("total_revenue"), sum, "total_revenue");
        assert_number(
            &g("avg_price"),
            sum.map(|s| s / prices.len() as f64),
            "avg_price",
        );
        assert_number(
            &g("min_price"),
            prices.iter().copied().reduce(f64::min),
            "min_price",
        );
        assert_number(
            &g("max_price"),
            prices.iter().copied().reduce(f64::max),
            "max_price",
        );
        assert_time(
            &g("first_purchase"),
            ps.iter().map(|p| p.at).min(),
            "first_purchase",
        );
        assert_time(
            &g("last_purchase"),
            ps.iter().map(|p| p.at).max(),
            "last_purchase",
        );
        assert_eq!(g("is_buyer"), json!(!ps.is_empty()), "is_buyer {u}");
        let mut platforms: Vec<&str> = ps.iter().map(|p| p.platform).collect();
        platforms.sort();
        platforms.dedup();
        platforms.truncate(2);
        let want_platforms = if platforms.is_empty() {
            Value::Null
        } else {
            json!(platforms)
        };
        assert_eq!(g("platforms"), want_platforms, "platforms {u}");
        assert_number(
            &g("steam_purchases"),
            Some(ps.iter().filter(|p| p.platform == "Steam").count() as f64),
            "steam",
        );
        let big: Vec<f64> = ps
            .iter()
            .filter(|p| p.platform != "Steam")
            .filter_map(|p| p.price)
            .filter(|x| *x > 50.0)
            .collect();
        assert_number(
            &g("big_spend"),
            (!big.is_empty()).then(|| big.iter().sum()),
            "big_spend",
        );
        assert_number(
            &g("recent_purchases"),
            Some(ps.iter().filter(|p| p.at > window_start).count() as f64),
            "recent",
        );

        let acts: Vec<_> = fx.actions_of(u).collect();
        let damage =
            |a: &&fixtures::Action| a.damage.as_deref().and_then(|d| d.parse::<f64>().ok());
        let fights: Vec<f64> = acts
            .iter()
            .filter(|a| a.name == "fight_won")
            .filter_map(damage)
            .collect();
        assert_number(
            &g("fight_damage"),
            (!fights.is_empty()).then(|| fights.iter().sum()),
            "fight_damage",
        );
        assert_number(
            &g("big_hits"),
            Some(
                acts.iter()
                    .filter_map(damage)
                    .filter(|d| *d >= 250.0)
                    .count() as f64,
            ),
            "big_hits",
        );
        let mut texts: Vec<String> = acts.iter().filter_map(|a| a.damage.clone()).collect();
        texts.sort();
        texts.dedup();
        let want_texts = if texts.is_empty() {
            Value::Null
        } else {
            json!(texts)
        };
        assert_eq!(g("damage_values"), want_texts, "damage_values {u}");

        let level = u[1..].parse::<i64>().unwrap() * 3;
        assert_eq!(
            g("level_band"),
            json!(if level > 20 { "high" } else { "low" }),
            "level_band {u}"
        );
        // ROUND(x, 2): the databases round the binary double (SQLite) or its
        // decimal form (PostgreSQL), so exact halves may go either way.
        match sum.map(|s| s / prices.len() as f64) {
            None => assert!(g("aov").is_null()),
            Some(exact) => {
                let got = g("aov").as_f64().unwrap();
                assert!((got - exact).abs() <= 0.005 + 1e-9, "aov {got} vs {exact}");
                assert!(
                    (got * 100.0 - (got * 100.0).round()).abs() < 1e-6,
                    "aov {got} not rounded to cents"
                );
            }
        }
        let steam = ps.iter().filter(|p| p.platform == "Steam").count() as f64;
        let score = (sum.unwrap_or(0.0) - ps.len() as f64 * 10.0).max(0.0) + steam.min(1.0);
        assert_number(&g("spend_score"), Some(score), "spend_score");
        let country_de = !u.ends_with('1');
        let whale = match sum {
            Some(s) => json!(s > 100.0 && country_de),
            // NULL > 100 is NULL; NULL AND false is false.
            None => {
                if country_de {
                    Value::Null
                } else {
                    json!(false)
                }
            }
        };
        assert_eq!(g("whale"), whale, "whale {u}");
    }
}
