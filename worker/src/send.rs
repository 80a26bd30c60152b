//! Driving one payment from `queued` to a true terminal status.
//!
//! The record in Redis is the state machine. A pending attempt (signed, stored, maybe
//! broadcast) is always followed to its fate before anything new is signed: it is re-broadcast
//! and watched until a receipt appears, or until it is provably dead: the chain holds a block
//! stamped past its `valid_before` (the chain's clock decides, never ours) and no receipt, or
//! its lane nonce was taken by another transaction. Only then is a new attempt signed, and it
//! is stored before it is broadcast (by [`crate::batch`], which may put it in one transaction
//! with other payments). Every record write checks that this worker still
//! holds the payment's lock, so two workers can never both sign for it.

use std::time::Duration;

use alloy::primitives::Address;
use fluxus_shared::{
    chain::{ChainError, Receipt},
    record::{Attempt, AttemptOutcome, Fee, JobStatus, PaymentRecord, now_ms},
    store::StoreError,
};
use tracing::{info, warn};

use crate::{batch, state::WorkerState};

/// How long a worker's claim on a payment lasts without renewal.
pub const PAYMENT_LOCK_TTL_MS: u64 = 15_000;
const PAYMENT_LOCK_RENEW_MS: u64 = 3_000;
/// Pool conflicts tolerated in a row before the payment is failed with the node's reason.
pub(crate) const MAX_REFUSED_ATTEMPTS: usize = 3;
/// A replacement bids at least this much more (percent) than the attempt it replaces.
const FEE_BUMP_PERCENT: u64 = 25;
/// Receipt polls start fast (a dev node or a fast chain includes within milliseconds) and
/// settle at [`RECEIPT_POLL_MS`]; a fixed 250 ms first wait capped throughput at ~4 per lane/s.
const RECEIPT_POLL_STEPS_MS: [u64; 6] = [5, 10, 20, 50, 100, 200];
const RECEIPT_POLL_MS: u64 = 250;
/// Every this many receipt polls, the lane nonce is checked and the tx re-broadcast.
const NONCE_CHECK_EVERY_POLLS: u32 = 12;
const TRANSIENT_BACKOFF_MAX_MS: u64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("payment {0} does not exist")]
    Unknown(String),
    #[error("lost the lock on payment {0} to another worker")]
    LockLost(String),
    #[error("node: {0}")]
    Chain(#[from] ChainError),
    /// The process is stopping; the payment goes back to the queue for another worker.
    #[error("worker shutting down; payment handed back")]
    ShuttingDown,
    /// The task sending the payment's transaction ended without an answer; the record says
    /// where the payment stands.
    #[error("the batch carrying payment {0} ended without an answer")]
    BatchLost(String),
    /// Storing a shared transaction failed; whether it was written is unknown, and it was
    /// not broadcast.
    #[error("store: {0}")]
    BatchStore(String),
}

/// What became of a followed attempt.
pub(crate) enum Fate {
    Included(Receipt),
    Dead,
    /// Still unknown, and the process is stopping.
    Interrupted,
}

/// Handles one delivery of a payment's job: waits for the payment's lock, then drives it.
pub async fn process(state: &WorkerState, payment_id: &str) -> Result<(), SendError> {
    let holder = &state.identity;
    loop {
        if state
            .store
            .lock_payment(payment_id, holder, PAYMENT_LOCK_TTL_MS)
            .await?
        {
            break;
        }
        if *state.shutdown.borrow() {
            return Err(SendError::ShuttingDown);
        }
        // Another worker drives it (a duplicate delivery); done once it is terminal.
        match state.store.get(payment_id).await? {
            None => return Err(SendError::Unknown(payment_id.into())),
            Some(r) if r.status.is_terminal() => return Ok(()),
            Some(_) => tokio::time::sleep(Duration::from_millis(PAYMENT_LOCK_RENEW_MS)).await,
        }
    }

    // Dropped with this future too: a handler that apalis drops (its worker restarted) stops
    // renewing, so its lock expires and the job's next delivery can take the payment.
    let renewal = AbortOnDrop(spawn_lock_renewal(state, payment_id));
    let result = drive(state, payment_id).await;
    drop(renewal);
    if let Err(e) = state.store.unlock_payment(payment_id, holder).await {
        warn!(payment_id, cause = %e, "could not release payment lock; it expires by itself");
    }
    result
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_lock_renewal(state: &WorkerState, payment_id: &str) -> tokio::task::JoinHandle<()> {
    let store = state.store.clone();
    let (id, holder) = (payment_id.to_owned(), state.identity.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(PAYMENT_LOCK_RENEW_MS)).await;
            match store
                .renew_payment_lock(&id, &holder, PAYMENT_LOCK_TTL_MS)
                .await
            {
                Ok(true) => {}
                // Every write checks the lock, so losing it only stops our writes. It is never
                // taken back: another worker may have finished the payment meanwhile.
                Ok(false) => return warn!(payment_id = %id, "payment lock lost"),
                Err(e) => warn!(payment_id = %id, cause = %e, "could not renew payment lock"),
            }
        }
    })
}

