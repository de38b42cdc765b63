//! The persona routes of the player API under `wrk`, beside a bare poem
//! hello-world route served by the same process, in one run: 100k players
//! with scores on every facet of the default instrument, clustered into 4
//! personas of the `default` segment.
//!
//! `BENCH_POSTGRES_URL=postgres://… BENCH_REDIS_URL=redis://… cargo bench -p api --bench persona_routes`
//! (`wrk` on PATH). Prints requests/s per route and the ratio to hello-world.

use std::{process::Command, time::Instant};

#[path = "../../engine/benches/support/mod.rs"]
mod support;

use engine::{segments::personas::PersonaRoute, survey::Instrument};
use poem::{Route, Server, get, handler, listener::TcpListener};
use sea_orm::ConnectionTrait;
use support::Bench;

const PLAYERS: u64 = 100_000;
const SECONDS: u32 = 10;

#[handler]
fn hello_world() -> &'static str {
    "Hello, world!"
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Requests per second `wrk` reports for `url`, sent with these headers.
fn wrk(url: &str, headers: &[String]) -> f64 {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c32", &format!("-d{SECONDS}s")]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("wrk on PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "{url} answered errors under load:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec from wrk:\n{text}"))
}

#[tokio::main]
async fn main() {
    let bench = Bench::start(|_| None).await;
    let (engine, p) = (&bench.engine, &bench.principal);
    let key = bench.admin_key.clone();
    let wid = bench.workspace_id;

    // 100k players in four groups, scored on every facet (set-based, in PostgreSQL).
    let clock = Instant::now();
    let db = engine.db();
    db.execute_unprepared(&format!(
        "INSERT INTO players (workspace_id, user_id, first_seen_at, last_seen_at, updated_at) \
         SELECT '{wid}', 'u' || g, now(), now(), now() FROM generate_series(1, {PLAYERS}) g"
    ))
    .await
    .unwrap();
    let instrument = Instrument::default_instrument();
    let facets: Vec<String> = instrument
        .scored_facets()
        .enumerate()
        .map(|(i, (c, f))| format!("({i}, '{c}', '{}')", f.replace('\'', "''")))
        .collect();
    db.execute_unprepared(&format!(
        "INSERT INTO psych_scores (workspace_id, user_id, category, facet, score, source, computed_at) \
         SELECT '{wid}', 'u' || g, f.category, f.facet, \
                50 + 8 * (((g + f.i) % 4) - 1.5) + 10 * (random() - 0.5), 'survey', now() \
         FROM generate_series(1, {PLAYERS}) g \
         CROSS JOIN (VALUES {}) AS f(i, category, facet)",
        facets.join(", ")
    ))
    .await
    .unwrap();
    println!(
        "planted {PLAYERS} players × {} facets in {:.1} s",
        facets.len(),
        clock.elapsed().as_secs_f64()
    );
    let default = engine.segment(p, "default").await.unwrap();
    let clock = Instant::now();
    engine.execute_personas(default.id).await.unwrap();
    let personas = engine.personas(p, "default").await.unwrap();
    println!(
        "k-means + profiles: {:.1} s; persona sizes {:?}",
        clock.elapsed().as_secs_f64(),
        personas.iter().map(|p| p.size).collect::<Vec<_>>()
    );
    for (persona, route) in [("1", PersonaRoute::Traits), ("1", PersonaRoute::UserIds)] {
        let body = engine
            .persona_route(p, "default", persona, route)
            .await
            .unwrap();
        println!(
            "{route:?} of persona {persona}: {} bytes, {} gzipped",
            body.plain().len(),
            body.gzip().len()
        );
    }

    let api_port = free_port();
    let server = api::server::start(
        engine.clone(),
        api::server::ServerOptions {
            bind: format!("127.0.0.1:{api_port}"),
            tls: None,
            https: api::auth::HttpsPolicy::default(),
            embedded_worker: None,
            max_body_bytes: api::rest::ingest::DEFAULT_MAX_BODY_BYTES,
            graphql_max_bytes: api::server::DEFAULT_GRAPHQL_MAX_BYTES,
            worker_stall_limit: worker::health::DEFAULT_STALL_LIMIT,
        },
    )
    .await
    .unwrap();
    let hello_port = free_port();
    tokio::spawn(
        Server::new(TcpListener::bind(format!("127.0.0.1:{hello_port}")))
            .run(Route::new().at("/", get(hello_world))),
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let base = format!("http://127.0.0.1:{api_port}/v1/segments/default/personas");
    // wrk sends no Accept-Encoding: the plain runs are what a bare client
    // gets; the gzip runs what browsers and most HTTP libraries get.
    let routes = [
        ("traits, persona 1", format!("{base}/1/traits"), false),
        ("traits, all", format!("{base}/all/traits"), false),
        ("user-ids, persona 1", format!("{base}/1/user-ids"), false),
        (
            "user-ids, persona 4 (smallest)",
            format!("{base}/4/user-ids"),
            false,
        ),
        ("traits, persona 1, gzip", format!("{base}/1/traits"), true),
        (
            "user-ids, persona 1, gzip",
            format!("{base}/1/user-ids"),
            true,
        ),
        (
            "user-ids, persona 4 (smallest), gzip",
            format!("{base}/4/user-ids"),
            true,
        ),
    ];
    let results = tokio::task::spawn_blocking(move || {
        let hello = wrk(&format!("http://127.0.0.1:{hello_port}/"), &[]);
        let measured: Vec<(String, f64)> = routes
            .iter()
            .map(|(label, url, gzip)| {
                let mut headers = vec![format!("Authorization: Bearer {key}")];
                if *gzip {
                    headers.push("Accept-Encoding: gzip".into());
                }
                (label.to_string(), wrk(url, &headers))
            })
            .collect();
        (hello, measured)
    })
    .await
    .unwrap();
    let (hello, measured) = results;
    println!("hello-world: {hello:.0} req/s");
    for (label, rps) in measured {
        println!("{label}: {rps:.0} req/s = {:.3}× hello-world", rps / hello);
    }
    server.stop().await.unwrap();
    bench.finish().await;
}
