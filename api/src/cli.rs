//! `traitforge`: serve (default), migrate, workspace and key administration, schema export.

use std::{net::IpAddr, path::PathBuf};

use anyhow::Context as _;
use clap::{ArgAction, Args, Parser, Subcommand};
use engine::Engine;
use serde_json::json;
use uuid::Uuid;
use worker::settings::CommonArgs;

use crate::{
    auth::HttpsPolicy,
    server::{ServerOptions, TlsFiles},
};

#[derive(Parser, Debug)]
#[command(
    name = "traitforge",
    version,
    about = "Traitforge player-intelligence server"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: String,
    /// PEM certificate chain; with `TLS_KEY` the server speaks HTTPS only.
    #[arg(long, env = "TLS_CERT", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "TLS_KEY", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,
    /// Refuse requests that did not arrive over TLS (or via a trusted proxy's `X-Forwarded-Proto: https`).
    #[arg(long, env = "REQUIRE_HTTPS", action = ArgAction::Set, default_value_t = false, global = true)]
    pub require_https: bool,
    /// Comma-separated proxy addresses whose `X-Forwarded-Proto` is trusted.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    pub trusted_proxies: Vec<IpAddr>,
    /// Bodies of `POST /v1/events/…` and `/v1/playfab` larger than this get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = crate::rest::ingest::DEFAULT_MAX_BODY_BYTES, global = true)]
    pub max_body_bytes: usize,
    /// GraphQL documents larger than this get 413 before they are parsed.
    #[arg(long, env = "GRAPHQL_MAX_BYTES", default_value_t = crate::server::DEFAULT_GRAPHQL_MAX_BYTES, global = true)]
    pub graphql_max_bytes: usize,
    /// `/readyz` answers 503 when the embedded worker has not polled its
    /// queue (or sent a heartbeat) for this many seconds.
    #[arg(long, env = "WORKER_STALL_LIMIT", default_value_t = worker::health::DEFAULT_STALL_LIMIT.as_secs(), global = true)]
    pub worker_stall_limit: u64,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Migrate, then serve the API (and, without REDIS_URL, run the worker in-process).
    Serve,
    /// Serve like `serve`; when the default workspace holds no data, fill it
    /// with a demo studio (players, events, traits, surveys, prediction,
    /// segments and personas) through the product's own paths.
    Demo {
        /// Players of the demo studio.
        #[arg(long, default_value_t = crate::demo::DEFAULT_PLAYERS)]
        players: usize,
    },
    /// Run database migrations and exit.
    Migrate,
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print the GraphQL schema (SDL).
    ExportSchema,
}

