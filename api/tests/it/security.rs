//! Attacks an editor or admin of one workspace could try: making the server
//! call private addresses (SSRF) through bucket endpoints and the webhook,
//! reading another workspace's folder or files outside it through symbolic
//! links, and reading a remote body back through error messages.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    sources::{folder, write},
    support::{Options, TestApp, error_code},
};

/// The server as shipped: no `OUTBOUND_ALLOW`.
async fn strict_app() -> TestApp {
    TestApp::spawn_with(Options {
        outbound_allow: None,
        ..Options::default()
    })
    .await
}

/// A socket on `addr` answering every request with `response` (nothing at
/// all when it is empty: the connection stays open, unanswered); counts requests.
async fn canned(addr: &str, response: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (seen, response) = (seen.clone(), response.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = socket.read(&mut buf).await;
                seen.fetch_add(1, Ordering::SeqCst);
                if response.is_empty() {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                } else {
                    let _ = socket.write_all(response.as_bytes()).await;
                }
            });
        }
    });
    (base, hits)
}

fn http_response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn create_source(app: &TestApp, kind: &str, config: Value, credentials: Value) -> Value {
    app.gql_as(
        Some(&app.admin_key),
        "mutation($k: String!, $c: JSON!, $s: JSON) { createDataSource(input: { name: \"b\", kind: $k, config: $c, credentials: $s }) { id } }",
        json!({ "k": kind, "c": config, "s": credentials }),
    )
    .await
    .1
}

/// `testDataSource` as the admin: `{ testDataSource { ok message } }`.
async fn test_source(app: &TestApp, id: &str) -> Value {
    app.gql(
        "mutation($id: ID!) { testDataSource(id: $id) { ok message } }",
        json!({ "id": id }),
    )
    .await
}

fn s3_keys() -> Value {
    json!({ "access_key_id": "AKIA", "secret_access_key": "s3cr3t" })
}

/// Refused with `invalid_input` naming `field`, and nothing stored.
fn assert_refused(body: &Value, field: &str, what: &str) {
    assert_eq!(error_code(body), "invalid_input", "{what}: {body}");
    assert_eq!(
        body["errors"][0]["extensions"]["field"], field,
        "{what}: {body}"
    );
}

