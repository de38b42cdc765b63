//! Incremental evaluation: after a stream of batches (posts and files, late
//! events with old timestamps, a redelivered post), every value and every
//! membership equals a full recompute of the same traits, row by row.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use engine::entity::{segment_members, trait_values};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    sources::{folder, write},
    support::TestApp,
    trait_values::{catalog_ids, create},
};

/// A small deterministic generator (the test must fail the same way twice).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

type Values = BTreeMap<(Uuid, String), String>;

/// Every stored value of the workspace's traits, by (trait, entity).
async fn stored(app: &TestApp, traits: &[Uuid]) -> Values {
    trait_values::Entity::find()
        .filter(trait_values::Column::WorkspaceId.eq(app.workspace_id))
        .filter(trait_values::Column::TraitId.is_in(traits.to_vec()))
        .all(app.engine.db())
        .await
        .unwrap()
        .into_iter()
        .map(|v| {
            let value = format!(
                "{:?} {:?} {:?} {:?} {:?}",
                v.value_number, v.value_text, v.value_boolean, v.value_timestamp, v.value_json
            );
            ((v.trait_id, v.entity_id), value)
        })
        .collect()
}

async fn members(app: &TestApp, segment: Uuid) -> BTreeSet<String> {
    segment_members::Entity::find()
        .filter(segment_members::Column::SegmentId.eq(segment))
        .all(app.engine.db())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect()
}

fn purchase(rng: &mut Lcg, late: bool) -> Value {
    let days_ago = if late {
        200 + rng.next(300) as i64
    } else {
        rng.next(60) as i64
    };
    let at = Utc::now() - Duration::days(days_ago) - Duration::seconds(rng.next(86_400) as i64);
    let price = match rng.next(10) {
        0 => Value::Null,
        n => json!((n * 7 + rng.next(5)) as f64 / 2.0),
    };
    let item = match rng.next(6) {
        0 => Value::Null,
        n => json!(format!("item{n}")),
    };
    json!({
        "timestamp": at.format("%Y-%m-%d %H:%M:%S").to_string(),
        "user_id": format!("e{}", rng.next(40)),
        "price": price,
        "item_id": item,
    })
}

