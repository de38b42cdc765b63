//! Probes, TLS and the HTTPS policy.

use std::{path::Path, process::Command, sync::Arc};

use api::{auth::HttpsPolicy, server::TlsFiles};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Options, TestApp};

#[tokio::test]
async fn probes_answer_without_a_key() {
    let app = TestApp::spawn().await;
    let health = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
    // GraphiQL's static page is public; the API behind it is not.
    let ide = app
        .http
        .get(format!("{}/graphql", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ide.status(), StatusCode::OK);
    assert!(ide.text().await.unwrap().contains("graphiql"));
    app.stop().await;
}

fn self_signed(dir: &Path) -> TlsFiles {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    TlsFiles { cert, key }
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let dir = std::env::temp_dir().join(format!("tf-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let app = TestApp::spawn_with(Options {
        tls: Some(self_signed(&dir)),
        https: HttpsPolicy {
            required: true,
            trusted_proxies: Arc::new([]),
        },
        ..Options::default()
    })
    .await;
    assert!(app.url.starts_with("https://"));
    let data = app.gql("{ viewer { role } }", json!({})).await;
    assert_eq!(data["viewer"]["role"], "ADMIN");

    // Plain HTTP to the TLS port does not get an answer.
    let plain = app.url.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn require_https_refuses_plain_http_unless_a_trusted_proxy_vouches() {
    let app = TestApp::spawn_with(Options {
        https: HttpsPolicy {
            required: true,
            trusted_proxies: Arc::new(["127.0.0.1".parse().unwrap()]),
        },
        ..Options::default()
    })
    .await;
    let post = |proto: Option<&str>| {
        let mut req = app
            .http
            .post(format!("{}/graphql", app.url))
            .bearer_auth(&app.admin_key)
            .json(&json!({ "query": "{ viewer { role } }" }));
        if let Some(p) = proto {
            req = req.header("X-Forwarded-Proto", p);
        }
        req.send()
    };
    let refused = post(None).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["errors"][0]["extensions"]["code"],
        "https_required",
        "GraphQL's error shape"
    );
    // The player API refuses in its envelope, the traits API in its error body.
    for (path, envelope) in [
        ("/v1/assessment/user/status?id=x", true),
        ("/api/v1/workspaces/x/traits", false),
    ] {
        let resp = app
            .http
            .get(format!("{}{path}", app.url))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body: Value = resp.json().await.unwrap();
        if envelope {
            assert_eq!(
                (body["code"].as_i64(), body["data"].is_null()),
                (Some(403), true),
                "{body}"
            );
        } else {
            assert_eq!(body["error"]["code"], "https_required", "{body}");
        }
    }
    assert_eq!(
        post(Some("http")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(post(Some("https")).await.unwrap().status(), StatusCode::OK);
    // Load-balancer probes stay reachable over the internal network.
    let health = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    app.stop().await;

    // The same header from a proxy that is not trusted proves nothing.
    let untrusted = TestApp::spawn_with(Options {
        https: HttpsPolicy {
            required: true,
            trusted_proxies: Arc::new([]),
        },
        ..Options::default()
    })
    .await;
    let resp = untrusted
        .http
        .post(format!("{}/graphql", untrusted.url))
        .bearer_auth(&untrusted.admin_key)
        .header("X-Forwarded-Proto", "https")
        .json(&json!({ "query": "{ viewer { role } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    untrusted.stop().await;
}
