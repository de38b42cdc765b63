//! Personas recover planted clusters (adjusted Rand index), the traits route
//! returns each persona's mean profile, `auto` finds the planted k, 404s say
//! what is missing; prediction reports the planted R² and predicts the rest.

use std::collections::{BTreeMap, HashMap};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    segments::{Planted, plant_players, plant_scores, plant_values},
    support::TestApp,
    trait_values::{catalog_ids, create},
};

const FACETS: [(&str, &str); 6] = [
    ("personality", "Openness"),
    ("personality", "Extraversion"),
    ("motivations", "Flow"),
    ("motivations", "Persistence"),
    ("wellBeing", "Grit"),
    ("culture", "Indulgence"),
];

/// Deterministic noise: an LCG with Box–Muller for normal draws.
pub(crate) struct Noise(pub u64);
impl Noise {
    pub(crate) fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub(crate) fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Adjusted Rand index of two labelings of the same items.
fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    let pairs = |n: usize| (n * n.saturating_sub(1)) as f64 / 2.0;
    let mut table: HashMap<(usize, usize), usize> = HashMap::new();
    let (mut rows, mut cols): (HashMap<usize, usize>, HashMap<usize, usize>) = Default::default();
    for (x, y) in a.iter().zip(b) {
        *table.entry((*x, *y)).or_default() += 1;
        *rows.entry(*x).or_default() += 1;
        *cols.entry(*y).or_default() += 1;
    }
    let index: f64 = table.values().map(|n| pairs(*n)).sum();
    let (ra, cb): (f64, f64) = (
        rows.values().map(|n| pairs(*n)).sum(),
        cols.values().map(|n| pairs(*n)).sum(),
    );
    let expected = ra * cb / pairs(a.len());
    (index - expected) / ((ra + cb) / 2.0 - expected)
}

async fn v1_get(app: &TestApp, path: &str) -> (u16, Value) {
    let (status, body) = app.v1(Method::GET, path, Some(&app.admin_key), None).await;
    (status.as_u16(), body)
}

