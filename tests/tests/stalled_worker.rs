//! A worker that stalls (SIGSTOP: a long pause, a suspended VM) while it holds payments, and
//! resumes after another worker finished them, must write and sign nothing for them: its copies
//! are stale and its locks expired. (A new user's trial found 47 of 200 payments paid twice
//! this way: the resumed worker's lock renewal took the released locks back, and its stale
//! `queued` copies were signed again.)
//!
//! The node runs with `--no-mining`. Worker 1 has one lane: a first payment's transaction holds
//! it in the pool while worker 1 takes three more payments into its hands. Worker 1 is frozen;
//! worker 2 takes the four over once worker 1 missed its heartbeats and its locks expired, and
//! confirms them. Worker 1 then resumes (its queue consumer, declared dead meanwhile, restarts and
//! drops the jobs it held): it must leave each of the three out, and after more blocks every memo
//! is on chain exactly once, every job is as worker 2 left it, and worker 1's lane carries only
//! the first transaction. The fenced, versioned record write that refuses a stale copy even under
//! a lock is tested directly in `shared/tests/store_fencing.rs`.

use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use fluxus_tests::{
    Api, PATH_USD, SENDER, StackOpts, WorkerId, checksummed, fresh_address, parse_b256, poll,
    random_hex, spawn_stack, text, wait_held, wait_submitted,
};
use serde_json::{Value, json};

const SUBMIT_SECS: u64 = 90;
const HELD_SECS: u64 = 30;
/// Worker 2 takes over after worker 1's heartbeats stop (10 s) and its locks expire (15 s).
const TAKEOVER_SECS: u64 = 120;
/// The resumed worker tries to write each payment within a few handler retries.
const RESUMED_SECS: u64 = 60;
/// Payments worker 1 holds (besides the one on its lane) when it freezes.
const HELD_PAYMENTS: usize = 3;
const AMOUNT: &str = "0.5";
const AMOUNT_BASE_UNITS: u128 = 500_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_resuming_after_a_takeover_pays_nothing_again() {
    let stack = spawn_stack(StackOpts {
        no_mining: true,
        extra_env: vec![("FLUXUS_WORKER_LANES".to_string(), "1".to_string())],
        ..StackOpts::default()
    })
    .await;
    let _logs = stack.logs_on_panic();
    let (api, chain) = (stack.api(), stack.chain());
    let first = stack.workers()[0];

    let mut sent = vec![post(&api).await];
    let on_lane = wait_submitted(&api, &chain, &sent[0].0, Duration::from_secs(SUBMIT_SECS)).await;
    for _ in 0..HELD_PAYMENTS {
        sent.push(post(&api).await);
    }
    let ids: Vec<String> = sent.iter().map(|(id, _, _)| id.clone()).collect();
    wait_held(&stack, &ids[1..], Duration::from_secs(HELD_SECS)).await;

    stack.freeze_worker(first, true);
    let second = stack.start_worker();
    let finished = poll(
        "the second worker to confirm every payment",
        Duration::from_secs(TAKEOVER_SECS),
        || async {
            chain.mine().await;
            let mut jobs = Vec::new();
            for id in &ids {
                let job = api.job(id).await;
                match text(&job, "status") {
                    "confirmed" => jobs.push(job),
                    "queued" | "submitted" => return Ok(None),
                    _ => panic!("{job}"),
                }
            }
            Ok(Some(jobs))
        },
    )
    .await;

    // Worker 1 goes on with what it held: each must be left out, nothing written or sent.
    let resumed_from = log_len(&stack, first);
    stack.freeze_worker(first, false);
    poll(
        "the resumed worker to leave out each held payment",
        Duration::from_secs(RESUMED_SECS),
        || {
            let log = new_log(&stack, first, resumed_from);
            let refused = ids[1..].iter().all(|id| left_out(&log, id));
            async move { Ok(refused.then_some(())) }
        },
    )
    .await;
    chain.mine().await;
    chain.mine().await;

    for ((id, to, memo), before) in sent.iter().zip(&finished) {
        let job = api.job(id).await;
        assert_eq!(job["status"], "confirmed", "{job}");
        assert_eq!(
            job["attempts"], before["attempts"],
            "rewritten after the takeover: {job}"
        );
        assert_eq!(job["tx_hash"], before["tx_hash"], "{job}");
        let memos = chain.memo_transfers_to(PATH_USD, *to).await;
        assert_eq!(memos.len(), 1, "memo {memo} on chain {} times", memos.len());
        assert_eq!(memos[0].memo, B256::right_padding_from(memo.as_bytes()));
        assert_eq!(memos[0].tx_hash, parse_b256(text(&job, "tx_hash")), "{job}");
        assert_eq!(chain.balance_u128(PATH_USD, *to).await, AMOUNT_BASE_UNITS);
    }
    // Worker 1's lane carried the first transaction only.
    let lane: U256 = text(&on_lane, "nonce_key").parse().expect("nonce_key");
    assert_eq!(
        chain.lane_nonce(SENDER, lane).await,
        1,
        "worker 1 signed again on its lane"
    );
    eprintln!(
        "worker 2 ({second:?}) confirmed {} payments; worker 1 wrote nothing after resuming",
        finished.len()
    );
    stack.assert_alive();
}

/// Posts 0.5 pathUSD with a memo of its own to a fresh recipient; (job id, recipient, memo).
async fn post(api: &Api) -> (String, Address, String) {
    let to = fresh_address();
    let memo = format!("STALL-{}", random_hex(4));
    let body = json!({"to": checksummed(to), "amount": AMOUNT, "memo": memo});
    let (status, job): (u16, Value) = api.send(&body, Some(&format!("{memo}-key"))).await;
    assert_eq!(status, 202, "{job}");
    (text(&job, "id").to_string(), to, memo)
}

fn log_len(stack: &fluxus_tests::Stack, id: WorkerId) -> usize {
    std::fs::read_to_string(stack.worker_log(id))
        .unwrap_or_default()
        .len()
}

/// Whether a line of `log` says the payment was left out.
fn left_out(log: &str, id: &str) -> bool {
    log.lines()
        .any(|line| line.contains("payment left out") && line.contains(id))
}

/// What the worker logged after the first `from` bytes.
fn new_log(stack: &fluxus_tests::Stack, id: WorkerId, from: usize) -> String {
    let text = std::fs::read_to_string(stack.worker_log(id)).unwrap_or_default();
    text.get(from..).unwrap_or_default().to_string()
}
