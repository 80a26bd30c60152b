//! `fluxus-bench`: starts its own Fluxus stacks (dev node, Redis, one API, workers) on loopback
//! ports and measures them. Figures go to stdout as greppable `key=value` lines; progress and
//! diagnostics go to stderr. Every wait has a deadline.
//!
//! `bash scripts/bench.sh [--payments 200] [--rate 50]` (single run, one worker): accept latency
//! at a fixed request rate, accept-to-confirmed throughput, and the raw node's throughput for
//! the same transfers as a baseline.
//!
//! `bash scripts/bench.sh --matrix [--payments 1000] [--lanes 4] [--batch-max 16]
//! [--raised-lanes 16]` (the issue-3 benchmark, [`matrix`]): three stacks, one after another:
//! automine, 0.5 s blocks, and 0.5 s blocks with `--raised-lanes` lanes per worker. On each, the
//! raw baseline once, then rounds with 1, 2 and 4 worker processes (2 is skipped on the raised
//! stack). A round sends
//! `--payments` payments, 16 requests in flight, and prints one line:
//!
//! - `confirmed_per_s`: payments per second from the first POST until the `/metrics` reading
//!   (taken every 100 ms) that counts all of them finished; `NA` unless every job then reads
//!   `confirmed`.
//! - `bound_per_s` (interval mining only): `lanes_total × batch_max × blocks_per_s`, the most the
//!   lanes can carry with one transaction in flight per lane, at most `batch_max` payments per
//!   transaction (`FLUXUS_BATCH_MAX`) and one block per transaction.
//! - `raw_per_s` is one transfer per transaction; Fluxus puts the payments waiting for a lane
//!   into one transaction, and `txs=`, `payments_per_tx=` at the end of the line say how many
//!   transactions the round's payments took.
//! - `raw_per_s`: the stack's raw-node baseline, the same transfers pre-signed by dev account 1
//!   over `--raw-lanes` lanes (default 4 × `--lanes`) and sent straight to the node, first send
//!   to last receipt; `ratio_percent` = `confirmed_per_s / raw_per_s`.
//! - `accept_p50_ms`, `accept_p99_ms`: latency of every POST of the round (issue to 202), made
//!   with 16 in flight, i.e. while the API is saturated by the round itself; `accept_per_s`: how
//!   fast the burst was accepted.
//! - `max_queue_depth`: the highest `fluxus_queue_depth` gauge seen in the 100 ms samples.
//! - `api_peak_rss_kib`, `worker_peak_rss_kib`: peak resident memory during the round
//!   (`VmHWM`, reset at its start), the API's and the largest worker's.
//! - `confirmed=n/N` (and `failed=`, `pending=` when not zero): the jobs' own final statuses.
//!
//! Each round line is followed by a `round_detail` line: `first_finished_ms` (first POST to the
//! first payment counted finished: how long the workers took to start) and the CPU seconds each
//! kind of process used from the first POST until all had finished, with `cores_used` (their sum
//! over the wall time; the machine's cores cap it). `raw_detail` gives the same CPU figures for
//! the whole raw baseline, signing and receipt checks included. Then the log warnings and errors
//! of each stack, two `check` lines (4 workers under automine against the 80 % target; 4 workers
//! at 0.5 s blocks with default against raised lanes), and `matrix_total_s`.
//!
//! Limits: one machine runs the stack and the load, so the figures are relative (Fluxus against
//! the raw node in the same run), not absolute capacity; on a shared machine they are noisy.
//! Loopback only.

mod accept;
mod args;
mod burst;
mod client;
mod matrix;
mod procs;
mod raw;
mod round;
mod sampler;
mod scrape;
mod settle;
mod stats;
mod throughput;

use std::process::ExitCode;
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::bail;
use fluxus_tests::{Stack, StackOpts, checksummed, fresh_address, spawn_stack};
use tokio::time::Instant;

use crate::args::Opts;
use crate::client::Fluxus;
use crate::stats::show;

