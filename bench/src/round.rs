//! One round of the matrix on a running stack: a burst of payments ([`burst`]) while the
//! [`Sampler`] reads the metrics, the wait until the outcome counters say every accepted
//! payment has finished, a check of every job's own status, and the processes' peak memory and
//! CPU time during the round.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::burst;
use crate::client::Fluxus;
use crate::procs;
use crate::sampler::Sampler;
use crate::scrape::Scrape;
use crate::settle::{self, Settled};
use crate::stats::{self, show};

/// How long the job-by-job check may take once the counters say all have finished.
const VERIFY_DEADLINE_SECS: u64 = 30;

/// How the stack mines blocks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mining {
    Automine,
    BlockTime { secs: f64 },
}

impl Mining {
    pub fn block_time(self) -> Option<f64> {
        match self {
            Self::Automine => None,
            Self::BlockTime { secs } => Some(secs),
        }
    }

    /// `automine` or `block_time_0.5s`.
    pub fn label(self) -> String {
        match self {
            Self::Automine => "automine".to_string(),
            Self::BlockTime { secs } => format!("block_time_{secs}s"),
        }
    }
}

/// What a round runs with.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub mining: Mining,
    pub workers: usize,
    pub lanes_per_worker: u32,
    /// Most payments one transaction carries (`FLUXUS_BATCH_MAX`).
    pub batch_max: u32,
    /// The raw-node baseline of the same stack.
    pub raw_per_s: Option<f64>,
}

impl Setup {
    /// With interval mining, the most payments a second the lanes can carry: each lane holds
    /// one transaction in flight, a transaction carries at most `batch_max` payments and needs
    /// a block, so `lanes × batch_max × blocks/s`.
    pub fn bound_per_s(&self) -> Option<f64> {
        let secs = self.mining.block_time()?;
        Some((self.lanes_total() * u64::from(self.batch_max)) as f64 / secs)
    }

    pub fn lanes_total(&self) -> u64 {
        self.workers as u64 * u64::from(self.lanes_per_worker)
    }
}

/// What a round measured.
pub struct RoundReport {
    pub setup: Setup,
    pub payments: usize,
    /// Payments per second, first POST to the metrics reading that showed the last one
    /// confirmed; `None` unless every payment was accepted and confirmed.
    pub confirmed_per_s: Option<f64>,
    pub accept_latencies_ms: Vec<f64>,
    /// Accepted payments per second over the burst.
    pub accept_per_s: Option<f64>,
    pub max_queue_depth: Option<u64>,
    pub api_peak_rss_kib: Option<u64>,
    pub worker_peak_rss_kib: Option<u64>,
    pub send_errors: usize,
    pub settled: Settled,
    /// From the first POST to the first reading that counted a finished payment: how long the
    /// workers took to start on the burst.
    pub first_finished_ms: Option<f64>,
    /// CPU seconds each kind of process used from the first POST until all had finished.
    pub cpu_s: BTreeMap<String, f64>,
    /// Wall-clock seconds of that same span.
    pub cpu_wall_s: f64,
    /// What went wrong, for stderr.
    pub problems: Vec<String>,
}

impl RoundReport {
    pub fn ratio_percent(&self) -> Option<f64> {
        let raw = self.setup.raw_per_s.filter(|raw| *raw > 0.0)?;
        self.confirmed_per_s.map(|fluxus| 100.0 * fluxus / raw)
    }

    pub fn complete(&self) -> bool {
        self.confirmed_per_s.is_some()
    }

    /// The round's line: `mining=… workers=… lanes_per_worker=… confirmed_per_s=… …`.
    pub fn line(&self) -> String {
        let setup = &self.setup;
        let kib = |v: Option<u64>| v.map_or("NA".to_string(), |v| v.to_string());
        let mut line = format!(
            "mining={} workers={} lanes_per_worker={} batch_max={} confirmed_per_s={}",
            setup.mining.label(),
            setup.workers,
            setup.lanes_per_worker,
            setup.batch_max,
            show(self.confirmed_per_s),
        );
        if let (Some(bound), Some(secs)) = (setup.bound_per_s(), setup.mining.block_time()) {
            line.push_str(&format!(
                " bound_per_s={bound:.1} lanes_total={} blocks_per_s={:.1}",
                setup.lanes_total(),
                1.0 / secs
            ));
        }
        let ms = &self.accept_latencies_ms;
        line.push_str(&format!(
            " raw_per_s={} ratio_percent={} accept_p50_ms={} accept_p99_ms={} accept_per_s={} \
             max_queue_depth={} api_peak_rss_kib={} worker_peak_rss_kib={} {}",
            show(setup.raw_per_s),
            show(self.ratio_percent()),
            show(stats::percentile(ms, 50.0)),
            show(stats::percentile(ms, 99.0)),
            show(self.accept_per_s),
            kib(self.max_queue_depth),
            kib(self.api_peak_rss_kib),
            kib(self.worker_peak_rss_kib),
            self.settled.summary(self.payments),
        ));
        if self.send_errors > 0 {
            line.push_str(&format!(" send_errors={}", self.send_errors));
        }
        line
    }

