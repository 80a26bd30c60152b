//! Several payments in one transaction.
//!
//! A Tempo transaction carries a list of calls that all succeed or all revert. Payments that
//! are ready to sign while every lane is busy leave together: when a lane frees, the
//! dispatcher hands it all payments waiting at that moment, up to `FLUXUS_BATCH_MAX`, as one
//! transaction with one transfer call each. Nothing is held back on purpose: with a lane free,
//! a payment leaves alone at once, so transactions only grow with load. The node then checks,
//! pools, mines and answers one transaction for many payments, and on a dev node that work,
//! not the transfers, is what bounds throughput.
//!
//! The single-payment rules of [`crate::send`] hold for every payment of a transaction:
//! - A transfer that would revert fails its own payment before anything is signed (see
//!   [`precheck`]): a payment alone is executed once; a shared transaction is checked against
//!   the sender's balances, and a payment that would overdraw them goes alone instead.
//! - The signed transaction is written to every payment's record in one fenced Redis write,
//!   all or none, before it is broadcast. A payment whose lock was lost is left out and the
//!   others are signed again without it; the unsent transaction is simply dropped.
//! - One receipt settles all. A revert moved nothing for any call, and the payments go again
//!   alone, so a payment that reverts on chain cannot fail the others; a refusal of a shared
//!   transaction likewise. A dead transaction is re-signed as for a single payment.
//! - Each record holds the whole transaction, so a re-delivered job follows it by itself.

use std::{collections::HashMap, sync::Arc};

use alloy::primitives::{Address, U256};

use fluxus_shared::{
    chain::{ChainError, Sent},
    record::{Attempt, AttemptOutcome, JobStatus, PaymentRecord, now_ms},
    tx::{self, TxParams},
};
use tempo_alloy::primitives::transaction::Call;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::{
    lanes::Lane,
    send::{self, Fate, SendError, retry_transient},
    state::WorkerState,
};

/// A payment ready to sign, and where to answer with its record once its transaction ends.
pub struct Request {
    record: PaymentRecord,
    /// Taken out of a shared transaction: goes in a transaction of its own.
    alone: bool,
    reply: oneshot::Sender<Result<PaymentRecord, SendError>>,
}

impl Request {
    /// The handler waiting for this payment is gone (apalis dropped it when its queue worker
    /// restarted): the job is delivered again, and this copy of the record may be stale.
    fn orphaned(&self) -> bool {
        self.reply.is_closed()
    }

    fn goes_alone(&self) -> bool {
        self.alone || self.record.sends_next_alone()
    }

    fn answer(self, result: Result<PaymentRecord, SendError>) {
        // The handler may be gone (its job was cancelled); the record is saved either way.
        let _ = self.reply.send(result);
    }
}

/// Sends the payment in the next transaction of a free lane, with the others waiting then,
/// and returns its record as that transaction left it.
pub async fn send(state: &WorkerState, record: PaymentRecord) -> Result<PaymentRecord, SendError> {
    let id = record.id.clone();
    let (reply, answer) = oneshot::channel();
    if state
        .batches
        .send(Request {
            record,
            alone: false,
            reply,
        })
        .is_err()
    {
        return Err(SendError::BatchLost(id));
    }
    answer.await.map_err(|_| SendError::BatchLost(id))?
}

/// Hands each free lane the payments waiting for one. A payment that must go alone waits for
/// the next lane rather than joining others.
pub fn spawn_dispatcher(
    state: Arc<WorkerState>,
    mut requests: mpsc::UnboundedReceiver<Request>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let most = state.config.batch_max as usize;
        let mut held: Option<Request> = None;
        loop {
            let lane = state.lanes.acquire().await;
            let first = match held.take() {
                Some(request) => request,
                None => match requests.recv().await {
                    Some(request) => request,
                    None => return,
                },
            };
            if left_out_orphan(&first) {
                continue;
            }
            let mut batch = vec![first];
            while batch.len() < most && !batch[0].goes_alone() {
                match requests.try_recv() {
                    Ok(request) if left_out_orphan(&request) => {}
                    Ok(request) if request.goes_alone() => {
                        held = Some(request);
                        break;
                    }
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let state = state.clone();
            tokio::spawn(async move { run(&state, &lane, batch).await });
        }
    })
}

