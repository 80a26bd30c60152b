//! The Tempo node, as Fluxus uses it: balances, lane nonces, gas, broadcast, receipts, logs.
//!
//! Node errors are sorted here into what callers branch on: a definite refusal, a revert, or a
//! transient fault (the node could not be asked) after which nothing is known.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use alloy::{
    consensus::BlockHeader,
    network::ReceiptResponse,
    primitives::{Address, B256, Bytes, U256},
    providers::{Provider, RootProvider},
    rpc::types::{BlockNumberOrTag, Filter, Log, TransactionRequest},
    sol_types::SolEvent,
    transports::{RpcError, TransportErrorKind},
};
use tempo_alloy::{
    TempoNetwork,
    contracts::precompiles::{ITIP20, ITIP20::ITIP20Errors},
    primitives::transaction::Call,
    provider::TempoProviderExt,
    rpc::{TempoTransactionReceipt, TempoTransactionRequest},
};

/// Tempo gas prices are in 10^-18 USD per gas; fee tokens have 6 decimals.
const GAS_PRICE_SCALE: u128 = 1_000_000_000_000;
/// Headroom over the node's gas estimate.
const GAS_ESTIMATE_MARGIN_PERCENT: u64 = 25;
const RPC_TIMEOUT_SECS: u64 = 10;

#[derive(Clone, Debug, thiserror::Error)]
pub enum ChainError {
    /// The node could not be reached or did not answer; nothing is known.
    #[error("node unreachable: {0}")]
    Transient(String),
    /// The call would revert; the string says why in words.
    #[error("{0}")]
    Reverted(String),
    /// The node answered with an error.
    #[error("node refused: {0}")]
    Refused(String),
}

impl ChainError {
    /// A refusal that says the pool could not take the transaction *now* (a same-nonce
    /// transaction is still pooled, the pool is full): the transaction is in no pool, and a
    /// new one, bidding higher, may well be taken.
    pub fn is_pool_conflict(&self) -> bool {
        let Self::Refused(message) = self else {
            return false;
        };
        let message = message.to_lowercase();
        [
            "underpriced",
            "replacement",
            "pool is full",
            "txpool",
            "nonce too high",
            "gapped",
        ]
        .iter()
        .any(|m| message.contains(m))
    }

    fn from_rpc(err: RpcError<TransportErrorKind>) -> Self {
        match err.as_error_resp() {
            Some(payload) => {
                if let Some(e) = payload.as_decoded_interface_error::<ITIP20Errors>() {
                    return Self::Reverted(describe_tip20_error(&e));
                }
                let message = payload.message.to_string();
                if message.contains("revert") {
                    Self::Reverted(message)
                } else {
                    Self::Refused(format!("{} (code {})", message, payload.code))
                }
            }
            None => Self::Transient(err.to_string()),
        }
    }
}

fn describe_tip20_error(e: &ITIP20Errors) -> String {
    match e {
        ITIP20Errors::InsufficientBalance(b) => format!(
            "insufficient balance of token {}: the sender holds {} and the payment needs {}",
            b.token,
            crate::amount::format_base_units(u128::try_from(b.available).unwrap_or(u128::MAX)),
            crate::amount::format_base_units(u128::try_from(b.required).unwrap_or(u128::MAX)),
        ),
        ITIP20Errors::InvalidRecipient(_) => "the recipient cannot receive this token".into(),
        ITIP20Errors::PolicyForbids(_) => "the token's transfer policy forbids this".into(),
        ITIP20Errors::ContractPaused(_) => "the token is paused".into(),
        other => format!("the token refused the transfer ({other:?})"),
    }
}

fn to_receipt(r: &TempoTransactionReceipt) -> Option<Receipt> {
    let gas = r.gas_used() as u128 * r.effective_gas_price();
    Some(Receipt {
        success: r.status(),
        block_number: r.block_number()?,
        fee_token: r.fee_token,
        fee_base_units: gas.div_ceil(GAS_PRICE_SCALE),
    })
}

/// How a synchronous broadcast went.
#[derive(Debug)]
pub enum Sent {
    /// Included; here is the receipt.
    Included(Receipt),
    /// Pooled (or possibly pooled); its receipt is still to come.
    Pending,
    /// The lane nonce is already used: by this very transaction, or by another.
    NonceTaken,
}

impl Broadcast {
    /// The node errors that are not refusals: it has the transaction already, or the lane
    /// nonce is used (by it or by another transaction).
    fn from_refusal(message: &str) -> Option<Self> {
        let lower = message.to_lowercase();
        if lower.contains("already known") || lower.contains("already imported") {
            Some(Self::Accepted)
        } else if lower.contains("nonce too low") {
            Some(Self::NonceTaken)
        } else {
            None
        }
    }
}

