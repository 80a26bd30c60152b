//! Crash recovery: a worker killed with SIGKILL after broadcasting, before the transaction is
//! mined. The dev node runs with `--no-mining`, so the test decides when the transaction lands:
//! the payment must reach `confirmed` with the stored transaction, and money moves once.

use std::time::Duration;

use alloy::primitives::U256;
use fluxus_tests::{
    PATH_USD, Signal, StackOpts, checksummed, fresh_address, parse_b256, poll, spawn_stack, text,
};
use serde_json::{Value, json};

/// From kill to `confirmed`: covers a queue re-delivery after missed heartbeats as well as a
/// worker that recovers in-flight payments at start.
const RECOVERY_SECS: u64 = 240;
/// From accepted to `submitted` with a broadcast transaction.
const SUBMIT_SECS: u64 = 90;

#[tokio::test]
async fn sigkill_after_broadcast_confirms_once() {
    let stack = spawn_stack(StackOpts {
        no_mining: true,
        ..StackOpts::default()
    })
    .await;
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();
    let worker = stack.workers()[0];

    // Accepted, signed, stored and broadcast; it cannot be mined yet.
    let body = json!({"to": checksummed(to), "amount": "0.75", "memo": "crash"});
    let (status, job) = api.send(&body, None).await;
    assert_eq!(status, 202, "{job}");
    let id = text(&job, "id").to_string();
    let submitted = poll(
        "the job to be submitted with a tx_hash",
        secs(SUBMIT_SECS),
        || async {
            let job = api.job(&id).await;
            assert_ne!(
                job["status"], "confirmed",
                "confirmed without a mined block: {job}"
            );
            Ok((job["status"] == "submitted" && job["tx_hash"].is_string()).then_some(job))
        },
    )
    .await;
    let tx_hash = parse_b256(text(&submitted, "tx_hash"));
    poll(
        "the node to hold the broadcast tx",
        secs(SUBMIT_SECS),
        || async { Ok(chain.transaction(tx_hash).await.map(|_| ())) },
    )
    .await;

    // Crash the worker, then let the transaction land while no worker runs.
    assert!(
        chain.receipt(tx_hash).await.is_none(),
        "mined under --no-mining"
    );
    stack.kill_worker(worker, Signal::Kill);
    chain.mine().await;
    let receipt = chain
        .receipt(tx_hash)
        .await
        .expect("the stored tx was mined");
    assert_eq!(receipt["status"], "0x1", "{receipt}");

    // A new worker finishes the payment from the stored transaction, without signing anew.
    stack.start_worker();
    let restarted = std::time::Instant::now();
    let confirmed = wait_confirmed_while_mining(&stack, &id).await;
    eprintln!(
        "confirmed {:?} after the new worker started",
        restarted.elapsed()
    );
    assert_eq!(confirmed["tx_hash"], submitted["tx_hash"], "{confirmed}");
    let attempts = confirmed["attempts"].as_array().expect("attempts array");
    assert!(!attempts.is_empty(), "no attempt recorded: {confirmed}");
    for attempt in attempts {
        assert_eq!(
            attempt["tx_hash"], submitted["tx_hash"],
            "signed anew: {confirmed}"
        );
    }

    // Anything signed by mistake would sit in the pool: mine it, then count.
    chain.mine().await;
    let transfers = chain.transfers_to(PATH_USD, to).await;
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    assert_eq!(transfers[0].amount, U256::from(750_000u64));
    assert_eq!(transfers[0].tx_hash, tx_hash);
    assert_eq!(chain.balance_u128(PATH_USD, to).await, 750_000);
    let pool = chain
        .rpc("txpool_status", json!([]))
        .await
        .expect("txpool_status");
    assert_eq!(
        pool["pending"], "0x0",
        "transactions left in the pool: {pool}"
    );
    stack.assert_alive();
}

/// Polls until `confirmed`, mining a block each second so that a re-signed transaction (the bug
/// this test exists to catch) would also land and be counted rather than hang the test.
async fn wait_confirmed_while_mining(stack: &fluxus_tests::Stack, id: &str) -> Value {
    let (api, chain) = (stack.api(), stack.chain());
    let mut last_mined = std::time::Instant::now();
    poll(
        "the job to be confirmed after the crash",
        secs(RECOVERY_SECS),
        || {
            let mine = last_mined.elapsed() >= Duration::from_secs(1);
            if mine {
                last_mined = std::time::Instant::now();
            }
            let (api, chain) = (&api, &chain);
            async move {
                if mine {
                    chain.mine().await;
                }
                let job = api.job(id).await;
                match text(&job, "status") {
                    "confirmed" => Ok(Some(job)),
                    "queued" | "submitted" => anyhow::bail!("still {}", job),
                    _ => panic!("not confirmed after the crash: {job}"),
                }
            }
        },
    )
    .await
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}