/// Whether to leave the payment out because its handler is gone; says so.
fn left_out_orphan(request: &Request) -> bool {
    let orphaned = request.orphaned();
    if orphaned {
        let payment_id = &request.record.id;
        info!(%payment_id, "payment left out: its job handler is gone and the job comes again");
    }
    orphaned
}

/// Drives one transaction on `lane` until every payment of `batch` is answered.
async fn run(state: &WorkerState, lane: &Lane, mut batch: Vec<Request>) {
    loop {
        if *state.shutdown.borrow() {
            return answer_all(batch, || SendError::ShuttingDown);
        }
        batch = precheck(state, batch).await;
        if batch.is_empty() {
            return;
        }
        let before: Vec<JobStatus> = batch.iter().map(|r| r.record.status).collect();
        let attempt = match sign(state, lane, &mut batch).await {
            Ok(attempt) => attempt,
            Err(e) => return answer_all(batch, || SendError::Chain(e.clone())),
        };
        let records: Vec<&PaymentRecord> = batch.iter().map(|r| &r.record).collect();
        match state.store.save_all_locked(&records, &state.identity).await {
            Ok(lost) if lost.is_empty() => {}
            Ok(lost) => {
                // Nothing was written and nothing sent: drop the payments we no longer own,
                // and sign again for the rest.
                let kept = before
                    .into_iter()
                    .enumerate()
                    .filter(|(position, _)| !lost.contains(position));
                batch = without_lost(batch, &lost);
                for (request, (_, status)) in batch.iter_mut().zip(kept) {
                    request.record.attempts.pop();
                    request.record.status = status;
                    request.record.version -= 1;
                }
                continue;
            }
            // Maybe written, never sent: each payment resumes from its record (a stored
            // attempt is followed and re-broadcast, never signed over while it could land).
            Err(e) => return answer_all(batch, || SendError::BatchStore(e.to_string())),
        }
        for request in &batch {
            info!(
                payment_id = %request.record.id, tx_hash = %attempt.tx_hash, lane = lane.key,
                nonce = attempt.nonce, payments_in_tx = attempt.payments_in_tx,
                "signed and stored transaction"
            );
        }

        let refusal = match state
            .chain
            .send_raw_sync(&attempt.raw, attempt.tx_hash)
            .await
        {
            Ok(Sent::Included(receipt)) => {
                return settle_all(state, batch, Fate::Included(receipt)).await;
            }
            Ok(Sent::Pending | Sent::NonceTaken) => {
                let fate = send::follow(state, &attempt).await;
                return settle_all(state, batch, fate).await;
            }
            Err(ChainError::Transient(cause)) => {
                let tx_hash = attempt.tx_hash;
                warn!(%tx_hash, %cause, "broadcast outcome unknown; will re-broadcast");
                let fate = send::follow(state, &attempt).await;
                return settle_all(state, batch, fate).await;
            }
            Err(refusal) => refusal,
        };
        match refused(state, lane, batch, &refusal).await {
            Some(again) => batch = again,
            None => return,
        }
    }
}

fn transfer_call(record: &PaymentRecord) -> Call {
    tx::transfer_call(record.token, record.to, record.amount, record.memo)
}