impl From<Broadcast> for Sent {
    fn from(b: Broadcast) -> Self {
        match b {
            Broadcast::Accepted => Self::Pending,
            Broadcast::NonceTaken => Self::NonceTaken,
        }
    }
}

/// How a broadcast went.
#[derive(Debug)]
pub enum Broadcast {
    /// The node took it (or already had it).
    Accepted,
    /// The lane nonce is already used: by this very transaction, or by another.
    NonceTaken,
}

/// The part of a receipt a payment needs.
#[derive(Clone, Debug)]
pub struct Receipt {
    pub success: bool,
    pub block_number: u64,
    pub fee_token: Option<Address>,
    pub fee_base_units: u128,
}

#[derive(Clone)]
pub struct Chain {
    provider: RootProvider<TempoNetwork>,
    /// Set once the node answered that it has no `eth_sendRawTransactionSync`.
    sync_unsupported: Arc<AtomicBool>,
}

async fn timed<T>(
    fut: impl Future<Output = Result<T, RpcError<TransportErrorKind>>>,
) -> Result<T, ChainError> {
    match tokio::time::timeout(Duration::from_secs(RPC_TIMEOUT_SECS), fut).await {
        Ok(result) => result.map_err(ChainError::from_rpc),
        Err(_) => Err(ChainError::Transient(format!(
            "no answer within {RPC_TIMEOUT_SECS} s"
        ))),
    }
}

