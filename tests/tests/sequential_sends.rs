//! Fifty sends accepted back to back, one worker: every one confirms, each nonce lane used has
//! nonces 0..n-1 with no gap and the chain's lane nonce ends at n, and the recipient received
//! exactly the sum. The stack is this test's alone, so every transaction of the sender is ours.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::U256;
use fluxus_tests::{
    PATH_USD, SENDER, StackOpts, checksummed, format_units6, fresh_address, parse_b256, random_hex,
    spawn_stack, text,
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

    // Per lane: nonces exactly 0..n-1, and the chain's lane nonce is n.
    let mut lanes: BTreeMap<U256, Vec<u64>> = BTreeMap::new();
    for job in &jobs {
        let key: U256 = text(job, "nonce_key").parse().expect("nonce_key decimal");
        let nonce: u64 = text(job, "nonce").parse().expect("nonce decimal");
        lanes.entry(key).or_default().push(nonce);
    }
    for (key, nonces) in &mut lanes {
        nonces.sort_unstable();
        let n = nonces.len() as u64;
        assert_eq!(
            *nonces,
            (0..n).collect::<Vec<_>>(),
            "lane {key}: gaps or repeats"
        );
        assert_eq!(
            chain.lane_nonce(SENDER, *key).await,
            n,
            "lane {key}: chain nonce"
        );
    }

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
    eprintln!(
        "lanes used: {:?}",
        lanes.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );
    stack.assert_alive();
}