/// Checks what can be checked before signing, so that a transaction is not spent on a
/// transfer bound to revert. A payment sent alone is executed once against the latest state
/// and fails, nothing signed, with the token's reason if it would revert. (The dev node's
/// `eth_call` ignores a transaction's `calls` list, so several calls cannot be executed as one
/// transaction; executing each would cost the node as much as sending it.) A shared
/// transaction is checked against the sender's balance of each token: a payment that would
/// overdraw it, together with the ones before it, is taken out and goes alone, where the full
/// check above decides. Any other revert (a transfer policy, say) is found on chain, and then
/// each payment goes alone. Returns the payments to sign now.
async fn precheck(state: &WorkerState, batch: Vec<Request>) -> Vec<Request> {
    let batch = if batch.len() > 1 {
        within_balance(state, batch).await
    } else {
        batch
    };
    if batch.len() != 1 {
        return batch;
    }
    let sender = state.lanes.sender();
    let fee_token = state.config.common.fee_token.address;
    let mut fine = Vec::with_capacity(1);
    for mut request in batch {
        let call = [transfer_call(&request.record)];
        let reason = match retry_transient(|| state.chain.simulate(sender, &call, fee_token)).await
        {
            Ok(()) => {
                fine.push(request);
                continue;
            }
            Err(ChainError::Reverted(reason) | ChainError::Refused(reason)) => reason,
            Err(ChainError::Transient(_)) => unreachable!("retried until it is not transient"),
        };
        let record = &mut request.record;
        record.status = JobStatus::Failed;
        record.reason = Some(if record.attempts.is_empty() {
            format!("the transfer would fail, nothing was sent: {reason}")
        } else {
            // Its earlier transactions moved nothing (a shared one reverted, say).
            format!(
                "the transfer would fail, so it was not sent again: {reason}; no tokens moved \
                 (a fee its earlier attempts were charged, if any, is in `fee`)"
            )
        });
        let saved = send::save(state, record).await;
        if saved.is_ok() {
            info!(payment_id = %record.id, %reason, "payment failed before signing");
            send::record_outcome(state, record).await;
        }
        let record = request.record.clone();
        request.answer(saved.map(|()| record));
    }
    fine
}

/// The payments whose amounts, added up in order per token, stay within the sender's balance;
/// the others are handed back to the dispatcher to go alone.
async fn within_balance(state: &WorkerState, batch: Vec<Request>) -> Vec<Request> {
    let sender = state.lanes.sender();
    let mut left: HashMap<Address, U256> = HashMap::new();
    let mut fine = Vec::with_capacity(batch.len());
    for mut request in batch {
        let token = request.record.token;
        let balance = match left.get(&token) {
            Some(balance) => *balance,
            // Unreadable: let the chain decide (a revert sends each payment alone).
            None => retry_transient(|| state.chain.balance_of(token, sender))
                .await
                .unwrap_or(U256::MAX),
        };
        let amount = U256::from(request.record.amount);
        if amount <= balance {
            left.insert(token, balance - amount);
            fine.push(request);
            continue;
        }
        left.insert(token, balance);
        let payment_id = &request.record.id;
        info!(%payment_id, "payment would overdraw a shared transaction; sending it alone");
        request.alone = true;
        if let Err(mpsc::error::SendError(request)) = state.batches.send(request) {
            let id = request.record.id.clone();
            request.answer(Err(SendError::BatchLost(id)));
        }
    }
    fine
}

/// Signs one transaction carrying every payment of the batch and appends it to each record
/// as a pending attempt, status `submitted` (not saved yet). Returns the first payment's.
async fn sign(
    state: &WorkerState,
    lane: &Lane,
    batch: &mut [Request],
) -> Result<Attempt, ChainError> {
    let mut gas_limit = 0;
    for request in batch.iter() {
        let record = &request.record;
        gas_limit += state.gas_limit(record.token, record.memo.is_some()).await?;
    }
    let gas_price = state.gas_price().await?;
    let max_fee_per_gas = batch
        .iter()
        .map(|r| send::bid(gas_price, r.record.current_attempt()))
        .max()
        .unwrap_or_else(|| send::bid(gas_price, None));
    let nonce = match state.lanes.known_next_nonce(lane.key) {
        Some(nonce) => nonce,
        None => retry_transient(|| state.chain.lane_nonce(state.lanes.sender(), lane.key)).await?,
    };
    let params = TxParams {
        chain_id: state.chain_id,
        nonce_key: lane.key,
        nonce,
        gas_limit,
        max_fee_per_gas: u128::from(max_fee_per_gas),
        max_priority_fee_per_gas: 0,
        fee_token: state.config.common.fee_token.address,
        valid_before: now_ms() / 1000 + state.config.tx_validity_secs,
    };
    let calls = batch.iter().map(|r| transfer_call(&r.record)).collect();
    let signed = tx::sign(&state.signer, &params, calls);
    let attempt = Attempt {
        tx_hash: signed.hash,
        raw: signed.raw,
        nonce_key: lane.key,
        nonce,
        valid_before: params.valid_before,
        signed_at_ms: now_ms(),
        max_fee_per_gas,
        outcome: AttemptOutcome::Pending,
        payments_in_tx: batch.len() as u32,
        index_in_tx: 0,
    };
    // From the save on, each payment may move money, so it reads `submitted` until the chain
    // tells.
    for (index, request) in batch.iter_mut().enumerate() {
        request.record.attempts.push(Attempt {
            index_in_tx: index as u32,
            ..attempt.clone()
        });
        request.record.status = JobStatus::Submitted;
        request.record.updated_at_ms = now_ms();
        request.record.version += 1;
    }
    Ok(attempt)
}

