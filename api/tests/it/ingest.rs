//! `POST /v1/events/{type}`: the reference's record examples load as written;
//! malformed lines are quarantined with line, byte offset and field; players
//! and items are upserted; errors come in the `/v1` envelope.

use engine::entity::{kpis, players, quarantined_lines};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::support::TestApp;

impl TestApp {
    pub(crate) async fn post_events(
        &self,
        key: Option<&str>,
        record_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/events/{record_type}", self.url))
            .header("Content-Type", "application/x-ndjson")
            .body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }
}

/// Every record example of the player API reference, by the folder its
/// section names (kept in the repository as a fixture).
pub fn reference_examples() -> Vec<(String, Vec<Value>)> {
    let examples = crate::fixtures::player_api_examples();
    examples["record_examples"]
        .as_object()
        .expect("record examples by folder")
        .iter()
        .map(|(folder, list)| (folder.clone(), list.as_array().unwrap().clone()))
        .collect()
}

#[tokio::test]
async fn the_reference_examples_of_every_record_type_load_as_written() {
    let app = TestApp::spawn().await;
    let examples = reference_examples();
    let mut folders: Vec<&str> = examples.iter().map(|(f, _)| f.as_str()).collect();
    folders.sort();
    assert_eq!(
        folders,
        [
            "actions",
            "items",
            "kpis",
            "level_ups",
            "logins",
            "purchases",
            "social_dynamics",
            "virtual_purchases"
        ]
    );
    for (folder, records) in &examples {
        let body: String = records.iter().map(|r| format!("{r}\n")).collect();
        let (status, resp) = app.post_events(Some(&app.admin_key), folder, body).await;
        assert_eq!(status, StatusCode::OK, "{folder}: {resp}");
        assert_eq!(resp["code"], 200);
        assert_eq!(resp["data"]["accepted"], records.len(), "{folder}: {resp}");
        assert_eq!(resp["data"]["rejected"], 0, "{folder}: {resp}");
    }
    let db = app.engine.db();
    // `churn_date: ""` is null; the KPI's value and dates are typed.
    let kpi = kpis::Entity::find().one(db).await.unwrap().unwrap();
    assert_eq!(kpi.churn_date, None);
    assert_eq!(kpi.register_date.unwrap().to_string(), "2019-11-18");
    assert_eq!(kpi.value, 3.0);
    // Player 1001 was seen from the first action to the KPI sample, with the login's attributes.
    let p = players::Entity::find()
        .filter(players::Column::UserId.eq("1001"))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        p.first_seen_at.unwrap().to_rfc3339(),
        "2019-01-01T15:04:05+00:00"
    );
    assert_eq!(
        p.last_seen_at.unwrap().to_rfc3339(),
        "2020-03-12T00:00:00+00:00"
    );
    assert_eq!(p.device.as_deref(), Some("iPhone X"));
    assert_eq!(p.level, Some(10));
    // A trait over the loaded actions sees the parameter lists.
    let ctx = crate::trait_values::catalog_ids(&app).await;
    let t = crate::trait_values::create(
        &app,
        json!({ "name": "Fights lost", "parent_model_id": ctx.players, "trait_type": "aggregation", "result_type": "number",
            "config": { "source_model_id": ctx.actions, "relationship_id": ctx.actions_rel, "aggregation": "count",
                "filters": [{ "column": "action_params.fight_id", "op": "=", "value": "456354345" }, { "column": "action_name", "op": "=", "value": "fight_lost" }] } }),
    )
    .await;
    app.drain().await;
    let values = crate::trait_values::values(&app, t["id"].as_str().unwrap()).await;
    assert_eq!(values["1001"], json!(1.0));
    assert_eq!(values["1033"], json!(0.0));
    app.stop().await;
}

