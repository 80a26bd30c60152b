//! Waiting for accepted payments to reach a terminal status: polls `GET /api/v1/jobs/{id}` of
//! every unsettled job, a bounded number at a time, until all have settled or the deadline passes.
//! A missed deadline is reported in the result (how many are still pending), not hidden.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use crate::client::{Fluxus, is_terminal};

/// Pause between polling rounds; short against the figures it bounds.
const POLL_INTERVAL_MS: u64 = 100;
/// Job reads in flight at once, so polling does not crowd out the API it measures.
const POLL_CONCURRENCY: usize = 8;

/// Where a set of jobs ended.
#[derive(Debug, Default)]
pub struct Settled {
    pub confirmed: usize,
    /// Terminal statuses other than `confirmed`, by status.
    pub other: BTreeMap<String, usize>,
    /// Jobs still not terminal at the deadline.
    pub pending: usize,
    /// When the last job was first seen `confirmed`.
    pub last_confirmed_at: Option<Instant>,
    /// The transactions the confirmed jobs were paid in (several payments may share one).
    pub txs: BTreeSet<String>,
    /// The last polling error, if any (transient errors are retried).
    pub last_error: Option<String>,
}

impl Settled {
    /// `confirmed=…/… txs=… payments_per_tx=… failed=… pending=…` for the report.
    pub fn summary(&self, total: usize) -> String {
        let mut line = format!("confirmed={}/{total}", self.confirmed);
        if !self.txs.is_empty() {
            line.push_str(&format!(
                " txs={} payments_per_tx={:.1}",
                self.txs.len(),
                self.confirmed as f64 / self.txs.len() as f64
            ));
        }
        for (status, count) in &self.other {
            line.push_str(&format!(" {status}={count}"));
        }
        if self.pending > 0 {
            line.push_str(&format!(" pending={}", self.pending));
        }
        line
    }
}

/// Polls until every job in `ids` is terminal or `deadline` has passed.
pub async fn wait_terminal(fluxus: &Fluxus, ids: &[String], deadline: Duration) -> Settled {
    let started = Instant::now();
    let mut pending: Vec<String> = ids.to_vec();
    let mut settled = Settled::default();
    loop {
        pending = poll_round(fluxus, pending, &mut settled).await;
        if pending.is_empty() || started.elapsed() >= deadline {
            settled.pending = pending.len();
            return settled;
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
}

/// Reads each pending job once; the ones still pending.
async fn poll_round(fluxus: &Fluxus, pending: Vec<String>, settled: &mut Settled) -> Vec<String> {
    let reads = futures::stream::iter(pending)
        .map(|id| async move {
            let status = fluxus.status(&id).await;
            (id, status, Instant::now())
        })
        .buffer_unordered(POLL_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;

    let mut still = Vec::new();
    for (id, status, seen_at) in reads {
        match status {
            Ok((status, tx_hash)) if status == "confirmed" => {
                settled.confirmed += 1;
                settled.txs.extend(tx_hash);
                settled.last_confirmed_at = settled.last_confirmed_at.max(Some(seen_at));
            }
            Ok((status, _)) if is_terminal(&status) => {
                *settled.other.entry(status).or_default() += 1;
            }
            Ok(_) => still.push(id),
            Err(err) => {
                settled.last_error = Some(format!("{err:#}"));
                still.push(id);
            }
        }
    }
    still
}
