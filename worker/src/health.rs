//! Worker liveness, as the probes and `/metrics` see it: when each supervised
//! worker of this process last showed a sign of life (apalis reports every
//! heartbeat and every job), and how often it had to be started again.

use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// A worker silent for longer than this counts as stalled: `/readyz` answers
/// 503 naming it. Queue workers heartbeat every 5 s, so this is several
/// missed heartbeats, and longer than a write transaction is allowed to hold
/// the SQLite write lock.
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct State {
    last_seen: Instant,
    restarts: u64,
}

/// One per process; shared by its supervised workers and its HTTP probes.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    workers: Mutex<BTreeMap<String, State>>,
}

/// What `/metrics` shows of one worker.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerReport {
    pub worker: String,
    pub last_seen_age: Duration,
    pub restarts: u64,
}

impl WorkerHealth {
    /// The worker is alive now (started, heartbeat, a job went by).
    pub fn seen(&self, worker: &str) {
        let mut workers = self.workers.lock().expect("worker health");
        let now = Instant::now();
        workers
            .entry(worker.to_owned())
            .and_modify(|s| s.last_seen = now)
            .or_insert(State {
                last_seen: now,
                restarts: 0,
            });
    }

    /// The worker ended without being told to stop and is started again.
    pub fn restarted(&self, worker: &str) {
        let mut workers = self.workers.lock().expect("worker health");
        workers
            .entry(worker.to_owned())
            .or_insert(State {
                last_seen: Instant::now(),
                restarts: 0,
            })
            .restarts += 1;
    }

    pub fn report(&self) -> Vec<WorkerReport> {
        let workers = self.workers.lock().expect("worker health");
        workers
            .iter()
            .map(|(name, s)| WorkerReport {
                worker: name.clone(),
                last_seen_age: s.last_seen.elapsed(),
                restarts: s.restarts,
            })
            .collect()
    }

    /// Workers silent for longer than `limit`.
    pub fn stalled(&self, limit: Duration) -> Vec<WorkerReport> {
        self.report()
            .into_iter()
            .filter(|r| r.last_seen_age > limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_worker_is_stalled_and_a_seen_one_is_not() {
        let health = WorkerHealth::default();
        health.seen("queue");
        assert!(health.stalled(Duration::from_secs(1)).is_empty());
        std::thread::sleep(Duration::from_millis(20));
        let stalled = health.stalled(Duration::from_millis(10));
        assert_eq!(stalled.len(), 1);
        assert_eq!(stalled[0].worker, "queue");
        health.seen("queue");
        assert!(health.stalled(Duration::from_millis(10)).is_empty());
        health.restarted("queue");
        health.restarted("queue");
        assert_eq!(health.report()[0].restarts, 2);
    }
}
