//! The console, GraphiQL and the API docs in headless Chromium
//! (e2e/console.mjs, playwright-core and axe-core) over the demo studio:
//! nothing loads from another origin, each console page passes axe with no
//! serious violation, a viewer finds every page and chart but no write
//! control, an admin creates and revokes a key, signing out ends the session.

use std::process::Stdio;

use serde_json::Value;

use crate::support::TestApp;

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

    let chromium = std::env::var("TEST_CHROMIUM")
        .ok()
        .filter(|s| !s.is_empty())
        .expect("TEST_CHROMIUM must name a Chromium binary (scripts/test.sh installs one)");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/console.mjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .arg(&app.url)
        .arg(&viewer)
        .arg(&app.admin_key)
        .arg(facets.to_string())
        .env("CHROMIUM", chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("node (scripts/test.sh installs Node.js and e2e/node_modules)");
    assert!(
        out.status.success(),
        "browser run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
    assert_eq!(summary["pages"], 6, "{summary}");
    assert!(summary["personaCharts"].as_u64() >= Some(4), "{summary}");
    assert_eq!(summary["violations"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["blocked"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["revokedKeyWorks"], 401, "{summary}");
    app.stop().await;
}
