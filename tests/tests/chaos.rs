//! Chaos: 500 payments submitted at a steady pace to two workers while workers are SIGKILLed and
//! replaced, Redis (append-only, fsync always) is SIGKILLed and restarted, and node connections
//! are reset around broadcasts and pre-check calls. Clients retry transport failures and 503s with
//! the same `Idempotency-Key`, as real clients do. Afterwards every accepted payment must be
//! `confirmed`, each memo must be on chain exactly once in the transaction its job reports, each
//! nonce lane must be gapless, and the recipients must have received exactly the sum.
//!
//! The fault schedule is random; its seed is printed, and `FLUXUS_CHAOS_SEED` replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use fluxus_tests::assert_lanes_gapless;
use fluxus_tests::{
    PATH_USD, ProxyControl, ResetWhen, Signal, Stack, StackOpts, WorkerId, checksummed,
    format_units6, fresh_address, parse_b256, random_hex, spawn_stack, text,
};
use serde_json::{Value, json};

const PAYMENTS: usize = 500;
/// Interval mining: a transaction waits for its block, so faults catch payments in flight.
const BLOCK_SECS: f64 = 0.5;
/// Added to every chunk through the node proxy (each way): a node that is not on loopback.
const RPC_DELAY_MS: u64 = 10;
const RECIPIENTS: usize = 3;
/// Concurrent submitting clients.
const CLIENTS: usize = 8;
/// Submissions are spread evenly over this window, so that the faults hit a busy stack.
const SUBMIT_WINDOW_SECS: u64 = 60;
/// One client's deadline to get a payment accepted through 503s and resets.
const ACCEPT_SECS: u64 = 120;
const WORKER_KILLS: usize = 6;
/// From a worker's SIGKILL to its replacement's start, at most.
const REPLACE_WITHIN_MS: u64 = 3_000;
/// Node connection faults armed one after the other during the window.
const RPC_FAULTS: usize = 8;
/// How long an armed node fault may wait for matching traffic before it is dropped.
const RPC_FAULT_WAIT_SECS: u64 = 20;
/// From the last acceptance to every payment `confirmed`.
const ALL_CONFIRMED_SECS: u64 = 360;
/// Replays a fault schedule.
const SEED_ENV: &str = "FLUXUS_CHAOS_SEED";

/// The node faults, cycled in this order.
/// `eth_sendRawTransaction` also matches `eth_sendRawTransactionSync`, which answers with the
/// receipt (so receipts are seldom polled); `eth_call` is the pre-check every payment makes.
const RPC_FAULT_KINDS: [(&str, ResetWhen); 4] = [
    ("eth_sendRawTransaction", ResetWhen::BeforeForwarding),
    ("eth_call", ResetWhen::AfterForwarding),
    ("eth_sendRawTransaction", ResetWhen::AfterForwarding),
    ("eth_call", ResetWhen::BeforeForwarding),
];

