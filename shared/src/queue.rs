//! The job that carries a payment from the API to the workers.
//!
//! A job holds only the payment id: the record in Redis is the truth, so a re-delivered or
//! duplicated job is harmless (the worker reads the record and picks up where it stands).

use serde::{Deserialize, Serialize};

/// The apalis-redis queue of send jobs; its keys are `fluxus-send:*`.
pub const SEND_QUEUE: &str = "fluxus-send";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    pub payment_id: String,
}

/// apalis-redis list of jobs waiting to be fetched.
pub const SEND_ACTIVE_LIST: &str = "fluxus-send:active";
/// apalis-redis sorted set of jobs waiting for a retry time.
pub const SEND_SCHEDULED_SET: &str = "fluxus-send:scheduled";
/// apalis-redis set of finished job ids, and the hash and key prefix holding their data.
pub const SEND_DONE_SET: &str = "fluxus-send:done";
pub const SEND_DATA_HASH: &str = "fluxus-send:data";
pub const SEND_META_PREFIX: &str = "fluxus-send:meta:";