/// Recipients the payments rotate over; funded once in the warm-up so every timed transfer
/// writes to an existing balance.
const RECIPIENTS: usize = 4;
/// Deadline for the warm-up payments (one per recipient) to confirm.
const WARMUP_DEADLINE_SECS: u64 = 120;
/// Deadline for a phase's payments to confirm: a base plus an allowance per payment.
const CONFIRM_BASE_SECS: u64 = 60;
const CONFIRM_PER_PAYMENT_MS: u64 = 500;
/// Deadline of the raw-node baseline, first send to last receipt.
const RAW_BASE_SECS: u64 = 30;
const RAW_PER_PAYMENT_MS: u64 = 50;

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match args::parse(std::env::args().skip(1)) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("fluxus-bench: {err:#}");
            return ExitCode::from(2);
        }
    };
    let outcome = match &opts.matrix {
        Some(matrix) => matrix::run(&opts, matrix).await,
        None => run(&opts).await,
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("fluxus-bench: some figures could not be measured (see above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("fluxus-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The single run: starts the stack, measures, reports memory and log findings. `Ok(false)` when
/// a figure is missing. The stack is started from this (the main) thread: its children die with
/// the thread (the matrix's stacks too).
async fn run(opts: &Opts) -> anyhow::Result<bool> {
    eprintln!("starting the stack (dev node, redis, fluxus-api, fluxus-worker)…");
    let stack = spawn_stack(stack_opts(opts)).await;
    println!("{}", config_line(opts));

    let outcome = measure(&stack, opts).await;
    report_processes(&stack);
    if !matches!(outcome, Ok(true)) {
        stack.dump_logs();
    }
    outcome
}

fn stack_opts(opts: &Opts) -> StackOpts {
    let mut extra_env = Vec::new();
    if let Some(lanes) = opts.lanes {
        extra_env.push(("FLUXUS_WORKER_LANES".to_string(), lanes.to_string()));
    }
    if let Some(most) = opts.batch_max {
        extra_env.push(("FLUXUS_BATCH_MAX".to_string(), most.to_string()));
    }
    StackOpts {
        block_time: opts.block_time_secs,
        workers: 1,
        extra_env,
        ..StackOpts::default()
    }
}

fn config_line(opts: &Opts) -> String {
    let lanes = opts.lanes.map_or("default".to_string(), |n| n.to_string());
    let batch_max = opts
        .batch_max
        .map_or("default".to_string(), |n| n.to_string());
    let mining = opts
        .block_time_secs
        .map_or("automine".to_string(), |secs| format!("block_time_{secs}s"));
    format!(
        "bench payments={} rate={}/s lanes={lanes} batch_max={batch_max} raw_lanes={} \
         mining={mining}",
        opts.payments, opts.rate_per_s, opts.raw_lanes
    )
}

/// The three phases and the ratio; `Ok(false)` when a figure is missing.
async fn measure(stack: &Stack, opts: &Opts) -> anyhow::Result<bool> {
    let fluxus = Fluxus::new(&stack.api_url(), &stack.api_key)?;
    let recipients: Vec<Address> = (0..RECIPIENTS).map(|_| fresh_address()).collect();
    let names: Vec<String> = recipients.iter().map(|a| checksummed(*a)).collect();
    let confirm_deadline = per_payment_deadline(CONFIRM_BASE_SECS, CONFIRM_PER_PAYMENT_MS, opts);

    warm_up(&fluxus, &names).await?;
    let mut complete = accept_phase(&fluxus, &names, opts, confirm_deadline).await;

    eprintln!(
        "phase 2: {} payments, up to {} in flight…",
        opts.payments,
        burst::SEND_CONCURRENCY
    );
    let flux = throughput::run(&fluxus, &names, opts.payments, confirm_deadline).await;
    flux.lines().iter().for_each(|line| println!("{line}"));
    note_error(
        "phase 2",
        flux.first_error
            .as_deref()
            .or(flux.settled.last_error.as_deref()),
    );
    complete &= flux.confirmed_per_s.is_some();

    eprintln!(
        "phase 3: {} raw transfers over {} lanes…",
        opts.payments, opts.raw_lanes
    );
    let raw_deadline = per_payment_deadline(RAW_BASE_SECS, RAW_PER_PAYMENT_MS, opts);
    let rpc_url = stack.rpc_url();
    let raw = raw::run(
        &rpc_url,
        &recipients,
        opts.payments,
        opts.raw_lanes,
        raw_deadline,
    )
    .await;
    let raw_per_s = match raw {
        Ok(raw) => {
            println!("{}", raw.line());
            raw.per_s
        }
        Err(err) => {
            println!("raw_node_per_s=NA");
            eprintln!("phase 3 failed: {err:#}");
            None
        }
    };
    complete &= raw_per_s.is_some();

    let ratio = flux
        .confirmed_per_s
        .zip(raw_per_s)
        .map(|(f, r)| 100.0 * f / r);
    println!("ratio_percent={}", show(ratio));
    Ok(complete)
}

fn per_payment_deadline(base_secs: u64, per_payment_ms: u64, opts: &Opts) -> Duration {
    Duration::from_secs(base_secs) + Duration::from_millis(per_payment_ms) * opts.payments as u32
}

/// One payment to each recipient, confirmed: proves the stack works before anything is timed,
/// and makes every later transfer pay an existing balance.
async fn warm_up(fluxus: &Fluxus, recipients: &[String]) -> anyhow::Result<()> {
    eprintln!(
        "warm-up: one payment to each of {} recipients…",
        recipients.len()
    );
    let start = Instant::now();
    let mut ids = Vec::new();
    for to in recipients {
        ids.push(fluxus.send(to).await?);
    }
    let deadline = Duration::from_secs(WARMUP_DEADLINE_SECS);
    let settled = settle::wait_terminal(fluxus, &ids, deadline).await;
    if settled.confirmed != ids.len() {
        bail!(
            "warm-up payments did not all confirm within {WARMUP_DEADLINE_SECS} s: {} (last \
             error: {})",
            settled.summary(ids.len()),
            settled.last_error.as_deref().unwrap_or("none")
        );
    }
    println!("warmup_ms={:.1}", stats::millis(start.elapsed()));
    Ok(())
}

/// Phase 1 and the wait for its payments to settle, so phase 2 starts on an idle stack.
/// `false` when a figure is missing.
async fn accept_phase(
    fluxus: &Fluxus,
    recipients: &[String],
    opts: &Opts,
    deadline: Duration,
) -> bool {
    eprintln!("phase 1: {} sends at {}/s…", opts.payments, opts.rate_per_s);
    let report = match accept::run(fluxus, recipients, opts.payments, opts.rate_per_s).await {
        Ok(report) => report,
        Err(err) => {
            println!("accept_latency_ms p50=NA p99=NA max=NA rate=NA/s");
            eprintln!("phase 1 failed: {err:#}");
            return false;
        }
    };
    println!("{}", report.line());
    note_error("phase 1", report.first_error.as_deref());

    let start = Instant::now();
    let settled = settle::wait_terminal(fluxus, &report.job_ids, deadline).await;
    println!(
        "accept_phase_settled_ms={:.1} {}",
        stats::millis(start.elapsed()),
        settled.summary(report.job_ids.len())
    );
    note_error("phase 1 settling", settled.last_error.as_deref());
    report.errors == 0 && settled.pending == 0
}

fn note_error(phase: &str, error: Option<&str>) {
    if let Some(error) = error {
        eprintln!("{phase}: first error: {error}");
    }
}

/// Peak memory of the API and the worker, and what their logs complained about.
fn report_processes(stack: &Stack) {
    for (label, name) in [("api", "fluxus-api"), ("worker", "fluxus-worker")] {
        let peaks: Vec<String> = procs::children_named(name)
            .into_iter()
            .map(|pid| procs::peak_rss_kib(pid).map_or("NA".to_string(), |kib| kib.to_string()))
            .collect();
        let peak = if peaks.is_empty() {
            "NA".to_string()
        } else {
            peaks.join(",")
        };
        println!("{label}_peak_rss_kib={peak}");
    }
    for log in ["api-1", "worker-1"] {
        let findings = procs::scan_log(&stack.dir.join(format!("{log}.log")));
        let key = log.trim_end_matches("-1");
        println!(
            "{key}_log_warnings={} {key}_log_errors={}",
            findings.warnings, findings.errors
        );
        for sample in &findings.samples {
            eprintln!("  {log}.log: {sample}");
        }
    }
}
