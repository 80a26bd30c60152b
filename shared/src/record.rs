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
    /// Payments the transaction carries (one call each, atomic: all move or none).
    #[serde(default = "one")]
    pub payments_in_tx: u32,
    /// This payment's call among them, from 0.
    #[serde(default)]
    pub index_in_tx: u32,
}

fn one() -> u32 {
    1
}

impl Attempt {
    /// This payment's share of the transaction's fee: the fee split evenly, the remainder going
    /// one base unit each to the first calls, so the shares add up to the fee exactly.
    pub fn fee_share(&self, fee: u128) -> u128 {
        let n = u128::from(self.payments_in_tx.max(1));
        fee / n + u128::from(u128::from(self.index_in_tx) < fee % n)
    }

    /// Whether the payment must go alone in its next transaction: this attempt carried others
    /// too and reverted or was refused, and one of them may be the cause.
    pub fn sends_next_alone(&self) -> bool {
        self.payments_in_tx > 1
            && matches!(
                self.outcome,
                AttemptOutcome::Included { success: false } | AttemptOutcome::Refused
            )
    }
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
    /// Raised by every worker write; a write is refused unless the stored record is still the
    /// version the writer read, so a worker holding a stale copy (it stalled while another
    /// finished the payment) can never write it back.
    #[serde(default)]
    pub version: u64,
}

impl PaymentRecord {
    /// The newest attempt, the only one that can still be in flight.
    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub fn current_attempt_mut(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut()
    }

    /// The newest included attempt: the one whose transaction settled the payment, if any (an
    /// earlier one may have reverted with others in its transaction).
    pub fn included_attempt(&self) -> Option<&Attempt> {
        self.attempts
            .iter()
            .rev()
            .find(|a| matches!(a.outcome, AttemptOutcome::Included { .. }))
    }

    /// Whether the next transaction must carry this payment alone.
    pub fn sends_next_alone(&self) -> bool {
        self.current_attempt()
            .is_some_and(Attempt::sends_next_alone)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(payments_in_tx: u32, index_in_tx: u32) -> Attempt {
        Attempt {
            tx_hash: B256::ZERO,
            raw: Bytes::new(),
            nonce_key: 1,
            nonce: 0,
            valid_before: 0,
            signed_at_ms: 0,
            max_fee_per_gas: 0,
            outcome: AttemptOutcome::Pending,
            payments_in_tx,
            index_in_tx,
        }
    }

    #[test]
    fn fee_shares_add_up_to_the_fee() {
        for (fee, n) in [(1_000u128, 3u32), (7, 16), (0, 4), (5, 1), (16, 16)] {
            let shares: Vec<u128> = (0..n).map(|i| attempt(n, i).fee_share(fee)).collect();
            assert_eq!(shares.iter().sum::<u128>(), fee, "fee {fee} over {n}");
            let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(max - min <= 1, "fee {fee} over {n}: {shares:?}");
        }
    }

    #[test]
    fn only_a_shared_reverted_or_refused_attempt_sends_the_payment_alone() {
        let mut shared = attempt(3, 1);
        let mut alone = attempt(1, 0);
        for (outcome, expect_shared) in [
            (AttemptOutcome::Included { success: false }, true),
            (AttemptOutcome::Refused, true),
            (AttemptOutcome::Included { success: true }, false),
            (AttemptOutcome::Dead, false),
            (AttemptOutcome::Pending, false),
        ] {
            shared.outcome = outcome;
            alone.outcome = outcome;
            assert_eq!(shared.sends_next_alone(), expect_shared, "{outcome:?}");
            assert!(!alone.sends_next_alone(), "{outcome:?}");
        }
    }

    #[test]
    fn records_from_before_batching_read_as_one_payment_per_tx() {
        let json = serde_json::json!({
            "tx_hash": B256::repeat_byte(0x11), "raw": "0x76", "nonce_key": 1, "nonce": 2,
            "valid_before": 3, "signed_at_ms": 4, "max_fee_per_gas": 5, "outcome": "pending",
        });
        let a: Attempt = serde_json::from_value(json).unwrap();
        assert_eq!((a.payments_in_tx, a.index_in_tx), (1, 0));
    }
}