#[tokio::test]
async fn a_stream_of_batches_leaves_what_a_full_recompute_computes() {
    let app = TestApp::spawn().await;
    let ctx = catalog_ids(&app).await;
    let source = |config: Value| {
        let mut c =
            json!({ "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel });
        c.as_object_mut()
            .unwrap()
            .extend(config.as_object().unwrap().clone());
        c
    };
    let on_load = [
        (
            "Purchases",
            "aggregation",
            json!({ "aggregation": "count" }),
            "number",
        ),
        (
            "Spend",
            "aggregation",
            json!({ "aggregation": "sum", "column": "price" }),
            "number",
        ),
        (
            "Average price",
            "aggregation",
            json!({ "aggregation": "avg", "column": "price" }),
            "number",
        ),
        (
            "Cheapest",
            "aggregation",
            json!({ "aggregation": "min", "column": "price" }),
            "number",
        ),
        (
            "Dearest",
            "aggregation",
            json!({ "aggregation": "max", "column": "price" }),
            "number",
        ),
        (
            "First buy",
            "occurrence",
            json!({ "occurrence": "first", "column": "timestamp" }),
            "timestamp",
        ),
        (
            "Last buy",
            "occurrence",
            json!({ "occurrence": "last", "column": "timestamp" }),
            "timestamp",
        ),
        (
            "Buyer",
            "occurrence",
            json!({ "occurrence": "exists" }),
            "boolean",
        ),
        (
            "Items",
            "aggregation",
            json!({ "aggregation": "count_distinct", "column": "item_id" }),
            "number",
        ),
        (
            "Median price",
            "aggregation",
            json!({ "aggregation": "median", "column": "price" }),
            "number",
        ),
        (
            "Top item",
            "aggregation",
            json!({ "aggregation": "most_frequent", "column": "item_id" }),
            "text",
        ),
        (
            "Spend this month",
            "aggregation",
            json!({ "aggregation": "sum", "column": "price", "window": { "within_days": 30 } }),
            "number",
        ),
    ];
    let mut ids = Vec::new();
    for (name, kind, config, result) in on_load {
        let body = json!({ "name": name, "parent_model_id": ctx.players, "trait_type": kind,
            "config": source(config), "result_type": result, "refresh": "on_load" });
        ids.push(
            create(&app, body).await["id"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap(),
        );
    }
    // A formula over two of them (not on_load itself: it follows its inputs).
    let formula = json!({ "name": "Value score", "parent_model_id": ctx.players, "trait_type": "formula",
        "config": { "expression": "{spend} + {purchases} * 10" }, "result_type": "number" });
    ids.push(
        create(&app, formula).await["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    );
    app.drain().await;
    let (status, segment) = crate::segments::create_segment(
        &app,
        json!({ "name": "Valuable", "filter": { "trait": "value_score", "op": ">", "value": 120 } }),
    )
    .await;
    assert_eq!(status, 201, "{segment}");
    let segment: Uuid = segment["id"].as_str().unwrap().parse().unwrap();
    app.drain().await;

    // 20 batches: posts and files, some late, one post delivered twice;
    // the queue is drained only now and then, so passes take several loads.
    let mut rng = Lcg(7);
    let (dir, name) = folder(&app);
    let (_, created) = app.local_source(&name).await;
    let source_id = created["data"]["createDataSource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut redelivered = String::new();
    for batch in 0..20 {
        let late = batch % 5 == 3;
        let n = 5 + rng.next(30);
        let body: String = (0..n)
            .map(|_| format!("{}\n", purchase(&mut rng, late)))
            .collect();
        if batch % 4 == 1 {
            write(
                &dir,
                &format!("purchases/batch-{batch}.ndjson"),
                body.as_bytes(),
            );
            app.scan(&source_id).await;
        } else {
            let (status, answer) = app
                .post_events(Some(&app.admin_key), "purchases", body.clone())
                .await;
            assert_eq!(status, 200, "{answer}");
            if batch == 6 {
                redelivered = body;
            }
        }
        if batch == 9 {
            let (status, _) = app
                .post_events(Some(&app.admin_key), "purchases", redelivered.clone())
                .await;
            assert_eq!(status, 200);
        }
        if batch % 3 == 0 {
            app.drain().await;
        }
    }
    app.drain().await;
    let incremental = stored(&app, &ids).await;
    let incremental_members = members(&app, segment).await;
    assert!(
        incremental.len() > 40 * 10,
        "values for every player: {}",
        incremental.len()
    );
    assert!(!incremental_members.is_empty(), "the segment has members");

    // No full run followed the data: passes did.
    let state = app
        .gql(
            "query($id: ID!) { trait(id: $id) { lastPass { entities rowsRead } runs { nodes { trigger } } } }",
            json!({ "id": ids[0] }),
        )
        .await;
    let runs = state["trait"]["runs"]["nodes"].as_array().unwrap();
    assert!(runs.iter().all(|r| r["trigger"] == "definition"), "{state}");
    assert!(
        state["trait"]["lastPass"]["entities"].as_i64().unwrap() > 0,
        "{state}"
    );
    // The traits API lists the same passes, newest first.
    let (status, passes) = app
        .rest(
            reqwest::Method::GET,
            &format!("/traits/{}/passes?limit=2", ids[0]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{passes}");
    let passes = passes.as_array().unwrap();
    assert_eq!(passes.len(), 2, "{passes:?}");
    assert_eq!(
        passes[0]["entities"],
        state["trait"]["lastPass"]["entities"]
    );
    assert_eq!(
        passes[0]["rows_read"],
        state["trait"]["lastPass"]["rowsRead"]
    );
    assert!(
        passes[0]["id"].as_str() > passes[1]["id"].as_str(),
        "newest first"
    );
    let (status, body) = app
        .rest(
            reqwest::Method::GET,
            &format!("/traits/{}/passes?limit=0", ids[0]),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["field"].as_str()),
        (422, Some("limit")),
        "{body}"
    );

    // The reference: every trait recomputed in full, from empty.
    app.engine
        .db()
        .execute_unprepared("DELETE FROM trait_values")
        .await
        .unwrap();
    app.gql(
        "mutation($p: ID!) { refreshTraits(parentModelId: $p) { traitId } }",
        json!({ "p": ctx.players }),
    )
    .await;
    app.drain().await;
    let full = stored(&app, &ids).await;
    assert_eq!(incremental.len(), full.len());
    for (key, value) in &full {
        assert_eq!(incremental.get(key), Some(value), "{key:?}");
    }
    assert_eq!(incremental_members, members(&app, segment).await);

    // segmentChanges: each player's last change says whether they are a member.
    let changes = app
        .gql(
            "{ segmentChanges(segment: \"valuable\", first: 500) { nodes { userId change } } }",
            json!({}),
        )
        .await;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    // Newest first: the first seen per player is their last change.
    for c in changes["segmentChanges"]["nodes"].as_array().unwrap() {
        last.entry(c["userId"].as_str().unwrap().to_owned())
            .or_insert_with(|| c["change"].as_str().unwrap().to_owned());
    }
    let entered: BTreeSet<String> = last
        .iter()
        .filter(|(_, c)| *c == "ENTERED")
        .map(|(u, _)| u.clone())
        .collect();
    // The segment's first computation (no data yet) recorded nothing; every
    // member since came in through a recorded entry.
    assert_eq!(entered, incremental_members);
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// `traitforge-worker` is SIGKILLed inside an incremental pass (held in its
/// transaction by a table lock). A new worker takes the pass up once the dead
/// one's heartbeats are `JOB_LOST_AFTER` old: every purchase counted once,
/// the same values as a full recompute, and no touched player left waiting.
#[tokio::test]
async fn a_worker_killed_mid_pass_leaves_the_values_of_a_full_recompute() {
    use sea_orm::{Database, PaginatorTrait, TransactionTrait};

    use crate::support::postgres_admin_url;
    if postgres_admin_url().is_none() {
        return; // separate worker processes share a Redis queue and PostgreSQL
    }
    let app = TestApp::spawn_for_separate_workers().await;
    let ctx = catalog_ids(&app).await;
    let body = json!({ "name": "Purchases", "parent_model_id": ctx.players, "trait_type": "aggregation",
        "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "count" },
        "result_type": "number", "refresh": "on_load" });
    let count: Uuid = create(&app, body).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let worker_id = format!("killed-{}", Uuid::new_v4().simple());
    let mut first = crate::crash::spawn_worker_with(&app, &worker_id, 2);
    app.drain().await;

    // Writers of trait values wait: the pass stops inside its transaction.
    let holder = Database::connect(&app.config.database_url).await.unwrap();
    let lock = holder.begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE trait_values IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let (status, _) = app
        .post_events(
            Some(&app.admin_key),
            "purchases",
            crate::faults::purchases(50, 4),
        )
        .await;
    assert_eq!(status, 200);
    crate::faults::running(&app, &["incremental_pass"]).await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    lock.rollback().await.unwrap();
    holder.close().await.unwrap();

    let mut second = crate::crash::spawn_worker_with(&app, &format!("{worker_id}-new"), 2);
    app.drain().await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let after_pass = stored(&app, &[count]).await;
    assert_eq!(after_pass.len(), 50);
    assert!(
        after_pass.values().all(|v| v.starts_with("Some(4.0)")),
        "{after_pass:?}"
    );
    let touched = engine::entity::touched_players::Entity::find()
        .count(app.engine.db())
        .await
        .unwrap();
    assert_eq!(touched, 0, "nothing left for a next pass");
    let retried = engine::entity::job_records::Entity::find()
        .filter(engine::entity::job_records::Column::Attempts.gt(1))
        .count(app.engine.db())
        .await
        .unwrap();
    assert!(retried >= 1, "the pass ran a second time");
    app.stop().await;
}

/// New players posted after the personas were clustered: the pass predicts
/// their psych scores with the trained model and places each into the
/// persona whose centroid (in the members' standardized units at the
/// clustering) is nearest, computed here independently; sizes follow and
/// nothing is clustered again.
#[tokio::test]
async fn a_pass_scores_new_players_and_places_them_in_the_nearest_persona() {
    let app = TestApp::spawn().await;
    let ctx = catalog_ids(&app).await;
    create(&app, json!({ "name": "Spend", "parent_model_id": ctx.players, "trait_type": "aggregation",
        "result_type": "number", "refresh": "on_load",
        "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "sum", "column": "price" } })).await;
    let (users, _, scores) = crate::personas::plant_clusters(&app).await;
    // Spend tells the planted groups apart, so the model has a signal.
    let buy = |user: &str, price: f64| {
        json!({ "timestamp": "2026-11-20 10:00:00", "user_id": user, "price": price }).to_string()
    };
    let body: String = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let group: f64 = u[1..2].parse().unwrap();
            buy(u, 10.0 + 40.0 * group + (i % 7) as f64) + "\n"
        })
        .collect();
    app.post_events(Some(&app.admin_key), "purchases", body)
        .await;
    app.drain().await;
    app.gql("mutation { trainPrediction { id } }", json!({}))
        .await;
    app.drain().await;
    let (status, body) = app
        .rest(
            reqwest::Method::PUT,
            "/segments/default",
            Some(json!({ "personas": 3 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.drain().await;
    let personas = |d: &Value| -> BTreeMap<i64, i64> {
        d["segment"]["personas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["index"].as_i64().unwrap(), p["size"].as_i64().unwrap()))
            .collect()
    };
    let query = "{ segment(segment: \"default\") { personasComputedAt scoredMembers personas { index size members(first: 500) { nodes { userId } } } } }";
    let before = app.gql(query, json!({})).await;
    let sizes_before = personas(&before);
    assert_eq!(sizes_before.values().sum::<i64>(), users.len() as i64);

    // The clustering's space, from what it clustered: the members' mean and
    // (population) standard deviation per facet, centroids as standardized
    // mean scores of each persona's members.
    const FACETS: [(&str, &str); 6] = [
        ("culture", "Indulgence"),
        ("motivations", "Flow"),
        ("motivations", "Persistence"),
        ("personality", "Extraversion"),
        ("personality", "Openness"),
        ("wellBeing", "Grit"),
    ];
    let score = |u: &str, (c, f): (&str, &str)| scores[&(u.to_owned(), c.to_owned(), f.to_owned())];
    let n = users.len() as f64;
    let scaling: Vec<(f64, f64)> = FACETS
        .iter()
        .map(|f| {
            let mean = users.iter().map(|u| score(u, *f)).sum::<f64>() / n;
            let var = users
                .iter()
                .map(|u| (score(u, *f) - mean).powi(2))
                .sum::<f64>()
                / n;
            (mean, var.sqrt())
        })
        .collect();
    let centroids: Vec<(i64, Vec<f64>)> = before["segment"]["personas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let members: Vec<&str> = p["members"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["userId"].as_str().unwrap())
                .collect();
            let c = FACETS
                .iter()
                .zip(&scaling)
                .map(|(f, (mean, sd))| {
                    members
                        .iter()
                        .map(|u| (score(u, *f) - mean) / sd)
                        .sum::<f64>()
                        / members.len() as f64
                })
                .collect();
            (p["index"].as_i64().unwrap(), c)
        })
        .collect();

    // Twelve new players across the range of spend.
    let new: Vec<String> = (0..12).map(|i| format!("n{i:02}")).collect();
    let body: String = new
        .iter()
        .enumerate()
        .map(|(i, u)| buy(u, 5.0 + 9.0 * i as f64) + "\n")
        .collect();
    app.post_events(Some(&app.admin_key), "purchases", body)
        .await;
    app.drain().await;

    let after = app.gql(query, json!({})).await;
    assert_eq!(
        after["segment"]["personasComputedAt"], before["segment"]["personasComputedAt"],
        "placed, not clustered again"
    );
    let mut expected_sizes = sizes_before.clone();
    for u in &new {
        let d = app
            .gql(
                "query($u: String!) { player(userId: $u) { psychScores { category facet score source } } }",
                json!({ "u": u }),
            )
            .await;
        let got: BTreeMap<(String, String), f64> = d["player"]["psychScores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                assert_eq!(s["source"], "predicted", "{d}");
                (
                    (
                        s["category"].as_str().unwrap().to_owned(),
                        s["facet"].as_str().unwrap().to_owned(),
                    ),
                    s["score"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got.len(), FACETS.len(), "{u} predicted on every facet: {d}");
        let z: Vec<f64> = FACETS
            .iter()
            .zip(&scaling)
            .map(|((c, f), (mean, sd))| (got[&(c.to_string(), f.to_string())] - mean) / sd)
            .collect();
        let nearest = centroids
            .iter()
            .map(|(i, c)| {
                (
                    *i,
                    c.iter().zip(&z).map(|(a, b)| (a - b).powi(2)).sum::<f64>(),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .unwrap()
            .0;
        *expected_sizes.get_mut(&nearest).unwrap() += 1;
        let placed: Vec<i64> = after["segment"]["personas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["members"]["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["userId"] == u.as_str())
            })
            .map(|p| p["index"].as_i64().unwrap())
            .collect();
        assert_eq!(
            placed,
            vec![nearest],
            "{u}: placed in {placed:?}, nearest is {nearest}"
        );
    }
    assert_eq!(personas(&after), expected_sizes);
    assert_eq!(
        after["segment"]["scoredMembers"].as_i64(),
        Some((users.len() + new.len()) as i64)
    );
    app.stop().await;
}

/// A formula whose values stop fitting its result type fails alone: the
/// pass writes every other trait, the formula shows the error (as after a
/// failed full run) and keeps its values, and the next pass runs normally.
#[tokio::test]
async fn a_mistyped_expression_fails_alone_and_the_pass_lands() {
    let app = TestApp::spawn().await;
    let ctx = catalog_ids(&app).await;
    let count = create(&app, json!({ "name": "Purchases", "parent_model_id": ctx.players, "trait_type": "aggregation",
        "result_type": "number", "refresh": "on_load",
        "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "count" } })).await;
    let label = create(
        &app,
        json!({ "name": "Label", "parent_model_id": ctx.players, "trait_type": "formula",
        "result_type": "number",
        "config": { "expression": "CASE WHEN {purchases} > 1 THEN 'many' ELSE {purchases} END" } }),
    )
    .await;
    app.drain().await;
    let post = |users: &[&str]| {
        users
            .iter()
            .map(|u| {
                json!({ "timestamp": "2026-11-20 10:00:00", "user_id": u, "price": 1.0 })
                    .to_string()
                    + "\n"
            })
            .collect::<String>()
    };
    let sqlite = crate::support::postgres_admin_url().is_none();
    app.post_events(Some(&app.admin_key), "purchases", post(&["u1"]))
        .await;
    app.drain().await;
    if sqlite {
        // PostgreSQL refuses 'many' as a number when planning, whatever the data.
        let values = crate::trait_values::values(&app, label["id"].as_str().unwrap()).await;
        assert_eq!(values["u1"], 1.0, "{values:?}");
    }
    app.post_events(Some(&app.admin_key), "purchases", post(&["u1", "u2"]))
        .await;
    app.drain().await;
    let counts = crate::trait_values::values(&app, count["id"].as_str().unwrap()).await;
    assert_eq!(
        (counts["u1"].as_f64(), counts["u2"].as_f64()),
        (Some(2.0), Some(1.0)),
        "{counts:?}"
    );
    let d = app
        .gql(
            "query($id: ID!) { trait(id: $id) { status statusError staleSince values(first: 10) { nodes { entityId value } } } }",
            json!({ "id": label["id"] }),
        )
        .await;
    assert_eq!(d["trait"]["status"], "error", "{d}");
    assert!(
        d["trait"]["staleSince"].is_string(),
        "it misses the new rows: {d}"
    );
    if sqlite {
        let error = d["trait"]["statusError"].as_str().unwrap();
        assert!(
            error.contains("'many'") && error.contains("`u1`"),
            "{error}"
        );
        assert_eq!(
            d["trait"]["values"]["nodes"],
            json!([{ "entityId": "u1", "value": 1.0 }]),
            "the last values that fit stay: {d}"
        );
    }
    // Not stuck: the next pass takes new players as usual.
    app.post_events(Some(&app.admin_key), "purchases", post(&["u3"]))
        .await;
    app.drain().await;
    let counts = crate::trait_values::values(&app, count["id"].as_str().unwrap()).await;
    assert_eq!(counts["u3"].as_f64(), Some(1.0), "{counts:?}");
    app.stop().await;
}

/// Loads over players already waiting for a pass add no records: each player
/// keeps one, stamped with the newest load's version, and the pass that
/// takes them computes every load's rows and leaves nothing waiting.
#[tokio::test]
async fn players_touched_again_keep_one_record_until_the_pass() {
    use engine::entity::touched_players;
    let app = TestApp::spawn_with(crate::support::Options {
        embedded_worker: false,
        ..Default::default()
    })
    .await;
    let ctx = catalog_ids(&app).await;
    let count = create(&app, json!({ "name": "Purchases", "parent_model_id": ctx.players, "trait_type": "aggregation",
        "result_type": "number", "refresh": "on_load",
        "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "count" } })).await;
    let records = || async {
        touched_players::Entity::find()
            .filter(touched_players::Column::WorkspaceId.eq(app.workspace_id))
            .all(app.engine.db())
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.user_id, r.version))
            .collect::<BTreeMap<String, i64>>()
    };
    let post = |users: &[&str]| {
        users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                json!({ "timestamp": format!("2026-11-2{i} 10:00:00"), "user_id": u, "price": 1.0 })
                    .to_string()
                    + "\n"
            })
            .collect::<String>()
    };
    app.post_events(Some(&app.admin_key), "purchases", post(&["u1", "u2"]))
        .await;
    let first = records().await;
    assert_eq!(first.keys().collect::<Vec<_>>(), ["u1", "u2"]);
    app.post_events(Some(&app.admin_key), "purchases", post(&["u1", "u1", "u3"]))
        .await;
    let second = records().await;
    assert_eq!(
        second.keys().collect::<Vec<_>>(),
        ["u1", "u2", "u3"],
        "one record per player"
    );
    assert_ne!(first["u1"], second["u1"], "u1 stamped by the second load");
    assert_eq!(first["u2"], second["u2"], "u2 untouched");

    app.engine
        .execute_incremental(app.workspace_id)
        .await
        .unwrap();
    assert!(records().await.is_empty(), "the pass took every record");
    let values = crate::trait_values::values(&app, count["id"].as_str().unwrap()).await;
    assert_eq!(
        (
            values["u1"].as_f64(),
            values["u2"].as_f64(),
            values["u3"].as_f64()
        ),
        (Some(3.0), Some(1.0), Some(1.0)),
        "{values:?}"
    );
    app.stop().await;
}
