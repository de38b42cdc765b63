//! Survey science: norms from the workspace's own respondents (checked
//! against a hand computation), rescoring in one transaction, reliability
//! figures, features that know a zero from a gap, debounced retraining and
//! the submit limit per survey link — all through the survey page over HTTP.

use std::collections::HashMap;

use engine::entity::{job_records, psych_scores, states::JobKind, states::JobStatus};
use futures::StreamExt;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::{
    personas::Noise,
    segments::{Planted, plant_players, plant_scores, plant_values},
    support::{Options, TestApp},
    trait_values::{catalog_ids, create},
};

const OPENNESS: [&str; 3] = ["o1", "o2", "o3"];
const GRIT: [&str; 3] = ["g1", "g2", "g3"];

/// Two facets of three items (o3 reverse-keyed), one combined facet, one page.
fn small_instrument(items_per_page: usize) -> Value {
    let item = |id: &str, facet: &str, keying: &str| json!({ "id": id, "text": format!("Statement {id}"), "category": "personality", "facet": facet, "keying": keying });
    json!({
        "version": 1,
        "scale": { "min": 1, "max": 5, "labels": ["1", "2", "3", "4", "5"] },
        "items_per_page": items_per_page,
        "facets": [
            { "category": "personality", "facet": "Openness", "norm": { "mean": 3.2, "sd": 0.8 } },
            { "category": "personality", "facet": "Grit", "norm": { "mean": 3.2, "sd": 0.8 } }
        ],
        "combined": [{ "category": "personality", "facet": "Drive", "from": [
            { "category": "personality", "facet": "Openness" },
            { "category": "personality", "facet": "Grit" }
        ]}],
        "items": [
            item("o1", "Openness", "+"), item("o2", "Openness", "+"), item("o3", "Openness", "-"),
            item("g1", "Grit", "+"), item("g2", "Grit", "+"), item("g3", "Grit", "+")
        ]
    })
}

async fn use_instrument(app: &TestApp, instrument: Value) {
    app.gql(
        "mutation($i: JSON!) { updateSurvey(input: { instrument: $i, minSeconds: 0 }) { minSeconds } }",
        json!({ "i": instrument }),
    )
    .await;
}

/// Respondent `i`'s answers: two latent levels with item noise, never all alike.
fn planted_answers(i: u64) -> HashMap<String, i16> {
    let mut noise = Noise(1000 + i);
    let (o, g) = (noise.normal(), noise.normal());
    let mut item = |latent: f64| {
        (3.0 + latent + 0.7 * noise.normal())
            .round()
            .clamp(1.0, 5.0) as i16
    };
    let mut a: HashMap<String, i16> = HashMap::new();
    a.insert("o1".into(), item(o));
    a.insert("o2".into(), item(o));
    a.insert("o3".into(), 6 - item(o));
    for id in GRIT {
        a.insert(id.into(), item(g));
    }
    if a.values().all(|v| *v == a["o1"]) {
        // Six equal answers are straight-lining (disqualified).
        a.insert("g3".into(), if a["g3"] == 5 { 4 } else { a["g3"] + 1 });
    }
    a
}