/// Settles every payment of the transaction from one fate and answers each.
async fn settle_all(state: &WorkerState, batch: Vec<Request>, fate: Fate) {
    let settled = batch.into_iter().map(|mut request| {
        let fate = &fate;
        async move {
            let result = match send::settle(state, &mut request.record, fate) {
                Ok(()) => send::save(state, &mut request.record).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                let payment_id = &request.record.id;
                warn!(%payment_id, cause = %e, "outcome not written; the record says where it stands");
            }
            if result.is_ok() {
                send::finish(state, &request.record).await;
            }
            let record = request.record.clone();
            request.answer(result.map(|()| record));
        }
    });
    futures::future::join_all(settled).await;
}

/// The node refused the transaction at broadcast, so it is in no pool and moved nothing.
/// A pool conflict is answered with a replacement (a few times in a row): the payments that
/// are still ours come back to be signed again. Otherwise a payment sent alone fails with
/// the node's reason, and payments that shared the transaction go again alone.
async fn refused(
    state: &WorkerState,
    lane: &Lane,
    batch: Vec<Request>,
    refusal: &ChainError,
) -> Option<Vec<Request>> {
    let reason = refusal.to_string();
    state.lanes.forget_nonce(lane.key);
    let alone = batch.len() == 1;
    let in_a_row = batch
        .iter()
        .map(|r| refused_in_a_row(&r.record))
        .max()
        .unwrap_or(0);
    let replace = refusal.is_pool_conflict() && in_a_row < send::MAX_REFUSED_ATTEMPTS;
    warn!(lane = lane.key, payments = batch.len(), %reason, "node refused tx");

    let mut again = Vec::new();
    for mut request in batch {
        let record = &mut request.record;
        if let Some(current) = record.current_attempt_mut() {
            current.outcome = AttemptOutcome::Refused;
        }
        if replace || !alone {
            record.status = JobStatus::Queued;
        } else {
            record.status = JobStatus::Failed;
            record.reason = Some(format!(
                "the node refused the transaction, no tokens moved: {reason}"
            ));
        }
        let saved = send::save(state, record).await;
        match saved {
            Ok(()) if replace => {
                again.push(request);
                continue;
            }
            Ok(()) if record.status.is_terminal() => send::record_outcome(state, record).await,
            _ => {}
        }
        let record = request.record.clone();
        request.answer(saved.map(|()| record));
    }
    (!again.is_empty()).then_some(again)
}

/// How many of the payment's newest attempts in a row the node refused.
fn refused_in_a_row(record: &PaymentRecord) -> usize {
    record
        .attempts
        .iter()
        .rev()
        .take_while(|a| a.outcome == AttemptOutcome::Refused)
        .count()
}

/// Answers the payments whose lock was lost (at positions `lost`) and returns the others.
fn without_lost(batch: Vec<Request>, lost: &[usize]) -> Vec<Request> {
    let mut kept = Vec::with_capacity(batch.len());
    for (position, request) in batch.into_iter().enumerate() {
        if lost.contains(&position) {
            let id = request.record.id.clone();
            warn!(
                payment_id = %id,
                "payment left out: another worker took it over or its record moved on; nothing \
                 was sent for it"
            );
            request.answer(Err(SendError::LockLost(id)));
        } else {
            kept.push(request);
        }
    }
    kept
}

fn answer_all(batch: Vec<Request>, error: impl Fn() -> SendError) {
    for request in batch {
        request.answer(Err(error()));
    }
}
