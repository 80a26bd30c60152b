//! What every job handler of this worker process shares.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use fluxus_shared::{
    chain::{Chain, ChainError},
    config::WorkerConfig,
    store::Store,
    tx,
};

use crate::lanes::Lanes;

pub struct WorkerState {
    pub config: WorkerConfig,
    pub store: Store,
    pub chain: Chain,
    pub chain_id: u64,
    pub signer: PrivateKeySigner,
    pub lanes: Arc<Lanes>,
    /// Unique per process start: names the apalis worker and holds locks and leases.
    pub identity: String,
    /// Turns `true` when the process is asked to stop.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Gas limits per (token, with memo), see [`WorkerState::gas_limit`].
    pub gas_limits: Mutex<HashMap<(Address, bool), u64>>,
    /// The node's gas price and when it was read.
    pub gas_price: Mutex<Option<(Instant, u128)>>,
    /// Payments ready to sign, for the lane dispatcher ([`crate::batch`]).
    pub batches: tokio::sync::mpsc::UnboundedSender<crate::batch::Request>,
}

/// Headroom over the (already padded) worst-case estimate.
const GAS_LIMIT_HEADROOM_PERCENT: u64 = 50;

/// How long a gas price reading is reused; fees are bid at twice it, so a little staleness is
/// harmless and saves a node call per payment.
const GAS_PRICE_TTL_MS: u64 = 2_000;

impl WorkerState {
    /// The gas limit for transfers of `token` (with or without a memo): estimated once per
    /// process for the costliest case, a recipient that never held the token (new storage),
    /// with headroom. Unused gas is not charged; an estimate per payment would cost the node
    /// a dozen executions each.
    pub async fn gas_limit(&self, token: Address, memo: bool) -> Result<u64, ChainError> {
        if let Some(limit) = self
            .gas_limits
            .lock()
            .expect("gas limits")
            .get(&(token, memo))
        {
            return Ok(*limit);
        }
        let memo = memo.then(|| B256::repeat_byte(0x61));
        let call = tx::transfer_call(token, Address::random(), 1, memo);
        let sender = self.signer.address();
        let fee_token = self.config.common.fee_token.address;
        let gas =
            crate::send::retry_transient(|| self.chain.estimate_gas(sender, &call, fee_token))
                .await?;
        let limit = gas + gas * GAS_LIMIT_HEADROOM_PERCENT / 100;
        self.gas_limits
            .lock()
            .expect("gas limits")
            .insert((token, memo.is_some()), limit);
        Ok(limit)
    }

    /// The node's gas price, read at most every 2 s.
    pub async fn gas_price(&self) -> Result<u128, ChainError> {
        let cached = *self.gas_price.lock().expect("gas price");
        if let Some((at, price)) = cached
            && at.elapsed() < Duration::from_millis(GAS_PRICE_TTL_MS)
        {
            return Ok(price);
        }
        let price = crate::send::retry_transient(|| self.chain.gas_price()).await?;
        *self.gas_price.lock().expect("gas price") = Some((Instant::now(), price));
        Ok(price)
    }
}
