//! fluxus-worker: consumes send jobs, signs, submits and confirms Tempo transactions.
//!
//! - [`lanes`]: nonce lanes leased from Redis, one transaction in flight per lane.
//! - [`send`]: one payment from `queued` to its true terminal status.
//! - [`batch`]: the payments waiting for a lane leave together, in one transaction.
//! - [`outbox`]: pushes jobs of accepted payments whose push was not confirmed.
//! - [`run`]: the apalis-redis consumer and the process lifecycle.
//!
//! How the queue is used, and why (apalis-redis 1.0, measured):
//! - Delivery is at least once and a re-delivery does not count as an attempt, so a job carries
//!   only the payment id and the payment record (under a lock) decides what to do.
//! - Pushed jobs wait in a sorted set that every fetch promotes with one Lua `unpack`; about
//!   8,000 due jobs make every fetch fail and the queue stops. The API therefore refuses new
//!   payments with 503 and `Retry-After` above `FLUXUS_MAX_QUEUE_DEPTH` (default 5,000), and a
//!   failing payment is retried inside its handler first ([`HANDLER_TRIES`]), so a mass outage
//!   does not pour thousands of jobs into the retry set at once.
//! - A plain error is retried 25 times with almost no backoff, then the job is dead:
//!   `AbortError` is used only for a job whose payment does not exist.
//! - Idle workers fetch only on heartbeat ([`HEARTBEAT_INTERVAL_MS`]); worker names are unique per
//!   process start or a restarted worker idles; the Redis client waits 5 s for a reply (500 ms
//!   killed workers on a short stall) and the monitor restarts a worker that stopped on an error.
//! - Finished jobs are kept by apalis forever; a background task deletes their data.

pub mod batch;
pub mod lanes;
pub mod outbox;
pub mod send;
pub mod state;

use std::{sync::Arc, time::Duration};

use apalis::prelude::*;
use apalis_redis::{Config as QueueConfig, RedisStorage};
use fluxus_shared::{
    chain::Chain,
    config::WorkerConfig,
    queue::{SEND_QUEUE, SendJob},
    store::{self, Store},
    tx::signer_from_hex,
};
use tracing::{error, info, instrument, warn};

use crate::{lanes::Lanes, send::SendError, state::WorkerState};

/// Idle workers fetch only on heartbeat, so it is short: a payment accepted while every worker
/// is idle waits up to this long to be picked up (500 ms made that wait most of a 400-payment
/// burst's time). Each heartbeat is three small Redis scripts.
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// A worker silent for this many heartbeats (10 s) is dead and its jobs are re-queued.
pub const MISSED_HEARTBEATS: usize = 100;
/// How long a SIGTERM waits for in-flight payments before the process exits. Payments whose
/// outcome is still unknown stop waiting at once, release their lock and return to the queue;
/// another worker resumes them from their records.
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 20;

/// Tries per delivery before the job goes back to apalis for a later delivery. apalis retries
/// a failed job at most 25 times with little backoff, so transient faults (a Redis stall, a
/// lost lock) are retried here first, with backoff.
pub const HANDLER_TRIES: u32 = 12;
const HANDLER_BACKOFF_MAX_MS: u64 = 10_000;

#[instrument(skip_all, fields(payment_id = %job.payment_id))]
async fn handle(job: SendJob, state: Data<Arc<WorkerState>>) -> Result<(), BoxDynError> {
    let mut backoff_ms = 250;
    for attempt in 1..=HANDLER_TRIES {
        match send::process(&state, &job.payment_id).await {
            Ok(()) => return Ok(()),
            // A job for a record that does not exist can never succeed: do not retry it.
            Err(e @ SendError::Unknown(_)) => return Err(AbortError::new(e).into()),
            // Its lock is released: another worker resumes it from the record.
            Err(e @ SendError::ShuttingDown) => return Err(e.into()),
            Err(e) if attempt == HANDLER_TRIES => {
                error!(cause = %e, "payment interrupted; it resumes from its record on redelivery");
                return Err(e.into());
            }
            Err(e) => {
                let cause = e.to_string();
                warn!(
                    cause,
                    attempt, backoff_ms, "payment interrupted; resuming from its record"
                );
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(HANDLER_BACKOFF_MAX_MS);
            }
        }
    }
    unreachable!("the last try returns")
}