/// One payment of the run.
#[derive(Clone, Debug)]
struct Payment {
    memo: String,
    to: Address,
    base_units: u128,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_survive_worker_redis_and_node_faults() {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap())
        });
    eprintln!("chaos seed {seed} (replay with {SEED_ENV}={seed})");
    let mut rng = Rng::new(seed);

    let stack = spawn_stack(StackOpts {
        workers: 2,
        block_time: Some(BLOCK_SECS),
        rpc_proxy: true,
        redis_aof: true,
        extra_env: vec![("FLUXUS_WORKER_LANES".into(), "4".into())],
        ..StackOpts::default()
    })
    .await;
    stack
        .rpc_proxy()
        .set_delay(Duration::from_millis(RPC_DELAY_MS));
    let recipients: Vec<Address> = (0..RECIPIENTS).map(|_| fresh_address()).collect();
    let payments: Vec<Payment> = (0..PAYMENTS)
        .map(|i| Payment {
            memo: format!("chaos-{i}"),
            to: recipients[i % RECIPIENTS],
            base_units: 1_000 + i as u128,
        })
        .collect();
    let payments = Arc::new(payments);

    // Clients submit at a steady pace while the faults run.
    let started = Instant::now();
    let submitters: Vec<_> = (0..CLIENTS)
        .map(|client| tokio::spawn(submit(stack.api(), Arc::clone(&payments), client, started)))
        .collect();
    let node_faults = tokio::spawn(node_faults(
        stack.rpc_proxy().control(),
        Rng::new(rng.next()),
        started,
    ));
    let mut workers = stack.workers();
    workers.extend(process_faults(&stack, &mut rng, started).await);

    let mut ids = vec![String::new(); PAYMENTS];
    let mut retried = 0;
    for submitter in submitters {
        for (i, id, tries) in submitter.await.expect("a submitting client panicked") {
            ids[i] = id;
            retried += usize::from(tries > 1);
        }
    }
    let fired = node_faults.await.expect("the node fault task panicked");
    let accepted_at = started.elapsed();
    eprintln!("[{accepted_at:.1?}] all {PAYMENTS} accepted ({retried} after retries)");

    let jobs = stack
        .api()
        .wait_all(
            &ids,
            &["confirmed"],
            Duration::from_secs(ALL_CONFIRMED_SECS),
        )
        .await;
    eprintln!("[{:.1?}] all confirmed", started.elapsed());

    assert_each_memo_once(&stack, &payments, &jobs).await;
    assert_lanes_gapless(&stack, &jobs).await;
    for (to, sum) in sums(&payments) {
        assert_eq!(
            stack.chain().balance_u128(PATH_USD, to).await,
            sum,
            "balance of {to}"
        );
    }
    assert!(
        fired.iter().all(|n| *n > 0),
        "every node fault kind should have fired at least once: {fired:?} of {RPC_FAULT_KINDS:?}"
    );
    // The kills must have hit work in flight, or this test proved little about them.
    let handed_over = handed_over(&stack, &workers);
    report(&jobs, &fired, handed_over);
    assert!(
        handed_over > 0,
        "no payment was touched by two worker processes: the kills hit idle workers only"
    );
    stack.assert_alive();
}

/// Client `client` submits every `CLIENTS`-th payment at its slot in the window, retrying until
/// accepted; `(index, job id, tries)` of each.
async fn submit(
    api: fluxus_tests::Api,
    payments: Arc<Vec<Payment>>,
    client: usize,
    started: Instant,
) -> Vec<(usize, String, u32)> {
    let slot = Duration::from_secs(SUBMIT_WINDOW_SECS) / PAYMENTS as u32;
    let mut accepted = Vec::new();
    for i in (client..PAYMENTS).step_by(CLIENTS) {
        tokio::time::sleep_until((started + slot * i as u32).into()).await;
        let payment = &payments[i];
        let body = json!({
            "to": checksummed(payment.to),
            "amount": format_units6(payment.base_units),
            "memo": payment.memo,
        });
        let key = format!("chaos-{i}-{}", random_hex(8));
        let (reply, tries) = api
            .send_until_accepted(&body, &key, Duration::from_secs(ACCEPT_SECS))
            .await;
        accepted.push((i, text(&reply.body, "id").to_string(), tries));
    }
    accepted
}

/// Worker SIGKILLs (each followed by a replacement) and one Redis SIGKILL and restart, at
/// random moments spread over the submission window; the replacement workers.
async fn process_faults(stack: &Stack, rng: &mut Rng, started: Instant) -> Vec<WorkerId> {
    let window_ms = SUBMIT_WINDOW_SECS * 1000;
    let step = window_ms / (WORKER_KILLS as u64 + 1);
    let mut events: Vec<(u64, bool)> = (1..=WORKER_KILLS as u64)
        .map(|k| (k * step - rng.below(step / 2), false))
        .collect();
    events.push((window_ms / 3 + rng.below(window_ms / 3), true));
    events.sort_unstable();
    let mut replacements = Vec::new();

    for (at_ms, is_redis) in events {
        tokio::time::sleep_until((started + Duration::from_millis(at_ms)).into()).await;
        if is_redis {
            stack.restart_redis(Signal::Kill).await;
            eprintln!("[{:.1?}] redis killed and restarted", started.elapsed());
            continue;
        }
        let workers = stack.workers();
        let victim = workers[rng.below(workers.len() as u64) as usize];
        stack.kill_worker(victim, Signal::Kill);
        tokio::time::sleep(Duration::from_millis(
            500 + rng.below(REPLACE_WITHIN_MS - 500),
        ))
        .await;
        let replacement = stack.start_worker();
        replacements.push(replacement);
        eprintln!(
            "[{:.1?}] killed {victim:?}, started {replacement:?}",
            started.elapsed()
        );
    }
    replacements
}

