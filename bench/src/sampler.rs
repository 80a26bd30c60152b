//! Reads `GET /metrics` every [`SAMPLE_EVERY_MS`] while a matrix round runs: the highest queue
//! depth seen, and the send-outcome counters, from which the round learns when all its payments
//! have finished (one cheap request per tick instead of polling every job).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::Fluxus;
use crate::scrape::Scrape;

pub const SAMPLE_EVERY_MS: u64 = 100;
/// Bound of one metrics request; a slower answer counts as a failed sample.
const SAMPLE_TIMEOUT_MS: u64 = 2_000;

/// What the sampler has seen so far.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// The latest successful reading and when its answer arrived.
    pub latest: Option<(Instant, Scrape)>,
    pub max_queue_depth: Option<u64>,
    pub samples: usize,
    pub failures: usize,
    pub last_error: Option<String>,
}

/// A running sampler; stop it with [`Sampler::stop`].
pub struct Sampler {
    seen: watch::Receiver<Seen>,
    task: JoinHandle<()>,
}

impl Sampler {
    pub fn start(fluxus: Fluxus) -> Self {
        let (tx, seen) = watch::channel(Seen::default());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(SAMPLE_EVERY_MS));
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let timeout = Duration::from_millis(SAMPLE_TIMEOUT_MS);
                let reading = tokio::time::timeout(timeout, fluxus.scrape()).await;
                let at = Instant::now();
                tx.send_modify(|seen| match reading {
                    Ok(Ok(scrape)) => seen.record(at, scrape),
                    Ok(Err(err)) => seen.failed(format!("{err:#}")),
                    Err(_) => seen.failed(format!("GET /metrics took over {timeout:?}")),
                });
            }
        });
        Self { seen, task }
    }

    /// Waits until a reading satisfies `done` or `deadline` passes; that reading and when it
    /// arrived, or `None` at the deadline.
    pub async fn wait_for(
        &mut self,
        done: impl Fn(&Scrape) -> bool,
        deadline: Instant,
    ) -> Option<(Instant, Scrape)> {
        let wait = self
            .seen
            .wait_for(|seen| seen.latest.as_ref().is_some_and(|(_, scrape)| done(scrape)));
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(seen)) => seen.latest.clone(),
            _ => None,
        }
    }

    pub fn stop(self) -> Seen {
        self.task.abort();
        self.seen.borrow().clone()
    }
}

impl Seen {
    fn record(&mut self, at: Instant, scrape: Scrape) {
        self.samples += 1;
        self.max_queue_depth = self.max_queue_depth.max(scrape.queue_depth);
        self.latest = Some((at, scrape));
    }

    fn failed(&mut self, error: String) {
        self.failures += 1;
        self.last_error = Some(error);
    }
}