/// Read once: while this worker holds the lock, its in-memory copy is the record (every write
/// is fenced by the lock, so a copy that went stale can no longer be written).
async fn drive(state: &WorkerState, payment_id: &str) -> Result<(), SendError> {
    let mut record = state
        .store
        .get(payment_id)
        .await?
        .ok_or_else(|| SendError::Unknown(payment_id.into()))?;
    while !record.status.is_terminal() {
        let pending = record
            .current_attempt()
            .filter(|a| a.outcome == AttemptOutcome::Pending)
            .cloned();
        match pending {
            Some(attempt) => {
                let fate = follow(state, &attempt).await;
                settle(state, &mut record, &fate)?;
                save(state, &mut record).await?;
                finish(state, &record).await;
            }
            None => record = batch::send(state, record).await?,
        }
    }
    Ok(())
}

/// Saves the record under the payment lock, as the next version of the one read.
pub(crate) async fn save(state: &WorkerState, record: &mut PaymentRecord) -> Result<(), SendError> {
    record.updated_at_ms = now_ms();
    record.version += 1;
    if state.store.save_locked(record, &state.identity).await? {
        Ok(())
    } else {
        Err(SendError::LockLost(record.id.clone()))
    }
}

/// The fee cap of a new attempt: twice the current gas price, and when it replaces an earlier
/// attempt (possibly still pooled with the same nonce), enough above that one to displace it.
pub(crate) fn bid(gas_price: u128, previous: Option<&Attempt>) -> u64 {
    let fresh = u64::try_from(gas_price.saturating_mul(2)).unwrap_or(u64::MAX);
    let bumped = previous.map_or(0, |p| {
        p.max_fee_per_gas
            .saturating_add(p.max_fee_per_gas * FEE_BUMP_PERCENT / 100 + 1)
    });
    fresh.max(bumped)
}

