//! C13: Redis goes away for 3 s right after the node took a payment's broadcast, so the worker's
//! status write after the broadcast stalls or fails and the payment is picked up again. The retry
//! must find the stored transaction and only wait for its receipt: one attempt, one transfer on
//! chain, status `confirmed`.
//!
//! Two ways in: Redis cut when the node's answer to the broadcast passes the node proxy (the
//! worker's next Redis command may fail or wait for the reconnection, as timing has it), and
//! Redis cut by the `submitted` write itself, which then never reaches Redis (it always fails).

use std::time::Duration;

use alloy::primitives::{B256, U256};
use fluxus_tests::{
    PATH_USD, ResetWhen, Stack, StackOpts, checksummed, confirm_deadline, fresh_address,
    parse_b256, poll, random_hex, spawn_stack, text,
};
use serde_json::json;

/// How long Redis is unreachable for Fluxus.
const CUT_SECS: u64 = 3;
/// The payment record's write after a successful broadcast (serde field order of the record).
const SUBMITTED_WRITE: &str = "\"status\":\"submitted\"";

#[tokio::test]
async fn redis_cut_when_the_broadcast_is_answered() {
    let stack = c13_stack().await;

    // When the node answers the broadcast, Redis goes away before the worker hears the answer.
    let redis = stack.redis_proxy().control();
    let fault = stack
        .rpc_proxy()
        .on_next("eth_sendRawTransaction", move || {
            redis.cut(Duration::from_secs(CUT_SECS));
        });
    let resets_before = stack.redis_proxy().stats().resets;
    let id = send(&stack, "c13-hook").await;
    fault.fired(confirm_deadline()).await;
    poll(
        "the cut to reset the live Redis connections",
        Duration::from_secs(CUT_SECS),
        || async { Ok((stack.redis_proxy().stats().resets > resets_before).then_some(())) },
    )
    .await;

    assert_confirmed_once(&stack, &id, "c13-hook").await;
}

#[tokio::test]
async fn redis_cut_by_the_submitted_write() {
    let stack = c13_stack().await;

    // The write of `submitted` is dropped and Redis goes away with it.
    let fault = stack.redis_proxy().cut_on_next(
        SUBMITTED_WRITE,
        ResetWhen::BeforeForwarding,
        Duration::from_secs(CUT_SECS),
    );
    let id = send(&stack, "c13-write").await;
    fault.fired(confirm_deadline()).await;

    assert_confirmed_once(&stack, &id, "c13-write").await;
}

async fn c13_stack() -> Stack {
    spawn_stack(StackOpts {
        rpc_proxy: true,
        redis_proxy: true,
        ..StackOpts::default()
    })
    .await
}

/// Accepts 0.42 to a fresh recipient; the job id. The recipient is the job's `to`.
async fn send(stack: &Stack, memo: &str) -> String {
    let body = json!({"to": checksummed(fresh_address()), "amount": "0.42", "memo": memo});
    let (status, job) = stack.api().send(&body, Some(&random_hex(16))).await;
    assert_eq!(status, 202, "{job}");
    text(&job, "id").to_string()
}

/// The payment ends `confirmed` with its one stored transaction, which is the only transfer
/// to its recipient.
async fn assert_confirmed_once(stack: &Stack, id: &str, memo: &str) {
    let (api, chain) = (stack.api(), stack.chain());

    // The API answers 503 while its Redis is away; the wait treats that as "not yet".
    let confirmed = api
        .wait_for_status(id, &["confirmed"], confirm_deadline())
        .await;
    for line in stack.log_lines(id) {
        eprintln!("{line:?}");
    }
    eprintln!("redis proxy: {:?}", stack.redis_proxy().stats());

    let attempts = confirmed["attempts"].as_array().expect("attempts");
    assert_eq!(
        attempts.len(),
        1,
        "the retry signed anew instead of following the stored tx: {confirmed}"
    );
    assert_eq!(attempts[0]["outcome"], "included", "{confirmed}");
    let tx_hash = parse_b256(text(&confirmed, "tx_hash"));

    let to = fluxus_tests::parse_address(text(&confirmed, "to"));
    let memos = chain.memo_transfers_to(PATH_USD, to).await;
    assert_eq!(memos.len(), 1, "{memos:?}");
    assert_eq!(memos[0].memo, B256::right_padding_from(memo.as_bytes()));
    assert_eq!(memos[0].tx_hash, tx_hash);
    let transfers = chain.transfers_to(PATH_USD, to).await;
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    assert_eq!(transfers[0].amount, U256::from(420_000u64));
    assert_eq!(chain.balance_u128(PATH_USD, to).await, 420_000);
    stack.assert_alive();
}
