//! Predictive traits: a churn prediction over planted players whose churn
//! depends on their recent logins. The features the engine learns from are
//! checked against the test's own point-in-time computation, its holdout
//! AUC against a logistic regression fitted here on the same features and
//! split, events after the cutoff are shown not to leak, and the scores are
//! usable in a segment. Refusals name the field.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::{
    personas::Noise,
    support::TestApp,
    trait_values::{Ctx, catalog_ids, create},
};

const PLAYERS: usize = 1500;
const WINDOW: i64 = 14;
const HISTORY_DAYS: i64 = 42;

/// Every planted event: (user, record type, time, price).
struct Planted {
    events: Vec<(String, &'static str, DateTime<Utc>, f64)>,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Players with a login rate each; before the cutoff they log in at their
/// rate and some buy; a player churns (no event after the cutoff) with a
/// probability falling with their logins of the last 28 days.
fn plant(now: DateTime<Utc>) -> Planted {
    let cutoff = now - Duration::days(WINDOW);
    let start = cutoff - Duration::days(HISTORY_DAYS);
    let mut noise = Noise(42);
    let mut events = Vec::new();
    for i in 0..PLAYERS {
        let user = format!("p{i:05}");
        let rate = 0.05 + 0.65 * noise.uniform();
        let mut recent = 0;
        let mut at = start + Duration::seconds((noise.uniform() * 86_400.0 * 5.0) as i64);
        while at < cutoff {
            events.push((user.clone(), "logins", at, 0.0));
            if at > cutoff - Duration::days(28) {
                recent += 1;
            }
            if noise.uniform() < 0.1 {
                let price = (1.0 + 20.0 * noise.uniform()).round();
                events.push((user.clone(), "purchases", at + Duration::seconds(60), price));
            }
            let gap = -(noise.uniform().ln()) / rate;
            at += Duration::seconds((gap * 86_400.0) as i64 + 1);
        }
        let p_churn = 1.0 / (1.0 + (-(1.5 - 0.35 * f64::from(recent))).exp());
        if noise.uniform() >= p_churn {
            // Stays: at least one login in the window, dated before now.
            let mut at = cutoff + Duration::seconds(1 + (noise.uniform() * 86_400.0) as i64);
            while at < now - Duration::minutes(5) {
                events.push((user.clone(), "logins", at, 0.0));
                if noise.uniform() < 0.1 {
                    let price = (1.0 + 20.0 * noise.uniform()).round();
                    events.push((user.clone(), "purchases", at + Duration::seconds(60), price));
                }
                let gap = -(noise.uniform().ln()) / rate;
                at += Duration::seconds((gap * 86_400.0) as i64 + 1);
            }
        }
    }
    Planted { events }
}

async fn post(app: &TestApp, events: &[(String, &'static str, DateTime<Utc>, f64)]) {
    for kind in ["logins", "purchases"] {
        let lines: Vec<String> = events
            .iter()
            .filter(|e| e.1 == kind)
            .map(|(u, _, t, price)| match kind {
                "purchases" => json!({ "timestamp": stamp(*t), "user_id": u, "item_id": "gem", "count": 1, "price": price }).to_string(),
                _ => json!({ "timestamp": stamp(*t), "user_id": u }).to_string(),
            })
            .collect();
        for chunk in lines.chunks(20_000) {
            let (status, body) = app
                .post_events(Some(&app.admin_key), kind, chunk.join("\n"))
                .await;
            assert!(status.is_success(), "{status} {body}");
        }
    }
}

/// The features the engine documents, computed here from the planted
/// events as of `at`: the test's traits by slug (two counts and a formula
/// over them, which the engine computes through its as-of table, and a sum,
/// which it streams from the aggregate), then the built-ins (recency,
/// frequency over 28 days, tenure, spend), in that order.
fn features_as_of(
    events: &[(String, &'static str, DateTime<Utc>, f64)],
    at: DateTime<Utc>,
) -> BTreeMap<String, Vec<f64>> {
    #[derive(Default)]
    struct Acc {
        logins: f64,
        logins_28d: f64,
        revenue: f64,
        first: Option<DateTime<Utc>>,
        last: Option<DateTime<Utc>>,
        recent: f64,
    }
    let mut by: HashMap<&str, Acc> = HashMap::new();
    for (u, kind, t, price) in events {
        // Timestamps are stored to the second.
        let t = DateTime::from_timestamp(t.timestamp(), 0).unwrap();
        if t > at {
            continue;
        }
        let a = by.entry(u.as_str()).or_default();
        let in_28 = t >= at - Duration::days(28);
        if *kind == "logins" {
            a.logins += 1.0;
            if in_28 {
                a.logins_28d += 1.0;
            }
        }
        if *kind == "purchases" {
            a.revenue += price;
        }
        if t > at - Duration::days(28) {
            a.recent += 1.0;
        }
        a.first = Some(a.first.map_or(t, |f| f.min(t)));
        a.last = Some(a.last.map_or(t, |l| l.max(t)));
    }
    let days = |t: DateTime<Utc>| (at - t).num_seconds() as f64 / 86_400.0;
    by.into_iter()
        .filter(|(_, a)| a.last.unwrap() > at - Duration::days(21))
        .map(|(u, a)| {
            (
                u.to_owned(),
                vec![
                    a.logins,
                    a.logins_28d,
                    a.logins - a.logins_28d,
                    a.revenue,
                    days(a.last.unwrap()),
                    a.recent,
                    days(a.first.unwrap()),
                    a.revenue,
                ],
            )
        })
        .collect()
}

/// The column of `recency_days` in [`features_as_of`]'s rows.
const RECENCY: usize = 4;

/// Churned: no login in (at, at + window].
fn churned(
    events: &[(String, &'static str, DateTime<Utc>, f64)],
    at: DateTime<Utc>,
    user: &str,
) -> f64 {
    let until = at + Duration::days(WINDOW);
    let active = events.iter().any(|(u, kind, t, _)| {
        let t = DateTime::from_timestamp(t.timestamp(), 0).unwrap();
        u == user && *kind == "logins" && t > at && t <= until
    });
    f64::from(!active)
}

/// The documented holdout rule: FNV-1a (64 bit) of the user id, mod 100, below 20.
fn in_holdout(user: &str) -> bool {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in user.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h % 100 < 20
}

/// A logistic regression fitted by gradient descent on standardized
/// features (no library, no shared code with the engine).
fn reference_auc(train: &[(Vec<f64>, f64)], holdout: &[(Vec<f64>, f64)]) -> f64 {
    let p = train[0].0.len();
    let n = train.len() as f64;
    let mut mean = vec![0.0; p];
    let mut sd = vec![0.0; p];
    for (x, _) in train {
        for j in 0..p {
            mean[j] += x[j] / n;
        }
    }
    for (x, _) in train {
        for j in 0..p {
            sd[j] += (x[j] - mean[j]).powi(2) / n;
        }
    }
    let sd: Vec<f64> = sd
        .iter()
        .map(|v| if *v > 0.0 { v.sqrt() } else { 1.0 })
        .collect();
    let z = |x: &[f64]| -> Vec<f64> { (0..p).map(|j| (x[j] - mean[j]) / sd[j]).collect() };
    let (mut w, mut b) = (vec![0.0; p], 0.0);
    for _ in 0..3000 {
        let (mut gw, mut gb) = (vec![0.0; p], 0.0);
        for (x, y) in train {
            let zx = z(x);
            let s = b + (0..p).map(|j| w[j] * zx[j]).sum::<f64>();
            let e = 1.0 / (1.0 + (-s).exp()) - y;
            gb += e / n;
            for j in 0..p {
                gw[j] += e * zx[j] / n;
            }
        }
        b -= 0.5 * gb;
        for j in 0..p {
            w[j] -= 0.5 * (gw[j] + 1e-4 * w[j]);
        }
    }
    let scored: Vec<(f64, f64)> = holdout
        .iter()
        .map(|(x, y)| {
            let zx = z(x);
            (b + (0..p).map(|j| w[j] * zx[j]).sum::<f64>(), *y)
        })
        .collect();
    // AUC: ordered (positive, negative) pairs, ties half.
    let (mut pairs, mut good) = (0.0, 0.0);
    for (sp, yp) in &scored {
        for (sn, yn) in &scored {
            if *yp == 1.0 && *yn == 0.0 {
                pairs += 1.0;
                good += if sp > sn {
                    1.0
                } else if sp == sn {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    good / pairs
}

/// A player's churn probability and percentile.
async fn scores_of(app: &TestApp, user: &str) -> (f64, f64) {
    let d = app
        .gql(
            "query($u: String!) { player(userId: $u) { traits { slug value } } }",
            json!({ "u": user }),
        )
        .await;
    let traits = d["player"]["traits"].as_array().unwrap();
    let value = |slug: &str| {
        traits
            .iter()
            .find(|t| t["slug"] == slug)
            .unwrap_or_else(|| panic!("{slug} of {user}: {d}"))["value"]
            .as_f64()
            .unwrap()
    };
    (value("churn_risk"), value("churn_risk_percentile"))
}

async fn traits_of_test(app: &TestApp, c: &Ctx) {
    let logins = app
        .gql(
            "{ m: model(slug: \"logins\") { id relationships { id toModelId } } }",
            json!({}),
        )
        .await;
    let logins_rel = logins["m"]["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["toModelId"] == c.players.as_str())
        .unwrap()["id"]
        .clone();
    create(
        app,
        json!({
            "name": "Logins 28d", "parent_model_id": c.players, "trait_type": "aggregation",
            "config": { "source_model_id": logins["m"]["id"], "relationship_id": logins_rel,
                        "aggregation": "count", "window": { "within_days": 28 } },
            "result_type": "number", "refresh": "on_load"
        }),
    )
    .await;
    create(
        app,
        json!({
            "name": "Logins", "parent_model_id": c.players, "trait_type": "aggregation",
            "config": { "source_model_id": logins["m"]["id"], "relationship_id": logins_rel,
                        "aggregation": "count" },
            "result_type": "number", "refresh": "on_load"
        }),
    )
    .await;
    create(
        app,
        json!({
            "name": "Older logins", "parent_model_id": c.players, "trait_type": "formula",
            "config": { "expression": "{logins} - {logins_28d}" }, "result_type": "number"
        }),
    )
    .await;
    create(
        app,
        json!({
            "name": "Revenue", "parent_model_id": c.players, "trait_type": "aggregation",
            "config": { "source_model_id": c.purchases, "relationship_id": c.purchases_rel,
                        "aggregation": "sum", "column": "price" },
            "result_type": "number", "refresh": "on_load"
        }),
    )
    .await;
}

#[tokio::test]
async fn a_churn_prediction_learns_planted_churn_without_leakage_and_scores_usable_traits() {
    let app = TestApp::spawn().await;
    let c = catalog_ids(&app).await;
    traits_of_test(&app, &c).await;
    let now = Utc::now();
    let planted = plant(now);
    post(&app, &planted.events).await;
    app.drain().await;

    // Refusals name the field.
    let bad = [
        (
            json!({ "name": "x", "goal": "churn", "window_days": 3 }),
            422,
            "window_days",
        ),
        (
            json!({ "name": "x", "goal": "leave", "window_days": 14 }),
            422,
            "goal",
        ),
        (
            json!({ "name": "x", "goal": "churn", "window_days": 14, "config": { "record_types": ["logouts"] } }),
            422,
            "config.record_types[0]",
        ),
        (
            json!({ "name": "x", "goal": "churn", "window_days": 60 }),
            409,
            "window_days",
        ),
        (
            json!({ "name": "x", "goal": "purchase", "window_days": 14, "config": { "filters": [{ "column": "price", "op": ">", "value": 1000 }] } }),
            409,
            "goal",
        ),
    ];
    for (body, status, field) in bad {
        let (got, answer) = app
            .rest(reqwest::Method::POST, "/predictions", Some(body.clone()))
            .await;
        assert_eq!(got.as_u16(), status, "{body} → {answer}");
        assert!(
            answer.to_string().contains(field),
            "{body} → {answer} names {field}"
        );
    }

    let created = app
        .gql(
            "mutation { createPrediction(input: { name: \"Churn risk\", goal: churn, windowDays: 14 }) { id status } }",
            json!({}),
        )
        .await;
    let id = created["createPrediction"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.drain().await;
    let d = app
        .gql(
            "query($id: ID!) { predictiveTrait(id: $id) { status statusError cutoff scoredPlayers
                quality { auc logLoss brier topDecileLift positives negatives holdoutPlayers quality deciles { decile observed meanPredicted } topFeatures { name } }
                scoreTrait { slug } riskTrait { id slug } percentileTrait { slug } } }",
            json!({ "id": id }),
        )
        .await;
    let pt = &d["predictiveTrait"];
    assert_eq!(pt["status"], "ready", "{pt}");
    let q = &pt["quality"];
    let auc = q["auc"].as_f64().unwrap();
    assert!(auc >= 0.75, "holdout AUC {auc}: {q}");
    assert_eq!(q["deciles"].as_array().unwrap().len(), 10);
    assert_eq!(pt["riskTrait"]["slug"], "churn_risk_risk");

    // The engine's features as of the cutoff are the test's own computation.
    let cutoff: DateTime<Utc> = pt["cutoff"].as_str().unwrap().parse().unwrap();
    let admin = app.engine.authenticate(&app.admin_key).await.unwrap();
    let (specs, data) = app
        .engine
        .prediction_dataset(&admin, id.parse().unwrap(), cutoff)
        .await
        .unwrap();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "logins",
            "logins_28d",
            "older_logins",
            "revenue",
            "recency_days",
            "frequency_28d",
            "tenure_days",
            "spend_total"
        ]
    );
    let mine = features_as_of(&planted.events, cutoff);
    assert_eq!(data.users, mine.keys().cloned().collect::<Vec<_>>());
    let y = data.y.clone().unwrap();
    let mut train = Vec::new();
    let mut holdout = Vec::new();
    for (r, u) in data.users.iter().enumerate() {
        let expected = &mine[u];
        for (j, e) in expected.iter().enumerate() {
            let got = data.x[[r, j]];
            // A sum over no purchases is 0, not missing.
            assert!((got - e).abs() < 1e-9, "{u} {}: {got} vs {e}", names[j]);
        }
        let label = churned(&planted.events, cutoff, u);
        assert_eq!(y[r], label, "{u}'s label");
        let row = (expected.clone(), label);
        if in_holdout(u) {
            holdout.push(row)
        } else {
            train.push(row)
        }
    }
    assert_eq!(
        q["holdoutPlayers"].as_u64().unwrap() as usize,
        holdout.len()
    );
    let reference = reference_auc(&train, &holdout);
    eprintln!("holdout AUC {auc}, reference {reference}");
    assert!(
        (auc - reference).abs() <= 0.02,
        "AUC {auc} vs the reference's {reference}"
    );

    // Spend over the next 14 days: a regression, measured by rank correlation.
    let (status, spend) = app
        .rest(
            reqwest::Method::POST,
            "/predictions",
            Some(json!({ "name": "Spend 14d", "goal": "spend", "window_days": 14 })),
        )
        .await;
    assert_eq!(status, 201, "{spend}");
    assert_eq!(
        spend["config"],
        json!({ "model": "purchases", "column": "price" })
    );
    app.drain().await;
    let (_, spend) = app
        .rest(
            reqwest::Method::GET,
            &format!("/predictions/{}", spend["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(spend["status"], "ready", "{spend}");
    let sq = &spend["quality"];
    let rho = sq["spearman"].as_f64().unwrap();
    // Spend follows the planted login rate, which the features see.
    assert!(rho > 0.2, "{sq}");
    // The top three deciles of predicted spend spent more than the bottom three.
    let deciles = sq["deciles"].as_array().unwrap();
    let mean = |d: &[Value]| {
        d.iter()
            .map(|d| d["observed"].as_f64().unwrap())
            .sum::<f64>()
            / 3.0
    };
    assert!(mean(&deciles[..3]) > 2.0 * mean(&deciles[7..]), "{sq}");
    assert!(sq["top_decile_capture"].as_f64().unwrap() > 0.0, "{sq}");
    assert!(sq["auc"].is_null());

    // Events after the cutoff change no feature; after the window, no label.
    // A churner still scored now: last seen in the week before the cutoff
    // (recency below 7 days), so within the 21 active days of now.
    let churner = data
        .users
        .iter()
        .zip(&y)
        .find(|(u, y)| **y == 1.0 && mine[*u][RECENCY] < 6.5)
        .unwrap()
        .0
        .clone();
    let stayer = data
        .users
        .iter()
        .zip(&y)
        .find(|(_, y)| **y == 0.0)
        .unwrap()
        .0
        .clone();
    let late = vec![
        (churner.clone(), "logins", cutoff + Duration::days(1), 0.0),
        (
            stayer.clone(),
            "purchases",
            cutoff + Duration::days(2),
            500.0,
        ),
        (
            stayer.clone(),
            "logins",
            cutoff + Duration::days(WINDOW) + Duration::minutes(30),
            0.0,
        ),
        (
            churner.clone(),
            "purchases",
            cutoff + Duration::days(WINDOW) + Duration::minutes(30),
            80.0,
        ),
    ];
    let scored_before = scores_of(&app, &churner).await;
    post(&app, &late).await;
    app.drain().await;
    let (_, again) = app
        .engine
        .prediction_dataset(&admin, id.parse().unwrap(), cutoff)
        .await
        .unwrap();
    assert_eq!(again.users, data.users);
    assert_eq!(again.x, data.x, "no training feature changed");
    let y2 = again.y.unwrap();
    for (r, u) in data.users.iter().enumerate() {
        // Only the churner's login inside the window turns a label.
        let expected = if *u == churner { 0.0 } else { y[r] };
        assert_eq!(y2[r], expected, "{u}'s label");
    }

    // The incremental pass rescored the players it took, as a full scoring does.
    let passed = scores_of(&app, &churner).await;
    assert_ne!(
        passed.0, scored_before.0,
        "the churner's new login moved their score"
    );
    app.engine
        .execute_scoring(id.parse().unwrap())
        .await
        .unwrap();
    let full = scores_of(&app, &churner).await;
    // Recency and tenure count to the second of each scoring, so the two
    // differ by the seconds between them (about 1e-7 here), no more.
    assert!((passed.0 - full.0).abs() < 1e-4, "{passed:?} vs {full:?}");
    // Percentiles of a pass are placed among the last full scoring's (0.1 point cuts).
    assert!((passed.1 - full.1).abs() <= 0.2, "{passed:?} vs {full:?}");

    // Scores are trait values: a segment over the risk band and another trait.
    let mut bands: HashMap<String, String> = HashMap::new();
    let mut after = Value::Null;
    loop {
        let page = app
            .gql(
                "query($id: ID!, $after: String) { trait(id: $id) { values(first: 500, after: $after) { pageInfo { hasNextPage endCursor } nodes { entityId value } } } }",
                json!({ "id": pt["riskTrait"]["id"], "after": after }),
            )
            .await;
        let values = &page["trait"]["values"];
        for v in values["nodes"].as_array().unwrap() {
            bands.insert(
                v["entityId"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap().to_owned(),
            );
        }
        if values["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = values["pageInfo"]["endCursor"].clone();
    }
    let high = bands.values().filter(|b| *b == "high").count();
    assert!(high > 0 && bands.len() as i64 == pt["scoredPlayers"].as_i64().unwrap());
    let preview = app
        .gql(
            "query($f: JSON!) { previewSegment(filter: $f) { count } }",
            json!({ "f": { "and": [
                { "trait": "churn_risk_risk", "op": "=", "value": "high" },
                { "trait": "revenue", "op": ">", "value": 0 }
            ] } }),
        )
        .await;
    let count = preview["previewSegment"]["count"].as_i64().unwrap() as usize;
    let spenders: std::collections::HashSet<&str> = planted
        .events
        .iter()
        .chain(&late)
        .filter(|e| e.1 == "purchases")
        .map(|e| e.0.as_str())
        .collect();
    let expected = bands
        .iter()
        .filter(|(u, b)| *b == "high" && spenders.contains(u.as_str()))
        .count();
    assert!(expected > 0);
    assert_eq!(count, expected, "high churn risk AND revenue > 0");

    // The prediction's traits change only with it; deleting it removes them.
    let (status, answer) = app
        .rest(
            reqwest::Method::DELETE,
            &format!("/traits/{}", pt["riskTrait"]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "conflict");
    let (status, _) = app
        .rest(reqwest::Method::DELETE, &format!("/predictions/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let left = app
        .gql(
            "{ predictions { slug } traits { nodes { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(left["predictions"], json!([{ "slug": "spend_14d" }]));
    let slugs = left["traits"]["nodes"].to_string();
    assert!(!slugs.contains("churn_risk"), "{slugs}");
}
