//! Prometheus metrics at `GET /metrics`.
//!
//! HTTP requests and accepted jobs are counted in this process. Job outcomes and the
//! accept-to-confirmed latency are counted by the workers in Redis (`fluxus:metrics:*`), so
//! every API replica reports the same totals for the whole deployment.

use std::fmt::Write;

use fluxus_shared::store::{LATENCY_BUCKETS_MS, Store};
use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    jobs_accepted: IntCounterVec,
    refused_queue_full: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "fluxus_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let jobs_accepted = IntCounterVec::new(
            Opts::new("fluxus_jobs_accepted_total", "Jobs accepted (202) by kind"),
            &["kind"],
        )
        .expect("valid metric");
        let refused_queue_full = IntCounter::new(
            "fluxus_jobs_refused_queue_full_total",
            "Payments refused with 503 because the send queue was full",
        )
        .expect("valid metric");
        registry
            .register(Box::new(refused_queue_full.clone()))
            .expect("registered once");
        registry
            .register(Box::new(http_requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(jobs_accepted.clone()))
            .expect("registered once");
        Self {
            registry,
            http_requests,
            jobs_accepted,
            refused_queue_full,
        }
    }

    pub fn observe_http(&self, path: &str, status: u16) {
        self.http_requests
            .with_label_values(&[route_of(path), &status.to_string()])
            .inc();
    }

    pub fn refused_queue_full(&self) {
        self.refused_queue_full.inc();
    }

    pub fn accepted(&self, kind: &str) {
        self.jobs_accepted.with_label_values(&[kind]).inc();
    }

    /// The text exposition: this process's metrics plus the workers' from Redis.
    pub async fn render(&self, store: &Store) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding");
        let mut text = String::from_utf8(buffer).expect("prometheus text is UTF-8");
        match store.metrics().await {
            Ok((jobs, latency)) => render_worker_metrics(&mut text, &jobs, &latency),
            Err(_) => text.push_str("# worker metrics unavailable: Redis did not answer\n"),
        }
        if let Ok(depth) = store.queue_depth().await {
            text.push_str("# HELP fluxus_queue_depth Send jobs waiting to be fetched or retried\n");
            text.push_str("# TYPE fluxus_queue_depth gauge\n");
            let _ = writeln!(text, "fluxus_queue_depth {depth}");
        }
        text
    }
}

fn render_worker_metrics(
    out: &mut String,
    jobs: &[(String, String, u64)],
    latency: &[(String, u64)],
) {
    out.push_str("# HELP fluxus_jobs_total Finished jobs by kind and outcome\n");
    out.push_str("# TYPE fluxus_jobs_total counter\n");
    for (kind, outcome, n) in jobs {
        let _ = writeln!(
            out,
            "fluxus_jobs_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
        );
    }

    let get = |name: &str| {
        latency
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    out.push_str(
        "# HELP fluxus_accept_to_confirmed_seconds Time from acceptance to a confirmed receipt\n",
    );
    out.push_str("# TYPE fluxus_accept_to_confirmed_seconds histogram\n");
    for bucket in LATENCY_BUCKETS_MS {
        let le = bucket as f64 / 1000.0;
        let n = get(&bucket.to_string());
        let _ = writeln!(
            out,
            "fluxus_accept_to_confirmed_seconds_bucket{{le=\"{le}\"}} {n}"
        );
    }
    let count = get("count");
    let _ = writeln!(
        out,
        "fluxus_accept_to_confirmed_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(
        out,
        "fluxus_accept_to_confirmed_seconds_sum {}",
        get("sum_ms") as f64 / 1000.0
    );
    let _ = writeln!(out, "fluxus_accept_to_confirmed_seconds_count {count}");
}

/// The route template of a path, so ids do not explode the label set.
fn route_of(path: &str) -> &'static str {
    const TEMPLATES: [(&str, &str); 3] = [
        ("/api/v1/jobs/", "/api/v1/jobs/{id}"),
        ("/api/v1/balance/", "/api/v1/balance/{address}"),
        ("/api/v1/history/", "/api/v1/history/{address}"),
    ];
    const FIXED: [&str; 6] = [
        "/api/v1/send",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    ];
    if let Some((_, template)) = TEMPLATES
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
    {
        return template;
    }
    FIXED
        .iter()
        .find(|f| path == **f)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates() {
        assert_eq!(route_of("/api/v1/jobs/abc"), "/api/v1/jobs/{id}");
        assert_eq!(route_of("/api/v1/send"), "/api/v1/send");
        assert_eq!(route_of("/nope/123"), "other");
    }

    #[test]
    fn histogram_buckets_are_cumulative_as_stored() {
        let mut out = String::new();
        let latency = vec![
            ("1000".to_string(), 2),
            ("count".to_string(), 3),
            ("sum_ms".into(), 4500),
        ];
        render_worker_metrics(
            &mut out,
            &[("send".into(), "confirmed".into(), 3)],
            &latency,
        );
        assert!(out.contains("fluxus_jobs_total{kind=\"send\",outcome=\"confirmed\"} 3"));
        assert!(out.contains("fluxus_accept_to_confirmed_seconds_bucket{le=\"1\"} 2"));
        assert!(out.contains("fluxus_accept_to_confirmed_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(out.contains("fluxus_accept_to_confirmed_seconds_sum 4.5"));
    }
}
