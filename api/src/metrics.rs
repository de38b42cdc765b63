//! `/metrics` in the Prometheus text format: HTTP requests counted and timed
//! here, plus the engine's operational counts (jobs, ledger, notifications).

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Instant,
};

use engine::Engine;
use poem::{Endpoint, IntoResponse, Request, Response, handler, http::StatusCode, web::Data};
use worker::WorkerHealth;

use crate::errors::json_http_error;

/// Upper bounds (seconds) of the request duration histogram.
const BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0];

/// Request counters by status class, and one duration histogram.
#[derive(Default)]
pub struct HttpMetrics {
    /// 1xx..5xx.
    by_class: [AtomicU64; 5],
    /// Cumulative per bucket, plus +Inf at the end.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    micros: AtomicU64,
}

impl HttpMetrics {
    fn observe(&self, status: StatusCode, started: Instant) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.buckets[BUCKETS.len()].fetch_add(1, Relaxed);
        self.micros.fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP traitforge_http_requests_total HTTP requests answered, by status class.\n",
        );
        out.push_str("# TYPE traitforge_http_requests_total counter\n");
        for (i, n) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "traitforge_http_requests_total{{status=\"{}xx\"}} {}",
                i + 1,
                n.load(Relaxed)
            );
        }
        out.push_str("# HELP traitforge_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE traitforge_http_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "traitforge_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.buckets[i].load(Relaxed)
            );
        }
        let count = self.buckets[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(
            out,
            "traitforge_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "traitforge_http_request_duration_seconds_sum {}",
            self.micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "traitforge_http_request_duration_seconds_count {count}"
        );
    }
}

/// Counts and times every request (middleware).
pub async fn measure<E: Endpoint>(
    next: E,
    req: Request,
    metrics: Arc<HttpMetrics>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let outcome = next.call(req).await.map(IntoResponse::into_response);
    let status = match &outcome {
        Ok(r) => r.status(),
        Err(e) => e.status(),
    };
    metrics.observe(status, started);
    outcome
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The worker gauges of this process (none without an embedded worker).
fn render_workers(health: &WorkerHealth, out: &mut String) {
    let report = health.report();
    if report.is_empty() {
        return;
    }
    out.push_str("# HELP traitforge_worker_last_seen_age_seconds Seconds since the worker last polled or heartbeat.\n");
    out.push_str("# TYPE traitforge_worker_last_seen_age_seconds gauge\n");
    for r in &report {
        let _ = writeln!(
            out,
            "traitforge_worker_last_seen_age_seconds{{worker=\"{}\"}} {:.3}",
            escape(&r.worker),
            r.last_seen_age.as_secs_f64()
        );
    }
    out.push_str("# HELP traitforge_worker_restarts_total Times the worker ended on an error and was started again.\n");
    out.push_str("# TYPE traitforge_worker_restarts_total counter\n");
    for r in &report {
        let _ = writeln!(
            out,
            "traitforge_worker_restarts_total{{worker=\"{}\"}} {}",
            escape(&r.worker),
            r.restarts
        );
    }
}

#[handler]
pub async fn render_metrics(
    engine: Data<&Engine>,
    http: Data<&Arc<HttpMetrics>>,
    workers: Data<&Arc<WorkerHealth>>,
) -> Response {
    let samples = match engine.metrics().await {
        Ok(s) => s,
        Err(e) => return json_http_error(e),
    };
    let mut out = String::new();
    http.render(&mut out);
    render_workers(&workers, &mut out);
    let mut last = "";
    for s in samples {
        if s.name != last {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge", s.name, s.help, s.name);
            last = s.name;
        }
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(out, "{}{{{}}} {}", s.name, labels.join(","), s.value);
    }
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}