pub fn worker_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "fluxus-worker-{host}-{}-{}",
        std::process::id(),
        &nonce[..8]
    )
}

/// Runs the worker until SIGINT or SIGTERM.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let conn = store::connect(config.common.redis_url.expose()).await?;
    let store = Store::new(conn.clone());
    let chain = Chain::connect(config.common.rpc_url.expose()).map_err(anyhow::Error::msg)?;
    let chain_id = chain.chain_id().await?;
    let signer = signer_from_hex(config.sender_key.expose()).map_err(anyhow::Error::msg)?;
    let identity = worker_identity();

    let lanes = Lanes::new(
        store.clone(),
        signer.address(),
        identity.clone(),
        config.lanes,
        config.lane_pool,
    );
    lanes.fill().await;
    let renewal = lanes.spawn_renewal();
    info!(
        worker = %identity, sender = %signer.address(), chain_id, lanes = config.lanes,
        "worker started"
    );

    let cleaner = spawn_job_cleaner(store.clone());
    // Payments in hand: a full transaction on every lane, and as many again waiting, so a lane
    // that frees finds a full transaction's worth ready (with only the first, transactions
    // carried about half of FLUXUS_BATCH_MAX under 0.5 s blocks).
    let concurrency = (2 * config.lanes * config.batch_max) as usize;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (batches, requests) = tokio::sync::mpsc::unbounded_channel();
    let state = Arc::new(WorkerState {
        config,
        store,
        chain,
        chain_id,
        signer,
        lanes: lanes.clone(),
        identity,
        gas_price: std::sync::Mutex::new(None),
        gas_limits: std::sync::Mutex::new(Default::default()),
        shutdown: shutdown_rx,
        batches,
    });
    let dispatcher = batch::spawn_dispatcher(state.clone(), requests);
    let queue_config = QueueConfig::default()
        .queue(SEND_QUEUE)
        // One fetch brings a full transaction's worth of jobs.
        .batch_size(state.config.batch_max as usize)
        .heartbeat_interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS))
        .missed_heartbeats(MISSED_HEARTBEATS);
    let storage: RedisStorage<SendJob> = RedisStorage::new(conn).with_config(queue_config);
    let sweeper = outbox::spawn_sweeper(state.store.clone(), storage.clone());

    let name = state.identity.clone();
    Monitor::new()
        .register(move |restarts| {
            // apalis refuses to register a name seen within the dead-worker threshold, so a
            // worker restarted by the monitor (after a Redis outage, say) gets a fresh name.
            WorkerBuilder::new(format!("{name}-{restarts}"))
                .backend(storage.clone())
                .data(state.clone())
                .concurrency(concurrency)
                .build(handle)
        })
        .should_restart(|_, error| {
            warn!(cause = %error, "queue worker stopped on an error; restarting it");
            true
        })
        .shutdown_timeout(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS))
        .run_with_signal(async move {
            shutdown_signal().await?;
            info!("stopping: in-flight payments go back to the queue with their records");
            let _ = shutdown_tx.send(true);
            Ok(())
        })
        .await?;

    renewal.abort();
    dispatcher.abort();
    cleaner.abort();
    sweeper.abort();
    lanes.release_all().await;
    info!("worker stopped");
    Ok(())
}

/// How often finished jobs' data is deleted from the queue, and how many at a time.
const JOB_CLEAN_EVERY_SECS: u64 = 10;
const JOB_CLEAN_BATCH: usize = 1_000;

/// Deletes finished jobs' data, which apalis-redis would keep forever.
fn spawn_job_cleaner(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(JOB_CLEAN_EVERY_SECS)).await;
            loop {
                match store.clean_finished_jobs(JOB_CLEAN_BATCH).await {
                    Ok(n) if n == JOB_CLEAN_BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        warn!(cause = %e, "could not clean finished jobs");
                        break;
                    }
                }
            }
        }
    })
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
