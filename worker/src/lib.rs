//! apalis wiring shared by `traitforge-worker` and the server's embedded worker:
//! one handler that hands each job to `engine`, on whichever backend the queue uses.

use std::{future::Future, sync::Arc, time::Duration};

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use engine::{Engine, jobs::Job, queue::Queue};

pub mod settings;

/// How long in-flight jobs get to finish after a shutdown signal. Jobs still
/// running after that are released and redelivered (handlers are idempotent).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// apalis 1.0 storages park an idle worker until their next heartbeat (30 s);
/// polling this often bounds the latency between enqueue and start.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Clone)]
struct WorkerState {
    engine: Engine,
    identity: Arc<str>,
}

async fn handle(job: Job, state: Data<WorkerState>) -> Result<(), BoxDynError> {
    state
        .engine
        .execute(job, &state.identity)
        .await
        .map_err(Into::into)
}

/// Every minute: queue runs for traits whose `refresh` schedule fired in the
/// minute before this tick, and scans of sources whose interval has passed. Duplicate ticks from several workers are absorbed
/// by the engine (one scheduled run per trait and fire time).
async fn refresh_tick(tick: Tick, state: Data<WorkerState>) -> Result<(), BoxDynError> {
    let now = chrono::DateTime::from_timestamp(tick.get_timestamp() as i64, 0)
        .unwrap_or_else(chrono::Utc::now);
    let queued = state
        .engine
        .queue_scheduled_refreshes(now - chrono::Duration::minutes(1), now)
        .await?;
    if queued > 0 {
        tracing::info!(queued, "scheduled trait refreshes queued");
    }
    let scans = state.engine.queue_due_scans(now).await?;
    if scans > 0 {
        tracing::info!(scans, "scheduled source scans queued");
    }
    Ok(())
}

/// A name that tells operators which process ran a job.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Consumes jobs until `shutdown` resolves, then drains in-flight jobs.
pub async fn run(
    engine: Engine,
    concurrency: usize,
    identity: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let concurrency = concurrency.max(1);
    let state = WorkerState {
        engine: engine.clone(),
        identity: identity.clone().into(),
    };
    let signal = async move {
        shutdown.await;
        Ok(())
    };
    tracing::info!(%identity, concurrency, backend = engine.queue().backend_name(), "worker started");
    let every_minute: cron::Schedule = "0 * * * * *".parse().expect("valid cron expression");
    let cron_state = state.clone();
    let cron_name = format!("traitforge-refresh-{identity}");
    let monitor = Monitor::new()
        .shutdown_timeout(SHUTDOWN_GRACE)
        .register(move |_| {
            WorkerBuilder::new(cron_name.clone())
                .backend(CronScheduler::new(every_minute.clone()))
                .data(cron_state.clone())
                .build(refresh_tick)
        });
    let monitor = match engine.queue().clone() {
        Queue::Sqlite(storage) => monitor.register(move |_| {
            WorkerBuilder::new(format!("traitforge-{identity}"))
                .backend(storage.clone().poll_with_interval(POLL_INTERVAL))
                .data(state.clone())
                .concurrency(concurrency)
                .build(handle)
        }),
        Queue::Redis(storage) => monitor.register(move |_| {
            WorkerBuilder::new(format!("traitforge-{identity}"))
                .backend(storage.clone().poll_with_interval(POLL_INTERVAL))
                .data(state.clone())
                .concurrency(concurrency)
                .build(handle)
        }),
    };
    monitor.run_with_signal(signal).await?;
    tracing::info!("worker stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
