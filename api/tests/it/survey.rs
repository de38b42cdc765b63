//! The player API's survey routes in the reference's shapes, the hosted survey
//! page answered over HTTP, quality checks, and T-scores checked against a
//! computation of our own from the answers and the instrument's norms.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;

/// The player API reference's response example of the route `heading`
/// (kept in the repository as a fixture).
pub fn reference_response(heading: &str) -> Value {
    crate::fixtures::player_api_examples()["survey_responses"][heading].clone()
}

/// Keys and value types, not values: what wire compatibility means here.
pub fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().take(1).map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("boolean"),
        Value::Null => json!("null"),
    }
}

impl TestApp {
    pub(crate) async fn v1(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    pub(crate) async fn register(&self, user_id: &str) -> Value {
        let (status, body) = self
            .v1(
                reqwest::Method::POST,
                "/v1/assessment/user/register",
                Some(&self.admin_key),
                Some(&json!({ "id": user_id }).to_string()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Registers `user_id` and returns their survey token.
    pub(crate) async fn survey_token(&self, user_id: &str) -> String {
        self.register(user_id).await["data"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) async fn survey_status(&self, user_id: &str) -> (StatusCode, Value) {
        self.v1(
            reqwest::Method::GET,
            &format!("/v1/assessment/user/status?id={user_id}"),
            Some(&self.admin_key),
            None,
        )
        .await
    }

    pub(crate) async fn statistics(&self) -> Value {
        let (_, body) = self
            .v1(
                reqwest::Method::GET,
                "/v1/assessment",
                Some(&self.admin_key),
                None,
            )
            .await;
        body["data"]["data"]["statistics"].clone()
    }

    pub(crate) async fn instrument(&self) -> Value {
        self.gql("{ survey { instrument } }", json!({})).await["survey"]["instrument"].clone()
    }

    /// Answers every page of the survey behind `token` over plain HTTP forms
    /// (no JavaScript), choosing `answer(item_id)`; returns the last page's HTML.
    pub(crate) async fn answer_survey(&self, token: &str, answer: impl Fn(&str) -> i16) -> String {
        let mut html = self.survey_page(token).await.1;
        for _ in 0..100 {
            if html.contains("Thank you") {
                return html;
            }
            let page = between(&html, "name=\"page\" value=\"", "\"").to_owned();
            let mut form: Vec<(String, String)> =
                vec![("playerid".into(), token.into()), ("page".into(), page)];
            let mut seen = Vec::new();
            for chunk in html.split("type=\"radio\" name=\"").skip(1) {
                let id = chunk.split('"').next().unwrap().to_owned();
                if !seen.contains(&id) {
                    form.push((id.clone(), answer(&id).to_string()));
                    seen.push(id);
                }
            }
            let resp = self
                .http
                .post(format!("{}/survey", self.url))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "page submit");
            html = resp.text().await.unwrap();
        }
        panic!("the survey did not end");
    }

    pub(crate) async fn survey_page(&self, token: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .get(format!("{}/survey?playerid={token}", self.url))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    pub(crate) async fn set_min_seconds(&self, seconds: i32) {
        self.gql(
            "mutation($s: Int!) { updateSurvey(input: { minSeconds: $s }) { minSeconds } }",
            json!({ "s": seconds }),
        )
        .await;
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    s.split(start).nth(1).unwrap().split(end).next().unwrap()
}

/// A varied, attentive response: passes the attention checks, never straight-lines.
pub fn attentive(instrument: &Value) -> impl Fn(&str) -> i16 + use<> {
    attentive_as(instrument, 7)
}

/// [`attentive`], answering differently for each `seed` (another respondent).
pub fn attentive_as(instrument: &Value, seed: u32) -> impl Fn(&str) -> i16 + use<> {
    let checks: HashMap<String, i16> = instrument["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("attention_check").is_some())
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["attention_check"]["expect"].as_i64().unwrap() as i16,
            )
        })
        .collect();
    move |id: &str| {
        checks.get(id).copied().unwrap_or_else(|| {
            let h = id
                .bytes()
                .fold(seed, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
            1 + (h % 5) as i16
        })
    }
}

/// T-scores computed here from the answers and the instrument's norms,
/// independently of the engine: `(category, facet) → score`.
pub fn expected_scores(
    instrument: &Value,
    answer: &dyn Fn(&str) -> i16,
) -> HashMap<(String, String), f64> {
    let mut sums: HashMap<(String, String), (f64, f64)> = HashMap::new();
    for item in instrument["items"].as_array().unwrap() {
        let Some(category) = item["category"].as_str() else {
            continue;
        };
        let v = f64::from(answer(item["id"].as_str().unwrap()));
        let v = if item["keying"] == "-" { 6.0 - v } else { v };
        let e = sums
            .entry((category.into(), item["facet"].as_str().unwrap().into()))
            .or_default();
        e.0 += v;
        e.1 += 1.0;
    }
    let mut out = HashMap::new();
    for f in instrument["facets"].as_array().unwrap() {
        let key = (
            f["category"].as_str().unwrap().to_owned(),
            f["facet"].as_str().unwrap().to_owned(),
        );
        let (sum, n) = sums[&key];
        let (mean, sd) = (
            f["norm"]["mean"].as_f64().unwrap(),
            f["norm"]["sd"].as_f64().unwrap(),
        );
        out.insert(key, 50.0 + 10.0 * (sum / n - mean) / sd);
    }
    for c in instrument["combined"].as_array().unwrap() {
        let parts: Vec<f64> = c["from"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                out[&(
                    r["category"].as_str().unwrap().to_owned(),
                    r["facet"].as_str().unwrap().to_owned(),
                )]
            })
            .collect();
        out.insert(
            (
                c["category"].as_str().unwrap().into(),
                c["facet"].as_str().unwrap().into(),
            ),
            parts.iter().sum::<f64>() / parts.len() as f64,
        );
    }
    out
}

#[tokio::test]
async fn registration_status_and_details_have_the_reference_shapes() {
    let app = TestApp::spawn().await;
    let registered = app.register("player-1").await;
    assert_eq!(
        shape(&registered),
        shape(&reference_response("[NEW] Register User for Survey"))
    );
    let data = &registered["data"];
    let token = data["token"].as_str().unwrap();
    assert_eq!(token.len(), 40);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_eq!(data["status"], "requested");
    assert!(data["expires_at"].as_i64().unwrap() > chrono::Utc::now().timestamp());
    // Registering again while the token is valid gives the same token; another player gets another.
    assert_eq!(app.register("player-1").await["data"]["token"], token);
    assert_ne!(app.register("player-2").await["data"]["token"], token);

    let (status, body) = app.survey_status("player-1").await;
    assert_eq!(status, 200);
    assert_eq!(
        shape(&body),
        shape(&reference_response("Get Assessment Response Status"))
    );
    assert_eq!(
        body["data"],
        json!({ "completed": false, "completed_at": 0 })
    );

    let (status, details) = app
        .v1(
            reqwest::Method::GET,
            "/v1/assessment",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        shape(&details),
        shape(&reference_response("Get Survey Details"))
    );
    assert_eq!(details["message"], "survey details");
    assert_eq!(details["data"]["data"]["status"], "Launched");
    assert_eq!(details["data"]["data"]["type"], "Standard Survey");
    assert_eq!(
        details["data"]["data"]["statistics"],
        json!({ "Partial": 0, "Disqualified": 0, "Complete": 0 })
    );
    let created = details["data"]["data"]["created_on"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{created}"
    );
    app.stop().await;
}

#[tokio::test]
async fn errors_come_in_the_envelope_with_their_status() {
    let app = TestApp::spawn().await;
    let post = reqwest::Method::POST;
    let register = "/v1/assessment/user/register";
    let mut cases = Vec::new();
    cases.push((
        "no key",
        app.v1(post.clone(), register, None, Some("{\"id\":\"1\"}"))
            .await,
    ));
    cases.push((
        "bad key",
        app.v1(
            post.clone(),
            register,
            Some("tf_nope"),
            Some("{\"id\":\"1\"}"),
        )
        .await,
    ));
    cases.push((
        "not json",
        app.v1(post.clone(), register, Some(&app.admin_key), Some("{id:"))
            .await,
    ));
    cases.push((
        "no id",
        app.v1(post.clone(), register, Some(&app.admin_key), Some("{}"))
            .await,
    ));
    cases.push(("unknown player", app.survey_status("nobody").await));
    cases.push((
        "status without id",
        app.v1(
            reqwest::Method::GET,
            "/v1/assessment/user/status",
            Some(&app.admin_key),
            None,
        )
        .await,
    ));
    let (viewer, _) = app.create_key("viewer").await;
    cases.push((
        "viewer registers",
        app.v1(
            post.clone(),
            register,
            Some(&viewer),
            Some("{\"id\":\"1\"}"),
        )
        .await,
    ));
    for (name, (status, body)) in &cases {
        assert_eq!(body["code"], status.as_u16(), "{name}: {body}");
        assert!(body["data"].is_null(), "{name}: {body}");
    }
    let rendered: Vec<Value> = cases
        .iter()
        .map(|(name, (status, body))| json!({ "case": name, "status": status.as_u16(), "body": body }))
        .collect();
    insta::assert_json_snapshot!("player_api_errors", rendered);

    // A closed survey refuses registrations.
    app.gql(
        "mutation { updateSurvey(input: { status: Closed }) { status closedAt } }",
        json!({}),
    )
    .await;
    let (status, body) = app
        .v1(
            post,
            register,
            Some(&app.admin_key),
            Some("{\"id\":\"late\"}"),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("Closed"),
        "{body}"
    );
    let (_, details) = app
        .v1(
            reqwest::Method::GET,
            "/v1/assessment",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(details["data"]["data"]["status"], "Closed");
    assert!(details["data"]["data"]["completed_at"].as_i64().unwrap() > 0);
    app.stop().await;
}

#[tokio::test]
async fn a_completed_survey_is_scored_into_the_expected_t_scores() {
    let app = TestApp::spawn().await;
    app.set_min_seconds(0).await;
    let instrument = app.instrument().await;
    let token = app.survey_token("p1").await;

    // The page is accessible: fieldsets with legends, labelled radios, a progress line.
    let (status, first) = app.survey_page(&token).await;
    assert_eq!(status, 200);
    for needle in [
        "<fieldset",
        "<legend>1. ",
        "<label><input type=\"radio\"",
        "Page 1 of ",
        "name=\"viewport\"",
    ] {
        assert!(first.contains(needle), "{needle} missing");
    }
    // An incomplete page is shown again with 422 and the unanswered statements listed.
    let resp = app
        .http
        .post(format!("{}/survey", app.url))
        .form(&[("playerid", token.as_str()), ("page", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("role=\"alert\""));

    let answer = attentive(&instrument);
    let end = app.answer_survey(&token, &answer).await;
    assert!(end.contains("Thank you"));
    let (_, status) = app.survey_status("p1").await;
    assert_eq!(status["data"]["completed"], true);
    assert!(status["data"]["completed_at"].as_i64().unwrap() > 0);
    assert_eq!(
        app.statistics().await,
        json!({ "Partial": 0, "Disqualified": 0, "Complete": 1 })
    );

    let scores = app
        .gql(
            "{ player(userId: \"p1\") { psychScores { category facet score source } survey { status } } }",
            json!({}),
        )
        .await;
    let got = scores["player"]["psychScores"].as_array().unwrap();
    let want = expected_scores(&instrument, &answer);
    assert_eq!(got.len(), want.len());
    for s in got {
        let key = (
            s["category"].as_str().unwrap().to_owned(),
            s["facet"].as_str().unwrap().to_owned(),
        );
        assert!(
            (s["score"].as_f64().unwrap() - want[&key]).abs() < 1e-9,
            "{key:?}: {s}"
        );
        assert_eq!(s["source"], "survey");
    }
    assert_eq!(scores["player"]["survey"]["status"], "complete");

    // The link is used up.
    let (status, page) = app.survey_page(&token).await;
    assert_eq!(status, 409);
    assert!(page.contains("already completed"));
    app.stop().await;
}

#[tokio::test]
async fn progress_is_kept_between_visits_and_counted_as_partial() {
    let app = TestApp::spawn().await;
    let instrument = app.instrument().await;
    let token = app.survey_token("p2").await;
    let (_, first) = app.survey_page(&token).await;
    let answer = attentive(&instrument);
    let mut form = vec![
        ("playerid".to_owned(), token.clone()),
        ("page".to_owned(), "0".to_owned()),
    ];
    for chunk in first.split("type=\"radio\" name=\"").skip(1).step_by(5) {
        let id = chunk.split('"').next().unwrap();
        form.push((id.to_owned(), answer(id).to_string()));
    }
    let next = app
        .http
        .post(format!("{}/survey", app.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(next.text().await.unwrap().contains("Page 2 of "));
    assert_eq!(app.statistics().await["Partial"], 1);
    // Coming back later opens the second page.
    let (_, again) = app.survey_page(&token).await;
    assert!(again.contains("Page 2 of "), "progress lost");
    app.stop().await;
}

#[tokio::test]
async fn careless_responses_are_disqualified() {
    let app = TestApp::spawn().await;
    let instrument = app.instrument().await;
    let attentive_answer = attentive(&instrument);
    // Too fast: the default minimum time is far above what a script takes.
    let fast = app.survey_token("fast").await;
    app.answer_survey(&fast, &attentive_answer).await;
    app.set_min_seconds(0).await;
    // Straight-lining: the same answer everywhere but the attention checks.
    let flat = app.survey_token("flat").await;
    app.answer_survey(&flat, |id| {
        if id.starts_with("check.") {
            attentive_answer(id)
        } else {
            3
        }
    })
    .await;
    // A failed attention check.
    let careless = app.survey_token("careless").await;
    app.answer_survey(&careless, |id| {
        if id == "check.1" {
            1
        } else {
            attentive_answer(id)
        }
    })
    .await;

    assert_eq!(
        app.statistics().await,
        json!({ "Partial": 0, "Disqualified": 3, "Complete": 0 })
    );
    for (user, reason) in [
        ("fast", "minimum"),
        ("flat", "straight-lining"),
        ("careless", "check.1"),
    ] {
        let d = app
            .gql(
                "query($u: String!) { player(userId: $u) { psychScores { score } survey { status disqualifiedReason } } }",
                json!({ "u": user }),
            )
            .await;
        assert_eq!(d["player"]["survey"]["status"], "disqualified", "{user}");
        assert!(
            d["player"]["survey"]["disqualifiedReason"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{user}: {d}"
        );
        assert_eq!(d["player"]["psychScores"], json!([]), "{user} has scores");
    }
    app.stop().await;
}

#[tokio::test]
async fn unusable_links_get_a_clear_page_and_status() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = TestApp::spawn().await;
    let (status, page) = app
        .survey_page("0123456789abcdef0123456789abcdef01234567")
        .await;
    assert_eq!(status, 404);
    assert!(page.contains("not valid"));
    let (status, _) = app.survey_page("<script>").await;
    assert_eq!(status, 404);

    let token = app.survey_token("late").await;
    let db = app.engine.db();
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "UPDATE survey_registrations SET expires_at = '2020-01-01 00:00:00+00:00'".to_owned(),
    ))
    .await
    .unwrap();
    let (status, page) = app.survey_page(&token).await;
    assert_eq!(status, 410);
    assert!(page.contains("expired"));
    // Registering again replaces an expired token.
    let fresh = app.survey_token("late").await;
    assert_ne!(fresh, token);
    assert_eq!(app.survey_page(&fresh).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn instruments_are_validated_before_they_are_stored() {
    let app = TestApp::spawn().await;
    let mut instrument = app.instrument().await;
    instrument["items"][0]["facet"] = json!("Nonexistent");
    let (_, body) = app
        .gql_as(
            Some(&app.admin_key),
            "mutation($i: JSON!) { updateSurvey(input: { instrument: $i }) { title } }",
            json!({ "i": instrument }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "invalid_input",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "instrument.items[0].facet",
        "{body}"
    );
    app.stop().await;
}
