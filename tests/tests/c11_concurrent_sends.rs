//! C11, concurrent sends: 20 payments posted at once to one API and one worker (automine), then
//! 40 more posted at once while two worker processes share the queue (1 s interval mining, so
//! every lane stays busy and both workers take part). Every payment confirms at its first attempt
//! (no nonce error, no refused or re-signed transaction); no two included transactions share a
//! (nonce key, nonce), though payments waiting for a lane share a transaction; each nonce key's
//! included nonces run 0..n with the chain's lane nonce at n; each memo is on chain exactly once;
//! and the two workers leased, and signed on, disjoint nonce lanes (read from their logs). The
//! stack is this test's alone, so every transaction of the sender is one of ours.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use fluxus_tests::{
    Api, PATH_USD, Stack, StackOpts, WorkerId, assert_lanes_gapless, checksummed, fresh_address,
    parse_b256, poll, random_hex, spawn_stack, text,
};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// Payments of the first round (one worker).
const ONE_WORKER_SENDS: usize = 20;
/// Payments of the second round (two workers).
const TWO_WORKER_SENDS: usize = 40;
/// One round confirmed: at most 4 lanes per worker carry one transaction each at a time.
const ROUND_CONFIRMED_SECS: u64 = 300;
/// Block interval of round 2.
const INTERVAL_MINING_SECS: u64 = 1;
/// Payments per transaction at most (`FLUXUS_BATCH_MAX`).
const BATCH_MAX: usize = 2;
/// A freshly started worker has leased its lanes.
const WORKER_READY_SECS: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c11_concurrent_sends_use_disjoint_nonces() {
    // Two payments per transaction at most: a worker then holds 8 payments at a time (4 lanes
    // × 2), so a burst of 40 spreads over both workers, and payments still share transactions.
    let stack = spawn_stack(StackOpts {
        extra_env: vec![("FLUXUS_BATCH_MAX".to_string(), BATCH_MAX.to_string())],
        ..StackOpts::default()
    })
    .await;
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();
    let first = stack.workers()[0];
    wait_worker_started(&stack, first).await;

    // Round 1: one worker.
    let started = Instant::now();
    let round1 = send_all(&api, to, "c11-a", ONE_WORKER_SENDS).await;
    let mut jobs = confirm_all(&api, &round1).await;
    eprintln!(
        "round 1: {ONE_WORKER_SENDS} confirmed in {:?}",
        started.elapsed()
    );

    // Round 2: a second worker joins before the burst. Interval mining keeps every lane busy
    // for a while, so the queue cannot be drained by one worker alone (with automine the first
    // worker to fetch takes all 40).
    let second = stack.start_worker();
    wait_worker_started(&stack, second).await;
    chain
        .rpc("evm_setIntervalMining", json!([INTERVAL_MINING_SECS]))
        .await
        .expect("evm_setIntervalMining");
    let started = Instant::now();
    let round2 = send_all(&api, to, "c11-b", TWO_WORKER_SENDS).await;
    jobs.extend(confirm_all(&api, &round2).await);
    eprintln!(
        "round 2: {TWO_WORKER_SENDS} confirmed in {:?}",
        started.elapsed()
    );

    // No nonce errors: one attempt per payment, included.
    for job in &jobs {
        let attempts = job["attempts"].as_array().expect("attempts array");
        assert_eq!(attempts.len(), 1, "re-signed or refused: {job}");
        assert_eq!(attempts[0]["outcome"], "included", "{job}");
        assert_eq!(attempts[0]["tx_hash"], job["tx_hash"], "{job}");
    }

    // Included transactions: each (key, nonce) used by one transaction, per key 0..n, and the
    // chain's lane nonce is n.
    assert_lanes_gapless(&stack, &jobs).await;

    // Each memo exactly once on chain, in the transaction the job names.
    let on_chain = chain.memo_transfers_to(PATH_USD, to).await;
    assert_eq!(on_chain.len(), jobs.len(), "transfers to the recipient");
    for job in &jobs {
        let memo = B256::right_padding_from(text(job, "memo").as_bytes());
        let hits: Vec<_> = on_chain.iter().filter(|t| t.memo == memo).collect();
        assert_eq!(
            hits.len(),
            1,
            "memo {} on chain {} times: {job}",
            job["memo"],
            hits.len()
        );
        assert_eq!(hits[0].tx_hash, parse_b256(text(job, "tx_hash")), "{job}");
    }

    // The workers leased disjoint lanes and each signed only on its own.
    let logs = [first, second].map(|id| WorkerLog::read(&stack, id));
    let common: BTreeSet<_> = logs[0].leased.intersection(&logs[1].leased).collect();
    assert!(common.is_empty(), "both workers leased lanes {common:?}");
    for log in &logs {
        for (payment, lane) in &log.signed {
            assert!(
                log.leased.contains(lane),
                "worker {:?} signed {payment} on lane {lane}, which it never leased: {:?}",
                log.id,
                log.leased
            );
        }
    }
    let round2_ids: BTreeSet<&str> = round2.iter().map(String::as_str).collect();
    let per_worker: Vec<usize> = logs
        .iter()
        .map(|log| {
            log.signed
                .iter()
                .filter(|(p, _)| round2_ids.contains(p.as_str()))
                .count()
        })
        .collect();
    eprintln!(
        "lanes leased: {:?} / {:?}; round-2 payments signed per worker: {per_worker:?}",
        logs[0].leased, logs[1].leased
    );
    assert_eq!(
        per_worker.iter().sum::<usize>(),
        TWO_WORKER_SENDS,
        "signatures in round 2"
    );
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "one worker did all of round 2: {per_worker:?}"
    );
    for log in &logs {
        assert!(
            log.refusals == 0,
            "worker {:?} logged {} node refusals",
            log.id,
            log.refusals
        );
    }
    stack.assert_alive();
}