impl Chain {
    pub fn connect(url: &str) -> Result<Self, String> {
        let url = url.parse().map_err(|_| "is not a valid URL".to_string())?;
        Ok(Self {
            provider: RootProvider::new_http(url),
            sync_unsupported: Arc::new(AtomicBool::new(false)),
        })
    }

    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        timed(self.provider.get_chain_id().into_future()).await
    }

    pub async fn block_number(&self) -> Result<u64, ChainError> {
        timed(self.provider.get_block_number().into_future()).await
    }

    pub async fn balance_of(&self, token: Address, owner: Address) -> Result<U256, ChainError> {
        let contract = ITIP20::new(token, &self.provider);
        let call = contract.balanceOf(owner);
        match tokio::time::timeout(Duration::from_secs(RPC_TIMEOUT_SECS), call.call()).await {
            Ok(Ok(balance)) => Ok(balance),
            Ok(Err(e)) => Err(ChainError::Transient(e.to_string())),
            Err(_) => Err(ChainError::Transient("balanceOf timed out".into())),
        }
    }

    /// The next nonce of a lane, as of the latest block.
    pub async fn lane_nonce(&self, sender: Address, nonce_key: u64) -> Result<u64, ChainError> {
        let fut = self
            .provider
            .get_transaction_count_with_nonce_key(sender, U256::from(nonce_key));
        match tokio::time::timeout(Duration::from_secs(RPC_TIMEOUT_SECS), fut).await {
            Ok(Ok(nonce)) => Ok(nonce),
            Ok(Err(e)) => Err(ChainError::Transient(e.to_string())),
            Err(_) => Err(ChainError::Transient("nonce query timed out".into())),
        }
    }

    pub async fn gas_price(&self) -> Result<u128, ChainError> {
        timed(self.provider.get_gas_price().into_future()).await
    }

    /// Gas for the calls, with headroom; a revert comes back as [`ChainError::Reverted`].
    fn request(from: Address, call: &Call, fee_token: Address) -> TempoTransactionRequest {
        TempoTransactionRequest {
            inner: TransactionRequest::default()
                .from(from)
                .to(*call.to.to().expect("transfers call an address"))
                .input(call.input.clone().into()),
            fee_token: Some(fee_token),
            ..Default::default()
        }
    }

    /// Gas for the calls, with headroom; a revert comes back as [`ChainError::Reverted`].
    pub async fn estimate_gas(
        &self,
        from: Address,
        call: &Call,
        fee_token: Address,
    ) -> Result<u64, ChainError> {
        let request = Self::request(from, call, fee_token);
        let gas = timed(self.provider.estimate_gas(request).into_future()).await?;
        Ok(gas + gas * GAS_ESTIMATE_MARGIN_PERCENT / 100)
    }

    /// Runs the calls once, as one atomic Tempo transaction, against the latest state: `Ok`
    /// when all would succeed, a revert as [`ChainError::Reverted`] with the reason in words.
    /// One execution, where an estimate takes several.
    pub async fn simulate(
        &self,
        from: Address,
        calls: &[Call],
        fee_token: Address,
    ) -> Result<(), ChainError> {
        let request = match calls {
            [call] => Self::request(from, call, fee_token),
            _ => TempoTransactionRequest {
                inner: TransactionRequest::default().from(from),
                fee_token: Some(fee_token),
                calls: calls.to_vec(),
                ..Default::default()
            },
        };
        timed(self.provider.call(request).into_future())
            .await
            .map(|_| ())
    }

    /// Whether the node knows the transaction (pooled or included).
    pub async fn knows_transaction(&self, hash: B256) -> Result<bool, ChainError> {
        let tx = timed(self.provider.get_transaction_by_hash(hash).into_future()).await?;
        Ok(tx.is_some())
    }

    /// Broadcasts and, where the node supports `eth_sendRawTransactionSync`, waits for the
    /// receipt in the same call (one round trip instead of send plus polling). Any error after
    /// the node may have pooled the transaction (a sync timeout, say) is checked against the
    /// node's pool, so a pooled transaction is never reported as refused.
    pub async fn send_raw_sync(&self, raw: &Bytes, hash: B256) -> Result<Sent, ChainError> {
        if self.sync_unsupported.load(Ordering::Relaxed) {
            return self.send_raw(raw).await.map(Sent::from);
        }
        let request = self
            .provider
            .client()
            .request::<_, TempoTransactionReceipt>(
                "eth_sendRawTransactionSync",
                (alloy::hex::encode_prefixed(raw),),
            );
        let error = match timed(request).await {
            Ok(receipt) => return Ok(to_receipt(&receipt).map_or(Sent::Pending, Sent::Included)),
            Err(ChainError::Refused(message)) if message.contains("code -32601") => {
                self.sync_unsupported.store(true, Ordering::Relaxed);
                return self.send_raw(raw).await.map(Sent::from);
            }
            Err(error) => error,
        };
        let ChainError::Refused(message) = &error else {
            return Err(error);
        };
        if let Some(broadcast) = Broadcast::from_refusal(message) {
            return Ok(broadcast.into());
        }
        match self.knows_transaction(hash).await {
            Ok(true) => Ok(Sent::Pending),
            Ok(false) => Err(error),
            Err(_) => Err(ChainError::Transient(format!(
                "{message}; pool state unknown"
            ))),
        }
    }

    pub async fn send_raw(&self, raw: &Bytes) -> Result<Broadcast, ChainError> {
        match timed(self.provider.send_raw_transaction(raw)).await {
            Ok(_) => Ok(Broadcast::Accepted),
            Err(ChainError::Refused(message)) => {
                Broadcast::from_refusal(&message).ok_or(ChainError::Refused(message))
            }
            Err(other) => Err(other),
        }
    }

    pub async fn receipt(&self, hash: B256) -> Result<Option<Receipt>, ChainError> {
        let receipt = timed(self.provider.get_transaction_receipt(hash).into_future()).await?;
        Ok(receipt.as_ref().and_then(to_receipt))
    }

    /// TIP-20 `Transfer` and `TransferWithMemo` logs of `tokens` from or to `account`.
    pub async fn transfer_logs(
        &self,
        tokens: &[Address],
        account: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<Log>, ChainError> {
        let base = Filter::new()
            .address(tokens.to_vec())
            .event_signature(vec![
                ITIP20::Transfer::SIGNATURE_HASH,
                ITIP20::TransferWithMemo::SIGNATURE_HASH,
            ])
            .from_block(from_block)
            .to_block(to_block);
        let outgoing = base.clone().topic1(account.into_word());
        let incoming = base.topic2(account.into_word());
        let (mut logs, incoming) = tokio::try_join!(
            timed(self.provider.get_logs(&outgoing)),
            timed(self.provider.get_logs(&incoming)),
        )?;
        logs.extend(incoming);
        Ok(logs)
    }

    /// The latest block's timestamp in Unix seconds: the chain's own clock. Every later block
    /// carries a timestamp at least this high.
    pub async fn latest_block_timestamp(&self) -> Result<u64, ChainError> {
        self.timestamp_of(BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| ChainError::Transient("the node has no latest block yet".into()))
    }

    /// A block's timestamp in Unix seconds.
    pub async fn block_timestamp(&self, number: u64) -> Result<Option<u64>, ChainError> {
        self.timestamp_of(number.into()).await
    }

    async fn timestamp_of(&self, block: BlockNumberOrTag) -> Result<Option<u64>, ChainError> {
        let block = timed(self.provider.get_block_by_number(block).into_future()).await?;
        Ok(block.map(|b| b.header.timestamp()))
    }
}
