use std::collections::HashMap;

use engine::catalog::{BUILT_IN_MODELS, ModelKind};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::support::{TestApp, error_code};

const MODELS: &str = "{ models { nodes { id slug kind table primaryKey timestampColumn builtIn columns { name dataType nullable } relationships { fromModelId toModelId fromColumn toColumn cardinality } } } }";

#[tokio::test]
async fn a_new_workspace_has_the_nine_built_in_models() {
    let app = TestApp::spawn().await;
    let data = app.gql(MODELS, json!({})).await;
    let nodes = data["models"]["nodes"].as_array().unwrap();
    let by_slug: HashMap<&str, &Value> = nodes
        .iter()
        .map(|m| (m["slug"].as_str().unwrap(), m))
        .collect();
    let mut slugs: Vec<_> = by_slug.keys().copied().collect();
    slugs.sort();
    assert_eq!(
        slugs,
        [
            "actions",
            "items",
            "kpis",
            "level_ups",
            "logins",
            "players",
            "purchases",
            "social_dynamics",
            "virtual_purchases"
        ]
    );

    let players = by_slug["players"];
    assert_eq!(players["kind"], "ENTITY");
    assert_eq!(players["primaryKey"], "user_id");
    assert_eq!(by_slug["items"]["primaryKey"], "item_id");

    // The record schemas of the player API reference, with parameter lists as JSON.
    let cols = |slug: &str| -> Vec<(String, String)> {
        by_slug[slug]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["dataType"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let purchases = cols("purchases");
    for expected in [
        ("timestamp", "TIMESTAMP"),
        ("user_id", "TEXT"),
        ("item_id", "TEXT"),
        ("count", "NUMBER"),
        ("price", "NUMBER"),
        ("platform", "TEXT"),
    ] {
        assert!(
            purchases.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {purchases:?}"
        );
    }
    assert!(cols("actions").contains(&("action_params".into(), "JSON".into())));
    assert!(cols("social_dynamics").contains(&("interaction_params".into(), "JSON".into())));
    assert!(cols("kpis").contains(&("churn_date".into(), "DATE".into())));
    assert!(cols("logins").contains(&("register_date".into(), "DATE".into())));

    // Every event model belongs to players by user_id; purchases also to items.
    let players_id = players["id"].as_str().unwrap();
    let items_id = by_slug["items"]["id"].as_str().unwrap();
    for m in nodes.iter().filter(|m| m["kind"] == "EVENT") {
        assert_eq!(m["timestampColumn"], "timestamp");
        let rels = m["relationships"].as_array().unwrap();
        assert!(
            rels.iter().any(|r| r["toModelId"] == players_id
                && r["fromColumn"] == "user_id"
                && r["cardinality"] == "MANY_TO_ONE"),
            "{m}"
        );
        let to_items = rels
            .iter()
            .any(|r| r["toModelId"] == items_id && r["fromColumn"] == "item_id");
        assert_eq!(
            to_items,
            ["purchases", "virtual_purchases"].contains(&m["slug"].as_str().unwrap()),
            "{m}"
        );
    }
    let rels = app
        .gql("{ relationships { nodes { id } } }", json!({}))
        .await;
    assert_eq!(rels["relationships"]["nodes"].as_array().unwrap().len(), 9);
    app.stop().await;
}

#[tokio::test]
async fn model_by_id_or_slug() {
    let app = TestApp::spawn().await;
    let by_slug = app
        .gql(
            "{ model(slug: \"kpis\") { id slug columns { name } } }",
            json!({}),
        )
        .await;
    let id = by_slug["model"]["id"].as_str().unwrap();
    let by_id = app
        .gql(
            "query($id: ID!) { model(id: $id) { slug } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(by_id["model"]["slug"], "kpis");

    let (_, body) = app
        .gql_as(
            Some(&app.admin_key),
            "{ model(slug: \"nope\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "not_found");
    let (_, body) = app
        .gql_as(Some(&app.admin_key), "{ model { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "invalid_input");
    app.stop().await;
}

/// The catalog's column names are the physical columns, on this backend.
#[tokio::test]
async fn catalog_columns_exist_in_their_tables() {
    let app = TestApp::spawn().await;
    let db = app.engine.db();
    for spec in &BUILT_IN_MODELS {
        let mut cols: Vec<String> = spec
            .columns
            .iter()
            .map(|(c, _, _)| format!("\"{c}\""))
            .collect();
        if spec.kind == ModelKind::Event {
            cols.push("\"id\"".into());
        }
        let sql = format!(
            "SELECT {} FROM \"{}\" WHERE 1 = 0",
            cols.join(", "),
            spec.slug
        );
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            sql.clone(),
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    app.stop().await;
}

#[tokio::test]
async fn lists_page_with_cursors() {
    let app = TestApp::spawn().await;
    let q = "query($after: String) { models(first: 4, after: $after) { nodes { slug } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let data = app.gql(q, json!({ "after": after })).await;
        let conn = &data["models"];
        seen.extend(
            conn["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["slug"].as_str().unwrap().to_owned()),
        );
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], pages > 0);
        pages += 1;
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 9);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 9, "pages overlapped");

    for (args, field) in [
        ("first: 0", "first"),
        ("first: 100000", "first"),
        ("after: \"garbage\"", "after"),
    ] {
        let (_, body) = app
            .gql_as(
                Some(&app.admin_key),
                &format!("{{ models({args}) {{ nodes {{ slug }} }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(error_code(&body), "invalid_input", "{args}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field);
    }
    app.stop().await;
}
