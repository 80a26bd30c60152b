//! Phase 1, accept latency: `POST /api/v1/send` open-loop at a fixed rate. Request `i` is issued
//! at `start + i / rate` whatever the earlier ones are doing, and its latency is counted from
//! that scheduled instant, so a stalled API shows up as latency instead of a slower sender.

use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Fluxus;
use crate::stats::{self, show};

/// One request's fate.
struct Sample {
    latency: Duration,
    replied_at: Instant,
    job: anyhow::Result<String>,
}

/// What phase 1 measured.
pub struct AcceptReport {
    pub latencies_ms: Vec<f64>,
    /// Accepted payments per second from the first request to the last reply.
    pub rate_per_s: Option<f64>,
    pub job_ids: Vec<String>,
    pub errors: usize,
    pub first_error: Option<String>,
}

impl AcceptReport {
    /// `accept_latency_ms p50=… p99=… max=… rate=…/s accepted=…/…`.
    pub fn line(&self) -> String {
        let ms = &self.latencies_ms;
        format!(
            "accept_latency_ms p50={} p99={} max={} rate={}/s accepted={}/{}",
            show(stats::percentile(ms, 50.0)),
            show(stats::percentile(ms, 99.0)),
            show(stats::max(ms)),
            show(self.rate_per_s),
            self.job_ids.len(),
            self.job_ids.len() + self.errors,
        )
    }
}

/// Issues `count` sends at `rate_per_s`, paying `recipients` in turn.
pub async fn run(
    fluxus: &Fluxus,
    recipients: &[String],
    count: usize,
    rate_per_s: f64,
) -> anyhow::Result<AcceptReport> {
    let period = Duration::from_secs_f64(1.0 / rate_per_s);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let scheduled = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        let (fluxus, to) = (fluxus.clone(), recipients[i % recipients.len()].clone());
        tasks.spawn(async move {
            let job = fluxus.send(&to).await;
            let replied_at = Instant::now();
            Sample {
                latency: replied_at - scheduled,
                replied_at,
                job,
            }
        });
    }

    let mut samples = Vec::with_capacity(count);
    while let Some(sample) = tasks.join_next().await {
        samples.push(sample.context("a send task panicked")?);
    }
    Ok(report(start, samples))
}

fn report(start: Instant, samples: Vec<Sample>) -> AcceptReport {
    let last_reply = samples.iter().map(|s| s.replied_at).max().unwrap_or(start);
    let mut report = AcceptReport {
        latencies_ms: Vec::new(),
        rate_per_s: None,
        job_ids: Vec::new(),
        errors: 0,
        first_error: None,
    };
    for sample in samples {
        match sample.job {
            Ok(id) => {
                report.latencies_ms.push(stats::millis(sample.latency));
                report.job_ids.push(id);
            }
            Err(err) => {
                report.errors += 1;
                report.first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
    report.rate_per_s = stats::per_second(report.job_ids.len(), last_reply - start);
    report
}
