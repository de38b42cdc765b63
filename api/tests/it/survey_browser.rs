//! The survey end to end in headless Chromium (e2e/survey.mjs, playwright-core):
//! a registered player answers every page on a phone-sized screen with
//! JavaScript off, and the player API then reports the completion; a second
//! player who straight-lines is Disqualified. `TEST_CHROMIUM` names the browser
//! (scripts/test.sh installs Debian's chromium and the e2e packages).

use serde_json::{Value, json};

use crate::support::{TestApp, run_e2e};

async fn answer_in_browser(
    app: &TestApp,
    token: &str,
    mode: &str,
    max_pages: Option<usize>,
) -> Value {
    let mut args = vec![
        format!("{}/survey?playerid={token}", app.url),
        mode.to_owned(),
    ];
    args.extend(max_pages.map(|n| n.to_string()));
    run_e2e("survey.mjs", &args).await
}

#[tokio::test]
async fn a_player_completes_the_survey_in_a_browser_and_a_straight_liner_is_disqualified() {
    let app = TestApp::spawn().await;
    app.set_min_seconds(0).await;
    let instrument = app.instrument().await;
    let items = instrument["items"].as_array().unwrap().len();
    let per_page = instrument["items_per_page"].as_u64().unwrap() as usize;

    let token = app.survey_token("browser-1").await;
    assert_eq!(
        app.survey_status("browser-1").await.1["data"]["completed"],
        false
    );
    // One page, then the player leaves: a Partial response.
    let first = answer_in_browser(&app, &token, "attentive", Some(1)).await;
    assert_eq!(first["finished"], false, "{first}");
    assert_eq!(
        app.statistics().await,
        json!({ "Partial": 1, "Disqualified": 0, "Complete": 0 })
    );
    // Coming back resumes at page 2 and finishes.
    let run = answer_in_browser(&app, &token, "attentive", None).await;
    assert_eq!(run["finished"], true, "{run}");
    assert_eq!(run["pages"], items.div_ceil(per_page) - 1, "{run}");
    assert_eq!(run["answered"], items - per_page, "{run}");

    let (_, status) = app.survey_status("browser-1").await;
    assert_eq!(status["data"]["completed"], true, "{status}");
    assert_eq!(
        app.statistics().await,
        json!({ "Partial": 0, "Disqualified": 0, "Complete": 1 })
    );
    let scores = app
        .gql(
            "{ player(userId: \"browser-1\") { psychScores { category facet score source } } }",
            json!({}),
        )
        .await;
    let scores = scores["player"]["psychScores"].as_array().unwrap();
    assert!(scores.len() > 60, "{scores:?}");
    assert!(scores.iter().all(|s| s["source"] == "survey"));

    // The second player straight-lines (but reads the attention checks).
    let flat = app.survey_token("browser-2").await;
    answer_in_browser(&app, &flat, "straight", None).await;
    assert_eq!(
        app.statistics().await,
        json!({ "Partial": 0, "Disqualified": 1, "Complete": 1 })
    );
    let d = app
        .gql(
            "{ player(userId: \"browser-2\") { survey { status disqualifiedReason } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["player"]["survey"]["status"], "disqualified", "{d}");
    app.stop().await;
}
