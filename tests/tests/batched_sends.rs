//! Payments that wait for a lane share one transaction, and sharing never costs a payment its
//! own fate. The node runs with `--no-mining` and the worker with one lane, so the test decides
//! what waits: a first payment's transaction holds the lane in the pool, the payments posted
//! next are held by the worker (their locks are taken), and one block later they leave
//! together.
//! (a) Four good payments and one for more than the sender holds: that one is taken out of the
//!     shared transaction and fails alone before anything is signed, with no attempt and no
//!     fee; the four confirm in one transaction of four calls, each once on chain, their fee
//!     shares adding up to the transaction's fee.
//! (b) Two payments that fit the sender's balance together leave in one transaction; before it
//!     is mined the sender spends half its balance in a transaction of its own, mined first,
//!     so the shared one reverts on chain. Nothing moved; each goes again alone: one confirms,
//!     the other fails before signing. Exactly one amount moved.

use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::sol;
use alloy::sol_types::SolCall;
use fluxus_tests::chain::quantity;
use fluxus_tests::{
    ALPHA_USD, Api, Chain, PATH_USD, SENDER, Stack, StackOpts, checksummed, format_units6,
    fresh_address, parse_b256, poll, random_hex, spawn_stack, text, wait_held, wait_submitted,
};
use serde_json::{Value, json};

