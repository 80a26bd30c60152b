//! What every request handler shares.

use apalis_redis::RedisStorage;
use fluxus_shared::{chain::Chain, config::ApiConfig, queue::SendJob, store::Store};

use crate::metrics::Metrics;

pub struct AppState {
    pub config: ApiConfig,
    pub store: Store,
    pub chain: Chain,
    pub queue: RedisStorage<SendJob>,
    pub metrics: Metrics,
}
