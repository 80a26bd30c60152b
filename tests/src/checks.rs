//! Assertions and waits several end-to-end tests share: a payment reaching `submitted` with its
//! transaction pooled, payments held by a worker before signing, and included transactions using
//! each nonce lane without gaps.

use std::{collections::BTreeMap, time::Duration};

use alloy::primitives::U256;
use serde_json::Value;

use crate::{Api, Chain, SENDER, Stack, parse_b256, poll, text};

/// Waits until the job is `submitted` and the node holds its transaction; any status but
/// `queued` or `submitted` on the way fails at once (nothing may settle before a block).
pub async fn wait_submitted(api: &Api, chain: &Chain, id: &str, deadline: Duration) -> Value {
    let job = poll(&format!("job {id} to be submitted"), deadline, || async {
        let job = api.job(id).await;
        let status = text(&job, "status");
        assert!(
            matches!(status, "queued" | "submitted"),
            "before any block: {job}"
        );
        Ok((status == "submitted" && job["tx_hash"].is_string()).then_some(job))
    })
    .await;
    let tx_hash = parse_b256(text(&job, "tx_hash"));
    poll(&format!("the node to hold {tx_hash}"), deadline, || async {
        Ok(chain.transaction(tx_hash).await.map(|_| ()))
    })
    .await;
    job
}

/// Waits until a worker holds the lock of every payment in `ids` while each is still `queued`:
/// in a worker's hands, waiting for a busy lane, nothing of them signed yet. Any job that moves
/// on before that fails at once.
pub async fn wait_held(stack: &Stack, ids: &[String], deadline: Duration) {
    let store = stack.store();
    let api = stack.api();
    poll("a worker to hold every payment", deadline, || {
        let locks = store.keys("fluxus:lock:payment:*");
        async {
            let locks = locks?;
            for id in ids {
                let job = api.job(id).await;
                assert_eq!(
                    job["status"], "queued",
                    "left before the lane was free: {job}"
                );
            }
            Ok(ids
                .iter()
                .all(|id| locks.contains(&format!("fluxus:lock:payment:{id}")))
                .then_some(()))
        }
    })
    .await;
}

/// Per nonce lane of the jobs' included transactions: nonces exactly 0..n-1, each used by one
/// transaction (which several jobs may share), and the chain's lane nonce is n. Only for a
/// stack whose sender sent nothing but these jobs.
pub async fn assert_lanes_gapless(stack: &Stack, jobs: &[Value]) {
    let chain = stack.chain();
    let mut lanes: BTreeMap<U256, BTreeMap<u64, String>> = BTreeMap::new();
    let mut payments = 0;
    for job in jobs {
        let attempts = job["attempts"].as_array().expect("attempts");
        for attempt in attempts.iter().filter(|a| a["outcome"] == "included") {
            let key: U256 = text(attempt, "nonce_key").parse().expect("nonce_key");
            let nonce: u64 = text(attempt, "nonce").parse().expect("nonce");
            let hash = text(attempt, "tx_hash");
            let first = lanes
                .entry(key)
                .or_default()
                .entry(nonce)
                .or_insert_with(|| hash.to_string());
            assert_eq!(first, hash, "lane {key} nonce {nonce} included twice");
            payments += 1;
        }
    }
    let mut txs = 0;
    for (key, nonces) in &lanes {
        let n = nonces.len() as u64;
        let gaps: Vec<u64> = (0..n).filter(|nonce| !nonces.contains_key(nonce)).collect();
        assert!(gaps.is_empty(), "lane {key}: nonces {gaps:?} missing");
        assert_eq!(chain.lane_nonce(SENDER, *key).await, n, "lane {key}");
        txs += nonces.len();
    }
    let used: Vec<_> = lanes
        .iter()
        .map(|(k, v)| format!("{k}:{}", v.len()))
        .collect();
    eprintln!(
        "lanes (key:txs): {}; {payments} payments in {txs} transactions",
        used.join(" ")
    );
}