#[derive(Subcommand, Debug)]
pub enum WorkspaceCommand {
    /// Create a workspace; prints {"workspace_id","api_key"} with its first admin key.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner_email: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a key for a workspace; prints {"key_id","api_key","role"}.
    Create {
        #[arg(long)]
        workspace: Uuid,
        #[arg(long, value_parser = ["admin", "editor", "viewer", "ingest"])]
        role: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

impl ServerArgs {
    pub fn options(&self, embedded_worker: Option<usize>) -> ServerOptions {
        ServerOptions {
            bind: self.bind.clone(),
            tls: self
                .tls_cert
                .clone()
                .zip(self.tls_key.clone())
                .map(|(cert, key)| TlsFiles { cert, key }),
            https: HttpsPolicy {
                required: self.require_https,
                trusted_proxies: self.trusted_proxies.clone().into(),
            },
            embedded_worker,
            max_body_bytes: self.max_body_bytes,
            graphql_max_bytes: self.graphql_max_bytes,
            worker_stall_limit: std::time::Duration::from_secs(self.worker_stall_limit),
        }
    }
}

pub async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if let Some(Command::ExportSchema) = cli.command {
        print!("{}", crate::graphql::sdl());
        return Ok(());
    }
    if matches!(cli.command, Some(Command::Demo { .. })) && cli.common.local_source_root.is_none() {
        // The demo loads its files through a local source: give it a folder.
        let root = std::path::PathBuf::from("traitforge-sources");
        std::fs::create_dir_all(&root).context("creating ./traitforge-sources for the demo")?;
        cli.common.local_source_root = Some(root);
    }
    cli.common.init_tracing();
    let engine = Engine::open(&cli.common.engine_config()).await?;
    match cli.command.take().unwrap_or(Command::Serve) {
        Command::Serve => serve(engine, &cli, None).await,
        Command::Demo { players } => serve(engine, &cli, Some(players)).await,
        Command::Migrate => {
            engine.migrate().await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Workspace(WorkspaceCommand::Create { name, owner_email }) => {
            engine.migrate().await?;
            let created = engine
                .create_workspace(&name, owner_email.as_deref())
                .await?;
            println!(
                "{}",
                json!({ "workspace_id": created.workspace.id, "api_key": created.admin_key.secret })
            );
            Ok(())
        }
        Command::Key(KeyCommand::Create {
            workspace,
            role,
            name,
        }) => {
            let role = engine::auth::role_from_input(&role)?;
            let created = engine
                .create_api_key_as_operator(workspace, &name, role)
                .await?;
            println!(
                "{}",
                json!({ "key_id": created.key.id, "api_key": created.secret, "role": role.as_str() })
            );
            Ok(())
        }
        Command::ExportSchema => unreachable!("handled before connecting"),
    }
}

async fn serve(engine: Engine, cli: &Cli, demo: Option<usize>) -> anyhow::Result<()> {
    engine.migrate().await.context("migrating the database")?;
    let created = engine.bootstrap().await?;
    // The embedded default: no Redis means the queue is in the SQLite file and
    // this process consumes it. With Redis, `traitforge-worker` processes do.
    let embedded = cli
        .common
        .redis_url
        .is_none()
        .then_some(cli.common.worker_concurrency);
    let running = crate::server::start(engine.clone(), cli.server.options(embedded)).await?;
    let url = running.url();
    println!(
        "Traitforge {} is running at {url}",
        env!("CARGO_PKG_VERSION")
    );
    println!("  console    {url}/console");
    println!("  GraphiQL   {url}/graphql");
    println!("  API docs   {url}/docs");
    if let Some(created) = &created {
        println!("Created workspace \"default\": {}", created.workspace.id);
        println!(
            "Admin API key (shown only once, store it now): {}",
            created.admin_key.secret
        );
    }
    let stop = running.shutdown_handle();
    tokio::spawn(async move {
        worker::shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    if let Some(players) = demo {
        run_demo(&engine, players, &url, created.is_some()).await?;
    }
    running.wait().await
}

/// Fills the default workspace (once) and says what to open next.
async fn run_demo(
    engine: &Engine,
    players: usize,
    url: &str,
    key_shown: bool,
) -> anyhow::Result<()> {
    let Some(workspace) = engine.default_workspace().await? else {
        println!("demo: there is no workspace named \"default\" to fill");
        return Ok(());
    };
    println!("demo: filling workspace \"default\" with a studio of {players} players…");
    match crate::demo::fill(engine, workspace.id, players).await? {
        Some(filled) => println!(
            "demo: ready in {:.1} s: {} events of {} players, {} surveys answered, traits, prediction, 3 segments with personas",
            filled.seconds, filled.rows, filled.players, filled.surveys
        ),
        None => println!("demo: the default workspace already has data; it was left as it is"),
    }
    println!("Open next:");
    let key = if key_shown {
        "the admin key above"
    } else {
        "an admin or viewer key"
    };
    println!("  {url}/console   (sign in with {key})");
    println!(
        "  {url}/v1/segments/whales/personas/1/traits   (a persona's profile; send Authorization: Bearer <key>)"
    );
    println!(
        "  {url}/graphql  with  {{ segments {{ nodes {{ slug memberCount personas {{ index size }} }} }} }}"
    );
    Ok(())
}
