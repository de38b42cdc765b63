//! Segments: every filter operator on every value type (and `and`/`or`/`not`)
//! against planted trait values and psych scores, validation naming the
//! node, the 409 on deleting a referenced trait, and recomputation after a
//! trait run.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use engine::entity::{players, psych_scores, trait_values};
use reqwest::Method;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    support::TestApp,
    trait_values::{Ctx, catalog_ids, create},
};

/// Players straight into `players` (as ingestion would leave them).
pub async fn plant_players(app: &TestApp, users: &[String]) {
    let now = Utc::now();
    for chunk in users.chunks(500) {
        players::Entity::insert_many(chunk.iter().map(|u| players::ActiveModel {
            workspace_id: Set(app.workspace_id),
            user_id: Set(u.clone()),
            first_seen_at: Set(Some(now)),
            last_seen_at: Set(Some(now)),
            clan_id: Set(None),
            level: Set(None),
            device: Set(None),
            country: Set(None),
            language: Set(None),
            platform: Set(None),
            register_date: Set(None),
            last_login_at: Set(None),
            updated_at: Set(now),
        }))
        .exec(app.engine.db())
        .await
        .unwrap();
    }
}

/// A value for one player, in the column of its type.
#[derive(Clone, Debug)]
pub enum Planted {
    Number(f64),
    Text(&'static str),
    Boolean(bool),
    Time(DateTime<Utc>),
    List(Value),
}

/// Replaces a trait's computed values with planted ones.
pub async fn plant_values(app: &TestApp, trait_id: &str, values: &[(String, Planted)]) {
    let db = app.engine.db();
    let trait_id = Uuid::parse_str(trait_id).unwrap();
    trait_values::Entity::delete_many()
        .filter(trait_values::Column::TraitId.eq(trait_id))
        .exec(db)
        .await
        .unwrap();
    for chunk in values.chunks(500) {
        trait_values::Entity::insert_many(chunk.iter().map(|(user, v)| {
            let mut row = trait_values::ActiveModel {
                workspace_id: Set(app.workspace_id),
                trait_id: Set(trait_id),
                entity_id: Set(user.clone()),
                value_number: Set(None),
                value_text: Set(None),
                value_boolean: Set(None),
                value_timestamp: Set(None),
                value_json: Set(None),
                updated_at: Set(Utc::now()),
            };
            match v {
                Planted::Number(n) => row.value_number = Set(Some(*n)),
                Planted::Text(t) => row.value_text = Set(Some((*t).into())),
                Planted::Boolean(b) => row.value_boolean = Set(Some(*b)),
                Planted::Time(t) => row.value_timestamp = Set(Some(*t)),
                Planted::List(l) => row.value_json = Set(Some(l.clone())),
            }
            row
        }))
        .exec(db)
        .await
        .unwrap();
    }
}

/// Survey scores as a completed survey would leave them.
pub async fn plant_scores(app: &TestApp, scores: &[(String, &str, &str, f64)]) {
    for chunk in scores.chunks(500) {
        psych_scores::Entity::insert_many(chunk.iter().map(|(user, category, facet, score)| {
            psych_scores::ActiveModel {
                workspace_id: Set(app.workspace_id),
                user_id: Set(user.clone()),
                category: Set((*category).into()),
                facet: Set((*facet).into()),
                score: Set(*score),
                source: Set(engine::prediction::ScoreSource::Survey),
                computed_at: Set(Utc::now()),
                norm_version: Set(0),
            }
        }))
        .exec(app.engine.db())
        .await
        .unwrap();
    }
}

fn players_trait(ctx: &Ctx, name: &str, ty: &str, config: Value, result: &str) -> Value {
    let mut c = json!({ "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel });
    c.as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    json!({ "name": name, "parent_model_id": ctx.players, "trait_type": ty, "config": c, "result_type": result })
}

/// One trait of every result type over purchases; returns slug → id.
pub async fn typed_traits(app: &TestApp) -> HashMap<&'static str, String> {
    let ctx = catalog_ids(app).await;
    let mut ids = HashMap::new();
    for (slug, ty, config, result) in [
        (
            "spend",
            "aggregation",
            json!({"aggregation": "sum", "column": "price"}),
            "number",
        ),
        (
            "platform",
            "occurrence",
            json!({"occurrence": "last", "column": "platform"}),
            "text",
        ),
        (
            "buyer",
            "occurrence",
            json!({"occurrence": "exists"}),
            "boolean",
        ),
        (
            "last_buy",
            "occurrence",
            json!({"occurrence": "last", "column": "timestamp"}),
            "timestamp",
        ),
        ("platforms", "list", json!({"column": "platform"}), "array"),
    ] {
        let t = create(app, players_trait(&ctx, slug, ty, config, result)).await;
        assert_eq!(t["slug"], slug, "{t}");
        ids.insert(slug, t["id"].as_str().unwrap().to_owned());
    }
    app.drain().await;
    ids
}

pub(crate) async fn create_segment(app: &TestApp, body: Value) -> (reqwest::StatusCode, Value) {
    app.rest(Method::POST, "/segments", Some(body)).await
}

pub(crate) async fn members(app: &TestApp, segment: &str) -> BTreeSet<String> {
    let (status, body) = app
        .rest(
            Method::GET,
            &format!("/segments/{segment}/members?limit=500"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["user_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect()
}

fn set(users: &[&str]) -> BTreeSet<String> {
    users.iter().map(|u| (*u).to_owned()).collect()
}

fn day(m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, 1, 12, 0, 0).unwrap()
}

#[tokio::test]
async fn every_operator_selects_the_players_it_describes() {
    let app = TestApp::spawn().await;
    let ids = typed_traits(&app).await;
    let users: Vec<String> = (1..=6).map(|i| format!("u{i}")).collect();
    plant_players(&app, &users).await;
    let u = |i: usize| users[i - 1].clone();
    use Planted::*;
    // u4 has no spend, u5 no platform, u4 no buyer flag, u6 no timestamp.
    plant_values(
        &app,
        &ids["spend"],
        &[
            (u(1), Number(10.0)),
            (u(2), Number(20.0)),
            (u(3), Number(30.0)),
            (u(5), Number(50.0)),
            (u(6), Number(5.0)),
        ],
    )
    .await;
    plant_values(
        &app,
        &ids["platform"],
        &[
            (u(1), Text("Steam")),
            (u(2), Text("iOS")),
            (u(3), Text("Android")),
            (u(4), Text("SteamDeck")),
            (u(6), Text("iOS")),
        ],
    )
    .await;
    plant_values(
        &app,
        &ids["buyer"],
        &[
            (u(1), Boolean(true)),
            (u(2), Boolean(false)),
            (u(3), Boolean(true)),
            (u(5), Boolean(true)),
            (u(6), Boolean(false)),
        ],
    )
    .await;
    plant_values(
        &app,
        &ids["last_buy"],
        &[
            (u(1), Time(day(1))),
            (u(2), Time(day(2))),
            (u(3), Time(day(3))),
            (u(4), Time(day(4))),
            (u(5), Time(day(5))),
        ],
    )
    .await;
    plant_values(
        &app,
        &ids["platforms"],
        &[
            (u(1), List(json!(["Steam", "iOS"]))),
            (u(2), List(json!(["iOS"]))),
            (u(3), List(json!([]))),
            (u(4), List(json!(["Android", "Steam"]))),
        ],
    )
    .await;
    plant_scores(
        &app,
        &[
            (u(1), "personality", "Openness", 40.0),
            (u(2), "personality", "Openness", 60.0),
            (u(3), "personality", "Openness", 55.0),
            (u(4), "motivations", "Flow", 70.0),
        ],
    )
    .await;

    let cases: Vec<(Value, &[&str])> = vec![
        (json!({"trait": "spend", "op": "=", "value": 20}), &["u2"]),
        (
            json!({"trait": "spend", "op": "!=", "value": 20}),
            &["u1", "u3", "u5", "u6"],
        ),
        (
            json!({"trait": "spend", "op": "<", "value": 20}),
            &["u1", "u6"],
        ),
        (
            json!({"trait": "spend", "op": "<=", "value": 20}),
            &["u1", "u2", "u6"],
        ),
        (
            json!({"trait": "spend", "op": ">", "value": 20}),
            &["u3", "u5"],
        ),
        (
            json!({"trait": "spend", "op": ">=", "value": 20}),
            &["u2", "u3", "u5"],
        ),
        (
            json!({"trait": "spend", "op": "between", "value": [10, 30]}),
            &["u1", "u2", "u3"],
        ),
        (
            json!({"trait": "spend", "op": "in", "value": [5, 50, 7]}),
            &["u5", "u6"],
        ),
        (
            json!({"trait": "spend", "op": "exists"}),
            &["u1", "u2", "u3", "u5", "u6"],
        ),
        (
            json!({"trait": "spend", "op": "exists", "value": false}),
            &["u4"],
        ),
        (
            json!({"trait": "platform", "op": "=", "value": "iOS"}),
            &["u2", "u6"],
        ),
        (
            json!({"trait": "platform", "op": "in", "value": ["iOS", "Android"]}),
            &["u2", "u3", "u6"],
        ),
        // Case-sensitive, and `%`/`_` are not wildcards.
        (
            json!({"trait": "platform", "op": "contains", "value": "Steam"}),
            &["u1", "u4"],
        ),
        (
            json!({"trait": "platform", "op": "contains", "value": "steam"}),
            &[],
        ),
        (
            json!({"trait": "platform", "op": "contains", "value": "S%"}),
            &[],
        ),
        (
            json!({"trait": "platform", "op": "<", "value": "Steam"}),
            &["u3"],
        ),
        (
            json!({"trait": "buyer", "op": "=", "value": true}),
            &["u1", "u3", "u5"],
        ),
        (
            json!({"trait": "buyer", "op": "!=", "value": true}),
            &["u2", "u6"],
        ),
        (
            json!({"trait": "last_buy", "op": ">=", "value": "2026-03-01T12:00:00Z"}),
            &["u3", "u4", "u5"],
        ),
        (
            json!({"trait": "last_buy", "op": "between", "value": ["2026-02-01", "2026-04-01"]}),
            &["u2", "u3"],
        ),
        (
            json!({"trait": "platforms", "op": "contains", "value": "Steam"}),
            &["u1", "u4"],
        ),
        (
            json!({"trait": "platforms", "op": "exists"}),
            &["u1", "u2", "u3", "u4"],
        ),
        (
            json!({"facet": "personality.Openness", "op": ">", "value": 50}),
            &["u2", "u3"],
        ),
        (
            json!({"facet": "personality.Openness", "op": "between", "value": [35, 55]}),
            &["u1", "u3"],
        ),
        (
            json!({"facet": "personality.Openness", "op": "exists", "value": false}),
            &["u4", "u5", "u6"],
        ),
        (
            json!({"and": [{"trait": "spend", "op": ">=", "value": 10}, {"not": {"trait": "platform", "op": "contains", "value": "Steam"}}]}),
            &["u2", "u3", "u5"],
        ),
        (
            json!({"or": [{"trait": "buyer", "op": "=", "value": false}, {"facet": "motivations.Flow", "op": ">", "value": 60}]}),
            &["u2", "u4", "u6"],
        ),
        // `not` holds for players without a value, where `!=` does not.
        (
            json!({"not": {"trait": "spend", "op": "=", "value": 20}}),
            &["u1", "u3", "u4", "u5", "u6"],
        ),
    ];
    // Previews size each filter before it is saved, and write nothing.
    let before = (
        crate::sources::table_count(&app, "segments").await,
        crate::sources::table_count(&app, "segment_members").await,
    );
    for (filter, want) in &cases {
        let d = app
            .gql(
                "query($f: JSON!) { previewSegment(filter: $f, sample: 100) { count sampleUserIds conditions { path count } } }",
                json!({ "f": filter }),
            )
            .await;
        let preview = &d["previewSegment"];
        assert_eq!(preview["count"], want.len(), "{filter}: {d}");
        assert_eq!(preview["sampleUserIds"], json!(want), "{filter}: {d}");
        let conditions = preview["conditions"].as_array().unwrap();
        assert!(!conditions.is_empty(), "{d}");
        assert!(
            conditions
                .iter()
                .all(|c| c["path"].as_str().unwrap().starts_with("filter")),
            "{d}"
        );
    }
    let d = app
        .gql(
            "query($f: JSON!) { previewSegment(filter: $f) { conditions { path count } } }",
            json!({ "f": {"or": [{"trait": "spend", "op": ">", "value": 25}, {"trait": "platform", "op": "=", "value": "iOS"}]} }),
        )
        .await;
    assert_eq!(
        d["previewSegment"]["conditions"],
        json!([{ "path": "filter.or[0]", "count": 2 }, { "path": "filter.or[1]", "count": 2 }]),
        "{d}"
    );
    let after = (
        crate::sources::table_count(&app, "segments").await,
        crate::sources::table_count(&app, "segment_members").await,
    );
    assert_eq!(before, after, "a preview wrote nothing");
    for (i, (filter, _)) in cases.iter().enumerate() {
        let (status, body) = create_segment(
            &app,
            json!({ "name": format!("case {i}"), "filter": filter }),
        )
        .await;
        assert_eq!(status, 201, "{filter}: {body}");
        assert_eq!(body["members_status"], "pending");
    }
    app.drain().await;
    for (i, (filter, want)) in cases.iter().enumerate() {
        let slug = format!("case_{i}");
        assert_eq!(members(&app, &slug).await, set(want), "{filter}");
        let (_, s) = app
            .rest(Method::GET, &format!("/segments/{slug}"), None)
            .await;
        assert_eq!(s["members_status"], "ready", "{s}");
        assert_eq!(s["member_count"], want.len(), "{s}");
    }
    // The built-in segment is every player.
    assert_eq!(
        members(&app, "default").await,
        users.iter().cloned().collect()
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_filters_are_refused_naming_the_node() {
    let app = TestApp::spawn().await;
    typed_traits(&app).await;
    for (filter, field) in [
        (
            json!({"and": [{"trait": "nope", "op": "=", "value": 1}]}),
            "filter.and[0].trait",
        ),
        (
            json!({"trait": "buyer", "op": ">", "value": true}),
            "filter.op",
        ),
        (
            json!({"trait": "spend", "op": "=", "value": "ten"}),
            "filter.value",
        ),
        (
            json!({"trait": "spend", "op": "between", "value": [1]}),
            "filter.value",
        ),
        (
            json!({"or": [{"trait": "spend", "op": "in", "value": [1, "x"]}]}),
            "filter.or[0].value[1]",
        ),
        (
            json!({"not": {"facet": "personality.Nope", "op": ">", "value": 1}}),
            "filter.not.facet",
        ),
        (
            json!({"trait": "spend", "op": "~", "value": 1}),
            "filter.op",
        ),
        (json!({"and": []}), "filter.and"),
        (
            json!({"trait": "platforms", "op": "=", "value": "x"}),
            "filter.op",
        ),
        (
            json!({"trait": "last_buy", "op": "<", "value": "soon"}),
            "filter.value",
        ),
        (json!([1]), "filter"),
    ] {
        let (status, body) = create_segment(&app, json!({ "name": "bad", "filter": filter })).await;
        assert_eq!(status, 422, "{filter}: {body}");
        assert_eq!(body["error"]["field"], field, "{filter}: {body}");
    }
    let (status, body) = create_segment(
        &app,
        json!({ "name": "k", "filter": {"trait": "spend", "op": "exists"}, "personas": 0 }),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["field"].as_str()),
        (422, Some("personas")),
        "{body}"
    );
    // Nothing was written by the refused requests.
    let (_, list) = app.rest(Method::GET, "/segments", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "only `default`: {list}");

    let ok = json!({ "name": "Whales", "filter": {"trait": "spend", "op": ">", "value": 100}, "personas": "auto" });
    let (status, body) = create_segment(&app, ok.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["slug"].as_str(), body["personas"].as_str()),
        (Some("whales"), Some("auto"))
    );
    let (status, _) = create_segment(&app, ok).await;
    assert_eq!(status, 409);
    let (status, body) = app.rest(Method::DELETE, "/segments/default", None).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = app.rest(Method::GET, "/segments/unknown", None).await;
    assert_eq!(status, 404, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_trait_read_by_a_segment_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let ids = typed_traits(&app).await;
    let (status, _) = create_segment(&app, json!({ "name": "Big spenders", "filter": {"or": [{"trait": "spend", "op": ">", "value": 100}, {"trait": "buyer", "op": "=", "value": true}]} })).await;
    assert_eq!(status, 201);
    let (status, body) = app
        .rest(Method::DELETE, &format!("/traits/{}", ids["spend"]), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string().contains("big_spenders"),
        "names the segment: {body}"
    );
    // Once the segment reads something else, the trait can go.
    let (status, body) = app
        .rest(
            Method::PUT,
            "/segments/big_spenders",
            Some(json!({ "filter": {"trait": "buyer", "op": "=", "value": true} })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .rest(Method::DELETE, &format!("/traits/{}", ids["spend"]), None)
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn members_follow_a_trait_run() {
    let app = TestApp::spawn().await;
    let ctx = catalog_ids(&app).await;
    let buy = |user: &str| {
        json!({ "user_id": user, "timestamp": "2026-01-02 10:00:00", "item_id": "gem", "price": 5 })
            .to_string()
    };
    let (status, body) = app
        .post_events(Some(&app.admin_key), "purchases", buy("p1"))
        .await;
    assert_eq!(status, 200, "{body}");
    let t = create(
        &app,
        players_trait(
            &ctx,
            "Purchases",
            "aggregation",
            json!({"aggregation": "count"}),
            "number",
        ),
    )
    .await;
    app.drain().await;
    let (status, _) = create_segment(
        &app,
        json!({ "name": "Buyers", "filter": {"trait": "purchases", "op": ">=", "value": 1} }),
    )
    .await;
    assert_eq!(status, 201);
    app.drain().await;
    assert_eq!(members(&app, "buyers").await, set(&["p1"]));

    // New data, a new run of the trait: the segment is recomputed by itself.
    let (status, _) = app
        .post_events(Some(&app.admin_key), "purchases", buy("p2"))
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .rest(
            Method::POST,
            &format!("/traits/{}/trigger", t["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(status.is_success(), "{body}");
    app.drain().await;
    assert_eq!(members(&app, "buyers").await, set(&["p1", "p2"]));
    app.stop().await;
}

#[tokio::test]
async fn segments_over_graphql() {
    let app = TestApp::spawn().await;
    typed_traits(&app).await;
    let create = "mutation($i: CreateSegmentInput!) { createSegment(input: $i) { slug personaCount membersStatus filter } }";
    let d = app
        .gql(create, json!({ "i": { "name": "Steam fans", "filter": {"trait": "platform", "op": "=", "value": "Steam"}, "personaCount": "auto" } }))
        .await;
    assert_eq!(d["createSegment"]["slug"], "steam_fans");
    assert_eq!(d["createSegment"]["personaCount"], "auto");
    let (_, body) = app
        .gql_as(Some(&app.admin_key), create, json!({ "i": { "name": "Bad", "filter": {"trait": "platform", "op": ">", "value": 1} } }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "filter.value",
        "{body}"
    );
    let (_, body) = app
        .gql_as(Some(&app.admin_key), create, json!({ "i": { "name": "Bad", "filter": {"trait": "platform", "op": "exists"}, "personaCount": 99 } }))
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("1 to 20"),
        "{body}"
    );
    let d = app
        .gql(
            "mutation { updateSegment(segment: \"steam_fans\", input: { personaCount: 3 }) { personaCount } refreshSegment(segment: \"steam_fans\") { kind } }",
            json!({}),
        )
        .await;
    assert_eq!(d["updateSegment"]["personaCount"], 3);
    assert_eq!(d["refreshSegment"]["kind"], "compute_segment");
    app.drain().await;
    let d = app
        .gql(
            "{ segments { nodes { slug builtin membersStatus memberCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["segments"]["nodes"][0]["slug"], "default", "{d}");
    assert_eq!(d["segments"]["nodes"][1]["membersStatus"], "ready", "{d}");
    // A viewer reads but does not change segments.
    let (viewer, _) = app.create_key("viewer").await;
    let (_, body) = app
        .gql_as(
            Some(&viewer),
            "mutation { deleteSegment(segment: \"steam_fans\") }",
            json!({}),
        )
        .await;
    assert_eq!(crate::support::error_code(&body), "forbidden");
    let d = app
        .gql(
            "mutation { deleteSegment(segment: \"steam_fans\") }",
            json!({}),
        )
        .await;
    assert_eq!(d["deleteSegment"], true);
    app.stop().await;
}
