//! apalis wiring shared by `traitforge-worker` and the server's embedded worker:
//! one handler that hands each job to `engine`, on whichever backend the queue uses.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use engine::{
    Engine,
    jobs::{Job, outbox::Dispatcher, queue::Queue},
};
use tokio::sync::watch;

pub mod health;
pub mod settings;

pub use health::WorkerHealth;

/// How long in-flight jobs get to finish after a shutdown signal. Jobs still
/// running after that are released and redelivered (handlers are idempotent).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// apalis 1.0 storages park an idle worker until their next heartbeat (30 s);
/// polling this often bounds the latency between enqueue and start.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Clone)]
struct WorkerState {
    engine: Engine,
    identity: Arc<str>,
    health: Arc<WorkerHealth>,
}

/// While a job runs the worker does not poll (its slots are busy), so apalis
/// reports no heartbeat; a running job is a sign of life too.
const BUSY_BEAT: Duration = Duration::from_secs(2);

/// Aborts the task when dropped, so a job dropped with its worker stops beating.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn handle(job: Job, state: Data<WorkerState>) -> Result<(), BoxDynError> {
    let health = state.health.clone();
    let _beat = AbortOnDrop(tokio::spawn(async move {
        loop {
            health.seen(QUEUE_WORKER);
            tokio::time::sleep(BUSY_BEAT).await;
        }
    }));
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
    let predictions = state
        .engine
        .queue_scheduled_predictions(now - chrono::Duration::minutes(1), now)
        .await?;
    if predictions > 0 {
        tracing::info!(
            predictions,
            "scheduled prediction trainings and scorings queued"
        );
    }
    let scans = state.engine.queue_due_scans(now).await?;
    if scans > 0 {
        tracing::info!(scans, "scheduled source scans queued");
    }
    state.engine.queue_history_pruning(now).await?;
    state.engine.queue_waiting_passes().await?;
    state.engine.queue_window_refreshes(now).await?;
    Ok(())
}

/// A name that tells operators which process ran a job.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// A worker that ended without being told to stop is started again after
/// this long, doubling per failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker that ran this long before failing starts again at [`MIN_BACKOFF`].
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How often the outbox is handed to the queue and lost jobs are looked for.
pub const DISPATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The label of the queue worker in [`WorkerHealth`] (and `/readyz`, `/metrics`).
pub const QUEUE_WORKER: &str = "queue";

/// Consumes jobs until `shutdown` resolves, then drains in-flight jobs.
/// Every part is supervised: a backend error (SQLite busy, Redis gone, the
/// database restarting) ends an apalis worker, which is then started again
/// with a backoff, so the process never silently stops working.
pub async fn run(
    engine: Engine,
    concurrency: usize,
    identity: String,
    health: Arc<WorkerHealth>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let concurrency = concurrency.max(1);
    let state = WorkerState {
        engine: engine.clone(),
        identity: identity.clone().into(),
        health: health.clone(),
    };
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    tracing::info!(%identity, concurrency, backend = engine.queue().backend_name(), "worker started");

    let every_minute: cron::Schedule = "0 * * * * *".parse().expect("valid cron expression");
    let cron_state = state.clone();
    let cron_name = format!("traitforge-refresh-{identity}");
    // The cron worker has no heartbeat to watch: it is supervised, not probed.
    let cron = supervise("cron", None, stop.clone(), move || {
        let (name, schedule, state) = (cron_name.clone(), every_minute.clone(), cron_state.clone());
        Monitor::new().register(move |_| {
            WorkerBuilder::new(name.clone())
                .backend(CronScheduler::new(schedule.clone()))
                .data(state.clone())
                .build(refresh_tick)
        })
    });
    let queue_name = format!("traitforge-{identity}");
    let queue = engine.queue().clone();
    let queue = supervise(QUEUE_WORKER, Some(health), stop.clone(), move || {
        let (name, state) = (queue_name.clone(), state.clone());
        match queue.clone() {
            Queue::Sqlite(storage) => Monitor::new().register(move |_| {
                WorkerBuilder::new(name.clone())
                    .backend(storage.clone().poll_with_interval(POLL_INTERVAL))
                    .data(state.clone())
                    .concurrency(concurrency)
                    .build(handle)
            }),
            Queue::Redis(storage) => Monitor::new().register(move |_| {
                WorkerBuilder::new(name.clone())
                    .backend(storage.clone().poll_with_interval(POLL_INTERVAL))
                    .data(state.clone())
                    .concurrency(concurrency)
                    .build(handle)
            }),
        }
    });
    let outbox = dispatch_outbox(engine, stop);
    tokio::join!(cron, queue, outbox);
    tracing::info!("worker stopped");
    Ok(())
}

/// Runs the monitor `make` builds until `stop`; whenever it ends on its own
/// (a worker future ended with an error), builds it again after a backoff.
async fn supervise(
    label: &'static str,
    health: Option<Arc<WorkerHealth>>,
    mut stop: watch::Receiver<bool>,
    make: impl Fn() -> Monitor,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut monitor = make().shutdown_timeout(SHUTDOWN_GRACE);
        if let Some(seen) = health.clone() {
            seen.seen(label);
            monitor = monitor.on_event(move |_, _| seen.seen(label));
        }
        let mut signal = stop.clone();
        let started = Instant::now();
        let outcome = monitor
            .run_with_signal(async move {
                let _ = signal.wait_for(|stop| *stop).await;
                Ok(())
            })
            .await;
        if *stop.borrow() {
            return;
        }
        if started.elapsed() > HEALTHY_RUN {
            backoff = MIN_BACKOFF;
        }
        if let Some(health) = &health {
            health.restarted(label);
        }
        tracing::error!(
            worker = label,
            outcome = ?outcome,
            backoff_ms = backoff.as_millis() as u64,
            "worker ended without being told to stop; starting it again"
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Hands the outbox to the queue and takes up jobs of dead workers, every
/// [`DISPATCH_INTERVAL`], until `stop`. Failures (the queue or the database
/// unreachable) are retried on the next pass; a change of state is logged once.
async fn dispatch_outbox(engine: Engine, mut stop: watch::Receiver<bool>) {
    let mut dispatcher = Dispatcher::default();
    let mut failing = false;
    loop {
        match dispatcher.pass(&engine).await {
            Ok(n) => {
                if failing {
                    tracing::info!("outbox dispatch works again");
                }
                if n > 0 {
                    tracing::info!(jobs = n, "outbox handed to the queue");
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e.cause(), "outbox dispatch failed; retrying every second");
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(DISPATCH_INTERVAL) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
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
