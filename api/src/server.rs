//! The HTTP server: routes, TLS, the HTTPS policy and the embedded worker.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context as _;
use async_graphql_poem::{GraphQLRequest, GraphQLResponse};
use engine::Engine;
use poem::{
    EndpointExt, IntoResponse, Request, Response, Route, Server, get, handler,
    listener::{Acceptor, AcceptorExt, Listener, RustlsCertificate, RustlsConfig, TcpListener},
    web::{Data, Json},
};
use serde_json::json;
use tokio::{sync::watch, task::JoinHandle};
use worker::WorkerHealth;

use poem_openapi::OpenApiService;

use crate::{
    auth::{HttpsPolicy, authenticate, enforce_https},
    errors::{graphql_http_error, json_http_error},
    graphql::{self, AppSchema},
    rest::{
        ingest::{BodyLimit, IngestApi},
        models::ModelsApi,
        player::PlayerApi,
        predictions::PredictionsApi,
        segments::SegmentsApi,
        sources::SourcesApi,
        traits::TraitsApi,
    },
    survey_page,
};

/// In-flight requests get this long to finish after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub bind: String,
    pub tls: Option<TlsFiles>,
    pub https: HttpsPolicy,
    /// Run the queue worker in this process (the embedded default), with this concurrency.
    pub embedded_worker: Option<usize>,
    /// Request bodies of the ingestion routes larger than this get 413.
    pub max_body_bytes: usize,
    /// GraphQL documents larger than this get 413 before they are parsed.
    pub graphql_max_bytes: usize,
    /// `/readyz` answers 503 when the embedded worker was silent this long.
    pub worker_stall_limit: std::time::Duration,
}

/// The largest GraphQL document (`GRAPHQL_MAX_BYTES`). Real queries are a
/// few KiB; parsing cost grows with the document (a 4 MiB document of
/// aliases took ~340 MiB), so it is refused before parsing.
pub const DEFAULT_GRAPHQL_MAX_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy)]
struct GraphqlLimit(usize);

#[handler]
async fn graphql_post(
    req: &Request,
    schema: Data<&AppSchema>,
    engine: Data<&Engine>,
    limit: Data<&GraphqlLimit>,
    gql: GraphQLRequest,
) -> Response {
    let limit = limit.0.0;
    if gql.0.query.len() > limit {
        return graphql_http_error(engine::Error::PayloadTooLarge { limit });
    }
    match authenticate(&engine, req).await {
        Ok(principal) => {
            let mut response = schema.execute(gql.0.data(principal)).await;
            // Parse and validation errors come from async-graphql without a
            // code; every error a client sees carries one.
            for e in &mut response.errors {
                let ext = e.extensions.get_or_insert_with(Default::default);
                if ext.get("code").is_none() {
                    ext.set("code", "bad_request");
                }
            }
            GraphQLResponse::from(response).into_response()
        }
        Err(e) => graphql_http_error(e),
    }
}

#[handler]
fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Whether the stall limit applies: only a process that runs a worker has one.
#[derive(Clone, Copy)]
struct StallLimit(Option<std::time::Duration>);

#[handler]
async fn readyz(
    engine: Data<&Engine>,
    workers: Data<&Arc<WorkerHealth>>,
    limit: Data<&StallLimit>,
) -> Response {
    if let Err(e) = engine.ready().await {
        return json_http_error(e);
    }
    if let Some(limit) = limit.0.0
        && let Some(stalled) = workers.stalled(limit).first()
    {
        return json_http_error(engine::Error::Unavailable(format!(
            "worker `{}` has not polled its queue for {} s (limit {} s)",
            stalled.worker,
            stalled.last_seen_age.as_secs(),
            limit.as_secs()
        )));
    }
    Json(json!({ "status": "ready" })).into_response()
}

/// Both REST families in one OpenAPI document.
type RestApis = (
    TraitsApi,
    ModelsApi,
    SourcesApi,
    SegmentsApi,
    IngestApi,
    PlayerApi,
    PredictionsApi,
);

