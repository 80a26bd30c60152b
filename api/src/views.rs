//! Response bodies: amounts as decimal string plus base units, addresses EIP-55, times RFC 3339.

use alloy::primitives::{Address, U256};
use fluxus_shared::{
    amount::format_base_units,
    memo::memo_text,
    record::{Attempt, AttemptOutcome, PaymentRecord},
    token::Tokens,
};
use poem_openapi::Object;

#[derive(Debug, Clone, Object)]
pub struct TokenView {
    pub symbol: String,
    /// EIP-55 token address.
    pub address: String,
}

#[derive(Debug, Clone, Object)]
pub struct FeeView {
    pub symbol: String,
    pub token: String,
    pub amount: String,
    pub base_units: String,
}

#[derive(Debug, Clone, Object)]
pub struct AttemptView {
    pub tx_hash: String,
    pub nonce_key: String,
    pub nonce: String,
    /// RFC 3339; the transaction cannot be included at or after this time.
    pub valid_before: String,
    pub signed_at: String,
    /// `pending`, `included`, `reverted`, `dead` (proven never included) or `refused`.
    pub outcome: String,
    /// Payments the transaction carries, one transfer call each; they move together or not
    /// at all, and each payment's `fee` is its share of the transaction's fee.
    pub payments_in_tx: u32,
}

#[derive(Debug, Clone, Object)]
pub struct JobLinks {
    #[oai(rename = "self")]
    pub self_: String,
}

/// A payment job and everything known about its transaction.
#[derive(Debug, Clone, Object)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    /// `queued`, `submitted`, `confirmed`, `failed` or `expired`.
    pub status: String,
    pub to: String,
    pub token: TokenView,
    pub amount: String,
    pub amount_base_units: String,
    /// The memo as text, when it is UTF-8.
    pub memo: Option<String>,
    /// The memo as the raw bytes32.
    pub memo_hex: Option<String>,
    pub tx_hash: Option<String>,
    pub nonce_key: Option<String>,
    pub nonce: Option<String>,
    pub block_number: Option<u64>,
    /// This payment's share of the fees its transactions were charged (a transaction that
    /// carries several payments splits its fee evenly among them).
    pub fee: Option<FeeView>,
    /// Why the payment failed, in words a person can act on.
    pub reason: Option<String>,
    /// Every signed transaction of this payment, oldest first.
    pub attempts: Vec<AttemptView>,
    pub created_at: String,
    pub updated_at: String,
    pub links: JobLinks,
}

pub fn rfc3339_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn token_view(tokens: &Tokens, address: &Address) -> TokenView {
    TokenView {
        symbol: tokens
            .by_address(address)
            .map(|t| t.symbol.clone())
            .unwrap_or_default(),
        address: address.to_checksum(None),
    }
}

/// Base units to a u128 for display; balances beyond u128 are shown saturated.
pub fn u256_to_u128(value: U256) -> u128 {
    u128::try_from(value).unwrap_or(u128::MAX)
}

fn attempt_view(a: &Attempt) -> AttemptView {
    let outcome = match a.outcome {
        AttemptOutcome::Pending => "pending",
        AttemptOutcome::Included { success: true } => "included",
        AttemptOutcome::Included { success: false } => "reverted",
        AttemptOutcome::Dead => "dead",
        AttemptOutcome::Refused => "refused",
    };
    AttemptView {
        tx_hash: format!("{:#x}", a.tx_hash),
        nonce_key: a.nonce_key.to_string(),
        nonce: a.nonce.to_string(),
        valid_before: rfc3339_ms(a.valid_before * 1000),
        signed_at: rfc3339_ms(a.signed_at_ms),
        outcome: outcome.into(),
        payments_in_tx: a.payments_in_tx,
    }
}

pub fn job_view(record: &PaymentRecord, tokens: &Tokens) -> JobView {
    // The transaction to show: the one included, else the newest.
    let shown = record.included_attempt().or(record.current_attempt());
    JobView {
        id: record.id.clone(),
        kind: record.kind.clone(),
        status: record.status.as_str().into(),
        to: record.to.to_checksum(None),
        token: token_view(tokens, &record.token),
        amount: format_base_units(record.amount),
        amount_base_units: record.amount.to_string(),
        memo: record.memo.as_ref().and_then(memo_text),
        memo_hex: record.memo.map(|m| format!("{m:#x}")),
        tx_hash: shown.map(|a| format!("{:#x}", a.tx_hash)),
        nonce_key: shown.map(|a| a.nonce_key.to_string()),
        nonce: shown.map(|a| a.nonce.to_string()),
        block_number: record.block_number,
        fee: record.fee.as_ref().map(|f| FeeView {
            symbol: token_view(tokens, &f.token).symbol,
            token: f.token.to_checksum(None),
            amount: format_base_units(f.base_units),
            base_units: f.base_units.to_string(),
        }),
        reason: record.reason.clone(),
        attempts: record.attempts.iter().map(attempt_view).collect(),
        created_at: rfc3339_ms(record.created_at_ms),
        updated_at: rfc3339_ms(record.updated_at_ms),
        links: JobLinks {
            self_: format!("/api/v1/jobs/{}", record.id),
        },
    }
}
