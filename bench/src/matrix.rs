//! `--matrix`: the issue-3 benchmark. For automine and for interval mining it starts one stack
//! with one worker, measures the raw-node baseline once, then runs a round with 1, 2 and 4 worker
//! processes (adding workers to the same stack between rounds) and prints one line per round. A
//! third stack, interval mining with more lanes per worker, shows that lanes lift the bound.
//! Stacks run one after another, so no two share the machine.

use std::path::Path;
use std::time::Duration;

use alloy::primitives::Address;
use fluxus_tests::{Stack, StackOpts, checksummed, fresh_address, spawn_stack};
use tokio::time::Instant;

use crate::args::{MATRIX_MAX_WORKERS, MatrixOpts, Opts};
use crate::client::Fluxus;
use crate::procs::{self, LogFindings};
use crate::round::{self, Mining, RoundReport, Setup};
use crate::stats::show;
use crate::{CONFIRM_BASE_SECS, CONFIRM_PER_PAYMENT_MS, RAW_BASE_SECS, RAW_PER_PAYMENT_MS};
use crate::{RECIPIENTS, per_payment_deadline, raw, warm_up};

/// Worker processes of the rounds on each stack, in order; workers are only ever added.
const WORKER_STEPS: [usize; 3] = [1, 2, 4];
/// Rounds of the raised-lanes stack: the same process counts as two rounds above, so the lines
/// compare directly.
const RAISED_WORKER_STEPS: [usize; 2] = [1, MATRIX_MAX_WORKERS];
/// The worker's default `FLUXUS_LANE_POOL`; raised when the workers would lease half of it.
const DEFAULT_LANE_POOL: u64 = 64;
/// Deadline for a started worker to log that it holds its lanes.
const WORKER_READY_SECS: u64 = 60;
/// Pause after the workers hold their lanes, so that a new worker's queue consumer has started
/// (registered and fetching on its heartbeat) before the burst.
const WORKER_SETTLE_MS: u64 = 2_000;
/// What a worker logs once it holds its lanes.
const WORKER_STARTED: &str = "worker started";
/// The target for 4 workers under automine, in percent of the raw node.
const TARGET_RATIO_PERCENT: f64 = 80.0;

/// One stack and the rounds run on it.
struct StackPlan {
    mining: Mining,
    lanes_per_worker: u32,
    batch_max: u32,
    workers: &'static [usize],
}

impl StackPlan {
    /// Leaves every worker well inside the pool (leases of a stopped worker linger a minute).
    fn lane_pool(&self) -> u64 {
        let most = self.workers.iter().max().copied().unwrap_or(1) as u64;
        DEFAULT_LANE_POOL.max(2 * most * u64::from(self.lanes_per_worker))
    }

    fn stack_opts(&self) -> StackOpts {
        let env = [
            ("FLUXUS_WORKER_LANES", self.lanes_per_worker.to_string()),
            ("FLUXUS_BATCH_MAX", self.batch_max.to_string()),
            ("FLUXUS_LANE_POOL", self.lane_pool().to_string()),
        ];
        StackOpts {
            block_time: self.mining.block_time(),
            workers: 1,
            extra_env: env.map(|(k, v)| (k.to_string(), v)).to_vec(),
            ..StackOpts::default()
        }
    }

    fn label(&self) -> String {
        format!(
            "mining={} lanes_per_worker={}",
            self.mining.label(),
            self.lanes_per_worker
        )
    }
}

fn plans(opts: &Opts, matrix: &MatrixOpts) -> Vec<StackPlan> {
    let lanes = opts.lanes.unwrap_or(1);
    let batch_max = opts.batch_max.unwrap_or(1);
    let interval = Mining::BlockTime {
        secs: opts.block_time_secs.unwrap_or(0.5),
    };
    vec![
        StackPlan {
            mining: Mining::Automine,
            lanes_per_worker: lanes,
            batch_max,
            workers: &WORKER_STEPS,
        },
        StackPlan {
            mining: interval,
            lanes_per_worker: lanes,
            batch_max,
            workers: &WORKER_STEPS,
        },
        StackPlan {
            mining: interval,
            lanes_per_worker: matrix.raised_lanes,
            batch_max,
            workers: &RAISED_WORKER_STEPS,
        },
    ]
}

