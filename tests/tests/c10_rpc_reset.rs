//! C10: the node connection is reset on a payment's first `eth_sendRawTransaction`, either before
//! the node saw the transaction or after it took it (the worker never learns which). The payment
//! must still confirm with its one stored transaction, the lane must go on without a nonce gap
//! for three more sends on it, and again after a worker restart: one transfer per payment.
//!
//! The worker gets a single nonce lane, so every send of the test rides the lane the fault hit.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, U256};
use fluxus_tests::assert_lanes_gapless;
use fluxus_tests::{
    PATH_USD, ResetWhen, Signal, Stack, StackOpts, checksummed, confirm_deadline, fresh_address,
    parse_b256, random_hex, spawn_stack, text,
};
use serde_json::{Value, json};

/// Sends after the faulted one, before the worker restart.
const SENDS_BEFORE_RESTART: usize = 3;

#[tokio::test]
async fn reset_before_the_node_saw_the_broadcast() {
    reset_on_first_broadcast(ResetWhen::BeforeForwarding).await;
}

#[tokio::test]
async fn reset_after_the_node_took_the_broadcast() {
    reset_on_first_broadcast(ResetWhen::AfterForwarding).await;
}

async fn reset_on_first_broadcast(when: ResetWhen) {
    let stack = spawn_stack(StackOpts {
        rpc_proxy: true,
        extra_env: vec![("FLUXUS_WORKER_LANES".into(), "1".into())],
        ..StackOpts::default()
    })
    .await;
    let api = stack.api();
    let to = fresh_address();
    let tag = format!("{when:?}").to_lowercase();
    let memo = |i: usize| format!("c10-{tag}-{i}");

    // The first broadcast's connection is reset; the payment must recover by itself.
    let fault = stack
        .rpc_proxy()
        .reset_on_next("eth_sendRawTransaction", when);
    let mut ids = vec![send(&stack, to, &memo(0)).await];
    fault.fired(confirm_deadline()).await;

    // More sends while the first one's outcome may still be unknown: they queue for the lane.
    for i in 1..=SENDS_BEFORE_RESTART {
        ids.push(send(&stack, to, &memo(i)).await);
    }
    let first = api
        .wait_for_status(&ids[0], &["confirmed"], confirm_deadline())
        .await;
    for line in stack.log_lines(&ids[0]) {
        eprintln!("{line:?}");
    }
    let attempts = first["attempts"].as_array().expect("attempts");
    assert_eq!(
        attempts.len(),
        1,
        "an unknown broadcast outcome must be followed, not re-signed: {first}"
    );
    assert_eq!(attempts[0]["outcome"], "included", "{first}");
    let jobs = api.wait_all(&ids, &["confirmed"], confirm_deadline()).await;
    for job in &jobs {
        assert_eq!(
            job["nonce_key"], first["nonce_key"],
            "not the faulted lane: {job}"
        );
    }

    // A graceful worker restart, then one more send.
    let old = stack.workers()[0];
    let exit = stack.kill_worker(old, Signal::Term);
    assert!(exit.success(), "the worker's graceful stop ended {exit}");
    stack.start_worker();
    ids.push(send(&stack, to, &memo(SENDS_BEFORE_RESTART + 1)).await);
    let jobs = api.wait_all(&ids, &["confirmed"], confirm_deadline()).await;

    let memos: Vec<String> = (0..ids.len()).map(memo).collect();
    assert_one_transfer_each(&stack, to, &jobs, &memos).await;
    assert_lanes_gapless(&stack, &jobs).await;
    stack.assert_alive();
}

/// Accepts a 0.01 payment to `to` with `memo`; its job id.
async fn send(stack: &Stack, to: Address, memo: &str) -> String {
    let body = json!({"to": checksummed(to), "amount": "0.01", "memo": memo});
    let key = format!("c10-{}", random_hex(12));
    let (status, job) = stack.api().send(&body, Some(&key)).await;
    assert_eq!(status, 202, "{job}");
    text(&job, "id").to_string()
}

/// Each memo is on chain exactly once, in the transaction its job reports, and nothing else
/// reached the recipient.
async fn assert_one_transfer_each(stack: &Stack, to: Address, jobs: &[Value], memos: &[String]) {
    let chain = stack.chain();
    let logs = chain.memo_transfers_to(PATH_USD, to).await;
    let mut by_memo: BTreeMap<B256, Vec<B256>> = BTreeMap::new();
    for log in &logs {
        by_memo.entry(log.memo).or_default().push(log.tx_hash);
    }
    for (job, memo) in jobs.iter().zip(memos) {
        let key = B256::right_padding_from(memo.as_bytes());
        let hashes = by_memo.remove(&key).unwrap_or_default();
        assert_eq!(
            hashes.len(),
            1,
            "memo {memo}: transfers {hashes:?}; job {job}"
        );
        assert_eq!(hashes[0], parse_b256(text(job, "tx_hash")), "{job}");
        assert_eq!(job["amount_base_units"], "10000", "{job}");
    }
    assert!(by_memo.is_empty(), "unexpected memos on chain: {by_memo:?}");
    let transfers = chain.transfers_to(PATH_USD, to).await;
    assert_eq!(transfers.len(), jobs.len(), "{transfers:?}");
    assert!(transfers.iter().all(|t| t.amount == U256::from(10_000u64)));
}
