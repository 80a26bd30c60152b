//! What every job handler of this worker process shares.

use std::sync::Arc;

use alloy::signers::local::PrivateKeySigner;
use fluxus_shared::{chain::Chain, config::WorkerConfig, store::Store};

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
}
