//! Admission control under a deep queue (issue 3 acceptance). With no worker running, 20,000
//! payments are posted as fast as 64 requests in flight allow. Every answer is either 202 or
//! a 503 `queue-full` problem with `Retry-After`; about `FLUXUS_MAX_QUEUE_DEPTH` (5,000, the
//! default) are accepted, and a refused request leaves no record and no idempotency key. Then two
//! workers with 8 lanes each drain the queue: every accepted payment ends `confirmed`, its memo
//! is on chain exactly once (in the transaction its job names), no refused memo is on chain at
//! all, and `fluxus_queue_depth` is back to 0. Timings are printed (`--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use fluxus_tests::{
    Api, PATH_USD, Reply, Stack, StackOpts, checksummed, fresh_address, parse_b256, spawn_stack,
    text,
};
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// Payments posted while no worker runs.
const PAYMENTS: usize = 20_000;
/// Requests in flight at once, while posting and while reading jobs back.
const IN_FLIGHT: usize = 64;
/// The API's default `FLUXUS_MAX_QUEUE_DEPTH`.
const MAX_QUEUE_DEPTH: usize = 5_000;
/// Workers that drain the queue, and the lanes each leases.
const WORKERS: usize = 2;
const LANES_PER_WORKER: u32 = 8;
/// Deadline for every accepted payment to be confirmed once the workers start. Generous: the
/// machine has 2 cores shared by the node, Redis, the API, both workers and this test.
const DRAIN_SECS: u64 = 1_800;
/// How often the drain is checked (one `GET /metrics`), and progress printed.
const DRAIN_POLL_MS: u64 = 1_000;
const PROGRESS_EVERY_SECS: u64 = 15;
/// Timeout of one HTTP request.
const REQUEST_SECS: u64 = 60;
/// Keys of payment records and idempotency keys in Redis (to see that a 503 stored nothing).
const PAYMENT_KEYS: &str = "fluxus:payment:*";
const IDEMPOTENCY_KEYS: &str = "fluxus:idem:*";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_queue_admits_up_to_the_limit_then_drains() {
    let test_started = Instant::now();
    let stack = spawn_stack(StackOpts {
        workers: 0,
        extra_env: vec![(
            "FLUXUS_WORKER_LANES".to_string(),
            LANES_PER_WORKER.to_string(),
        )],
        ..StackOpts::default()
    })
    .await;
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();

    // Post everything with no worker running.
    let posting = Instant::now();
    let outcomes = post_all(&stack, to).await;
    let post_secs = posting.elapsed().as_secs_f64();
    let accepted: BTreeMap<usize, String> = outcomes
        .iter()
        .filter_map(|(i, o)| match o {
            Outcome::Accepted(id) => Some((*i, id.clone())),
            Outcome::QueueFull => None,
        })
        .collect();
    let refused = PAYMENTS - accepted.len();
    eprintln!(
        "posted {PAYMENTS} in {post_secs:.1} s ({:.0}/s): {} accepted, {refused} refused \
         queue-full",
        PAYMENTS as f64 / post_secs,
        accepted.len()
    );

    // About the limit accepted: concurrent requests can each pass the depth check before any
    // of them has pushed its job, so up to IN_FLIGHT - 1 more than the limit is tolerated.
    assert!(
        (MAX_QUEUE_DEPTH..MAX_QUEUE_DEPTH + IN_FLIGHT).contains(&accepted.len()),
        "{} accepted with FLUXUS_MAX_QUEUE_DEPTH={MAX_QUEUE_DEPTH}",
        accepted.len()
    );
    let ids: BTreeSet<&String> = accepted.values().collect();
    assert_eq!(
        ids.len(),
        accepted.len(),
        "two payments got the same job id"
    );

    // A refusal stored nothing: one record and one idempotency key per accepted payment.
    let store = stack.store();
    let records = store.keys(PAYMENT_KEYS).expect("scan payment keys");
    let idempotency = store.keys(IDEMPOTENCY_KEYS).expect("scan idempotency keys");
    assert_eq!(records.len(), accepted.len(), "payment records in Redis");
    assert_eq!(
        idempotency.len(),
        accepted.len(),
        "idempotency keys in Redis"
    );
    assert_eq!(
        queue_depth(&api).await,
        accepted.len() as u64,
        "queue depth before the drain"
    );

    // Two workers drain the queue.
    let draining = Instant::now();
    for _ in 0..WORKERS {
        stack.start_worker();
    }
    wait_drained(&stack, &api, accepted.len() as u64).await;
    let drain_secs = draining.elapsed().as_secs_f64();
    eprintln!(
        "{} confirmed {drain_secs:.1} s after {WORKERS} workers x {LANES_PER_WORKER} lanes \
         started ({:.1}/s)",
        accepted.len(),
        accepted.len() as f64 / drain_secs
    );

    // Every accepted job confirmed, read back once each.
    let jobs = read_jobs(&api, &accepted).await;
    let mut tx_of_memo: BTreeMap<B256, B256> = BTreeMap::new();
    for (i, job) in &jobs {
        assert_eq!(job["status"], "confirmed", "dq-{i}: {job}");
        assert_eq!(job["memo"], memo_text(*i).as_str(), "dq-{i}: {job}");
        tx_of_memo.insert(memo_word(*i), parse_b256(text(job, "tx_hash")));
    }

    // On chain: each accepted memo once, in its job's transaction; no refused memo at all.
    let transfers = chain.memo_transfers_to(PATH_USD, to).await;
    let mut seen: BTreeMap<B256, Vec<B256>> = BTreeMap::new();
    for transfer in &transfers {
        seen.entry(transfer.memo)
            .or_default()
            .push(transfer.tx_hash);
    }
    let mut wrong = Vec::new();
    for (memo, txs) in &seen {
        match tx_of_memo.get(memo) {
            Some(tx) if txs == &vec![*tx] => {}
            Some(tx) => wrong.push(format!("memo {memo}: job tx {tx}, on chain {txs:?}")),
            None => wrong.push(format!(
                "memo {memo} of no accepted payment on chain: {txs:?}"
            )),
        }
    }
    let missing = tx_of_memo.keys().filter(|m| !seen.contains_key(*m)).count();
    assert!(
        missing == 0 && wrong.is_empty(),
        "{missing} accepted memos missing; {wrong:#?}"
    );
    assert_eq!(
        transfers.len(),
        accepted.len(),
        "transfers to the recipient"
    );

    assert_eq!(
        queue_depth(&api).await,
        0,
        "fluxus_queue_depth after the drain"
    );
    stack.assert_alive();
    eprintln!(
        "deep queue test took {:.1} s",
        test_started.elapsed().as_secs_f64()
    );
}

