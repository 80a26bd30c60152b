//! C12, worker restarts while transactions are in flight. The dev node runs with `--no-mining`,
//! so every payment is caught `submitted` with its transaction in the pool:
//! (a) the worker is killed with SIGKILL and a new one started within 5 s;
//! (b) rolling restart: a new worker starts, then the old one gets SIGTERM while it polls.
//! Each is done twice, mining once right after the restart and once only after the new worker
//! (or, for SIGTERM, the draining old one) has had its chance; three payments per round. Every
//! payment confirms with its one stored transaction (nothing re-signed), each memo lands on chain
//! exactly once, and no payment is left `queued` or `submitted` [`RECOVERY_SECS`] after the
//! restart. A status other than `queued`, `submitted` or `confirmed` fails the test at once. A
//! worker stopped with SIGTERM holds no nonce lane lease once it has exited.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use fluxus_tests::wait::POLL_INTERVAL_MS;
use fluxus_tests::wait_submitted;
use fluxus_tests::{
    Api, Chain, PATH_USD, Signal, Stack, StackOpts, WorkerId, checksummed, fresh_address,
    parse_b256, poll, random_hex, spawn_stack, text,
};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// Payments in flight at each restart (the worker has 4 lanes).
const PAYMENTS_PER_ROUND: usize = 3;
/// From accepted to `submitted` with the transaction in the node's pool.
const SUBMIT_SECS: u64 = 90;
/// The replacement worker must be started this soon after the kill (C12).
const RESTART_WITHIN_SECS: u64 = 5;
/// Recovery window, from the kill or SIGTERM to every payment of the round `confirmed`. The
/// product needs about 15 s: a dead worker's jobs come back after 10 s without a heartbeat and
/// its payment locks expire 15 s after their last renewal; a SIGTERM'd worker waits up to 20 s
/// for in-flight payments first. The rest is margin for a loaded 2-core machine.
const RECOVERY_SECS: u64 = 120;
/// A freshly started worker has leased its lanes and joined the queue.
const WORKER_READY_SECS: u64 = 60;
/// Payment lock key prefix (`fluxus:lock:payment:{id}`), read to see which worker drives it.
const PAYMENT_LOCK_PREFIX: &str = "fluxus:lock:payment:";
/// Nonce lane leases, read to see that a gracefully stopped worker gave its lanes back.
const LANE_KEYS: &str = "fluxus:lane:*";