#[tokio::test]
async fn malformed_lines_are_quarantined_and_the_rest_loads() {
    let app = TestApp::spawn().await;
    let good = r#"{"timestamp": "2019-01-01 15:04:05", "user_id": "1001", "item_id": "2002", "count": 1, "price": 25.5, "platform": "Steam"}"#;
    let mut body: Vec<u8> = b"\xEF\xBB\xBF".to_vec(); // a BOM before the first line
    let lines: Vec<Vec<u8>> = vec![
        good.as_bytes().to_vec(),                                                                   // 1 ok
        br#"{"timestamp": "2019-01-01 15:04:05", "user_id": "1002", "price": 3"#.to_vec(),          // 2 truncated
        br#"{"timestamp": "2019-01-01 15:04:05", "user_id": "1003", "price": "cheap"}"#.to_vec(),  // 3 wrong type
        br#"{"timestamp": "2019-13-45 99:00:00", "user_id": "1004"}"#.to_vec(),                    // 4 bad timestamp
        b"{\"timestamp\": \"2019-01-01 15:04:05\", \"user_id\": \"\xff\xfe\"}".to_vec(),           // 5 invalid UTF-8
        format!("{{\"timestamp\": \"2019-01-01 15:04:05\", \"user_id\": \"1006\", \"platform\": \"{}\"}}", "x".repeat(1_100_000)).into_bytes(), // 6 too long
        br#"["not", "an", "object"]"#.to_vec(),                                                    // 7 not an object
        br#"{"timestamp": "2019-01-01 15:04:05"}"#.to_vec(),                                       // 8 no user_id
        br#"{"timestamp": 1546355045, "user_id": 1009, "count": "2"}"#.to_vec(),                  // 9 ok: epoch, numeric id
        br#"{"timestamp": "2019-01-01T15:04:05Z", "user_id": "1010", "count": 1.5}"#.to_vec(),     // 10 not whole
    ];
    for l in &lines {
        body.extend_from_slice(l);
        body.extend_from_slice(b"\r\n"); // CRLF line ends
    }
    let (status, resp) = app
        .post_events(Some(&app.admin_key), "purchases", body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["data"]["accepted"], 2, "{resp}");
    assert_eq!(resp["data"]["rejected"], 8, "{resp}");
    let errors = resp["data"]["errors"].as_array().unwrap();
    let by_line = |n: i64| {
        errors
            .iter()
            .find(|e| e["line"] == n)
            .unwrap_or_else(|| panic!("line {n}: {resp}"))
    };
    assert!(
        by_line(2)["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(by_line(3)["field"], "price");
    assert_eq!(by_line(4)["field"], "timestamp");
    assert!(
        by_line(4)["message"]
            .as_str()
            .unwrap()
            .contains("2019-13-45 99:00:00")
    );
    assert!(by_line(5)["message"].as_str().unwrap().contains("UTF-8"));
    assert!(
        by_line(6)["message"]
            .as_str()
            .unwrap()
            .contains("longer than")
    );
    assert!(
        by_line(7)["message"]
            .as_str()
            .unwrap()
            .contains("JSON object")
    );
    assert_eq!(by_line(8)["field"], "user_id");
    assert_eq!(by_line(10)["field"], "count");
    // Byte offsets point at each line's first byte in the body (after the BOM).
    let offset_of_3 = 3 + lines[0].len() + 2 + lines[1].len() + 2;
    assert_eq!(by_line(3)["byte_offset"], offset_of_3);
    assert_eq!(&body[offset_of_3..offset_of_3 + 14], br#"{"timestamp": "#);

    let q = quarantined_lines::Entity::find()
        .order_by_asc(quarantined_lines::Column::LineNumber)
        .all(app.engine.db())
        .await
        .unwrap();
    assert_eq!(q.len(), 8);
    assert_eq!(q[1].user_id.as_deref(), Some("1003"));
    assert_eq!(q[1].record_type, "purchases");
    assert!(q[4].excerpt.chars().count() <= 200);
    let loaded = engine::entity::purchases::Entity::find()
        .count(app.engine.db())
        .await
        .unwrap();
    assert_eq!(loaded, 2);
    app.stop().await;
}

#[tokio::test]
async fn the_latest_login_wins_and_items_are_upserted() {
    let app = TestApp::spawn().await;
    let key = Some(app.admin_key.as_str());
    let login = |at: &str, device: &str| {
        json!({ "timestamp": at, "user_id": "7", "device": device, "level": 3 }).to_string()
    };
    let (_, r) = app
        .post_events(
            key,
            "logins",
            format!("{}\n", login("2020-05-01 10:00:00", "Pixel")),
        )
        .await;
    assert_eq!(r["data"]["accepted"], 1);
    // An older login, sent later: first_seen moves back, attributes stay the newest.
    app.post_events(
        key,
        "logins",
        format!("{}\n", login("2020-01-01 10:00:00", "Nokia")),
    )
    .await;
    let p = players::Entity::find()
        .one(app.engine.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.device.as_deref(), Some("Pixel"));
    assert_eq!(
        p.first_seen_at.unwrap().to_rfc3339(),
        "2020-01-01T10:00:00+00:00"
    );
    assert_eq!(
        p.last_seen_at.unwrap().to_rfc3339(),
        "2020-05-01T10:00:00+00:00"
    );

    let item = |price: f64| {
        json!({ "item_id": "axe", "price": price, "name": "Axe", "type": "weapon", "rarity": "epic" }).to_string()
    };
    app.post_events(key, "items", format!("{}\n{}\n", item(1.0), item(2.0)))
        .await;
    app.post_events(key, "items", format!("{}\n", item(3.0)))
        .await;
    let items = engine::entity::items::Entity::find()
        .all(app.engine.db())
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].price, Some(3.0));
    assert_eq!(
        items[0].extra,
        Some(json!({ "rarity": "epic" })),
        "unknown fields are kept"
    );
    app.stop().await;
}

#[tokio::test]
async fn errors_come_in_the_envelope() {
    let app = TestApp::spawn().await;
    let line = "{\"timestamp\": \"2019-01-01 15:04:05\", \"user_id\": \"1\"}\n";
    let (status, body) = app.post_events(None, "purchases", line).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], 401);
    assert!(body["data"].is_null() && body["message"].is_string());
    let (viewer, _) = app.create_key("viewer").await;
    let (status, body) = app.post_events(Some(&viewer), "purchases", line).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 403);
    let (ingest, _) = app.create_key("ingest").await;
    let (status, _) = app.post_events(Some(&ingest), "purchases", line).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.post_events(Some(&ingest), "orders", line).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 404);
    let (status, body) = app.post_events(Some(&ingest), "purchases", " \n\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 400);
    app.stop().await;
}