const SUBMIT_SECS: u64 = 90;
/// Until the worker holds every posted payment (an idle one fetches on a 100 ms heartbeat).
const HELD_SECS: u64 = 30;
/// Mining a block each poll, until every payment has ended.
const SETTLE_SECS: u64 = 120;
/// Tempo gas prices are in 10^-18 USD per gas; fee tokens have 6 decimals.
const GAS_PRICE_SCALE: u128 = 1_000_000_000_000;
const SMALL_AMOUNT: &str = "0.25";
const SMALL_BASE_UNITS: u128 = 250_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reverting_transfer_fails_alone_and_the_rest_share_one_transaction() {
    let stack = one_lane_stack().await;
    let _logs = stack.logs_on_panic();
    let (api, chain) = (stack.api(), stack.chain());
    hold_the_lane(&stack, &api, &chain).await;

    let too_much = chain.balance_u128(ALPHA_USD, SENDER).await + 1;
    let good: Vec<(String, Address, String)> = post_small(&api, 4, "AB").await;
    let (bad_id, _) = post(
        &api,
        fresh_address(),
        &format_units6(too_much),
        "AlphaUSD",
        "AB",
    )
    .await;
    let mut ids: Vec<String> = good.iter().map(|(id, _, _)| id.clone()).collect();
    ids.push(bad_id.clone());
    wait_held(&stack, &ids, Duration::from_secs(HELD_SECS)).await;

    let jobs = settle(&api, &chain, &ids).await;
    let bad = &jobs[4];
    assert_eq!(bad["status"], "failed", "{bad}");
    assert!(
        text(bad, "reason").contains("would fail, nothing was sent"),
        "{bad}"
    );
    assert_eq!(
        bad["attempts"],
        json!([]),
        "signed although it would revert: {bad}"
    );
    assert!(bad["fee"].is_null(), "{bad}");

    let tx_hash = text(&jobs[0], "tx_hash").to_string();
    let mut fee_sum = 0;
    for (job, (_, to, memo)) in jobs.iter().zip(&good) {
        assert_eq!(job["status"], "confirmed", "{job}");
        assert_eq!(text(job, "tx_hash"), tx_hash, "not in the shared tx: {job}");
        let attempts = job["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1, "{job}");
        assert_eq!(attempts[0]["payments_in_tx"], 4, "{job}");
        assert_eq!(attempts[0]["outcome"], "included", "{job}");
        fee_sum += text(&job["fee"], "base_units")
            .parse::<u128>()
            .expect("fee");
        assert_paid_once(&chain, PATH_USD, *to, memo, SMALL_BASE_UNITS).await;
    }
    assert_eq!(fee_sum, tx_fee(&chain, parse_b256(&tx_hash)).await);
    let receipt = chain.receipt(parse_b256(&tx_hash)).await.expect("receipt");
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    stack.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_transaction_that_reverts_on_chain_is_retried_alone() {
    let stack = one_lane_stack().await;
    let _logs = stack.logs_on_panic();
    let (api, chain) = (stack.api(), stack.chain());
    hold_the_lane(&stack, &api, &chain).await;

    let balance = chain.balance_u128(ALPHA_USD, SENDER).await;
    let each = balance / 10 * 4;
    let amount = format_units6(each);
    let to = [fresh_address(), fresh_address()];
    let (first, memo_a) = post(&api, to[0], &amount, "AlphaUSD", "RV").await;
    let (second, memo_b) = post(&api, to[1], &amount, "AlphaUSD", "RV").await;
    let ids = vec![first, second];
    wait_held(&stack, &ids, Duration::from_secs(HELD_SECS)).await;

    // The lane frees; the two fit the balance together and leave in one transaction.
    chain.mine().await;
    for id in &ids {
        wait_submitted(&api, &chain, id, Duration::from_secs(SUBMIT_SECS)).await;
    }
    // Before that transaction is mined, the sender spends half its balance elsewhere: the
    // node loses the shared transaction from its pool, the spending is mined, and the worker
    // (still waiting for a receipt) broadcasts its stored transaction again, which now
    // reverts.
    let shared = parse_b256(text(&api.job(&ids[0]).await, "tx_hash"));
    chain
        .rpc("anvil_dropTransaction", json!([shared]))
        .await
        .expect("anvil_dropTransaction");
    assert!(chain.transaction(shared).await.is_none(), "still pooled");
    drain(&chain, balance / 2).await;
    // What the sender holds now (its own transaction paid its fee in AlphaUSD too).
    let left = chain.balance_u128(ALPHA_USD, SENDER).await;
    assert!(left < 2 * each, "the spending left enough for both");
    poll(
        "the worker to broadcast again",
        Duration::from_secs(SUBMIT_SECS),
        || async { Ok(chain.transaction(shared).await.map(|_| ())) },
    )
    .await;

    let jobs = settle(&api, &chain, &ids).await;
    // Both rode the same transaction, which reverted and moved nothing.
    let shared: Vec<&Value> = jobs.iter().map(|job| &job["attempts"][0]).collect();
    assert_eq!(shared[0]["tx_hash"], shared[1]["tx_hash"], "{jobs:?}");
    for attempt in &shared {
        assert_eq!(attempt["outcome"], "reverted", "{jobs:?}");
        assert_eq!(attempt["payments_in_tx"], 2, "{jobs:?}");
    }
    let reverted = parse_b256(shared[0]["tx_hash"].as_str().expect("hash"));
    let receipt = chain.receipt(reverted).await.expect("receipt");
    assert_eq!(receipt["status"], "0x0", "{receipt}");

    // Then each alone: exactly one could still be paid.
    let confirmed: Vec<&Value> = jobs.iter().filter(|j| j["status"] == "confirmed").collect();
    let failed: Vec<&Value> = jobs.iter().filter(|j| j["status"] == "failed").collect();
    assert_eq!((confirmed.len(), failed.len()), (1, 1), "{jobs:?}");
    let paid = confirmed[0]["attempts"].as_array().expect("attempts");
    assert_eq!(paid.len(), 2, "{}", confirmed[0]);
    assert_eq!(paid[1]["outcome"], "included", "{}", confirmed[0]);
    assert_eq!(paid[1]["payments_in_tx"], 1, "{}", confirmed[0]);
    assert_eq!(
        confirmed[0]["tx_hash"], paid[1]["tx_hash"],
        "{}",
        confirmed[0]
    );
    let unpaid = failed[0]["attempts"].as_array().expect("attempts");
    assert_eq!(
        unpaid.len(),
        1,
        "signed again although it would revert: {}",
        failed[0]
    );
    assert!(
        text(failed[0], "reason").contains("would fail, so it was not sent again"),
        "{}",
        failed[0]
    );
    // Each paid its share of the reverted transaction's fee; the confirmed one its own too.
    let share = |job: &Value| {
        text(&job["fee"], "base_units")
            .parse::<u128>()
            .expect("fee")
    };
    assert_eq!(
        share(&jobs[0]) + share(&jobs[1]),
        tx_fee(&chain, reverted).await
            + tx_fee(&chain, parse_b256(text(confirmed[0], "tx_hash"))).await
    );

    let memos = [memo_a, memo_b];
    let paid_index = usize::from(jobs[1]["status"] == "confirmed");
    for (i, to) in to.iter().enumerate() {
        let expect = if i == paid_index { each } else { 0 };
        assert_eq!(
            chain.balance_u128(ALPHA_USD, *to).await,
            expect,
            "recipient {i}"
        );
        let memos_seen = chain.memo_transfers_to(ALPHA_USD, *to).await;
        assert_eq!(
            memos_seen.len(),
            usize::from(i == paid_index),
            "{memos_seen:?}"
        );
        if i == paid_index {
            assert_eq!(
                memos_seen[0].memo,
                B256::right_padding_from(memos[i].as_bytes())
            );
        }
    }
    assert_eq!(
        chain.balance_u128(ALPHA_USD, SENDER).await,
        left - each,
        "exactly one amount left the sender"
    );
    stack.assert_alive();
}

sol! {
    function transfer(address to, uint256 amount) external returns (bool);
}

/// The sender moves `amount` AlphaUSD to a fresh address in a plain transaction of its own
/// (the dev node signs for its dev accounts), mined at once.
async fn drain(chain: &Chain, amount: u128) {
    let data = transferCall {
        to: fresh_address(),
        amount: U256::from(amount),
    }
    .abi_encode();
    let tx = json!({
        "from": SENDER,
        "to": ALPHA_USD,
        "data": format!("0x{}", alloy::hex::encode(data)),
        "gas": "0x100000",
    });
    let hash = chain
        .rpc("eth_sendTransaction", json!([tx]))
        .await
        .expect("eth_sendTransaction");
    chain.mine().await;
    let hash = parse_b256(hash.as_str().expect("a transaction hash"));
    let receipt = chain.receipt(hash).await.expect("the spending is mined");
    assert_eq!(receipt["status"], "0x1", "{receipt}");
}

async fn one_lane_stack() -> Stack {
    spawn_stack(StackOpts {
        no_mining: true,
        extra_env: vec![("FLUXUS_WORKER_LANES".to_string(), "1".to_string())],
        ..StackOpts::default()
    })
    .await
}

/// Posts a payment and waits until its transaction sits in the pool: the one lane is busy.
async fn hold_the_lane(stack: &Stack, api: &Api, chain: &Chain) {
    let (id, _) = post(api, fresh_address(), SMALL_AMOUNT, "pathUSD", "LANE").await;
    wait_submitted(api, chain, &id, Duration::from_secs(SUBMIT_SECS)).await;
    stack.assert_alive();
}

/// Posts `n` small pathUSD payments, each to a fresh recipient; (id, recipient, memo) each.
async fn post_small(api: &Api, n: usize, label: &str) -> Vec<(String, Address, String)> {
    let mut sent = Vec::with_capacity(n);
    for _ in 0..n {
        let to = fresh_address();
        let (id, memo) = post(api, to, SMALL_AMOUNT, "pathUSD", label).await;
        sent.push((id, to, memo));
    }
    sent
}

/// Posts one payment with a memo of its own; (job id, memo).
async fn post(api: &Api, to: Address, amount: &str, token: &str, label: &str) -> (String, String) {
    let memo = format!("{label}-{}", random_hex(4));
    let body = json!({"to": checksummed(to), "amount": amount, "token": token, "memo": memo});
    let (status, job) = api.send(&body, Some(&format!("{memo}-key"))).await;
    assert_eq!(status, 202, "{job}");
    (text(&job, "id").to_string(), memo)
}

/// Mines a block per poll until every job has ended; the jobs in the order of `ids`.
async fn settle(api: &Api, chain: &Chain, ids: &[String]) -> Vec<Value> {
    poll(
        "every payment to end",
        Duration::from_secs(SETTLE_SECS),
        || async {
            chain.mine().await;
            let mut jobs = Vec::with_capacity(ids.len());
            for id in ids {
                let job = api.job(id).await;
                if !matches!(text(&job, "status"), "confirmed" | "failed") {
                    return Ok(None);
                }
                jobs.push(job);
            }
            Ok(Some(jobs))
        },
    )
    .await
}

/// What the node charged for a transaction, in fee-token base units (rounded up).
async fn tx_fee(chain: &Chain, tx_hash: B256) -> u128 {
    let receipt = chain.receipt(tx_hash).await.expect("receipt");
    let gas = u128::from(quantity(&receipt["gasUsed"]).expect("gasUsed"));
    let price = u128::from(quantity(&receipt["effectiveGasPrice"]).expect("effectiveGasPrice"));
    (gas * price).div_ceil(GAS_PRICE_SCALE)
}

/// `to` received `amount` of `token` once, with `memo`.
async fn assert_paid_once(chain: &Chain, token: Address, to: Address, memo: &str, amount: u128) {
    let memos = chain.memo_transfers_to(token, to).await;
    assert_eq!(memos.len(), 1, "{memos:?}");
    assert_eq!(memos[0].memo, B256::right_padding_from(memo.as_bytes()));
    assert_eq!(chain.balance_u128(token, to).await, amount);
}
