//! The payment record: the one durable truth about a payment, kept in Redis.
//!
//! The API writes it once at acceptance; afterwards only the worker holding the payment's lock
//! changes it. Every signed transaction is appended to `attempts` *before* it is broadcast, so
//! whoever picks the payment up next can find it, re-broadcast it or prove it dead.

use alloy::primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};

/// Where a payment stands, as a client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted and durable; no transaction broadcast yet.
    Queued,
    /// A signed transaction was broadcast; its outcome is not known yet.
    Submitted,
    /// Included with a successful receipt.
    Confirmed,
    /// Definitely did not move money (reverted or refused); `reason` says why.
    Failed,
    /// Could not be sent before its deadline; no money moved.
    Expired,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Confirmed | Self::Failed | Self::Expired)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Submitted => "submitted",
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }
}

/// What became of one signed transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Signed and stored; may or may not have reached the node.
    Pending,
    /// Included; `success` is the receipt status.
    Included { success: bool },
    /// Proven never to be included (expired with its lane nonce unchanged, or its nonce taken
    /// by another transaction).
    Dead,
    /// The node refused it at broadcast, so it is in no pool.
    Refused,
}

/// One signed transaction of a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub tx_hash: B256,
    pub raw: Bytes,
    pub nonce_key: u64,
    pub nonce: u64,
    /// Unix seconds; the transaction cannot be included in a block at or after this time.
    pub valid_before: u64,
    pub signed_at_ms: u64,
    /// The fee cap it was signed with; a replacement must bid higher to displace it from a pool.
    #[serde(default)]
    pub max_fee_per_gas: u64,
    pub outcome: AttemptOutcome,
}

/// The fee a confirmed transaction cost, in the fee token's base units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fee {
    pub token: Address,
    #[serde(with = "u128_string")]
    pub base_units: u128,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub id: String,
    pub kind: String,
    pub status: JobStatus,
    pub to: Address,
    pub token: Address,
    #[serde(with = "u128_string")]
    pub amount: u128,
    pub memo: Option<B256>,
    /// Hash of the accepted request, to tell an idempotent replay from a reused key.
    pub fingerprint: String,
    pub attempts: Vec<Attempt>,
    pub block_number: Option<u64>,
    pub fee: Option<Fee>,
    pub reason: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl PaymentRecord {
    /// The newest attempt, the only one that can still be in flight.
    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub fn current_attempt_mut(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut()
    }

    /// The attempt whose transaction settled the payment, if any.
    pub fn included_attempt(&self) -> Option<&Attempt> {
        self.attempts
            .iter()
            .find(|a| matches!(a.outcome, AttemptOutcome::Included { .. }))
    }
}

mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
