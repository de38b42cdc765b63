//! The console, GraphiQL and the API docs in headless Chromium
//! (e2e/console.mjs, playwright-core and axe-core) over the demo studio:
//! nothing loads from another origin, each console page passes axe with no
//! serious violation, a viewer finds every page and chart but no write
//! control, an admin creates and revokes a key, signing out ends the session.

use serde_json::Value;

use crate::support::{TestApp, run_e2e};

#[tokio::test]
async fn the_console_works_in_a_browser_offline_and_accessibly() {
    let app = TestApp::spawn().await;
    api::demo::fill(&app.engine, app.workspace_id, 300)
        .await
        .unwrap()
        .expect("filled");
    let (viewer, _) = app.create_key("viewer").await;
    // Facets per persona chart: those of a persona's profile.
    let profile: Value = app
        .http
        .get(format!("{}/v1/segments/default/personas/1/traits", app.url))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let facets: usize = profile["data"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c.as_object().map_or(0, |f| f.len()))
        .sum();
    assert!(facets > 12, "{profile}");

    let args = [
        app.url.clone(),
        viewer.clone(),
        app.admin_key.clone(),
        facets.to_string(),
    ];
    let summary = run_e2e("console.mjs", &args).await;
    assert_eq!(summary["pages"], 6, "{summary}");
    assert!(summary["personaCharts"].as_u64() >= Some(4), "{summary}");
    assert_eq!(summary["violations"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["blocked"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["revokedKeyWorks"], 401, "{summary}");
    app.stop().await;
}

/// Signs in over plain HTTP; the session cookie as the browser would send it back.
async fn sign_in(app: &TestApp, http: &reqwest::Client, key: &str) -> (u16, Option<String>) {
    let resp = http
        .post(format!("{}/console/sign-in", app.url))
        .form(&[("key", key)])
        .send()
        .await
        .unwrap();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().to_owned());
    (resp.status().as_u16(), cookie)
}

#[tokio::test]
async fn console_sessions_are_strict_cookies_that_end_with_their_key() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (viewer, viewer_id) = app.create_key("viewer").await;

    // Wrong and ingest-only keys open nothing.
    assert_eq!(sign_in(&app, &http, "tf_wrong").await, (401, None));
    let (ingest, _) = app.create_key("ingest").await;
    assert_eq!(sign_in(&app, &http, &ingest).await.0, 403);

    let (status, cookie) = sign_in(&app, &http, &viewer).await;
    assert_eq!(status, 303);
    let cookie = cookie.expect("a session cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        !cookie.contains(&viewer),
        "the key itself is not the cookie"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = |path: &'static str| {
        let (http, session, url) = (http.clone(), session.clone(), app.url.clone());
        async move {
            let r = http
                .get(format!("{url}{path}"))
                .header("Cookie", session)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(page("/console").await.0, 200);
    assert_eq!(page("/console/keys").await.0, 403, "admins only");

    // A form without the session's token is refused, and changes nothing.
    let r = http
        .post(format!("{}/console/sign-out", app.url))
        .header("Cookie", &session)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(page("/console").await.0, 200);

    // Revoking the key ends its sessions at once.
    app.gql(
        "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
        serde_json::json!({ "id": viewer_id }),
    )
    .await;
    let (status, _) = page("/console").await;
    assert_eq!(status, 303, "sent back to sign in");
    app.stop().await;
}
