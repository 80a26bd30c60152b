//! C16, a receipt that comes late. The dev node runs with `--no-mining`, so the test decides
//! when (and whether) the payment's transaction can land, and which time its block carries:
//! (a) with 60 s of validity, nothing is mined for 20 s: the payment stays `submitted` with its
//!     one transaction the whole time (never `failed`, never re-signed), then confirms with it;
//! (b) with 6 s of validity, nothing is mined until our clock is well past the transaction's
//!     `valid_before`: the worker must still not re-sign, since no block says the chain's time
//!     has passed it. Then one block is mined (stamped with the current time, which the expired
//!     transaction cannot enter): the worker proves it dead and re-signs, the status is never
//!     `failed`; once mining resumes the payment confirms exactly once, with its last attempt,
//!     every earlier attempt `dead`. Run with one nonce lane (the replacement reuses the expired
//!     transaction's lane nonce, 25 % higher fee) and with four (it moves to another lane).
//!     What the node's pool held is printed;
//! (c) the node's clock is behind ours: as in (b) nothing is mined until our clock is past
//!     `valid_before`, then the next block is stamped one second before it. The stored
//!     transaction lands in that block, and must be the only one: a worker that judged expiry
//!     by its own clock re-signed on another lane meanwhile and paid twice.

use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use fluxus_tests::wait::POLL_INTERVAL_MS;
use fluxus_tests::wait_submitted;
use fluxus_tests::{
    Api, Chain, PATH_USD, SENDER, Stack, StackOpts, checksummed, fresh_address, parse_b256, poll,
    random_hex, spawn_stack, text,
};
use serde_json::{Value, json};