/// When the test lets the transactions be mined.
#[derive(Clone, Copy, Debug)]
enum MineAt {
    /// Right after the restart (SIGKILL) or the signal (SIGTERM): the transactions land while
    /// the payments change hands, or while the old worker drains.
    Immediately,
    /// Only once the payments' new owner drives them: after the new worker holds every payment
    /// lock (SIGKILL), or after the old worker has exited (SIGTERM).
    AfterHandover,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c12_sigkill_then_restart_confirms_once() {
    let stack = no_mining_stack().await;
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();
    let mut all = Vec::new();

    for (round, mine_at) in [MineAt::Immediately, MineAt::AfterHandover]
        .into_iter()
        .enumerate()
    {
        let old = only_worker(&stack);
        wait_worker_started(&stack, old).await;
        let label = format!("c12a-{round}");
        let submitted = send_and_wait_submitted(&api, &chain, to, &label).await;

        // Crash the worker while it polls, and replace it at once.
        let killed = Instant::now();
        stack.kill_worker(old, Signal::Kill);
        let new = stack.start_worker();
        let restart = killed.elapsed();
        assert!(
            restart < Duration::from_secs(RESTART_WITHIN_SECS),
            "replacement started {restart:?} after the kill"
        );

        match mine_at {
            MineAt::Immediately => chain.mine().await,
            MineAt::AfterHandover => {
                let identity = wait_worker_started(&stack, new).await;
                wait_locks_held_by(&stack, &submitted, &identity).await;
                automine(&chain).await;
            }
        }
        let confirmed = wait_recovered(&api, &chain, &submitted, killed).await;
        eprintln!(
            "round {round} ({mine_at:?}): new worker started {restart:?} after SIGKILL; \
             all {PAYMENTS_PER_ROUND} confirmed {:?} after it",
            killed.elapsed()
        );
        check_paid_once(&chain, to, &submitted, &confirmed).await;
        all.extend(confirmed);
        stop_automine(&chain).await;
    }

    check_all_settled(&stack, &api, &chain, to, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c12_rolling_restart_confirms_once() {
    let stack = Arc::new(no_mining_stack().await);
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();
    let mut all = Vec::new();

    for (round, mine_at) in [MineAt::Immediately, MineAt::AfterHandover]
        .into_iter()
        .enumerate()
    {
        let old = only_worker(&stack);
        let old_identity = wait_worker_started(&stack, old).await;
        let label = format!("c12b-{round}");
        let submitted = send_and_wait_submitted(&api, &chain, to, &label).await;

        // Start the new worker first, then ask the old one to stop while it polls.
        let new = stack.start_worker();
        wait_worker_started(&stack, new).await;
        let termed = Instant::now();
        let stopping = {
            let stack = Arc::clone(&stack);
            tokio::task::spawn_blocking(move || stack.kill_worker(old, Signal::Term))
        };

        let exit = match mine_at {
            MineAt::Immediately => {
                automine(&chain).await;
                stopping.await.expect("SIGTERM task")
            }
            MineAt::AfterHandover => {
                let exit = stopping.await.expect("SIGTERM task");
                automine(&chain).await;
                exit
            }
        };
        let exited = termed.elapsed();
        let kept = lanes_held_by(&stack, &old_identity).await;
        assert!(
            kept.is_empty(),
            "lanes still leased after a graceful stop: {kept:?}"
        );
        let confirmed = wait_recovered(&api, &chain, &submitted, termed).await;
        eprintln!(
            "round {round} ({mine_at:?}): old worker exited ({exit}) {exited:?} after SIGTERM; \
             all {PAYMENTS_PER_ROUND} confirmed {:?} after it",
            termed.elapsed()
        );
        check_paid_once(&chain, to, &submitted, &confirmed).await;
        all.extend(confirmed);
        stop_automine(&chain).await;
    }

    check_all_settled(&stack, &api, &chain, to, &all).await;
}

async fn no_mining_stack() -> Stack {
    spawn_stack(StackOpts {
        no_mining: true,
        ..StackOpts::default()
    })
    .await
}

fn only_worker(stack: &Stack) -> WorkerId {
    let workers = stack.workers();
    assert_eq!(workers.len(), 1, "expected one running worker: {workers:?}");
    workers[0]
}

/// A payment caught in flight: its job and the transaction the worker broadcast.
#[derive(Clone, Debug)]
struct InFlight {
    id: String,
    memo: String,
    tx_hash: B256,
}

/// Posts [`PAYMENTS_PER_ROUND`] payments at once and waits until each is `submitted` with its
/// transaction in the node's pool (never mined: the node does not mine by itself).
async fn send_and_wait_submitted(
    api: &Api,
    chain: &Chain,
    to: Address,
    label: &str,
) -> Vec<InFlight> {
    let mut set = JoinSet::new();
    for i in 0..PAYMENTS_PER_ROUND {
        let api = api.clone();
        let memo = format!("{label}-{i}");
        let body = json!({"to": checksummed(to), "amount": "0.25", "memo": memo});
        let key = format!("{memo}-{}", random_hex(8));
        set.spawn(async move {
            let (status, job) = api.send(&body, Some(&key)).await;
            assert_eq!(status, 202, "send {memo}: {job}");
            (memo, text(&job, "id").to_string())
        });
    }
    let mut accepted = Vec::new();
    while let Some(joined) = set.join_next().await {
        accepted.push(joined.expect("send task"));
    }

    let mut in_flight = Vec::new();
    for (memo, id) in accepted {
        let job = wait_submitted(api, chain, &id, Duration::from_secs(SUBMIT_SECS)).await;
        let tx_hash = parse_b256(text(&job, "tx_hash"));
        assert!(
            chain.receipt(tx_hash).await.is_none(),
            "mined under --no-mining"
        );
        in_flight.push(InFlight { id, memo, tx_hash });
    }
    in_flight
}

/// Polls every payment of the round until all are `confirmed`, at most [`RECOVERY_SECS`] after
/// `since`; any status but `queued`, `submitted` or `confirmed` fails at once.
async fn wait_recovered(
    api: &Api,
    chain: &Chain,
    payments: &[InFlight],
    since: Instant,
) -> Vec<Value> {
    let deadline = Duration::from_secs(RECOVERY_SECS);
    let mut done: BTreeMap<String, Value> = BTreeMap::new();
    while done.len() < payments.len() {
        // Anything re-signed by mistake would wait in the pool: mine it so it is counted.
        chain.mine().await;
        for payment in payments {
            if done.contains_key(&payment.id) {
                continue;
            }
            let job = api.job(&payment.id).await;
            match text(&job, "status") {
                "confirmed" => {
                    done.insert(payment.id.clone(), job);
                }
                "queued" | "submitted" if since.elapsed() < deadline => {}
                "queued" | "submitted" => {
                    panic!(
                        "payment {} not recovered after {deadline:?}: {job}",
                        payment.memo
                    )
                }
                _ => panic!(
                    "payment {} went wrong after the restart: {job}",
                    payment.memo
                ),
            }
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
    payments.iter().map(|p| done[&p.id].clone()).collect()
}

/// Each payment confirmed with the one transaction stored before the restart, and its memo is
/// on chain exactly once, in that transaction.
async fn check_paid_once(chain: &Chain, to: Address, payments: &[InFlight], jobs: &[Value]) {
    chain.mine().await;
    let on_chain = chain.memo_transfers_to(PATH_USD, to).await;
    for (payment, job) in payments.iter().zip(jobs) {
        let attempts = job["attempts"].as_array().expect("attempts array");
        assert_eq!(attempts.len(), 1, "signed anew after the restart: {job}");
        assert_eq!(attempts[0]["outcome"], "included", "{job}");
        assert_eq!(parse_b256(text(job, "tx_hash")), payment.tx_hash, "{job}");

        let memo = B256::right_padding_from(payment.memo.as_bytes());
        let hits: Vec<_> = on_chain.iter().filter(|t| t.memo == memo).collect();
        assert_eq!(
            hits.len(),
            1,
            "memo {} on chain {} times",
            payment.memo,
            hits.len()
        );
        assert_eq!(hits[0].tx_hash, payment.tx_hash, "memo {}", payment.memo);
    }
}

/// After all rounds: every job still `confirmed`, exactly one transfer per job, the pool empty.
async fn check_all_settled(stack: &Stack, api: &Api, chain: &Chain, to: Address, jobs: &[Value]) {
    chain.mine().await;
    for job in jobs {
        let now = api.job(text(job, "id")).await;
        assert_eq!(now["status"], "confirmed", "{now}");
        assert_eq!(now["attempts"].as_array().map(Vec::len), Some(1), "{now}");
    }
    let transfers = chain.transfers_to(PATH_USD, to).await;
    assert_eq!(
        transfers.len(),
        jobs.len(),
        "transfers on chain: {transfers:?}"
    );
    let pool = chain
        .rpc("txpool_status", json!([]))
        .await
        .expect("txpool_status");
    assert_eq!(
        pool["pending"], "0x0",
        "transactions left in the pool: {pool}"
    );
    assert_eq!(
        pool["queued"], "0x0",
        "transactions left in the pool: {pool}"
    );
    stack.assert_alive();
}

async fn automine(chain: &Chain) {
    chain
        .rpc("evm_setAutomine", json!([true]))
        .await
        .expect("evm_setAutomine");
    chain.mine().await;
}

async fn stop_automine(chain: &Chain) {
    chain
        .rpc("evm_setAutomine", json!([false]))
        .await
        .expect("evm_setAutomine");
}

/// Waits until every payment's lock is held by the worker `identity`: it drives them now.
async fn wait_locks_held_by(stack: &Stack, payments: &[InFlight], identity: &str) {
    let redis = redis::Client::open(stack.redis_url()).expect("redis url");
    poll(
        &format!("worker {identity} to hold every payment lock"),
        Duration::from_secs(RECOVERY_SECS),
        || {
            let redis = redis.clone();
            async move {
                let mut conn = redis.get_multiplexed_async_connection().await?;
                let mut holders = Vec::new();
                for payment in payments {
                    let key = format!("{PAYMENT_LOCK_PREFIX}{}", payment.id);
                    let holder: Option<String> =
                        redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
                    holders.push(holder);
                }
                if holders.iter().all(|h| h.as_deref() == Some(identity)) {
                    return Ok(Some(()));
                }
                anyhow::bail!("lock holders {holders:?}")
            }
        },
    )
    .await;
}

/// Nonce lane lease keys (`fluxus:lane:{sender}:{key}`) whose holder is `identity`.
async fn lanes_held_by(stack: &Stack, identity: &str) -> Vec<String> {
    let redis = redis::Client::open(stack.redis_url()).expect("redis url");
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(LANE_KEYS)
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut held = Vec::new();
    for key in keys {
        let holder: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("GET");
        if holder.as_deref() == Some(identity) {
            held.push(key);
        }
    }
    held
}

/// Waits until a worker's log says it started; its identity (the `worker=` field).
async fn wait_worker_started(stack: &Stack, id: WorkerId) -> String {
    let path = stack.dir.join(format!("worker-{}.log", id.0));
    poll(
        &format!("worker {id:?} to start"),
        Duration::from_secs(WORKER_READY_SECS),
        || {
            stack.assert_alive();
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let identity = log
                .lines()
                .find(|line| line.contains("worker started"))
                .and_then(|line| {
                    line.split_whitespace()
                        .find_map(|t| t.strip_prefix("worker="))
                })
                .map(str::to_string);
            async move { Ok(identity) }
        },
    )
    .await
}