fn playfab_event(name: &str, id: &str, extra: Value) -> Value {
    let mut e = json!({
        "EventName": name,
        "EventNamespace": "com.playfab",
        "EntityType": "player",
        "EntityId": "6F3A2B1C",
        "EventId": id,
        "Timestamp": "2019-01-01T15:04:05.1234Z",
        "TitleId": "A1B2",
        "SourceType": "BackEnd",
        "Platform": "Steam",
        "Location": { "CountryCode": "US", "City": "Seattle" },
    });
    e.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    e
}

impl TestApp {
    async fn post_playfab(
        &self,
        key: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let url = match key {
            Some(k) => format!("{}/v1/playfab?api_key={k}", self.url),
            None => format!("{}/v1/playfab", self.url),
        };
        let resp = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }
}

#[tokio::test]
async fn playfab_events_become_actions_and_typed_rows_once() {
    let app = TestApp::spawn().await;
    let (ingest, _) = app.create_key("ingest").await;
    let batch = json!([
        playfab_event("player_logged_in", "e1", json!({})),
        playfab_event("player_realmoney_purchase", "e2", json!({ "OrderTotal": 499, "PaymentProvider": "Steam", "Currency": "USD" })),
        playfab_event("player_vc_item_purchased", "e3", json!({ "ItemId": "sword", "UnitPrice": 120, "CurrencyCode": "GO" })),
        playfab_event("player_leveled_up", "e4", json!({ "Level": 7 })),
        // Not a player event; and one without an id.
        { "EventName": "title_news_updated", "EventId": "e5", "EntityType": "title", "EntityId": "A1B2", "Timestamp": "2019-01-01T15:04:05Z" },
        { "EventName": "player_logged_in", "EntityType": "player", "EntityId": "X", "Timestamp": "2019-01-01T15:04:05Z" },
    ]);
    let (status, resp) = app.post_playfab(Some(&ingest), batch.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(
        resp["data"],
        json!({ "accepted": 4, "duplicate": 0, "ignored": 1, "rejected": 1, "errors": resp["data"]["errors"] })
    );
    // The title event is ignored, not an error; the event without an id is one.
    assert_eq!(resp["data"]["errors"][0]["event"], 6);

    // Redelivery: all duplicates, nothing written twice. A single object is accepted too.
    let (_, again) = app.post_playfab(Some(&ingest), batch[1].to_string()).await;
    assert_eq!(again["data"]["duplicate"], 1);
    assert_eq!(again["data"]["accepted"], 0);

    let db = app.engine.db();
    let actions = engine::entity::actions::Entity::find()
        .all(db)
        .await
        .unwrap();
    assert_eq!(actions.len(), 4);
    let purchase = actions
        .iter()
        .find(|a| a.action_name.as_deref() == Some("player_realmoney_purchase"))
        .unwrap();
    assert_eq!(purchase.user_id, "6F3A2B1C");
    assert_eq!(purchase.action_id.as_deref(), Some("e2"));
    let params = purchase.action_params.as_ref().unwrap().to_string();
    assert!(
        params.contains(r#"{"key":"OrderTotal","value":"499"}"#),
        "{params}"
    );
    assert!(
        !params.contains("Seattle"),
        "nested objects are not parameters: {params}"
    );
    let purchases = engine::entity::purchases::Entity::find()
        .all(db)
        .await
        .unwrap();
    assert_eq!(purchases.len(), 1);
    assert_eq!(purchases[0].price, Some(499.0));
    let logins = engine::entity::logins::Entity::find()
        .all(db)
        .await
        .unwrap();
    assert_eq!(logins[0].country.as_deref(), Some("US"));
    let vp = engine::entity::virtual_purchases::Entity::find()
        .all(db)
        .await
        .unwrap();
    assert_eq!(vp[0].item_id.as_deref(), Some("sword"));
    app.stop().await;
}

#[tokio::test]
async fn playfab_needs_a_key_and_respects_the_body_limit() {
    let app = TestApp::spawn_with(crate::support::Options {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let one = playfab_event("player_logged_in", "e1", json!({})).to_string();
    let (status, body) = app.post_playfab(None, one.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], 401);
    let (status, _) = app.post_playfab(Some("tf_wrong"), one.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (viewer, _) = app.create_key("viewer").await;
    let (status, _) = app.post_playfab(Some(&viewer), one.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .post_playfab(Some(&app.admin_key), "[1, 2".to_owned())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 400);
    let big = json!([one.clone(), "x".repeat(2048)]).to_string();
    let (status, body) = app.post_playfab(Some(&app.admin_key), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], 413);
    app.stop().await;
}

#[tokio::test]
async fn the_line_limit_is_configurable() {
    let app = TestApp::spawn().await;
    // Another engine on the same database, with MAX_LINE_BYTES = 100.
    let small = engine::Engine::open(&engine::EngineConfig {
        max_line_bytes: 100,
        ..app.config.clone()
    })
    .await
    .unwrap();
    let p = small.authenticate(&app.admin_key).await.unwrap();
    let short = r#"{"timestamp": "2019-01-01 15:04:05", "user_id": "1"}"#;
    let long = format!(
        r#"{{"timestamp": "2019-01-01 15:04:05", "user_id": "{}"}}"#,
        "x".repeat(100)
    );
    let summary = small
        .ingest_ndjson(&p, "logins", format!("{short}\n{long}\n").as_bytes())
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.rejected), (1, 1));
    assert_eq!(summary.errors[0].line_number, 2);
    assert!(
        summary.errors[0].message.contains("MAX_LINE_BYTES"),
        "{:?}",
        summary.errors
    );
    // The default engine takes the same line.
    let (_, res) = app.post_events(Some(&app.admin_key), "logins", long).await;
    assert_eq!(res["data"]["accepted"], 1, "{res}");
    app.stop().await;
}

/// A PlayStream batch of every mapped event, each built from the properties
/// PlayFab's event reference lists for it, with a redelivery, a title event,
/// a character event and a typed part that does not map.
#[tokio::test]
async fn playstream_events_map_as_playfab_documents_them() {
    let app = TestApp::spawn().await;
    let (ingest, _) = app.create_key("ingest").await;
    let batch = json!([
        playfab_event("player_logged_in", "l1", json!({ "Platform": "Steam", "PlatformUserId": "7656", "PlatformUserName": "kim", "Location": { "CountryCode": "DE", "City": "Berlin" } })),
        playfab_event("player_realmoney_purchase", "r1", json!({ "OrderId": "o1", "OrderTotal": 998, "PaymentProvider": "Stripe", "PaymentType": "Card", "PurchasedProduct": ["gems_100", "starter_pack"], "TransactionCurrency": "EUR", "TransactionId": "t1", "TransactionTotal": 899 })),
        playfab_event("player_vc_item_purchased", "v1", json!({ "CatalogVersion": "1", "CurrencyCode": "GO", "ItemId": "sword", "PurchaseId": "p1", "Quantity": 2, "StoreId": "main", "UnitPrice": 120 })),
        playfab_event("player_inventory_item_added", "i1", json!({ "Annotation": "gift", "BundleContents": [], "CatalogVersion": "1", "Class": "weapon", "CouponCode": null, "DisplayName": "Sword", "Expiration": null, "InstanceId": "in1", "ItemId": "sword", "RemainingUses": 3 })),
        playfab_event("player_statistic_changed", "s1", json!({ "AggregationMethod": "Last", "StatisticId": 4, "StatisticName": "fights_won", "StatisticPreviousValue": 9, "StatisticValue": 10, "Version": 0 })),
        // Its typed part does not map (a text value): the event is kept as an action.
        playfab_event("player_statistic_changed", "s2", json!({ "StatisticName": "rank", "StatisticValue": "gold" })),
        playfab_event("player_logged_in", "l1", json!({})),
        { "EventName": "title_statistic_version_changed", "EventId": "t9", "EntityType": "title", "EntityId": "A1B2", "Timestamp": "2026-11-01T10:00:00Z", "StatisticName": "fights_won", "StatisticVersion": 2 },
        { "EventName": "character_statistic_changed", "EventId": "c9", "EntityType": "character", "EntityId": "C1", "PlayerId": "6F3A2B1C", "Timestamp": "2026-11-01T10:00:00Z" },
    ]);
    let (status, resp) = app.post_playfab(Some(&ingest), batch.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let data = &resp["data"];
    assert_eq!(
        (
            &data["accepted"],
            &data["duplicate"],
            &data["ignored"],
            &data["rejected"]
        ),
        (&json!(6), &json!(1), &json!(2), &json!(0)),
        "{resp}"
    );
    let db = app.engine.db();
    assert_eq!(crate::sources::table_count(&app, "actions").await, 6);
    let mut purchases = engine::entity::purchases::Entity::find()
        .all(db)
        .await
        .unwrap();
    purchases.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    let bought: Vec<_> = purchases
        .iter()
        .map(|p| {
            (
                p.item_id.as_deref(),
                p.price,
                p.count,
                p.platform.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        bought,
        [
            (Some("gems_100"), Some(499.0), Some(1), Some("Stripe")),
            (Some("starter_pack"), Some(499.0), Some(1), Some("Stripe")),
        ]
    );
    let logins = engine::entity::logins::Entity::find()
        .all(db)
        .await
        .unwrap();
    assert_eq!(logins.len(), 1);
    assert_eq!(
        (logins[0].platform.as_deref(), logins[0].country.as_deref()),
        (Some("Steam"), Some("DE"))
    );
    let vp = engine::entity::virtual_purchases::Entity::find()
        .all(db)
        .await
        .unwrap();
    assert_eq!(
        (
            vp[0].item_id.as_deref(),
            vp[0].count,
            vp[0].virtual_price,
            vp[0].currency.as_deref()
        ),
        (Some("sword"), Some(2), Some(120.0), Some("GO"))
    );
    let items = engine::entity::items::Entity::find().all(db).await.unwrap();
    assert_eq!(
        (
            items[0].item_id.as_str(),
            items[0].name.as_deref(),
            items[0].r#type.as_deref()
        ),
        ("sword", Some("Sword"), Some("weapon"))
    );
    let kpis = engine::entity::kpis::Entity::find().all(db).await.unwrap();
    assert_eq!(kpis.len(), 1);
    assert_eq!(
        (kpis[0].kpi_id.as_str(), kpis[0].value),
        ("fights_won", 10.0)
    );
    let quarantined = engine::entity::quarantined_lines::Entity::find()
        .all(db)
        .await
        .unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(
        quarantined[0].message.contains("kpis row not kept"),
        "{quarantined:?}"
    );

    // The whole batch again: every player event a duplicate, nothing written twice.
    let (_, again) = app.post_playfab(Some(&ingest), batch.to_string()).await;
    assert_eq!(again["data"]["accepted"], 0, "{again}");
    assert_eq!(again["data"]["duplicate"], 7, "{again}");
    assert_eq!(crate::sources::table_count(&app, "actions").await, 6);
    assert_eq!(crate::sources::table_count(&app, "purchases").await, 2);
    app.stop().await;
}
