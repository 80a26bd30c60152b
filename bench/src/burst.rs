//! A burst of payments: `POST /api/v1/send` as fast as a bounded number of requests in flight
//! allows, each request's latency (issue to 202) recorded. Used by phase 2 of the single run and
//! by every round of the matrix.

use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use crate::client::Fluxus;
use crate::stats;

/// Sends in flight at once.
pub const SEND_CONCURRENCY: usize = 16;

/// What a burst sent.
pub struct Burst {
    /// When the first request was issued.
    pub start: Instant,
    /// First request to last reply.
    pub span: Duration,
    /// Accepted job ids.
    pub ids: Vec<String>,
    /// Latency of every accepted request, in milliseconds.
    pub latencies_ms: Vec<f64>,
    pub errors: usize,
    pub first_error: Option<String>,
}

/// Sends `count` payments to `recipients` in turn.
pub async fn send(fluxus: &Fluxus, recipients: &[String], count: usize) -> Burst {
    let start = Instant::now();
    let replies: Vec<(anyhow::Result<String>, Duration)> = futures::stream::iter(0..count)
        .map(|i| async move {
            let issued = Instant::now();
            let reply = fluxus.send(&recipients[i % recipients.len()]).await;
            (reply, issued.elapsed())
        })
        .buffer_unordered(SEND_CONCURRENCY)
        .collect()
        .await;

    let mut burst = Burst {
        start,
        span: start.elapsed(),
        ids: Vec::with_capacity(count),
        latencies_ms: Vec::with_capacity(count),
        errors: 0,
        first_error: None,
    };
    for (reply, latency) in replies {
        match reply {
            Ok(id) => {
                burst.ids.push(id);
                burst.latencies_ms.push(stats::millis(latency));
            }
            Err(err) => {
                burst.errors += 1;
                burst.first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
    burst
}