/// Raw facet scores by hand: the mean of the items, o3 reversed.
fn raw(a: &HashMap<String, i16>) -> (f64, f64) {
    let o = (f64::from(a["o1"]) + f64::from(a["o2"]) + f64::from(6 - a["o3"])) / 3.0;
    let g = GRIT.iter().map(|id| f64::from(a[*id])).sum::<f64>() / 3.0;
    (o, g)
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Completes the survey for users `range` over HTTP, 8 at a time.
async fn complete(app: &TestApp, range: std::ops::Range<u64>) {
    futures::stream::iter(range)
        .map(|i| async move {
            let token = app.survey_token(&format!("r{i:04}")).await;
            let answers = planted_answers(i);
            let html = app.answer_survey(&token, |id| answers[id]).await;
            assert!(html.contains("Thank you"), "{html}");
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
}

/// Every stored score: (user, facet) → (score, source).
async fn scores(app: &TestApp) -> HashMap<(String, String), (f64, String)> {
    psych_scores::Entity::find()
        .filter(psych_scores::Column::WorkspaceId.eq(app.workspace_id))
        .all(app.engine.db())
        .await
        .unwrap()
        .into_iter()
        .map(|s| ((s.user_id, s.facet), (s.score, s.source.to_string())))
        .collect()
}

async fn norms(app: &TestApp) -> Value {
    app.gql(
        "{ survey { norms { source completes minCompletes version facets { facet mean sd source respondents } } } }",
        json!({}),
    )
    .await["survey"]["norms"]
        .clone()
}

fn facet_norm(norms: &Value, facet: &str) -> (f64, f64) {
    let f = norms["facets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["facet"] == facet)
        .unwrap();
    (f["mean"].as_f64().unwrap(), f["sd"].as_f64().unwrap())
}

fn t(raw: f64, (mean, sd): (f64, f64)) -> f64 {
    50.0 + 10.0 * (raw - mean) / sd
}

/// Every survey score equals the formula on `norms`, combined = mean of parts.
fn assert_scored_on(
    all: &HashMap<(String, String), (f64, String)>,
    users: std::ops::Range<u64>,
    o_norm: (f64, f64),
    g_norm: (f64, f64),
) {
    for i in users {
        let user = format!("r{i:04}");
        let (o, g) = raw(&planted_answers(i));
        let (want_o, want_g) = (t(o, o_norm), t(g, g_norm));
        for (facet, want) in [
            ("Openness", want_o),
            ("Grit", want_g),
            ("Drive", (want_o + want_g) / 2.0),
        ] {
            let (got, source) = &all[&(user.clone(), facet.to_owned())];
            assert_eq!(source, "survey");
            assert!((got - want).abs() < 1e-9, "{user} {facet}: {got} vs {want}");
        }
    }
}

/// A trigger that fails every update of one facet's scores: a rescoring
/// that meets it must leave every score as it was.
async fn break_updates_of(app: &TestApp, facet: &str, on: bool) {
    let db = app.engine.db();
    let pg = db.get_database_backend() == sea_orm::DbBackend::Postgres;
    let sql = match (pg, on) {
        (true, true) => format!(
            "CREATE FUNCTION tf_injected_failure() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER tf_injected BEFORE UPDATE ON psych_scores FOR EACH ROW WHEN (NEW.facet = '{facet}') EXECUTE FUNCTION tf_injected_failure();"
        ),
        (true, false) => {
            "DROP TRIGGER tf_injected ON psych_scores; DROP FUNCTION tf_injected_failure();".into()
        }
        (false, true) => format!(
            "CREATE TRIGGER tf_injected BEFORE UPDATE ON psych_scores WHEN NEW.facet = '{facet}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        ),
        (false, false) => "DROP TRIGGER tf_injected;".into(),
    };
    db.execute_unprepared(&sql).await.unwrap();
}

async fn jobs_of(app: &TestApp, kind: JobKind) -> Vec<job_records::Model> {
    job_records::Entity::find()
        .filter(job_records::Column::WorkspaceId.eq(app.workspace_id))
        .filter(job_records::Column::Kind.eq(kind))
        .all(app.engine.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn norms_come_from_the_workspaces_respondents_and_rescore_every_score_at_once() {
    let app = TestApp::spawn().await;
    use_instrument(&app, small_instrument(50)).await;
    // A trait to predict from, for 20 players who never answer.
    let ctx = catalog_ids(&app).await;
    let spend = create(&app, json!({ "name": "spend", "parent_model_id": ctx.players, "trait_type": "aggregation", "result_type": "number",
        "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "sum", "column": "price" } })).await;
    app.drain().await;
    let mut users: Vec<String> = (0..250).map(|i| format!("r{i:04}")).collect();
    users.extend((0..20).map(|i| format!("other{i:02}")));
    plant_players(&app, &users).await;
    let values: Vec<(String, Planted)> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.clone(), Planted::Number((i % 17) as f64 * 3.0)))
        .collect();
    plant_values(&app, spend["id"].as_str().unwrap(), &values).await;

    // Below the minimum the instrument's norms hold, and every answer says so.
    complete(&app, 0..199).await;
    app.drain().await;
    let n = norms(&app).await;
    assert_eq!(
        (&n["source"], &n["completes"], &n["minCompletes"]),
        (&json!("provisional"), &json!(199), &json!(200)),
        "{n}"
    );
    let d = app
        .gql(
            "{ player(userId: \"r0000\") { psychScores { facet norms normRespondents } } }",
            json!({}),
        )
        .await;
    for s in d["player"]["psychScores"].as_array().unwrap() {
        assert_eq!(
            (&s["norms"], &s["normRespondents"]),
            (&json!("provisional"), &json!(0)),
            "{d}"
        );
    }
    let provisional = (3.2, 0.8);
    assert_scored_on(&scores(&app).await, 0..199, provisional, provisional);

    // The 200th completion computes the norms from those 200: their own
    // T-scores have mean 50 and sd 10.
    complete(&app, 199..200).await;
    app.drain().await;
    let raws: Vec<(f64, f64)> = (0..200).map(|i| raw(&planted_answers(i))).collect();
    let o200 = mean_sd(&raws.iter().map(|r| r.0).collect::<Vec<_>>());
    let g200 = mean_sd(&raws.iter().map(|r| r.1).collect::<Vec<_>>());
    let n = norms(&app).await;
    assert_eq!(n["source"], "workspace", "{n}");
    for (facet, want) in [("Openness", o200), ("Grit", g200)] {
        let got = facet_norm(&n, facet);
        assert!(
            (got.0 - want.0).abs() < 1e-9 && (got.1 - want.1).abs() < 1e-9,
            "{facet}: {got:?} vs {want:?}"
        );
    }
    let all = scores(&app).await;
    assert_scored_on(&all, 0..200, o200, g200);
    let own: Vec<f64> = (0..200)
        .map(|i| all[&(format!("r{i:04}"), "Openness".to_owned())].0)
        .collect();
    let (m, sd) = mean_sd(&own);
    assert!(
        (m - 50.0).abs() < 1e-9 && (sd - 10.0).abs() < 1e-9,
        "{m} {sd}"
    );

    // Later completions are scored on those norms; they are not recomputed
    // with each completion (at most daily).
    complete(&app, 200..250).await;
    app.drain().await;
    let before = scores(&app).await;
    assert_scored_on(&before, 200..250, o200, g200);
    let kept = facet_norm(&norms(&app).await, "Openness");
    assert!((kept.0 - o200.0).abs() < 1e-9 && (kept.1 - o200.1).abs() < 1e-9);
    let version = norms(&app).await["version"].as_i64().unwrap();

    // A rescoring that fails halfway changes nothing.
    break_updates_of(&app, "Grit", true).await;
    app.gql("mutation { refreshSurveyNorms { id } }", json!({}))
        .await;
    app.drain().await;
    let failed = jobs_of(&app, JobKind::ComputeNorms).await;
    assert!(
        failed.iter().any(|j| j.status == JobStatus::Failed
            && j.error
                .as_deref()
                .unwrap_or("")
                .contains("injected failure")),
        "{failed:?}"
    );
    assert_eq!(scores(&app).await, before);
    assert_eq!(norms(&app).await["version"].as_i64(), Some(version));
    break_updates_of(&app, "Grit", false).await;

    // On demand: norms from all 250, every stored score rescored, the
    // predicted ones by the same map as the answered ones.
    app.gql("mutation { refreshSurveyNorms { id } }", json!({}))
        .await;
    app.drain().await;
    let raws: Vec<(f64, f64)> = (0..250).map(|i| raw(&planted_answers(i))).collect();
    let o250 = mean_sd(&raws.iter().map(|r| r.0).collect::<Vec<_>>());
    let g250 = mean_sd(&raws.iter().map(|r| r.1).collect::<Vec<_>>());
    let n = norms(&app).await;
    assert_eq!(n["version"].as_i64(), Some(version + 1), "{n}");
    for (facet, want) in [("Openness", o250), ("Grit", g250)] {
        let got = facet_norm(&n, facet);
        assert!(
            (got.0 - want.0).abs() < 1e-9 && (got.1 - want.1).abs() < 1e-9,
            "{facet}: {got:?} vs {want:?}"
        );
    }
    let after = scores(&app).await;
    assert_scored_on(&after, 0..250, o250, g250);
    let shift =
        |old: f64, from: (f64, f64), to: (f64, f64)| t(from.0 + from.1 * (old - 50.0) / 10.0, to);
    let mut predicted = 0;
    for i in 0..20 {
        let user = format!("other{i:02}");
        let (o_old, source) = &before[&(user.clone(), "Openness".to_owned())];
        assert_eq!(source, "predicted");
        let g_old = before[&(user.clone(), "Grit".to_owned())].0;
        let o_new = after[&(user.clone(), "Openness".to_owned())].0;
        let g_new = after[&(user.clone(), "Grit".to_owned())].0;
        assert!((o_new - shift(*o_old, o200, o250)).abs() < 1e-9, "{user}");
        assert!((g_new - shift(g_old, g200, g250)).abs() < 1e-9, "{user}");
        let d_new = after[&(user.clone(), "Drive".to_owned())].0;
        assert!((d_new - (o_new + g_new) / 2.0).abs() < 1e-9, "{user}");
        predicted += 1;
    }
    assert_eq!(predicted, 20);
    let d = app
        .gql(
            "{ player(userId: \"other00\") { psychScores { norms normRespondents } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["player"]["psychScores"][0]["norms"], "workspace", "{d}");
    assert_eq!(d["player"]["psychScores"][0]["normRespondents"], 250, "{d}");

    // Reliability over the same 250 respondents, against the formulas by hand.
    let d = app
        .gql(
            "{ survey { reliability { facet respondents alpha lowAlpha items { itemId reverseKeyed correctedItemTotal } } } }",
            json!({}),
        )
        .await;
    for (facet, ids) in [("Openness", OPENNESS), ("Grit", GRIT)] {
        let got = d["survey"]["reliability"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["facet"] == facet)
            .unwrap();
        let x: Vec<Vec<f64>> = (0..250)
            .map(|i| {
                let a = planted_answers(i);
                ids.iter()
                    .map(|id| {
                        let v = f64::from(a[*id]);
                        if *id == "o3" { 6.0 - v } else { v }
                    })
                    .collect()
            })
            .collect();
        let var = |v: &[f64]| mean_sd(v).1.powi(2);
        let column = |j: usize| x.iter().map(|r| r[j]).collect::<Vec<f64>>();
        let totals: Vec<f64> = x.iter().map(|r| r.iter().sum()).collect();
        let alpha = 1.5 * (1.0 - (0..3).map(|j| var(&column(j))).sum::<f64>() / var(&totals));
        assert_eq!(got["respondents"], 250);
        assert!(
            (got["alpha"].as_f64().unwrap() - alpha).abs() < 1e-9,
            "{got} vs {alpha}"
        );
        assert_eq!(got["lowAlpha"], alpha < 0.7);
        for (j, id) in ids.iter().enumerate() {
            let item = column(j);
            let rest: Vec<f64> = x.iter().map(|r| r.iter().sum::<f64>() - r[j]).collect();
            let (mi, mr) = (mean_sd(&item).0, mean_sd(&rest).0);
            let cov: f64 = item
                .iter()
                .zip(&rest)
                .map(|(a, b)| (a - mi) * (b - mr))
                .sum::<f64>()
                / 249.0;
            let r = cov / (var(&item) * var(&rest)).sqrt();
            let g = got["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["itemId"] == *id)
                .unwrap();
            assert_eq!(g["reverseKeyed"], *id == "o3");
            assert!(
                (g["correctedItemTotal"].as_f64().unwrap() - r).abs() < 1e-9,
                "{id}: {g} vs {r}"
            );
        }
    }
    app.stop().await;
}

/// A player who never paid is predicted as a spend of 0, not as an average spender.
#[tokio::test]
async fn a_player_without_purchases_is_predicted_as_spending_nothing() {
    let app = TestApp::spawn().await;
    let ctx = catalog_ids(&app).await;
    let spend = create(&app, json!({ "name": "spend", "parent_model_id": ctx.players, "trait_type": "aggregation", "result_type": "number",
        "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "sum", "column": "price" } })).await;
    app.drain().await;
    let mut noise = Noise(42);
    let users: Vec<String> = (0..240).map(|i| format!("p{i:03}")).collect();
    plant_players(&app, &users).await;
    // A third of the players never paid (no value at all); Openness rises with spend.
    let spent: Vec<Option<f64>> = (0..240)
        .map(|i| (i % 3 != 0).then(|| 100.0 + 200.0 * noise.uniform()))
        .collect();
    let values: Vec<(String, Planted)> = users
        .iter()
        .zip(&spent)
        .filter_map(|(u, s)| s.map(|s| (u.clone(), Planted::Number(s))))
        .collect();
    plant_values(&app, spend["id"].as_str().unwrap(), &values).await;
    let answered: Vec<(String, f64)> = (0..200)
        .map(|i| {
            let x = spent[i].unwrap_or(0.0);
            (users[i].clone(), 40.0 + 0.08 * x + 2.0 * noise.normal())
        })
        .collect();
    let rows: Vec<(String, &str, &str, f64)> = answered
        .iter()
        .map(|(u, y)| (u.clone(), "personality", "Openness", *y))
        .collect();
    plant_scores(&app, &rows).await;
    app.gql("mutation { trainPrediction { id } }", json!({}))
        .await;
    app.drain().await;

    // The fit by hand, zeros for the non-payers (least squares, one feature).
    let xs: Vec<f64> = (0..200).map(|i| spent[i].unwrap_or(0.0)).collect();
    let ys: Vec<f64> = answered.iter().map(|a| a.1).collect();
    let (mx, my) = (mean_sd(&xs).0, mean_sd(&ys).0);
    let slope = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (x - mx) * (y - my))
        .sum::<f64>()
        / xs.iter().map(|x| (x - mx).powi(2)).sum::<f64>();
    let at_zero = my - slope * mx;
    let all = scores(&app).await;
    let mut checked = 0;
    for i in 200..240 {
        let (got, source) = &all[&(users[i].clone(), "Openness".to_owned())];
        assert_eq!(source, "predicted");
        let want = my + slope * (spent[i].unwrap_or(0.0) - mx);
        assert!((got - want).abs() < 0.3, "{}: {got} vs {want}", users[i]);
        if spent[i].is_none() {
            assert!((got - at_zero).abs() < 0.3, "{got} vs {at_zero}");
            // An average spender would be predicted far higher.
            assert!(my - got > 5.0, "{got} vs mean {my}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked}");
    app.stop().await;
}

/// A launch-day burst: 300 completions train at most twice (the first time
/// the minimum is reached, then once after the debounce), and the final
/// model learned from all 300.
#[tokio::test]
async fn a_burst_of_completions_trains_at_most_twice() {
    let mut config_app = TestApp::spawn_with(Options {
        prediction_retrain: Some(std::time::Duration::from_secs(20)),
        ..Options::default()
    })
    .await;
    let app = &mut config_app;
    use_instrument(app, small_instrument(50)).await;
    let ctx = catalog_ids(app).await;
    let spend = create(app, json!({ "name": "spend", "parent_model_id": ctx.players, "trait_type": "aggregation", "result_type": "number",
        "config": { "source_model_id": ctx.purchases, "relationship_id": ctx.purchases_rel, "aggregation": "sum", "column": "price" } })).await;
    app.drain().await;
    let users: Vec<String> = (0..300).map(|i| format!("r{i:04}")).collect();
    plant_players(app, &users).await;
    let values: Vec<(String, Planted)> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.clone(), Planted::Number((i % 11) as f64)))
        .collect();
    plant_values(app, spend["id"].as_str().unwrap(), &values).await;
    let started = std::time::Instant::now();
    complete(app, 0..300).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the burst took {:?}, longer than the debounce",
        started.elapsed()
    );
    app.drain().await;
    let trainings = jobs_of(app, JobKind::TrainPrediction).await;
    assert!(
        (1..=2).contains(&trainings.len()),
        "{} trainings: {:?}",
        trainings.len(),
        trainings
            .iter()
            .map(|t| (t.enqueued_at, t.started_at, t.run_after, t.status, &t.error))
            .collect::<Vec<_>>()
    );
    let d = app
        .gql(
            "{ prediction { status completes facets { facet trainSize penalty } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["prediction"]["status"], "trained", "{d}");
    assert_eq!(d["prediction"]["completes"], 300, "{d}");
    for f in d["prediction"]["facets"].as_array().unwrap() {
        assert_eq!(f["trainSize"], 300, "{d}");
        assert!(f["penalty"].as_f64().unwrap() > 0.0);
    }
    config_app.stop().await;
}

/// The 31st page submit of one link within a minute is refused in the
/// survey page's shape with `Retry-After`; another link is not affected.
#[tokio::test]
async fn page_submits_are_limited_per_link() {
    let app = TestApp::spawn().await;
    use_instrument(&app, small_instrument(3)).await;
    let token = app.survey_token("eager").await;
    assert_eq!(app.survey_page(&token).await.0, 200);
    let submit = |token: String| {
        let app = &app;
        async move {
            let mut form = vec![("playerid".to_owned(), token), ("page".into(), "0".into())];
            form.extend(OPENNESS.iter().map(|id| ((*id).to_owned(), "4".to_owned())));
            app.http
                .post(format!("{}/survey", app.url))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    for i in 0..30 {
        let resp = submit(token.clone()).await;
        assert_eq!(resp.status(), 200, "submit {i}");
    }
    let resp = submit(token.clone()).await;
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(resp.text().await.unwrap().contains("Please slow down"));
    let other = app.survey_token("calm").await;
    assert_eq!(submit(other).await.status(), 200);
    app.stop().await;
}
