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