/// What one POST was answered.
#[derive(Clone, Debug)]
enum Outcome {
    /// 202 with this job id.
    Accepted(String),
    /// 503 queue-full with `Retry-After`.
    QueueFull,
}

fn memo_text(i: usize) -> String {
    format!("dq-{i}")
}

fn memo_word(i: usize) -> B256 {
    B256::right_padding_from(memo_text(i).as_bytes())
}

/// Posts payments `0..PAYMENTS` with [`IN_FLIGHT`] requests at a time. Panics on any answer
/// that is neither 202 nor a well-formed 503 queue-full.
async fn post_all(stack: &Stack, to: Address) -> Vec<(usize, Outcome)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(REQUEST_SECS))
        .build()
        .expect("http client");
    let url = format!("{}/api/v1/send", stack.api_url());
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (http, url, next) = (http.clone(), url.clone(), Arc::clone(&next));
        let key = stack.api_key.clone();
        set.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= PAYMENTS {
                    return outcomes;
                }
                let memo = memo_text(i);
                let body = json!({"to": checksummed(to), "amount": "0.01", "memo": memo});
                let request = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header(CONTENT_TYPE, "application/json")
                    .header("Idempotency-Key", format!("{memo}-key"))
                    .body(body.to_string());
                let reply = send(request)
                    .await
                    .unwrap_or_else(|err| panic!("POST {memo}: {err:#}"));
                outcomes.push((i, classify(&memo, &reply)));
            }
        });
    }
    let mut all = Vec::with_capacity(PAYMENTS);
    while let Some(joined) = set.join_next().await {
        all.extend(joined.expect("poster task"));
    }
    all.sort_by_key(|(i, _)| *i);
    assert_eq!(all.len(), PAYMENTS);
    all
}