/// Watches an attempt until it is included or provably dead. Never gives up on an unknown
/// outcome: with the node unreachable it keeps trying.
pub(crate) async fn follow(state: &WorkerState, attempt: &Attempt) -> Fate {
    let sender = state.lanes.sender();
    let mut polls: u32 = 0;
    let mut shutdown = state.shutdown.clone();
    loop {
        if let Ok(Some(receipt)) = state.chain.receipt(attempt.tx_hash).await {
            return Fate::Included(receipt);
        }
        if *shutdown.borrow() {
            return Fate::Interrupted;
        }
        polls += 1;
        if polls.is_multiple_of(NONCE_CHECK_EVERY_POLLS) {
            if let Some(fate) = check_dead(state, sender, attempt).await {
                return fate;
            }
            // Harmless when the node has it; revives it when a node lost it.
            let _ = state.chain.send_raw(&attempt.raw).await;
        }
        let wait_ms = RECEIPT_POLL_STEPS_MS
            .get(polls as usize - 1)
            .copied()
            .unwrap_or(RECEIPT_POLL_MS);
        // A stopping worker hands the payment back at once rather than polling on.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Reads the chain's clock (the latest block's timestamp) first, the lane nonce second and the
/// receipt last, so a transaction included between the reads is seen as included, never as
/// dead. Expiry is judged by the chain's clock only, never by ours: a worker whose clock runs
/// ahead of the chain's (or a chain that stopped making blocks) would otherwise re-sign while
/// the stored transaction can still be included, and a re-sign on another lane pays twice.
async fn check_dead(state: &WorkerState, sender: Address, attempt: &Attempt) -> Option<Fate> {
    let chain_time = state.chain.latest_block_timestamp().await.ok()?;
    let lane_nonce = state
        .chain
        .lane_nonce(sender, attempt.nonce_key)
        .await
        .ok()?;
    let receipt = state.chain.receipt(attempt.tx_hash).await.ok()?;
    if let Some(receipt) = receipt {
        return Some(Fate::Included(receipt));
    }
    let nonce_taken = lane_nonce > attempt.nonce;
    (nonce_taken || is_expired(chain_time, attempt.valid_before)).then_some(Fate::Dead)
}

/// Whether no block from now on can include a transaction signed with `valid_before`, given the
/// latest block's timestamp. Strictly past it, so the rule holds whether the chain takes
/// `valid_before` as the last valid second or the first invalid one.
fn is_expired(latest_block_timestamp: u64, valid_before: u64) -> bool {
    latest_block_timestamp > valid_before
}

/// Applies what became of the payment's current attempt to the record (in memory; the caller
/// saves it). Fails with [`SendError::ShuttingDown`] when the fate is still unknown.
pub(crate) fn settle(
    state: &WorkerState,
    record: &mut PaymentRecord,
    fate: &Fate,
) -> Result<(), SendError> {
    let Some(attempt) = record.current_attempt_mut() else {
        return Ok(());
    };
    match fate {
        Fate::Included(receipt) => {
            state.lanes.included(attempt.nonce_key, attempt.nonce);
            attempt.outcome = AttemptOutcome::Included {
                success: receipt.success,
            };
            let shared = attempt.payments_in_tx > 1;
            // Nodes that leave `feeToken` off the receipt charged the token the tx named.
            let token = receipt
                .fee_token
                .unwrap_or(state.config.common.fee_token.address);
            let share = attempt.fee_share(receipt.fee_base_units);
            record.block_number = Some(receipt.block_number);
            // A payment whose shared transaction reverted paid a share of that fee too.
            let earlier = record
                .fee
                .as_ref()
                .filter(|f| f.token == token)
                .map_or(0, |f| f.base_units);
            record.fee = Some(Fee {
                token,
                base_units: earlier + share,
            });
            if receipt.success {
                record.status = JobStatus::Confirmed;
            } else if shared {
                // Nothing moved for any call of it; another call may have been the cause, so
                // this payment goes again, alone (see `Attempt::sends_next_alone`).
                record.status = JobStatus::Queued;
            } else {
                record.status = JobStatus::Failed;
                record.reason = Some(format!(
                    "the transaction reverted on chain in block {}; no tokens moved, the fee \
                     was charged",
                    receipt.block_number
                ));
            }
        }
        Fate::Interrupted => return Err(SendError::ShuttingDown),
        Fate::Dead => {
            state.lanes.forget_nonce(attempt.nonce_key);
            attempt.outcome = AttemptOutcome::Dead;
        }
    }
    Ok(())
}

/// Logs a saved settlement and counts the payment's outcome when it ended.
pub(crate) async fn finish(state: &WorkerState, record: &PaymentRecord) {
    let Some(attempt) = record.current_attempt() else {
        return;
    };
    let (payment_id, tx_hash) = (&record.id, attempt.tx_hash);
    match attempt.outcome {
        AttemptOutcome::Dead => {
            warn!(%payment_id, %tx_hash, "transaction can no longer be included; re-signing");
        }
        AttemptOutcome::Included { success: false } if !record.status.is_terminal() => {
            warn!(%payment_id, %tx_hash, "shared transaction reverted; sending the payment alone");
        }
        _ => info!(%payment_id, %tx_hash, status = record.status.as_str(), "settled"),
    }
    if record.status.is_terminal() {
        record_outcome(state, record).await;
    }
}

pub(crate) async fn record_outcome(state: &WorkerState, record: &PaymentRecord) {
    let latency = (record.status == JobStatus::Confirmed)
        .then(|| now_ms().saturating_sub(record.created_at_ms));
    if let Err(e) = state
        .store
        .record_outcome(&record.kind, record.status.as_str(), latency)
        .await
    {
        warn!(payment_id = %record.id, cause = %e, "could not count job outcome");
    }
}

/// Retries a chain call while the node is unreachable, with capped exponential backoff.
pub(crate) async fn retry_transient<T, F, Fut>(mut call: F) -> Result<T, ChainError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ChainError>>,
{
    let mut backoff_ms = 200;
    loop {
        match call().await {
            Err(ChainError::Transient(cause)) => {
                warn!(%cause, backoff_ms, "node unreachable; retrying");
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(TRANSIENT_BACKOFF_MAX_MS);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_expired;

    #[test]
    fn expiry_waits_for_a_block_stamped_past_valid_before() {
        assert!(!is_expired(99, 100), "a block before valid_before");
        assert!(
            !is_expired(100, 100),
            "a block at valid_before may still be the last valid one"
        );
        assert!(is_expired(101, 100));
    }
}
