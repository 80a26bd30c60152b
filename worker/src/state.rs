//! What every job handler of this worker process shares.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::signers::local::PrivateKeySigner;
use fluxus_shared::{
    chain::{Chain, ChainError},
    config::WorkerConfig,
    store::Store,
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
    /// The node's gas price and when it was read.
    pub gas_price: Mutex<Option<(Instant, u128)>>,
}

/// How long a gas price reading is reused; fees are bid at twice it, so a little staleness is
/// harmless and saves a node call per payment.
const GAS_PRICE_TTL_MS: u64 = 2_000;

impl WorkerState {
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