#[tokio::test]
async fn bucket_endpoints_on_private_addresses_are_refused_in_every_spelling() {
    let app = strict_app().await;
    let spellings = [
        "http://127.0.0.1:9000",
        "http://127.1:9000",
        "http://2130706433:9000",
        "http://0x7f000001:9000",
        "http://0177.0.0.1:9000",
        "http://0.0.0.0:9000",
        "http://169.254.169.254",
        "http://10.0.0.1",
        "http://192.168.0.10",
        "http://172.16.5.4",
        "http://100.64.0.1",
        "http://[::1]:9000",
        "http://[::ffff:127.0.0.1]:9000",
        "http://[::ffff:7f00:1]:9000",
        "http://[fe80::1]",
        "http://[fd12::1]",
        "http://example.com@127.0.0.1:9000",
        "gopher://example.com",
    ];
    for endpoint in spellings {
        let body = create_source(
            &app,
            "s3",
            json!({ "bucket": "data", "endpoint": endpoint }),
            s3_keys(),
        )
        .await;
        assert_refused(&body, "config.endpoint", endpoint);
        let body = create_source(
            &app,
            "azure",
            json!({ "account": "studio", "container": "data", "endpoint": endpoint }),
            json!({ "sas_token": "sv=x" }),
        )
        .await;
        assert_refused(&body, "config.endpoint", endpoint);
        let account = json!({ "gcs_base_url": endpoint, "disable_oauth": true, "client_email": "a@b", "private_key": "", "private_key_id": "" });
        let body = create_source(
            &app,
            "gcs",
            json!({ "bucket": "data" }),
            json!({ "service_account": account }),
        )
        .await;
        assert_refused(&body, "credentials.service_account.gcs_base_url", endpoint);
    }
    // A region or a bucket cannot smuggle a host in either.
    for (config, field) in [
        (
            json!({ "bucket": "data", "region": "x@127.0.0.1:9000/" }),
            "config.region",
        ),
        (json!({ "bucket": "a/../b" }), "config.bucket"),
        (json!({ "bucket": "data@127.0.0.1" }), "config.bucket"),
    ] {
        let body = create_source(&app, "s3", config.clone(), s3_keys()).await;
        assert_refused(&body, field, &config.to_string());
    }
    let body = create_source(
        &app,
        "azure",
        json!({ "account": "evil.127.0.0.1.nip.io/", "container": "data" }),
        json!({ "sas_token": "sv=x" }),
    )
    .await;
    assert_refused(&body, "config.account", "account");
    assert_eq!(
        app.gql("{ dataSources { nodes { id } } }", json!({})).await["dataSources"]["nodes"],
        json!([]),
        "nothing stored"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_when_the_server_connects() {
    let app = strict_app().await;
    let (base, hits) = canned("127.0.0.1:0", http_response("200 OK", "", "")).await;
    let port = base.rsplit(':').next().unwrap();
    // `localhost` passes the URL check (it is a name); the resolver refuses it.
    let created = create_source(
        &app,
        "s3",
        json!({ "bucket": "data", "endpoint": format!("http://localhost:{port}") }),
        s3_keys(),
    )
    .await;
    let id = created["data"]["createDataSource"]["id"].as_str().unwrap();
    let check = test_source(&app, id).await;
    assert_eq!(check["testDataSource"]["ok"], false, "{check}");
    let message = check["testDataSource"]["message"].as_str().unwrap();
    assert!(message.contains("OUTBOUND_ALLOW"), "{message}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the server never connected");
    app.stop().await;
}

#[tokio::test]
async fn a_redirect_to_a_private_address_is_not_followed() {
    // The endpoint itself is allowed (an operator's private store); where it
    // redirects is not.
    let app = TestApp::spawn_with(Options {
        outbound_allow: Some("127.0.0.1/32".into()),
        ..Options::default()
    })
    .await;
    let (target, target_hits) =
        canned("127.0.0.2:0", http_response("200 OK", "", "<secret/>")).await;
    let (endpoint, _) = canned(
        "127.0.0.1:0",
        http_response(
            "307 Temporary Redirect",
            &format!("location: {target}/data\r\n"),
            "",
        ),
    )
    .await;
    let created = create_source(
        &app,
        "s3",
        json!({ "bucket": "data", "endpoint": endpoint }),
        s3_keys(),
    )
    .await;
    let id = created["data"]["createDataSource"]["id"].as_str().unwrap();
    let check = test_source(&app, id).await;
    assert_eq!(check["testDataSource"]["ok"], false, "{check}");
    assert_eq!(target_hits.load(Ordering::SeqCst), 0, "{check}");

    // The webhook: a 302 is an answer, never followed.
    app.gql(
        "mutation($u: String) { setNotificationWebhook(url: $u) }",
        json!({ "u": format!("{endpoint}/hook") }),
    )
    .await;
    let (dir, name) = folder(&app);
    write(&dir, "logins/empty.json", b"");
    let (_, source) = app.local_source(&name).await;
    app.scan(source["data"]["createDataSource"]["id"].as_str().unwrap())
        .await;
    let notes = app
        .gql(
            "{ notifications { nodes { deliveryStatus deliveryError } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        notes["notifications"]["nodes"][0]["deliveryStatus"], "failed",
        "{notes}"
    );
    assert!(
        notes["notifications"]["nodes"][0]["deliveryError"]
            .as_str()
            .unwrap()
            .contains("307"),
        "{notes}"
    );
    assert_eq!(target_hits.load(Ordering::SeqCst), 0);
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn remote_bodies_never_reach_messages() {
    let app = TestApp::spawn().await;
    let (endpoint, hits) = canned(
        "127.0.0.1:0",
        http_response(
            "403 Forbidden",
            "content-type: application/xml\r\n",
            "<Error><Code>AccessDenied</Code><Message>INTERNAL-SECRET-42</Message></Error>",
        ),
    )
    .await;
    let created = create_source(
        &app,
        "s3",
        json!({ "bucket": "data", "endpoint": endpoint }),
        s3_keys(),
    )
    .await;
    let id = created["data"]["createDataSource"]["id"].as_str().unwrap();
    let check = test_source(&app, id).await;
    let message = check["testDataSource"]["message"].as_str().unwrap();
    let host = endpoint.trim_start_matches("http://");
    assert!(
        message.contains(host) && message.contains("403") && message.contains("AccessDenied"),
        "names the host, the status and the provider's code: {message}"
    );
    assert!(!message.contains("INTERNAL-SECRET-42"), "{message}");
    let run = app.scan(id).await;
    assert!(!run.to_string().contains("INTERNAL-SECRET-42"), "{run}");
    let everything = app
        .gql(
            "query($id: ID!) { dataSource(id: $id) { lastError } notifications { nodes { message } } }",
            json!({ "id": id }),
        )
        .await;
    assert!(
        !everything.to_string().contains("INTERNAL-SECRET-42"),
        "{everything}"
    );
    assert!(hits.load(Ordering::SeqCst) > 0);
    app.stop().await;
}

#[tokio::test]
async fn test_data_source_answers_within_10s_and_needs_write() {
    let app = TestApp::spawn().await;
    let (endpoint, hits) = canned("127.0.0.1:0", String::new()).await;
    let created = create_source(
        &app,
        "s3",
        json!({ "bucket": "data", "endpoint": endpoint }),
        s3_keys(),
    )
    .await;
    let id = created["data"]["createDataSource"]["id"].as_str().unwrap();
    let (viewer, _) = app.create_key("viewer").await;
    let (_, body) = app
        .gql_as(
            Some(&viewer),
            "mutation($id: ID!) { testDataSource(id: $id) { ok } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&body), "forbidden", "{body}");
    let started = Instant::now();
    let check = test_source(&app, id).await;
    let took = started.elapsed();
    assert_eq!(check["testDataSource"]["ok"], false, "{check}");
    assert!(took < Duration::from_secs(12), "took {took:?}");
    assert!(hits.load(Ordering::SeqCst) > 0, "it did connect");
    app.stop().await;
}

#[tokio::test]
async fn webhooks_on_private_addresses_are_refused() {
    let app = strict_app().await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost.:8080@127.0.0.1/",
        "http://example.com@127.0.0.1:8080/",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",
        "http://[::ffff:a9fe:a9fe]/",
        "file:///etc/passwd",
    ] {
        let (_, body) = app
            .gql_as(
                Some(&app.admin_key),
                "mutation($u: String) { setNotificationWebhook(url: $u) }",
                json!({ "u": url }),
            )
            .await;
        assert_refused(&body, "url", url);
    }
    app.stop().await;
}

#[tokio::test]
async fn local_sources_stay_in_their_workspace_and_never_follow_links() {
    let app = TestApp::spawn().await;
    let other = app
        .engine
        .create_workspace("Rival", None)
        .await
        .unwrap()
        .workspace
        .id;
    // The other workspace's folder, with a file of its own.
    let theirs = crate::support::local_source_root()
        .join(other.to_string())
        .join("bucket");
    write(
        &theirs,
        "purchases/theirs.ndjson",
        b"{\"user_id\":\"rival-player\"}\n",
    );
    for path in [
        format!("../{other}/bucket"),
        format!("/../{other}"),
        "..".to_owned(),
        format!("{}/../../{other}/bucket", app.workspace_id),
    ] {
        let (_, body) = app.local_source(&path).await;
        assert_refused(&body, "config.path", &path);
    }

    // Links inside our own folder, to a file and a folder outside it.
    let secret = std::env::temp_dir().join(format!("tf-secret-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(secret.join("purchases")).unwrap();
    std::fs::write(secret.join("outside.ndjson"), b"SECRET-LINE not json\n").unwrap();
    std::fs::write(
        secret.join("purchases/deep.ndjson"),
        b"SECRET-DEEP not json\n",
    )
    .unwrap();
    let (dir, name) = folder(&app);
    write(
        &dir,
        "purchases/own.ndjson",
        b"{\"timestamp\":\"2026-11-01 10:00:00\",\"user_id\":\"u1\",\"price\":1}\n",
    );
    std::os::unix::fs::symlink(
        secret.join("outside.ndjson"),
        dir.join("purchases/link.ndjson"),
    )
    .unwrap();
    std::os::unix::fs::symlink(secret.join("purchases"), dir.join("purchases/linked-dir")).unwrap();
    let (_, created) = app.local_source(&name).await;
    let id = created["data"]["createDataSource"]["id"].as_str().unwrap();
    let run = app.scan(id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["filesQueued"], 1, "only the plain file: {run}");
    let skipped = run["skippedPaths"].to_string();
    assert!(skipped.contains("link.ndjson"), "{run}");
    let seen = app
        .gql(
            "{ quarantinedLines { nodes { excerpt } } notifications { nodes { message } } }",
            json!({}),
        )
        .await;
    assert!(!seen.to_string().contains("SECRET"), "{seen}");
    // A link to a folder cannot be a source either.
    std::os::unix::fs::symlink(&secret, dir.join("away")).unwrap();
    let (_, body) = app.local_source(&format!("{name}/away")).await;
    assert_refused(&body, "config.path", "a linked folder");
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(secret).unwrap();
    let _ = std::fs::remove_dir_all(theirs);
}

#[tokio::test]
async fn html_pages_forbid_scripts_and_framing() {
    let app = TestApp::spawn().await;
    let token = app.survey_token("p1").await;
    for path in [
        format!("/survey?playerid={token}"),
        "/survey?playerid=unknown".to_owned(),
    ] {
        let resp = app
            .http
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("script-src"), "{path}: {csp}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        // The page's own style block is the one the policy allows.
        let style_hash = csp
            .split("style-src 'sha256-")
            .nth(1)
            .and_then(|s| s.split('\'').next())
            .unwrap()
            .to_owned();
        let html = resp.text().await.unwrap();
        let style = html
            .split("<style>")
            .nth(1)
            .and_then(|s| s.split("</style>").next())
            .unwrap();
        use base64::Engine as _;
        use sha2::Digest as _;
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style)),
            style_hash
        );
        assert!(!html.contains("<script"), "{path}");
    }
    app.stop().await;
}

/// An expression whose values do not fit its result type fails its run with
/// the trait, an entity and the value named, on both backends; nothing
/// mistyped is stored, so reading values keeps working.
#[tokio::test]
async fn mistyped_expression_values_fail_the_run_and_are_never_stored() {
    let app = TestApp::spawn().await;
    let (status, _) = app
        .post_events(
            Some(&app.admin_key),
            "logins",
            "{\"timestamp\":\"2026-11-01 10:00:00\",\"user_id\":\"u1\",\"platform\":\"Steam\"}\n",
        )
        .await;
    assert_eq!(status, 200);
    app.drain().await;
    let ctx = crate::trait_values::catalog_ids(&app).await;
    let def = |name: &str, ty: &str, config: Value, result: &str| json!({ "name": name, "parent_model_id": ctx.players, "trait_type": ty, "config": config, "result_type": result });
    let mut failing = Vec::new();
    for (name, body) in [
        (
            "text as number",
            def(
                "Bad number",
                "sql",
                json!({"sql_expression": "'abc'"}),
                "number",
            ),
        ),
        (
            "text as boolean",
            def(
                "Bad flag",
                "sql",
                json!({"sql_expression": "'yes'"}),
                "boolean",
            ),
        ),
        (
            "number as timestamp",
            def(
                "Bad time",
                "sql",
                json!({"sql_expression": "12345"}),
                "timestamp",
            ),
        ),
    ] {
        let created = crate::trait_values::create(&app, body).await;
        failing.push((name, created["id"].as_str().unwrap().to_owned()));
    }
    // A formula's string literal is kept as written.
    let literal = crate::trait_values::create(
        &app,
        def(
            "Literal",
            "formula",
            json!({"expression": "'{total}'"}),
            "text",
        ),
    )
    .await;
    app.drain().await;
    for (name, id) in &failing {
        let d = app
            .gql(
                "query($id: ID!) { trait(id: $id) { status statusError runs { nodes { status error } } values(first: 5) { nodes { entityId value } } } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(
            d["trait"]["runs"]["nodes"][0]["status"], "failed",
            "{name}: {d}"
        );
        assert_eq!(d["trait"]["values"]["nodes"], json!([]), "{name}: {d}");
        if crate::support::postgres_admin_url().is_none() {
            let error = d["trait"]["runs"]["nodes"][0]["error"].as_str().unwrap();
            assert!(
                error.contains("u1") && error.contains("trait `bad_"),
                "{name}: {error}"
            );
        }
    }
    let values = crate::trait_values::values(&app, literal["id"].as_str().unwrap()).await;
    assert_eq!(values["u1"], "{total}");
    let player = app
        .gql(
            "{ player(userId: \"u1\") { traits { slug value } } }",
            json!({}),
        )
        .await;
    assert!(player["player"]["traits"].is_array(), "{player}");
    app.stop().await;
}

/// Bodies over `MAX_BODY_BYTES` get 413 in each route family's error shape,
/// declared or streamed; long fields get 422 naming the field.
#[tokio::test]
async fn every_route_family_limits_its_bodies_and_fields() {
    const LIMIT: usize = 64 * 1024;
    let app = TestApp::spawn_with(Options {
        max_body_bytes: LIMIT,
        ..Options::default()
    })
    .await;
    let big = "x".repeat(LIMIT + 1);
    let send = |path: &str, body: String, chunked: bool| {
        let req = app
            .http
            .post(format!("{}{path}", app.url))
            .bearer_auth(&app.admin_key)
            .header("X-Workspace-ID", app.workspace_id.to_string())
            .header("Content-Type", "application/json");
        if chunked {
            let stream = futures::stream::iter([Ok::<_, std::io::Error>(body.into_bytes())]);
            req.body(reqwest::Body::wrap_stream(stream)).send()
        } else {
            req.body(body).send()
        }
    };
    let traits = format!("/api/v1/workspaces/{}/traits", app.workspace_id);
    for chunked in [false, true] {
        let resp = send(&traits, json!({ "name": big }).to_string(), chunked)
            .await
            .unwrap();
        assert_eq!(resp.status(), 413, "chunked: {chunked}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large", "{body}");

        let query = json!({ "query": format!("{{ viewer {{ role }} }} # {big}") }).to_string();
        let resp = send("/graphql", query, chunked).await.unwrap();
        assert_eq!(resp.status(), 413);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "payload_too_large",
            "{body}"
        );

        let resp = send("/v1/events/logins", big.clone(), chunked)
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (body["code"].as_i64(), body["data"].is_null()),
            (Some(413), true),
            "{body}"
        );
    }

    let ctx = crate::trait_values::catalog_ids(&app).await;
    for (body, field) in [
        (
            json!({ "name": "n".repeat(201), "parent_model_id": ctx.players, "trait_type": "sql", "config": { "sql_expression": "1" }, "result_type": "number" }),
            "name",
        ),
        (
            json!({ "name": "Long", "description": "d".repeat(5_001), "parent_model_id": ctx.players, "trait_type": "sql", "config": { "sql_expression": "1" }, "result_type": "number" }),
            "description",
        ),
    ] {
        let resp = send(&traits, body.to_string(), false).await.unwrap();
        assert_eq!(resp.status(), 422);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let resp = send(
        &format!("/api/v1/workspaces/{}/segments", app.workspace_id),
        json!({ "name": "S", "description": "d".repeat(5_001), "filter": { "trait": "x", "op": "exists" } }).to_string(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["field"],
        "description"
    );
    app.stop().await;
}

/// 20 parallel creates of one name: one wins, the others get 409, never a
/// 500; kinds without unique names create every one.
#[tokio::test]
async fn parallel_creates_answer_409_not_500() {
    let app = TestApp::spawn().await;
    let ctx = crate::trait_values::catalog_ids(&app).await;
    let ws = app.workspace_id;
    let kinds = [
        (
            "traits",
            json!({ "name": "Spend", "parent_model_id": ctx.players, "trait_type": "sql", "config": { "sql_expression": "1" }, "result_type": "number" }),
            true,
        ),
        (
            "segments",
            json!({ "name": "Whales", "filter": { "trait": "spend", "op": "exists" } }),
            true,
        ),
        (
            "sources",
            json!({ "name": "Same", "kind": "local", "config": { "path": "/" } }),
            false,
        ),
    ];
    for (kind, body, unique) in kinds {
        let path = format!("/api/v1/workspaces/{ws}/{kind}");
        let sends = (0..20).map(|_| {
            app.http
                .post(format!("{}{path}", app.url))
                .bearer_auth(&app.admin_key)
                .header("X-Workspace-ID", ws.to_string())
                .json(&body)
                .send()
        });
        let statuses: Vec<u16> = futures::future::join_all(sends)
            .await
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect();
        let created = statuses.iter().filter(|s| **s == 201).count();
        if unique {
            assert_eq!(created, 1, "{path}: {statuses:?}");
            assert!(
                statuses.iter().all(|s| *s == 201 || *s == 409),
                "{path}: {statuses:?}"
            );
        } else {
            assert_eq!(created, 20, "{path}: {statuses:?}");
        }
    }
    // API keys: no unique names, every create succeeds.
    let keys = (0..20).map(|_| {
        app.gql_as(
            Some(&app.admin_key),
            "mutation { createApiKey(name: \"same\", role: VIEWER) { apiKey { id } } }",
            json!({}),
        )
    });
    for (status, body) in futures::future::join_all(keys).await {
        assert_eq!(status, 200);
        assert!(body.get("errors").is_none(), "{body}");
    }
    app.stop().await;
}

/// The REST document says how to authenticate and what errors look like,
/// and the server keeps to it: a number is not a string, and errors before a
/// handler runs come in the route family's JSON shape.
#[tokio::test]
async fn the_openapi_document_tells_the_truth() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["workspace"]["name"],
        "X-Workspace-ID"
    );
    let create = &doc["paths"]["/api/v1/workspaces/{id}/traits"]["post"];
    assert_eq!(
        create["security"],
        json!([{ "bearer": [], "workspace": [] }])
    );
    assert!(create["responses"]["422"].is_object(), "{create}");
    assert_eq!(
        doc["components"]["schemas"]["SegmentObject"]["properties"]["members_error"]["nullable"],
        true
    );
    let docs = app
        .http
        .get(format!("{}/docs/", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        docs.contains("securitySchemes"),
        "Swagger UI gets the same document"
    );

    let ws = app.workspace_id;
    let resp = app
        .http
        .post(format!("{}/api/v1/workspaces/{ws}/traits", app.url))
        .bearer_auth(&app.admin_key)
        .header("X-Workspace-ID", ws.to_string())
        .json(&json!({ "name": 12345 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "a number is not a string");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_input", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("12345"),
        "{body}"
    );

    for (method, path, status) in [
        (reqwest::Method::GET, "/v1/nowhere", 404),
        (reqwest::Method::PATCH, "/v1/userData", 405),
    ] {
        let resp = app
            .http
            .request(method, format!("{}{path}", app.url))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], status, "the /v1 envelope: {body}");
        assert!(body["data"].is_null());
    }
    let resp = app
        .http
        .post(format!("{}/api/v1/workspaces/{ws}/segments", app.url))
        .bearer_auth(&app.admin_key)
        .header("X-Workspace-ID", ws.to_string())
        .header("Content-Type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
    app.stop().await;
}
