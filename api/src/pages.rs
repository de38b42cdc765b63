//! The pages a person opens first: the landing page at `/`, GraphiQL at
//! `/graphql`, and the static assets they (and the console) use, all served
//! from the binary so that no page loads anything from another origin.

use poem::{
    IntoResponse, Response, handler,
    http::{StatusCode, header},
    web::{Html, Path},
};

/// Pages that run no inline script; styles may be inline (GraphiQL sets them).
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// (name, content type, bytes) of every asset under `/assets/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../assets/vendor/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../assets/vendor/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../assets/vendor/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../assets/vendor/react-dom.production.min.js"),
    ),
    (
        "graphiql-start.js",
        "text/javascript",
        include_bytes!("../assets/graphiql-start.js"),
    ),
    (
        "console.css",
        "text/css",
        include_bytes!("../assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript",
        include_bytes!("../assets/console.js"),
    ),
];

/// Text made safe to interpolate into HTML (element content and quoted attributes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `/assets/{name}`: cached for a day (the names change with their content's version).
#[handler]
pub fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => Response::builder()
            .header(header::CONTENT_TYPE, *content_type)
            .header(header::CACHE_CONTROL, "public, max-age=86400")
            .header("X-Content-Type-Options", "nosniff")
            .body(*bytes),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub fn with_csp(page: impl IntoResponse) -> Response {
    page.with_header("Content-Security-Policy", PAGE_CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        // same-origin: forms keep their Origin header (the console checks it); nothing leaks elsewhere.
        .with_header("Referrer-Policy", "same-origin")
        .into_response()
}

/// `GET /`: what this server is, and where to go.
#[handler]
pub fn landing() -> Response {
    with_csp(Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Traitforge</title>
<link rel="stylesheet" href="/assets/console.css">
</head>
<body>
<main class="narrow">
<h1>Traitforge {version}</h1>
<p>Player intelligence for game studios: behavioural data in, traits, survey-based
psych scores, predictions, segments and personas out.</p>
<ul class="links">
<li><a href="/console">Console</a> — look at players, data, traits, segments and personas (sign in with an API key).</li>
<li><a href="/graphql">GraphiQL</a> — explore and query the GraphQL API.</li>
<li><a href="/docs">API docs</a> — the REST families (traits API and player API), with <a href="/openapi.json">openapi.json</a>.</li>
<li><a href="/readme">Walkthrough</a> — the README: first start, <code>traitforge demo</code>, then the API.</li>
</ul>
<p class="muted">Health: <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a> · <a href="/metrics">/metrics</a></p>
</main>
</body>
</html>"#,
        version = env!("CARGO_PKG_VERSION")
    )))
}

/// `GET /readme`: the README, as text.
#[handler]
pub fn readme() -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(include_str!("../../README.md"))
}

/// `GET /graphql` in a browser: GraphiQL from the binary's assets. The API
/// key goes in the headers pane once (`Authorization: Bearer …`); GraphiQL
/// keeps it in the browser's storage.
#[handler]
pub fn graphiql() -> Response {
    with_csp(Html(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Traitforge GraphiQL</title>
<link rel="stylesheet" href="/assets/graphiql.min.css">
<style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
</head>
<body>
<div id="graphiql">Loading…</div>
<script src="/assets/react.production.min.js"></script>
<script src="/assets/react-dom.production.min.js"></script>
<script src="/assets/graphiql.min.js"></script>
<script src="/assets/graphiql-start.js"></script>
</body>
</html>"#,
    ))
}