    /// Where the round's time went: `round_detail mining=… workers=… first_finished_ms=…
    /// wall_s=… cpu_s.anvil=… … cores_used=…` (CPU seconds by process from the first POST until
    /// all had finished; the machine's cores bound what all of them together can use).
    pub fn detail_line(&self) -> String {
        let setup = &self.setup;
        let mut line = format!(
            "round_detail mining={} workers={} lanes_per_worker={} first_finished_ms={} \
             wall_s={:.2}",
            setup.mining.label(),
            setup.workers,
            setup.lanes_per_worker,
            show(self.first_finished_ms),
            self.cpu_wall_s
        );
        line.push_str(&cpu_fields(&self.cpu_s, self.cpu_wall_s));
        line
    }
}

/// Runs one round of `count` payments to `recipients`; waits at most `deadline` from the
/// first POST for them to finish.
pub async fn run(
    fluxus: &Fluxus,
    recipients: &[String],
    setup: Setup,
    count: usize,
    deadline: Duration,
) -> RoundReport {
    let mut problems = Vec::new();
    let api_pids = procs::children_named("fluxus-api");
    let worker_pids = procs::children_named("fluxus-worker");
    problems.extend(reset_peaks(api_pids.iter().chain(&worker_pids)));

    // Counters before, the burst, then the wait for the counters to catch up.
    let before = fluxus.scrape().await;
    let mut sampler = Sampler::start(fluxus.clone());
    let cpu_before = procs::cpu_ticks_by_name();
    let sent = burst::send(fluxus, recipients, count).await;
    let until = sent.start + deadline;
    let (first_finished_at, finished_at) = match &before {
        Ok(before) => finish_times(&mut sampler, before, sent.ids.len() as u64, until).await,
        Err(err) => {
            problems.push(format!("metrics unreadable before the round: {err:#}"));
            (None, None)
        }
    };
    let cpu_wall_s = sent.start.elapsed().as_secs_f64();
    let cpu_s = cpu_used(&cpu_before, &procs::cpu_ticks_by_name());
    let seen = sampler.stop();

    // Every job's own status decides; the counters only said when to look.
    let verify = Duration::from_secs(VERIFY_DEADLINE_SECS);
    let settled = settle::wait_terminal(fluxus, &sent.ids, verify).await;
    let all_confirmed = sent.errors == 0 && settled.confirmed == count;
    let confirmed_per_s = finished_at
        .filter(|_| all_confirmed)
        .and_then(|at| stats::per_second(count, at - sent.start));

    if finished_at.is_none() && before.is_ok() {
        problems.push(format!(
            "not all payments finished within {deadline:?} of the first POST"
        ));
    }
    let errors = [
        sent.first_error
            .as_ref()
            .map(|e| format!("first send error: {e}")),
        settled
            .last_error
            .as_ref()
            .map(|e| format!("last job-read error: {e}")),
        seen.last_error
            .as_ref()
            .map(|e| format!("{} failed metrics reads, last: {e}", seen.failures)),
    ];
    problems.extend(errors.into_iter().flatten());
    RoundReport {
        setup,
        payments: count,
        confirmed_per_s,
        accept_per_s: stats::per_second(sent.ids.len(), sent.span),
        accept_latencies_ms: sent.latencies_ms,
        max_queue_depth: seen.max_queue_depth,
        api_peak_rss_kib: procs::max_peak_rss_kib(&api_pids),
        worker_peak_rss_kib: procs::max_peak_rss_kib(&worker_pids),
        send_errors: sent.errors,
        settled,
        first_finished_ms: first_finished_at.map(|at| stats::millis(at - sent.start)),
        cpu_s,
        cpu_wall_s,
        problems,
    }
}

/// Resets the peak RSS of `pids` so that it covers the round only; a problem when one could not.
fn reset_peaks<'a>(pids: impl Iterator<Item = &'a u32>) -> Option<String> {
    let unreset = pids.filter(|&&pid| !procs::reset_peak_rss(pid)).count();
    (unreset > 0).then(|| {
        format!("{unreset} peak RSS figures could not be reset: they cover the whole process life")
    })
}