/// Runs every stack and round; `Ok(false)` when a figure is missing.
pub async fn run(opts: &Opts, matrix: &MatrixOpts) -> anyhow::Result<bool> {
    let start = Instant::now();
    println!(
        "matrix payments={} raw_lanes={} send_concurrency={} sample_every_ms={}",
        opts.payments,
        opts.raw_lanes,
        crate::burst::SEND_CONCURRENCY,
        crate::sampler::SAMPLE_EVERY_MS
    );
    let mut complete = true;
    let mut reports = Vec::new();
    for plan in plans(opts, matrix) {
        match run_stack(&plan, opts).await {
            Ok((stack_complete, rounds)) => {
                complete &= stack_complete;
                reports.extend(rounds);
            }
            Err(err) => {
                complete = false;
                println!("{} stack=failed", plan.label());
                eprintln!("{}: {err:#}", plan.label());
            }
        }
    }
    print_checks(&reports, opts);
    println!("matrix_total_s={:.1}", start.elapsed().as_secs_f64());
    Ok(complete)
}

/// One stack: start, measure, scan the logs. The rounds measured, and whether all were complete.
async fn run_stack(plan: &StackPlan, opts: &Opts) -> anyhow::Result<(bool, Vec<RoundReport>)> {
    eprintln!(
        "{}: starting a stack (dev node, redis, fluxus-api, 1 worker)…",
        plan.label()
    );
    let stack = spawn_stack(plan.stack_opts()).await;
    println!("stack {} lane_pool={}", plan.label(), plan.lane_pool());

    let outcome = measure_stack(&stack, plan, opts).await;
    let complete = outcome
        .as_ref()
        .is_ok_and(|rounds| rounds.iter().all(RoundReport::complete));
    let findings = scan_logs(&stack.dir);
    println!(
        "{} log_warnings={} log_errors={}",
        plan.label(),
        findings.warnings,
        findings.errors
    );
    for sample in &findings.samples {
        eprintln!("  {sample}");
    }
    if !complete {
        stack.dump_logs();
    }
    outcome.map(|rounds| (complete, rounds))
}

/// The raw baseline, then one round per worker count.
async fn measure_stack(
    stack: &Stack,
    plan: &StackPlan,
    opts: &Opts,
) -> anyhow::Result<Vec<RoundReport>> {
    let fluxus = Fluxus::new(&stack.api_url(), &stack.api_key)?;
    let recipients: Vec<Address> = (0..RECIPIENTS).map(|_| fresh_address()).collect();
    let names: Vec<String> = recipients.iter().map(|a| checksummed(*a)).collect();
    wait_for_workers(stack).await?;
    warm_up(&fluxus, &names).await?;

    let raw_per_s = raw_baseline(stack, plan, &recipients, opts).await;

    let deadline = per_payment_deadline(CONFIRM_BASE_SECS, CONFIRM_PER_PAYMENT_MS, opts);
    let mut reports = Vec::new();
    for &workers in plan.workers {
        while stack.workers().len() < workers {
            stack.start_worker();
        }
        wait_for_workers(stack).await?;
        let setup = Setup {
            mining: plan.mining,
            workers,
            lanes_per_worker: plan.lanes_per_worker,
            batch_max: plan.batch_max,
            raw_per_s,
        };
        eprintln!(
            "{}: {workers} workers, {} payments…",
            plan.label(),
            opts.payments
        );
        let report = round::run(&fluxus, &names, setup, opts.payments, deadline).await;
        println!("{}", report.line());
        println!("{}", report.detail_line());
        for problem in &report.problems {
            eprintln!("  {problem}");
        }
        reports.push(report);
    }
    Ok(reports)
}