fn classify(memo: &str, reply: &Reply) -> Outcome {
    match reply.status {
        202 => Outcome::Accepted(text(&reply.body, "id").to_string()),
        503 => {
            if let Err(err) = reply.check_problem(503, Some("queue-full"), None) {
                panic!("POST {memo}: {err}");
            }
            let retry_after = reply.header("Retry-After").unwrap_or_default();
            let secs: u64 = retry_after.parse().unwrap_or_else(|_| {
                panic!("POST {memo}: Retry-After {retry_after:?} is not seconds: {reply:?}")
            });
            assert!(secs > 0, "POST {memo}: Retry-After {secs}");
            Outcome::QueueFull
        }
        other => panic!("POST {memo}: neither 202 nor 503: {other} {}", reply.text),
    }
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers: HeaderMap = response.headers().clone();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        headers,
        body,
        text,
    })
}

/// The `fluxus_queue_depth` gauge of `GET /metrics`.
async fn queue_depth(api: &Api) -> u64 {
    let metrics = api.get("/metrics").await;
    assert_eq!(metrics.status, 200, "{}", metrics.text);
    metric(&metrics.text, "fluxus_queue_depth").expect("fluxus_queue_depth in /metrics")
}

/// The value of the sample whose name and labels are exactly `series`.
fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

/// Waits until the workers report `accepted` confirmed send jobs and the queue is empty,
/// failing at once if any send job ends otherwise. One `GET /metrics` per poll.
async fn wait_drained(stack: &Stack, api: &Api, accepted: u64) {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    loop {
        stack.assert_alive();
        let metrics = api.get("/metrics").await;
        let confirmed = metric(
            &metrics.text,
            r#"fluxus_jobs_total{kind="send",outcome="confirmed"}"#,
        )
        .unwrap_or(0);
        let depth = metric(&metrics.text, "fluxus_queue_depth").unwrap_or(u64::MAX);
        let other: Vec<&str> = metrics
            .text
            .lines()
            .filter(|l| l.starts_with("fluxus_jobs_total{") && !l.contains("\"confirmed\""))
            .collect();
        assert!(
            other.is_empty(),
            "send jobs that did not confirm: {other:?}"
        );
        if confirmed >= accepted && depth == 0 {
            return;
        }
        if last_progress.elapsed() >= Duration::from_secs(PROGRESS_EVERY_SECS) {
            eprintln!(
                "drain: {confirmed}/{accepted} confirmed, queue depth {depth}, {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_progress = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(DRAIN_SECS),
            "not drained within {DRAIN_SECS} s: {confirmed}/{accepted} confirmed, depth {depth}"
        );
        tokio::time::sleep(Duration::from_millis(DRAIN_POLL_MS)).await;
    }
}

/// `GET /api/v1/jobs/{id}` of every accepted payment, [`IN_FLIGHT`] at a time.
async fn read_jobs(api: &Api, accepted: &BTreeMap<usize, String>) -> Vec<(usize, Value)> {
    let queue: Arc<Vec<(usize, String)>> =
        Arc::new(accepted.iter().map(|(i, id)| (*i, id.clone())).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (api, queue, next) = (api.clone(), Arc::clone(&queue), Arc::clone(&next));
        set.spawn(async move {
            let mut jobs = Vec::new();
            while let Some((i, id)) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
                jobs.push((*i, api.job(id).await));
            }
            jobs
        });
    }
    let mut jobs = Vec::with_capacity(accepted.len());
    while let Some(joined) = set.join_next().await {
        jobs.extend(joined.expect("reader task"));
    }
    jobs.sort_by_key(|(i, _)| *i);
    jobs
}