/// From accepted to `submitted` with the transaction in the node's pool.
const SUBMIT_SECS: u64 = 90;
/// (a): validity of a signed transaction, and how long nothing is mined.
const LONG_VALIDITY_SECS: u64 = 60;
const LATE_RECEIPT_SECS: u64 = 20;
/// (b): validity of a signed transaction (the product's minimum is 5).
const SHORT_VALIDITY_SECS: u64 = 6;
/// (b), (c): how far past `valid_before` our clock goes while no block is mined. Well beyond
/// the worker's nonce check (every 12 receipt polls, about 2 s).
const PAST_VALID_BEFORE_SECS: u64 = 8;
/// (b): from the block past `valid_before` until the first attempt is `dead` and a second one
/// signed (one nonce check, more when the node is slow).
const RESIGNED_SECS: u64 = 60;
/// From the moment mining resumes to `confirmed` (a replacement may itself expire first).
const CONFIRM_AFTER_MINING_SECS: u64 = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c16a_late_receipt_is_waited_for() {
    let stack = stack(LONG_VALIDITY_SECS, None).await;
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();
    let (id, memo) = send(&api, to, "c16a").await;
    let submitted = wait_submitted(&api, &chain, &id, Duration::from_secs(SUBMIT_SECS)).await;
    let tx_hash = parse_b256(text(&submitted, "tx_hash"));

    // Nothing is mined for a while: the payment must wait with its one transaction.
    hold_unresolved(&api, &chain, &id, tx_hash, unix_now() + LATE_RECEIPT_SECS).await;

    // The receipt arrives: confirmed with that transaction, paid once.
    chain.mine().await;
    let confirmed = wait_confirmed(&api, &chain, &id, false).await;
    assert_eq!(confirmed["tx_hash"], submitted["tx_hash"], "{confirmed}");
    let attempts = confirmed["attempts"].as_array().expect("attempts array");
    assert_eq!(attempts.len(), 1, "{confirmed}");
    assert_eq!(attempts[0]["outcome"], "included", "{confirmed}");
    check_paid_once(&chain, to, &memo, tx_hash).await;
    stack.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c16b_expired_tx_is_replaced_on_its_lane() {
    stuck_transaction_is_replaced(Some(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c16b_expired_tx_is_replaced_on_any_lane() {
    stuck_transaction_is_replaced(None).await;
}

/// (b) with `lanes` nonce lanes for the worker (`None`: the default).
async fn stuck_transaction_is_replaced(lanes: Option<u32>) {
    let stack = stack(SHORT_VALIDITY_SECS, lanes).await;
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();
    let label = format!("c16b-{}", lanes.map_or("default".into(), |n| n.to_string()));
    let (id, memo) = send(&api, to, &label).await;
    let submitted = wait_submitted(&api, &chain, &id, Duration::from_secs(SUBMIT_SECS)).await;
    let first = parse_b256(text(&submitted, "tx_hash"));

    // Our clock passes `valid_before` but no block does: nothing may be re-signed yet.
    hold_past_valid_before(&api, &chain, &id, &submitted).await;

    // A block stamped past `valid_before`: the first attempt is proven dead and replaced.
    chain.mine().await;
    assert!(
        chain.receipt(first).await.is_none(),
        "the expired transaction was mined"
    );
    let resigned = poll(
        "a second attempt after the first was proven dead",
        Duration::from_secs(RESIGNED_SECS),
        || async {
            let job = api.job(&id).await;
            assert_eq!(job["status"], "submitted", "while no block is mined: {job}");
            let attempts = job["attempts"].as_array().expect("attempts array");
            let replaced = attempts.len() >= 2 && attempts[0]["outcome"] == "dead";
            Ok(replaced.then_some(job))
        },
    )
    .await;
    let attempts = resigned["attempts"].as_array().expect("attempts array");
    let second = parse_b256(text(&attempts[1], "tx_hash"));
    eprintln!("[{label}] re-signed: {}", summary(&resigned));
    eprintln!(
        "[{label}] after the re-sign the node knows the expired tx: {}, the replacement: {}; \
         pool: {}",
        chain.transaction(first).await.is_some(),
        chain.transaction(second).await.is_some(),
        pool_summary(&chain).await
    );

    // Mining resumes: confirmed exactly once, with the last attempt.
    let resumed = Instant::now();
    chain
        .rpc("evm_setAutomine", json!([true]))
        .await
        .expect("evm_setAutomine");
    chain.mine().await;
    let confirmed = wait_confirmed(&api, &chain, &id, true).await;
    eprintln!(
        "[{label}] confirmed {:?} after mining resumed: {}",
        resumed.elapsed(),
        summary(&confirmed)
    );
    let attempts = confirmed["attempts"].as_array().expect("attempts array");
    let (last, earlier) = attempts.split_last().expect("attempts");
    assert!(attempts.len() >= 2, "{confirmed}");
    assert_eq!(last["outcome"], "included", "{confirmed}");
    assert_eq!(last["tx_hash"], confirmed["tx_hash"], "{confirmed}");
    for attempt in earlier {
        assert_eq!(
            attempt["outcome"], "dead",
            "an earlier attempt: {confirmed}"
        );
        let hash = parse_b256(text(attempt, "tx_hash"));
        assert!(
            chain.receipt(hash).await.is_none(),
            "dead attempt {hash} was mined"
        );
    }
    if lanes == Some(1) {
        for attempt in attempts {
            assert_eq!(
                attempt["nonce_key"], attempts[0]["nonce_key"],
                "{confirmed}"
            );
        }
    }
    let included = parse_b256(text(last, "tx_hash"));
    check_paid_once(&chain, to, &memo, included).await;

    // Lane nonces: exactly the included transaction's lane advanced, by one.
    let key: U256 = text(last, "nonce_key").parse().expect("nonce_key");
    let nonce: u64 = text(last, "nonce").parse().expect("nonce");
    assert_eq!(chain.lane_nonce(SENDER, key).await, nonce + 1, "lane {key}");
    eprintln!(
        "[{label}] at the end the node knows the expired tx: {}; pool: {}",
        chain.transaction(first).await.is_some(),
        pool_summary(&chain).await
    );
    stack.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c16c_node_clock_behind_ours_is_waited_for() {
    let stack = stack(SHORT_VALIDITY_SECS, None).await;
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();
    let (id, memo) = send(&api, to, "c16c").await;
    let submitted = wait_submitted(&api, &chain, &id, Duration::from_secs(SUBMIT_SECS)).await;
    let tx_hash = parse_b256(text(&submitted, "tx_hash"));

    // Our clock passes `valid_before`; the chain's has not, so the transaction is still valid.
    let valid_before = hold_past_valid_before(&api, &chain, &id, &submitted).await;

    // The node's next block is stamped one second before `valid_before`: the stored
    // transaction lands, and nothing else for this payment can.
    chain
        .rpc("evm_setNextBlockTimestamp", json!([valid_before - 1]))
        .await
        .expect("evm_setNextBlockTimestamp");
    chain.mine().await;
    let confirmed = wait_confirmed(&api, &chain, &id, false).await;
    eprintln!("[c16c] confirmed: {}", summary(&confirmed));
    assert_eq!(confirmed["tx_hash"], submitted["tx_hash"], "{confirmed}");
    let attempts = confirmed["attempts"].as_array().expect("attempts array");
    assert_eq!(
        attempts.len(),
        1,
        "re-signed while the tx was valid: {confirmed}"
    );
    assert_eq!(attempts[0]["outcome"], "included", "{confirmed}");
    check_paid_once(&chain, to, &memo, tx_hash).await;
    stack.assert_alive();
}

/// Until our clock reaches `until` (Unix seconds), with no block mined: the payment stays
/// `submitted` with its one pending transaction `tx_hash`, which has no receipt.
async fn hold_unresolved(api: &Api, chain: &Chain, id: &str, tx_hash: B256, until: u64) {
    let started = Instant::now();
    let mut polls = 0;
    while unix_now() < until {
        let job = api.job(id).await;
        assert_eq!(
            job["status"], "submitted",
            "while the receipt is late: {job}"
        );
        let attempts = job["attempts"].as_array().expect("attempts array");
        assert_eq!(attempts.len(), 1, "re-signed while the tx was valid: {job}");
        assert_eq!(attempts[0]["outcome"], "pending", "{job}");
        assert!(
            chain.receipt(tx_hash).await.is_none(),
            "mined under --no-mining"
        );
        polls += 1;
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
    eprintln!(
        "submitted for {:?} without a receipt ({polls} polls)",
        started.elapsed()
    );
}

/// [`hold_unresolved`] until our clock is [`PAST_VALID_BEFORE_SECS`] past the `valid_before`
/// of the `submitted` job's one transaction; that `valid_before`, in Unix seconds.
async fn hold_past_valid_before(api: &Api, chain: &Chain, id: &str, submitted: &Value) -> u64 {
    let stamp = submitted["attempts"][0]["valid_before"]
        .as_str()
        .unwrap_or_else(|| panic!("valid_before of the first attempt: {submitted}"));
    let at = time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("valid_before {stamp:?}: {e}"));
    let valid_before = u64::try_from(at.unix_timestamp()).expect("valid_before after 1970");
    let tx_hash = parse_b256(text(submitted, "tx_hash"));
    hold_unresolved(
        api,
        chain,
        id,
        tx_hash,
        valid_before + PAST_VALID_BEFORE_SECS,
    )
    .await;
    valid_before
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

async fn stack(validity_secs: u64, lanes: Option<u32>) -> Stack {
    let mut extra_env = vec![(
        "FLUXUS_TX_VALIDITY_SECS".to_string(),
        validity_secs.to_string(),
    )];
    if let Some(lanes) = lanes {
        extra_env.push(("FLUXUS_WORKER_LANES".to_string(), lanes.to_string()));
    }
    spawn_stack(StackOpts {
        no_mining: true,
        extra_env,
        ..StackOpts::default()
    })
    .await
}

/// Posts one payment with a memo of its own; (job id, memo).
async fn send(api: &Api, to: alloy::primitives::Address, label: &str) -> (String, String) {
    let memo = format!("{label}-{}", random_hex(4));
    let body = json!({"to": checksummed(to), "amount": "0.5", "memo": memo});
    let (status, job) = api.send(&body, Some(&format!("{memo}-key"))).await;
    assert_eq!(status, 202, "{job}");
    (text(&job, "id").to_string(), memo)
}

/// Polls until `confirmed`; any status but `queued` / `submitted` fails at once. With `mining`,
/// mines a block each poll so that a replacement signed meanwhile lands too.
async fn wait_confirmed(api: &Api, chain: &Chain, id: &str, mining: bool) -> Value {
    poll(
        "the job to be confirmed",
        Duration::from_secs(CONFIRM_AFTER_MINING_SECS),
        || async {
            if mining {
                chain.mine().await;
            }
            let job = api.job(id).await;
            match text(&job, "status") {
                "confirmed" => Ok(Some(job)),
                "queued" | "submitted" => Ok(None),
                _ => panic!("a late receipt must not end the payment otherwise: {job}"),
            }
        },
    )
    .await
}

/// The memo is on chain exactly once, in `tx_hash`, and nothing else reached the recipient.
async fn check_paid_once(chain: &Chain, to: alloy::primitives::Address, memo: &str, tx_hash: B256) {
    chain.mine().await;
    let transfers = chain.transfers_to(PATH_USD, to).await;
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    assert_eq!(transfers[0].tx_hash, tx_hash);
    let memos = chain.memo_transfers_to(PATH_USD, to).await;
    assert_eq!(memos.len(), 1, "{memos:?}");
    assert_eq!(memos[0].memo, B256::right_padding_from(memo.as_bytes()));
    assert_eq!(chain.balance_u128(PATH_USD, to).await, 500_000);
}

/// The attempts of a job as `hash(key/nonce outcome)` for the report.
fn summary(job: &Value) -> String {
    let attempts = job["attempts"].as_array().cloned().unwrap_or_default();
    let parts: Vec<String> = attempts
        .iter()
        .map(|a| {
            let hash = a["tx_hash"].as_str().unwrap_or_default();
            format!(
                "{}..(lane {} nonce {} {} valid_before {})",
                &hash[..hash.len().min(10)],
                a["nonce_key"].as_str().unwrap_or_default(),
                a["nonce"].as_str().unwrap_or_default(),
                a["outcome"].as_str().unwrap_or_default(),
                a["valid_before"].as_str().unwrap_or_default()
            )
        })
        .collect();
    format!("status {} attempts [{}]", job["status"], parts.join(", "))
}

/// `txpool_status` and the hashes in `txpool_content`, shortened.
async fn pool_summary(chain: &Chain) -> String {
    let status = chain.rpc("txpool_status", json!([])).await.map_or_else(
        |err| format!("txpool_status failed: {err:#}"),
        |s| s.to_string(),
    );
    let mut hashes = Vec::new();
    if let Ok(content) = chain.rpc("txpool_content", json!([])).await {
        collect_hashes(&content, &mut hashes);
    }
    format!("{status} hashes {hashes:?}")
}

fn collect_hashes(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(hash) = map.get("hash").and_then(Value::as_str) {
                out.push(hash[..hash.len().min(10)].to_string());
                return;
            }
            map.values().for_each(|v| collect_hashes(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_hashes(v, out)),
        _ => {}
    }
}