/// The stack's raw-node baseline, printed with the CPU it used; its payments per second.
async fn raw_baseline(
    stack: &Stack,
    plan: &StackPlan,
    recipients: &[Address],
    opts: &Opts,
) -> Option<f64> {
    eprintln!(
        "{}: raw baseline over {} lanes…",
        plan.label(),
        opts.raw_lanes
    );
    let raw_deadline = per_payment_deadline(RAW_BASE_SECS, RAW_PER_PAYMENT_MS, opts);
    let (raw_started, cpu_before) = (Instant::now(), procs::cpu_ticks_by_name());
    let raw = raw::run(
        &stack.rpc_url(),
        recipients,
        opts.payments,
        opts.raw_lanes,
        raw_deadline,
    )
    .await;
    let raw_wall_s = raw_started.elapsed().as_secs_f64();
    let raw_cpu_s = round::cpu_used(&cpu_before, &procs::cpu_ticks_by_name());
    let raw_per_s = match raw {
        Ok(raw) => {
            println!("mining={} {}", plan.mining.label(), raw.line());
            raw.per_s
        }
        Err(err) => {
            println!("mining={} raw_node_per_s=NA", plan.mining.label());
            eprintln!("raw baseline failed: {err:#}");
            None
        }
    };
    // The whole baseline, signing and the receipt check included: an upper bound.
    println!(
        "raw_detail mining={} wall_s={raw_wall_s:.2}{}",
        plan.mining.label(),
        round::cpu_fields(&raw_cpu_s, raw_wall_s)
    );
    raw_per_s
}

/// Waits until every worker of the stack has logged that it holds its lanes, then lets their
/// queue consumers start.
async fn wait_for_workers(stack: &Stack) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(WORKER_READY_SECS);
    for id in stack.workers() {
        let log = stack.dir.join(format!("worker-{}.log", id.0));
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(WORKER_STARTED) {
                break;
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "worker {} did not log {WORKER_STARTED:?} within {WORKER_READY_SECS} s",
                    id.0
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(WORKER_SETTLE_MS)).await;
    Ok(())
}

/// Warnings and errors of the API's and every worker's log.
fn scan_logs(dir: &Path) -> LogFindings {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| {
                    (name.starts_with("api-") || name.starts_with("worker-"))
                        && name.ends_with(".log")
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut total = LogFindings::default();
    for name in names {
        total.add(&name, procs::scan_log(&dir.join(&name)));
    }
    total
}

/// The two claims, checked against this run's lines.
fn print_checks(reports: &[RoundReport], opts: &Opts) {
    let lanes = opts.lanes.unwrap_or(1);
    let find = |mining: fn(&Mining) -> bool, workers: usize, lanes: Option<u32>| {
        reports.iter().find(|r| {
            mining(&r.setup.mining)
                && r.setup.workers == workers
                && lanes.is_none_or(|l| r.setup.lanes_per_worker == l)
        })
    };
    let automine = |m: &Mining| *m == Mining::Automine;
    let interval = |m: &Mining| *m != Mining::Automine;

    let ratio = find(automine, MATRIX_MAX_WORKERS, None).and_then(RoundReport::ratio_percent);
    println!(
        "check automine workers={MATRIX_MAX_WORKERS} ratio_percent={} target_percent={} met={}",
        show(ratio),
        TARGET_RATIO_PERCENT,
        verdict(ratio.map(|r| r >= TARGET_RATIO_PERCENT))
    );

    let base = find(interval, MATRIX_MAX_WORKERS, Some(lanes));
    let raised = reports.iter().rev().find(|r| {
        interval(&r.setup.mining)
            && r.setup.workers == MATRIX_MAX_WORKERS
            && r.setup.lanes_per_worker != lanes
    });
    let per_s = |r: Option<&RoundReport>| r.and_then(|r| r.confirmed_per_s);
    let lanes_of = |r: Option<&RoundReport>| r.map_or(0, |r| r.setup.lanes_per_worker);
    let lifted = per_s(base).zip(per_s(raised)).map(|(b, r)| r > b);
    println!(
        "check block_time workers={MATRIX_MAX_WORKERS} confirmed_per_s lanes_per_worker_{}={} \
         lanes_per_worker_{}={} lifted={}",
        lanes_of(base),
        show(per_s(base)),
        lanes_of(raised),
        show(per_s(raised)),
        verdict(lifted)
    );
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "no",
        None => "NA",
    }
}
