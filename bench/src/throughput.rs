//! Phase 2, accept-to-confirmed throughput: sends as fast as a bounded number of requests in
//! flight allows, then waits until every payment is `confirmed`. The figure is payments per
//! second from the first POST to the moment the last payment was seen confirmed.

use std::time::Duration;

use crate::burst;
use crate::client::Fluxus;
use crate::settle::{self, Settled};
use crate::stats::{self, show};

/// What phase 2 measured.
pub struct ThroughputReport {
    pub payments: usize,
    pub accept_all: Duration,
    pub send_errors: usize,
    pub first_error: Option<String>,
    pub settled: Settled,
    /// Payments per second, first POST to last confirmed; `None` unless all confirmed.
    pub confirmed_per_s: Option<f64>,
}

impl ThroughputReport {
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!(
                "fluxus_accept_all_ms={:.1} payments={} send_errors={}",
                stats::millis(self.accept_all),
                self.payments,
                self.send_errors
            ),
            format!(
                "fluxus_confirmed_per_s={} {}",
                show(self.confirmed_per_s),
                self.settled.summary(self.payments)
            ),
        ]
    }
}

/// Sends `count` payments to `recipients` in turn and waits up to `deadline` for them.
pub async fn run(
    fluxus: &Fluxus,
    recipients: &[String],
    count: usize,
    deadline: Duration,
) -> ThroughputReport {
    let sent = burst::send(fluxus, recipients, count).await;
    let settled = settle::wait_terminal(fluxus, &sent.ids, deadline).await;
    let all_confirmed = sent.errors == 0 && settled.confirmed == count;
    let confirmed_per_s = settled
        .last_confirmed_at
        .filter(|_| all_confirmed)
        .and_then(|last| stats::per_second(count, last - sent.start));
    ThroughputReport {
        payments: count,
        accept_all: sent.span,
        send_errors: sent.errors,
        first_error: sent.first_error,
        settled,
        confirmed_per_s,
    }
}
