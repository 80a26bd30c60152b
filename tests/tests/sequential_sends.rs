//! Fifty sends accepted back to back, one worker: every one confirms, each nonce lane used has
//! nonces 0..n-1 with no gap (payments waiting for a lane share a transaction) and the chain's
//! lane nonce ends at n, and the recipient received exactly the sum. The stack is this test's alone, so every transaction of the sender is ours.

use std::time::Duration;

use fluxus_tests::{
    PATH_USD, StackOpts, assert_lanes_gapless, checksummed, format_units6, fresh_address,
    parse_b256, random_hex, spawn_stack, text,
};
use serde_json::json;

const SENDS: u128 = 50;
/// All fifty confirmed: one lane carries one transaction at a time, so this is serial work.
const ALL_CONFIRMED_SECS: u64 = 400;

#[tokio::test]
async fn fifty_sequential_sends_confirm_without_nonce_gaps() {
    let stack = spawn_stack(StackOpts::default()).await;
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();

    // Distinct amounts, so a payment paid twice or swapped would show in the sum.
    let mut ids = Vec::new();
    let mut sum = 0u128;
    for i in 0..SENDS {
        let base_units = 10_000 + i * 1_001;
        sum += base_units;
        let body = json!({"to": checksummed(to), "amount": format_units6(base_units)});
        let key = format!("seq-{i}-{}", random_hex(8));
        let (status, job) = api.send(&body, Some(&key)).await;
        assert_eq!(status, 202, "send #{i}: {job}");
        ids.push(text(&job, "id").to_string());
    }
    let jobs = api
        .wait_all(
            &ids,
            &["confirmed"],
            Duration::from_secs(ALL_CONFIRMED_SECS),
        )
        .await;

    // Per lane: nonces exactly 0..n-1, each used by one transaction (payments waiting for a
    // lane share one), and the chain's lane nonce is n.
    assert_lanes_gapless(&stack, &jobs).await;

    // The recipient got each payment once: fifty transfers, the exact sum.
    let transfers = chain.transfers_to(PATH_USD, to).await;
    assert_eq!(transfers.len(), SENDS as usize, "transfers on chain");
    for job in &jobs {
        let tx_hash = parse_b256(text(job, "tx_hash"));
        assert!(
            transfers.iter().any(|t| t.tx_hash == tx_hash),
            "{job} not on chain"
        );
    }
    assert_eq!(chain.balance_u128(PATH_USD, to).await, sum);
    stack.assert_alive();
}
