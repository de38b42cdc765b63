//! `traitforge-worker`: consumes jobs from Redis (production layout: one
//! `traitforge serve` and N workers against one PostgreSQL and one Redis).

use clap::Parser;
use engine::Engine;
use worker::settings::CommonArgs;

#[derive(Parser, Debug)]
#[command(name = "traitforge-worker", version, about = "Traitforge job worker")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Name recorded on every job this process runs (default: host:pid).
    #[arg(long, env = "WORKER_ID")]
    worker_id: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.common.init_tracing();
    if cli.common.redis_url.is_none() {
        anyhow::bail!(
            "REDIS_URL is required: a separate worker consumes the Redis queue \
             (the embedded SQLite queue is served by `traitforge serve` itself)"
        );
    }
    let engine = Engine::open(&cli.common.engine_config()).await?;
    let identity = cli.worker_id.unwrap_or_else(worker::default_identity);
    worker::run(
        engine,
        cli.common.worker_concurrency,
        identity,
        Default::default(),
        worker::shutdown_signal(),
    )
    .await
}