async fn persona_ids(app: &TestApp, segment: &str, persona: &str) -> Vec<String> {
    let (status, body) = v1_get(
        app,
        &format!("/v1/segments/{segment}/personas/{persona}/user-ids"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["code"].as_i64(), body["message"].as_str()),
        (Some(200), Some(""))
    );
    body["data"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Three groups of players with distinct profiles over six facets.
pub(crate) async fn plant_clusters(
    app: &TestApp,
) -> (
    Vec<String>,
    HashMap<String, usize>,
    HashMap<(String, String, String), f64>,
) {
    let centers = [
        [65.0, 40.0, 55.0, 60.0, 45.0, 50.0],
        [40.0, 65.0, 45.0, 50.0, 60.0, 40.0],
        [50.0, 50.0, 70.0, 35.0, 50.0, 65.0],
    ];
    let sizes = [50, 35, 20];
    let mut noise = Noise(11);
    let (mut users, mut truth, mut scores, mut rows) =
        (Vec::new(), HashMap::new(), HashMap::new(), Vec::new());
    for (cluster, n) in sizes.iter().enumerate() {
        for i in 0..*n {
            let user = format!("c{cluster}-{i:03}");
            for (f, (category, facet)) in FACETS.iter().enumerate() {
                let score = centers[cluster][f] + 3.0 * noise.normal();
                scores.insert(
                    (user.clone(), category.to_string(), facet.to_string()),
                    score,
                );
                rows.push((user.clone(), *category, *facet, score));
            }
            truth.insert(user.clone(), cluster);
            users.push(user);
        }
    }
    plant_players(app, &users).await;
    plant_scores(app, &rows).await;
    (users, truth, scores)
}

#[tokio::test]
async fn personas_recover_planted_clusters_and_their_profiles() {
    let app = TestApp::spawn().await;
    let (users, truth, scores) = plant_clusters(&app).await;

    // Nothing computed yet: the routes say so.
    let (status, body) = v1_get(&app, "/v1/segments/default/personas/1/traits").await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(404)), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("not computed"),
        "{body}"
    );

    let (status, body) = app
        .rest(
            Method::PUT,
            "/segments/default",
            Some(json!({ "personas": 3 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.drain().await;

    let mut found = HashMap::new();
    let mut sizes = Vec::new();
    for persona in 1..=3 {
        let ids = persona_ids(&app, "default", &persona.to_string()).await;
        sizes.push(ids.len());
        // The traits route is the members' mean score per category and facet.
        let (status, body) = v1_get(
            &app,
            &format!("/v1/segments/default/personas/{persona}/traits"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        for (category, facet) in FACETS {
            let mean = ids
                .iter()
                .map(|u| scores[&(u.clone(), category.into(), facet.into())])
                .sum::<f64>()
                / ids.len() as f64;
            let got = body["data"][category][facet]
                .as_f64()
                .unwrap_or_else(|| panic!("{category}.{facet} in {body}"));
            assert!(
                (got - mean).abs() < 1e-6,
                "persona {persona} {category}.{facet}: {got} vs {mean}"
            );
        }
        for u in ids {
            found.insert(u, persona);
        }
    }
    assert!(
        sizes.windows(2).all(|w| w[0] >= w[1]),
        "numbered by size: {sizes:?}"
    );
    assert_eq!(
        found.len(),
        users.len(),
        "every scored player is in one persona"
    );
    let planted: Vec<usize> = users.iter().map(|u| truth[u]).collect();
    let recovered: Vec<usize> = users.iter().map(|u| found[u]).collect();
    let ari = adjusted_rand_index(&planted, &recovered);
    assert!(ari >= 0.9, "adjusted Rand index {ari}");

    // `all`: every member, and the profile over all of them.
    let mut all = persona_ids(&app, "default", "all").await;
    all.sort();
    let mut expected = users.clone();
    expected.sort();
    assert_eq!(all, expected);
    let (_, body) = v1_get(&app, "/v1/segments/default/personas/all/traits").await;
    let mean = users
        .iter()
        .map(|u| scores[&(u.clone(), "personality".into(), "Openness".into())])
        .sum::<f64>()
        / users.len() as f64;
    assert!(
        (body["data"]["personality"]["Openness"].as_f64().unwrap() - mean).abs() < 1e-6,
        "{body}"
    );

    // Unknown segment, unknown persona, a persona that is not a number.
    for (path, words) in [
        ("/v1/segments/nope/personas/1/user-ids", "segment `nope`"),
        ("/v1/segments/default/personas/4/traits", "no persona 4"),
        (
            "/v1/segments/default/personas/first/user-ids",
            "persona `first`",
        ),
    ] {
        let (status, body) = v1_get(&app, path).await;
        assert_eq!(
            (status, body["code"].as_i64()),
            (404, Some(404)),
            "{path}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains(words),
            "{path}: {body}"
        );
        assert!(body["data"].is_null());
    }

    // The bodies are JSON, and an erased player leaves every route at once
    // (cached bodies included), before the personas are computed again.
    let resp = app
        .http
        .get(format!(
            "{}/v1/segments/default/personas/1/user-ids",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["vary"], "Accept-Encoding");
    assert!(resp.headers().get("content-encoding").is_none());
    // Clients that accept gzip get the same JSON gzipped.
    let url = format!("{}/v1/segments/default/personas/all/user-ids", app.url);
    let fetch = |encoding: &'static str| {
        app.http
            .get(&url)
            .bearer_auth(&app.admin_key)
            .header("accept-encoding", encoding)
            .send()
    };
    let plain = fetch("identity").await.unwrap().bytes().await.unwrap();
    let zipped = fetch("br;q=1.0, gzip;q=0.8").await.unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped = zipped.bytes().await.unwrap();
    assert!(
        zipped.len() < plain.len(),
        "{} ≥ {}",
        zipped.len(),
        plain.len()
    );
    let mut inflated = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(
        &mut async_compression::tokio::bufread::GzipDecoder::new(&zipped[..]),
        &mut inflated,
    )
    .await
    .unwrap();
    assert_eq!(inflated, plain);
    let gone = persona_ids(&app, "default", "1").await[0].clone();
    let (status, body) = app
        .v1(
            Method::DELETE,
            "/v1/userData",
            Some(&app.admin_key),
            Some(&json!({ "id": gone }).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!persona_ids(&app, "default", "1").await.contains(&gone));
    assert!(!persona_ids(&app, "default", "all").await.contains(&gone));
    app.drain().await;
    assert!(!persona_ids(&app, "default", "1").await.contains(&gone));

    // GraphQL shows the same personas with sizes and paginated members.
    let d = app
        .gql("{ segment(segment: \"default\") { personaCount personasStatus scoredMembers personas { index size members(first: 5) { nodes { userId } pageInfo { hasNextPage endCursor } } } } }", json!({}))
        .await;
    let s = &d["segment"];
    assert_eq!(
        (s["personaCount"].as_i64(), s["personasStatus"].as_str()),
        (Some(3), Some("ready")),
        "{d}"
    );
    assert_eq!(s["scoredMembers"], users.len() - 1);
    assert_eq!(
        s["personas"][0]["members"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // Paging with `after: endCursor` until it is null visits every member once.
    let query = "query($a: String) { segment(segment: \"default\") { personas { size members(first: 5, after: $a) { nodes { userId } pageInfo { hasNextPage endCursor } } } } }";
    let (mut after, mut seen) = (Value::Null, Vec::new());
    loop {
        let d = app.gql(query, json!({ "a": after })).await;
        let p = &d["segment"]["personas"][0];
        let page = &p["members"];
        seen.extend(
            page["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["userId"].as_str().unwrap().to_owned()),
        );
        after = page["pageInfo"]["endCursor"].clone();
        assert_eq!(
            after.is_null(),
            page["pageInfo"]["hasNextPage"] == false,
            "{d}"
        );
        if after.is_null() {
            assert_eq!(seen.len() as u64, p["size"].as_u64().unwrap(), "{d}");
            break;
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "in user-id order, each once");
    // The same limits as every list.
    let (_, d) = app
        .gql_as(
            Some(&app.admin_key),
            "{ segment(segment: \"default\") { members(first: 501) { nodes { userId } } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["errors"][0]["extensions"]["field"], "first", "{d}");
    app.stop().await;
}

#[tokio::test]
async fn auto_chooses_the_planted_number_of_personas() {
    let app = TestApp::spawn().await;
    plant_clusters(&app).await;
    let body = json!({ "name": "Scored", "filter": {"facet": "personality.Openness", "op": "exists"}, "personas": "auto" });
    let (status, res) = app.rest(Method::POST, "/segments", Some(body)).await;
    assert_eq!(status, 201, "{res}");
    // A segment nobody is in: no personas, and the 404 says why.
    let empty = json!({ "name": "Nobody", "filter": {"facet": "personality.Openness", "op": ">", "value": 1000} });
    assert_eq!(
        app.rest(Method::POST, "/segments", Some(empty)).await.0,
        201
    );
    app.drain().await;
    let d = app
        .gql(
            "{ segment(segment: \"scored\") { memberCount personas { index size } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["segment"]["memberCount"], 105);
    let sizes: Vec<i64> = d["segment"]["personas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["size"].as_i64().unwrap())
        .collect();
    assert_eq!(sizes, vec![50, 35, 20], "{d}");
    let (status, body) = v1_get(&app, "/v1/segments/nobody/personas/all/traits").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("0 members"),
        "{body}"
    );
    assert_eq!(
        persona_ids(&app, "nobody", "all").await,
        Vec::<String>::new()
    );
    app.stop().await;
}

#[tokio::test]
async fn prediction_reports_the_planted_signal_and_predicts_everyone_else() {
    let app = TestApp::spawn().await;
    let ctx = catalog_ids(&app).await;
    let mut features = Vec::new();
    for (name, agg) in [("f1", "sum"), ("f2", "max"), ("f3", "min")] {
        let t = create(&app, json!({ "name": name, "parent_model_id": ctx.players, "trait_type": "aggregation", "result_type": "number",
            "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": agg, "column": "price" } })).await;
        features.push(t["id"].as_str().unwrap().to_owned());
    }
    app.drain().await;

    // 200 survey completes and 40 other players; traits are 100 + 15·z.
    let mut noise = Noise(5);
    let (mut users, mut z) = (Vec::new(), BTreeMap::new());
    for i in 0..240 {
        let user = if i < 200 {
            format!("s{i:03}")
        } else {
            format!("o{i:03}")
        };
        z.insert(
            user.clone(),
            [noise.normal(), noise.normal(), noise.normal()],
        );
        users.push(user);
    }
    plant_players(&app, &users).await;
    for (j, id) in features.iter().enumerate() {
        let values: Vec<(String, Planted)> = users
            .iter()
            .map(|u| (u.clone(), Planted::Number(100.0 + 15.0 * z[u][j])))
            .collect();
        plant_values(&app, id, &values).await;
    }
    // Openness = 50 + 6·z1 + 4·z2 + noise(5): R² = 52 / 77. Flow is noise. Grit ≈ 9·z3.
    let openness = |z: &[f64; 3]| 50.0 + 6.0 * z[0] + 4.0 * z[1];
    let mut rows = Vec::new();
    for u in users.iter().take(200) {
        let zu = &z[u];
        rows.push((
            u.clone(),
            "personality",
            "Openness",
            openness(zu) + 5.0 * noise.normal(),
        ));
        rows.push((
            u.clone(),
            "motivations",
            "Flow",
            50.0 + 10.0 * noise.normal(),
        ));
        rows.push((
            u.clone(),
            "wellBeing",
            "Grit",
            50.0 + 9.0 * zu[2] + noise.normal(),
        ));
    }
    plant_scores(&app, &rows).await;

    let d = app
        .gql("mutation { trainPrediction { id } }", json!({}))
        .await;
    assert!(d["trainPrediction"]["id"].is_string());
    app.drain().await;
    let d = app
        .gql("{ prediction { status message completes required predictedPlayers facets { category facet r2 trainSize } } }", json!({}))
        .await;
    let p = &d["prediction"];
    assert_eq!(p["status"], "trained", "{d}");
    assert_eq!(
        (
            p["completes"].as_i64(),
            p["required"].as_i64(),
            p["predictedPlayers"].as_i64()
        ),
        (Some(200), Some(30), Some(40)),
        "{d}"
    );
    let r2: HashMap<String, f64> = p["facets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["facet"].as_str().unwrap().to_owned(),
                f["r2"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(
        (r2["Openness"] - 52.0 / 77.0).abs() < 0.1,
        "Openness R² {}",
        r2["Openness"]
    );
    assert!(r2["Flow"] < 0.05, "Flow is noise, R² {}", r2["Flow"]);
    assert!(
        (r2["Grit"] - 81.0 / 82.0).abs() < 0.03,
        "Grit R² {}",
        r2["Grit"]
    );

    // Everyone without a survey gets predicted scores near the planted function.
    for u in users.iter().skip(200) {
        let d = app
            .gql("query($u: String!) { player(userId: $u) { psychScores { category facet score source } } }", json!({ "u": u }))
            .await;
        let scores = d["player"]["psychScores"].as_array().unwrap();
        assert_eq!(scores.len(), 3, "{d}");
        let o = scores.iter().find(|s| s["facet"] == "Openness").unwrap();
        assert_eq!(o["source"], "predicted");
        let (got, want) = (o["score"].as_f64().unwrap(), openness(&z[u]));
        assert!(
            (got - want).abs() < 2.5,
            "{u}: predicted {got}, planted {want}"
        );
    }
    // Survey completes keep their own scores.
    let d = app
        .gql(
            "{ player(userId: \"s000\") { psychScores { source } } }",
            json!({}),
        )
        .await;
    assert!(
        d["player"]["psychScores"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["source"] == "survey"),
        "{d}"
    );
    app.stop().await;
}

#[tokio::test]
async fn prediction_waits_for_enough_completes() {
    let app = TestApp::spawn().await;
    let users: Vec<String> = (0..5).map(|i| format!("p{i}")).collect();
    plant_players(&app, &users).await;
    let rows: Vec<_> = users
        .iter()
        .map(|u| (u.clone(), "personality", "Openness", 50.0))
        .collect();
    plant_scores(&app, &rows).await;
    app.gql("mutation { trainPrediction { id } }", json!({}))
        .await;
    app.drain().await;
    let d = app.gql("{ prediction { status message completes required predictedPlayers facets { facet } } }", json!({})).await;
    let p = &d["prediction"];
    assert_eq!(p["status"], "insufficient", "{d}");
    assert!(
        p["message"].as_str().unwrap().contains("at least 30"),
        "{d}"
    );
    assert_eq!(
        (p["completes"].as_i64(), p["predictedPlayers"].as_i64()),
        (Some(5), Some(0))
    );
    assert_eq!(p["facets"], json!([]));
    app.stop().await;
}

/// Players of a planted type (`center` over [`FACETS`]), named `{prefix}-{i}`.
async fn plant_type(app: &TestApp, prefix: &str, center: [f64; 6], n: usize, seed: u64) {
    let mut noise = Noise(seed);
    let users: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:03}")).collect();
    let mut rows = Vec::new();
    for u in &users {
        for (f, (category, facet)) in FACETS.iter().enumerate() {
            rows.push((
                u.clone(),
                *category,
                *facet,
                center[f] + 3.0 * noise.normal(),
            ));
        }
    }
    plant_players(app, &users).await;
    plant_scores(app, &rows).await;
}

/// index → (members, id, name, label, stability) of the default segment.
async fn default_personas(
    app: &TestApp,
) -> BTreeMap<i64, (Vec<String>, Value, Value, String, Value)> {
    let d = app
        .gql(
            "{ segment(segment: \"default\") { personas { index id name label stability size } } }",
            json!({}),
        )
        .await;
    let mut out = BTreeMap::new();
    for p in d["segment"]["personas"].as_array().unwrap() {
        let index = p["index"].as_i64().unwrap();
        let members = persona_ids(app, "default", &index.to_string()).await;
        out.insert(
            index,
            (
                members,
                p["id"].clone(),
                p["name"].clone(),
                p["label"].as_str().unwrap().to_owned(),
                p["stability"].clone(),
            ),
        );
    }
    out
}

#[tokio::test]
async fn personas_keep_their_index_name_and_members_when_the_segment_changes() {
    let app = TestApp::spawn().await;
    let (_, truth, _) = plant_clusters(&app).await;
    let (status, body) = app
        .rest(
            Method::PUT,
            "/segments/default",
            Some(json!({ "personas": 3 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.drain().await;
    let before = default_personas(&app).await;
    assert_eq!(before.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    // Which planted type each persona is (its members' majority).
    let type_of = |members: &[String]| {
        let mut votes = [0usize; 4];
        for m in members {
            votes[truth.get(m).copied().unwrap_or(3)] += 1;
        }
        (0..4).max_by_key(|t| votes[*t]).unwrap()
    };
    // Labels name each planted type's most distinguishing facets: type 0 is
    // high on Openness (65 against a mean near 54), type 1 high on
    // Extraversion (65 against 50), type 2 low on Persistence (35 against 52).
    let expected = ["High Openness", "High Extraversion", "Low Persistence"];
    for (members, _, _, label, stability) in before.values() {
        let t = type_of(members);
        assert!(label.contains(expected[t]), "type {t}: {label}");
        assert!(
            stability.is_null(),
            "a first clustering has no previous members"
        );
    }
    // A name and a description, over REST and GraphQL.
    let (status, body) = app
        .rest(
            Method::PATCH,
            "/segments/default/personas/2",
            Some(json!({ "name": "Socialites", "description": "Here for the people" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["index"], &body["name"]),
        (&json!(2), &json!("Socialites"))
    );
    let (status, body) = app
        .rest(
            Method::PATCH,
            "/segments/default/personas/2",
            Some(json!({ "name": "" })),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["error"]["field"]),
        (422, &json!("name")),
        "{body}"
    );

    // 5% more players of the same types, and a new clustering.
    for (t, center) in [
        [65.0, 40.0, 55.0, 60.0, 45.0, 50.0],
        [40.0, 65.0, 45.0, 50.0, 60.0, 40.0],
        [50.0, 50.0, 70.0, 35.0, 50.0, 65.0],
    ]
    .iter()
    .enumerate()
    {
        plant_type(&app, &format!("late{t}"), *center, 2, 90 + t as u64).await;
    }
    app.gql(
        "mutation { refreshSegment(segment: \"default\") { id } }",
        json!({}),
    )
    .await;
    app.drain().await;
    let after = default_personas(&app).await;
    assert_eq!(after.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    for (index, (old, id, name, label, _)) in &before {
        let (new, new_id, new_name, new_label, stability) = &after[index];
        assert_eq!(
            type_of(old),
            type_of(new),
            "persona {index} is the same type"
        );
        assert_eq!(new_id, id, "persona {index} keeps its id");
        let kept = old.iter().filter(|m| new.contains(m)).count() as f64 / old.len() as f64;
        assert!(kept >= 0.95, "persona {index} kept {kept}");
        assert!(
            (stability.as_f64().unwrap() - kept).abs() < 1e-9,
            "{stability} vs {kept}"
        );
        assert_eq!(new_label, label);
        if *index == 2 {
            assert_eq!(new_name, "Socialites");
        } else {
            assert_eq!(new_name, name);
        }
    }
    let d = app
        .gql(
            "query($id: ID!) { persona(id: $id) { index name } }",
            json!({ "id": after[&2].1 }),
        )
        .await;
    assert_eq!(d["persona"], json!({ "index": 2, "name": "Socialites" }));

    // A planted new type, `auto` personas: it appears under a new index and
    // every earlier persona keeps its own.
    plant_type(&app, "new", [40.0, 40.0, 40.0, 70.0, 70.0, 35.0], 30, 77).await;
    let (status, body) = app
        .rest(
            Method::PUT,
            "/segments/default",
            Some(json!({ "personas": "auto" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.drain().await;
    let last = default_personas(&app).await;
    assert_eq!(
        last.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "{last:?}"
    );
    for index in 1..=3 {
        assert_eq!(type_of(&last[&index].0), type_of(&before[&index].0));
        assert_eq!(last[&index].1, before[&index].1);
    }
    assert!(
        last[&4].0.iter().all(|m| m.starts_with("new-")),
        "{:?}",
        last[&4].0
    );
    assert!(last[&4].4.is_null());
    app.stop().await;
}