/// Arms the node faults one after the other until the window ends; how many of each kind fired.
async fn node_faults(rpc: ProxyControl, mut rng: Rng, started: Instant) -> [usize; 4] {
    let mut fired = [0; RPC_FAULT_KINDS.len()];
    let window = Duration::from_secs(SUBMIT_WINDOW_SECS);
    let gap_ms = SUBMIT_WINDOW_SECS * 1000 / RPC_FAULTS as u64;
    for n in 0..RPC_FAULTS {
        if started.elapsed() >= window {
            break;
        }
        tokio::time::sleep(Duration::from_millis(gap_ms / 2 + rng.below(gap_ms / 2))).await;
        let kind = n % RPC_FAULT_KINDS.len();
        let (method, when) = RPC_FAULT_KINDS[kind];
        let trigger = rpc.reset_on_next(method, when);
        let deadline = Instant::now() + Duration::from_secs(RPC_FAULT_WAIT_SECS);
        while !trigger.has_fired() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rpc.disarm_all();
        if trigger.has_fired() {
            fired[kind] += 1;
            eprintln!(
                "[{:.1?}] node reset {when:?} on {method}",
                started.elapsed()
            );
        }
    }
    fired
}

/// Every memo exactly once on chain, to the right recipient, with the right amount, in the
/// transaction its job reports; nothing else reached the recipients.
async fn assert_each_memo_once(stack: &Stack, payments: &[Payment], jobs: &[Value]) {
    let chain = stack.chain();
    let mut on_chain: BTreeMap<B256, Vec<(Address, U256, B256)>> = BTreeMap::new();
    let mut transfers = 0;
    for to in sums(payments).into_keys() {
        for log in chain.memo_transfers_to(PATH_USD, to).await {
            on_chain
                .entry(log.memo)
                .or_default()
                .push((log.to, log.amount, log.tx_hash));
        }
        transfers += chain.transfers_to(PATH_USD, to).await.len();
    }
    let mut wrong = Vec::new();
    for (payment, job) in payments.iter().zip(jobs) {
        let memo = B256::right_padding_from(payment.memo.as_bytes());
        let found = on_chain.remove(&memo).unwrap_or_default();
        let expected = (
            payment.to,
            U256::from(payment.base_units),
            parse_b256(text(job, "tx_hash")),
        );
        if found != [expected] {
            wrong.push(format!(
                "{} (job {}): on chain {found:?}, expected {expected:?}",
                payment.memo, job["id"]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} payments not on chain exactly once:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        on_chain.is_empty(),
        "unexpected memos on chain: {on_chain:?}"
    );
    assert_eq!(transfers, payments.len(), "Transfer logs to the recipients");
}

/// What each recipient must have received.
fn sums(payments: &[Payment]) -> BTreeMap<Address, u128> {
    let mut sums = BTreeMap::new();
    for payment in payments {
        *sums.entry(payment.to).or_default() += payment.base_units;
    }
    sums
}

/// Payments that more than one worker process logged: work a killed worker left behind.
fn handed_over(stack: &Stack, workers: &[WorkerId]) -> usize {
    const FIELD: &str = "payment_id=";
    let mut seen_by: BTreeMap<String, BTreeSet<WorkerId>> = BTreeMap::new();
    for &worker in workers {
        let log = std::fs::read(stack.worker_log(worker)).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        for (at, _) in log.match_indices(FIELD) {
            let id: String = log[at + FIELD.len()..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            if !id.is_empty() {
                seen_by.entry(id).or_default().insert(worker);
            }
        }
    }
    seen_by.values().filter(|workers| workers.len() > 1).count()
}

/// Attempt counts, for the test's output: how often a payment needed more than one tx.
fn report(jobs: &[Value], fired: &[usize], handed_over: usize) {
    let mut by_attempts: BTreeMap<usize, usize> = BTreeMap::new();
    for job in jobs {
        *by_attempts
            .entry(job["attempts"].as_array().map_or(0, Vec::len))
            .or_default() += 1;
    }
    eprintln!(
        "payments by attempt count: {by_attempts:?}; node faults fired: {fired:?}; \
         {handed_over} payments handled by more than one worker process"
    );
}

/// xorshift64*: a reproducible fault schedule without another crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}