/// Posts `count` payments to `to` all at once, memo `{prefix}-{i}`, each with its own key.
async fn send_all(api: &Api, to: Address, prefix: &str, count: usize) -> Vec<String> {
    let mut set = JoinSet::new();
    for i in 0..count {
        let api = api.clone();
        let body =
            json!({"to": checksummed(to), "amount": "0.01", "memo": format!("{prefix}-{i}")});
        let key = format!("{prefix}-{i}-{}", random_hex(8));
        set.spawn(async move { (i, api.send(&body, Some(&key)).await) });
    }
    let mut ids = vec![String::new(); count];
    while let Some(joined) = set.join_next().await {
        let (i, (status, job)) = joined.expect("send task");
        assert_eq!(status, 202, "send {prefix}-{i}: {job}");
        ids[i] = text(&job, "id").to_string();
    }
    ids
}

async fn confirm_all(api: &Api, ids: &[String]) -> Vec<Value> {
    api.wait_all(
        ids,
        &["confirmed"],
        Duration::from_secs(ROUND_CONFIRMED_SECS),
    )
    .await
}

/// Waits until a worker's log says it started (its lanes are leased before that line).
async fn wait_worker_started(stack: &Stack, id: WorkerId) {
    let path = log_path(stack, id);
    poll(
        &format!("worker {id:?} to start"),
        Duration::from_secs(WORKER_READY_SECS),
        || {
            stack.assert_alive();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            async move { Ok(text.contains("worker started").then_some(())) }
        },
    )
    .await;
}

fn log_path(stack: &Stack, id: WorkerId) -> std::path::PathBuf {
    stack.dir.join(format!("worker-{}.log", id.0))
}

/// What one worker's log says about its lanes.
struct WorkerLog {
    id: WorkerId,
    /// Lanes it leased at any time.
    leased: BTreeSet<u64>,
    /// (payment id, lane) of every transaction it signed.
    signed: Vec<(String, u64)>,
    /// "node refused tx" warnings.
    refusals: usize,
}

impl WorkerLog {
    fn read(stack: &Stack, id: WorkerId) -> Self {
        let path = log_path(stack, id);
        let text = read_log(&path);
        let mut log = Self {
            id,
            leased: BTreeSet::new(),
            signed: Vec::new(),
            refusals: 0,
        };
        for line in text.lines() {
            if line.contains("leased nonce lane") {
                log.leased
                    .insert(field(line, "lane").parse().expect("lane number"));
            } else if line.contains("signed and stored transaction") {
                let lane = field(line, "lane").parse().expect("lane number");
                log.signed
                    .push((field(line, "payment_id").to_string(), lane));
            } else if line.contains("node refused tx") {
                log.refusals += 1;
            }
        }
        log
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// The value of `name=value` in a tracing log line (the last occurrence, outside the span).
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .filter_map(|token| token.strip_prefix(prefix.as_str()))
        .next_back()
        .unwrap_or_else(|| panic!("no {name}= in log line: {line}"))
        .trim_matches('"')
}