pub fn openapi() -> OpenApiService<RestApis, ()> {
    OpenApiService::new(
        (
            TraitsApi,
            ModelsApi,
            SourcesApi,
            SegmentsApi,
            IngestApi,
            PlayerApi,
            PredictionsApi,
        ),
        "Traitforge REST API",
        env!("CARGO_PKG_VERSION"),
    )
}

pub fn routes(
    engine: Engine,
    https: HttpsPolicy,
    max_body_bytes: usize,
    graphql_max_bytes: usize,
    workers: Arc<WorkerHealth>,
    stall_limit: Option<std::time::Duration>,
) -> impl poem::Endpoint {
    let schema = graphql::schema(engine.clone());
    let rest = openapi();
    let http_metrics = std::sync::Arc::new(crate::metrics::HttpMetrics::default());
    let measured = http_metrics.clone();
    let (document, docs) = crate::openapi::endpoints(rest.spec(), rest.swagger_ui_html());
    Route::new()
        .at("/openapi.json", document)
        .nest("/docs", docs)
        // The REST families live under these two prefixes; `/` is the landing page.
        .nest_no_strip("/api", rest)
        .nest_no_strip("/v1", openapi())
        .at("/", get(crate::pages::landing))
        .at("/readme", get(crate::pages::readme))
        .at("/assets/:name", get(crate::pages::asset))
        .nest("/console", crate::console::routes())
        .at("/graphql", get(crate::pages::graphiql).post(graphql_post))
        .at("/survey", get(survey_page::show).post(survey_page::submit))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(crate::metrics::render_metrics))
        .data(schema)
        .data(http_metrics)
        .data(engine)
        .data(BodyLimit(max_body_bytes))
        .data(GraphqlLimit(graphql_max_bytes))
        .data(workers)
        .data(StallLimit(stall_limit))
        .around(crate::errors::family_errors)
        .around(move |ep, req| crate::rest::ingest::limit_body(ep, req, max_body_bytes))
        .around(move |ep, req| enforce_https(ep, req, https.clone()))
        .around(move |ep, req| crate::metrics::measure(ep, req, measured.clone()))
}

/// A started server: its bound address (port 0 becomes a real port) and handles to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub tls: bool,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    worker: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, drains requests and in-flight jobs, then returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.wait().await
    }

    /// Runs until the server ends (after a shutdown signal).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        if let Some(worker) = self.worker {
            worker.await??;
        }
        Ok(())
    }

    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

fn on_shutdown(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

pub async fn start(engine: Engine, opts: ServerOptions) -> anyhow::Result<RunningServer> {
    let listener = TcpListener::bind(opts.bind.clone());
    let acceptor = match &opts.tls {
        Some(tls) => {
            let cert = std::fs::read(&tls.cert)
                .with_context(|| format!("TLS_CERT {}", tls.cert.display()))?;
            let key = std::fs::read(&tls.key)
                .with_context(|| format!("TLS_KEY {}", tls.key.display()))?;
            let config = RustlsConfig::new().fallback(RustlsCertificate::new().cert(cert).key(key));
            listener
                .rustls(config)
                .into_acceptor()
                .await
                .map(AcceptorExt::boxed)
        }
        None => listener.into_acceptor().await.map(AcceptorExt::boxed),
    }
    .with_context(|| format!("cannot listen on {}", opts.bind))?;
    let addr = *acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr())
        .context("listener has no socket address")?;

    let (shutdown, rx) = watch::channel(false);
    let health = Arc::new(WorkerHealth::default());
    let worker = opts.embedded_worker.map(|concurrency| {
        tokio::spawn(worker::run(
            engine.clone(),
            concurrency,
            worker::default_identity(),
            health.clone(),
            on_shutdown(&rx),
        ))
    });
    let stall_limit = opts.embedded_worker.map(|_| opts.worker_stall_limit);
    let app = routes(
        engine,
        opts.https.clone(),
        opts.max_body_bytes,
        opts.graphql_max_bytes,
        health,
        stall_limit,
    );
    let server = tokio::spawn(
        Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            app,
            on_shutdown(&rx),
            Some(SHUTDOWN_GRACE),
        ),
    );
    tracing::info!(%addr, tls = opts.tls.is_some(), "listening");
    Ok(RunningServer {
        addr,
        tls: opts.tls.is_some(),
        shutdown,
        server,
        worker,
    })
}