/// When the first and when the last of `accepted` payments were read finished.
async fn finish_times(
    sampler: &mut Sampler,
    before: &Scrape,
    accepted: u64,
    until: Instant,
) -> (Option<Instant>, Option<Instant>) {
    let first = finished_since(sampler, before, accepted.min(1), until).await;
    let all = finished_since(sampler, before, accepted, until).await;
    (first, all)
}

/// When the sampler first read at least `count` more finished send jobs than `before`.
async fn finished_since(
    sampler: &mut Sampler,
    before: &Scrape,
    count: u64,
    until: Instant,
) -> Option<Instant> {
    let done = |now: &Scrape| now.finished().saturating_sub(before.finished()) >= count;
    sampler.wait_for(done, until).await.map(|(at, _)| at)
}

/// ` cpu_s.<process>=… … cores_used=…` for CPU seconds used over `wall_s`.
pub fn cpu_fields(cpu_s: &BTreeMap<String, f64>, wall_s: f64) -> String {
    let mut fields = String::new();
    for (name, secs) in cpu_s {
        fields.push_str(&format!(" cpu_s.{name}={secs:.2}"));
    }
    let total: f64 = cpu_s.values().sum();
    let cores = (wall_s > 0.0).then(|| total / wall_s);
    fields.push_str(&format!(" cores_used={}", show(cores)));
    fields
}

/// CPU seconds used between two readings, by process name.
pub fn cpu_used(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(name, &ticks)| {
            let used = ticks.saturating_sub(before.get(name).copied().unwrap_or(0));
            (name.clone(), used as f64 / procs::TICKS_PER_S)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(setup: Setup, confirmed_per_s: Option<f64>) -> RoundReport {
        RoundReport {
            setup,
            payments: 4,
            confirmed_per_s,
            accept_latencies_ms: vec![1.0, 2.0, 3.0, 40.0],
            accept_per_s: Some(500.0),
            max_queue_depth: Some(3),
            api_peak_rss_kib: Some(20_000),
            worker_peak_rss_kib: None,
            send_errors: 0,
            settled: Settled {
                confirmed: 4,
                ..Settled::default()
            },
            cpu_s: BTreeMap::from([
                ("anvil".to_string(), 1.0),
                ("redis-server".to_string(), 0.5),
            ]),
            first_finished_ms: Some(512.0),
            cpu_wall_s: 2.0,
            problems: Vec::new(),
        }
    }

    #[test]
    fn automine_line() {
        let setup = Setup {
            mining: Mining::Automine,
            workers: 4,
            lanes_per_worker: 4,
            batch_max: 2,
            raw_per_s: Some(200.0),
        };
        assert_eq!(setup.bound_per_s(), None);
        let line = report(setup, Some(170.0)).line();
        assert_eq!(
            line,
            "mining=automine workers=4 lanes_per_worker=4 batch_max=2 confirmed_per_s=170.0 \
             raw_per_s=200.0 ratio_percent=85.0 accept_p50_ms=2.0 accept_p99_ms=40.0 \
             accept_per_s=500.0 max_queue_depth=3 api_peak_rss_kib=20000 \
             worker_peak_rss_kib=NA confirmed=4/4"
        );
    }

    #[test]
    fn detail_line_and_cpu_use() {
        let setup = Setup {
            mining: Mining::Automine,
            workers: 1,
            lanes_per_worker: 4,
            batch_max: 2,
            raw_per_s: None,
        };
        assert_eq!(
            report(setup, None).detail_line(),
            "round_detail mining=automine workers=1 lanes_per_worker=4 first_finished_ms=512.0 \
             wall_s=2.00 cpu_s.anvil=1.00 cpu_s.redis-server=0.50 cores_used=0.8"
        );
        let before = BTreeMap::from([("anvil".to_string(), 100)]);
        let after = BTreeMap::from([("anvil".to_string(), 250), ("new".to_string(), 50)]);
        let used = cpu_used(&before, &after);
        assert_eq!((used["anvil"], used["new"]), (1.5, 0.5));
    }

    #[test]
    fn interval_mining_line_states_the_bound() {
        let setup = Setup {
            mining: Mining::BlockTime { secs: 0.5 },
            workers: 2,
            lanes_per_worker: 4,
            batch_max: 2,
            raw_per_s: None,
        };
        assert_eq!(setup.bound_per_s(), Some(32.0));
        let line = report(setup, None).line();
        assert!(
            line.starts_with(
                "mining=block_time_0.5s workers=2 lanes_per_worker=4 batch_max=2 \
                 confirmed_per_s=NA bound_per_s=32.0 lanes_total=8 blocks_per_s=2.0 \
                 raw_per_s=NA ratio_percent=NA"
            ),
            "{line}"
        );
    }
}
