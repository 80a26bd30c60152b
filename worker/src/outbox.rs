//! The outbox sweep: pushes the job of every accepted payment whose push is not confirmed.
//!
//! The API stores a payment and its outbox entry in one script, then pushes the job and clears
//! the entry. If the push failed (a Redis blip) or the API died in between, the payment would
//! sit `queued` with no job; every worker sweeps entries older than [`OUTBOX_GRACE_MS`] and
//! pushes them. A duplicate job is harmless: the payment lock and record decide what runs.

use std::time::Duration;

use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use fluxus_shared::{queue::SendJob, record::now_ms, store::Store};
use tracing::{info, warn};

/// How old an outbox entry must be before a sweep pushes it (the API normally clears it
/// within milliseconds).
pub const OUTBOX_GRACE_MS: u64 = 5_000;
const OUTBOX_SWEEP_EVERY_MS: u64 = 2_000;
const OUTBOX_BATCH: usize = 500;

/// Sweeps until the process stops.
pub fn spawn_sweeper(store: Store, queue: RedisStorage<SendJob>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(OUTBOX_SWEEP_EVERY_MS)).await;
            if let Err(e) = sweep(&store, &queue).await {
                warn!(cause = %e, "outbox sweep failed; next sweep retries");
            }
        }
    })
}

async fn sweep(store: &Store, queue: &RedisStorage<SendJob>) -> Result<(), anyhow::Error> {
    let due = store
        .take_unpushed(now_ms().saturating_sub(OUTBOX_GRACE_MS), OUTBOX_BATCH)
        .await?;
    for payment_id in due {
        let job = SendJob {
            payment_id: payment_id.clone(),
        };
        match queue.clone().push(job).await {
            Ok(()) => info!(%payment_id, "pushed the job of an accepted payment from the outbox"),
            Err(e) => {
                warn!(%payment_id, cause = %e, "outbox push failed; returning it");
                store.return_unpushed(&payment_id, now_ms()).await?;
            }
        }
    }
    Ok(())
}
