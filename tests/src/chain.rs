//! Reads straight from the dev node over JSON-RPC, never through Fluxus: TIP-20 balances,
//! `Transfer` / `TransferWithMemo` logs, lane nonces, receipts; and mining for `--no-mining`
//! stacks. What the chain says here is the ground truth a test compares Fluxus against.

use std::str::FromStr;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256, address};
use alloy::sol;
use alloy::sol_types::{SolCall, SolEvent};
use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// The nonce precompile: lane nonces of keys other than 0.
pub const NONCE_PRECOMPILE: Address = address!("0x4e4f4e4345000000000000000000000000000000");

sol! {
    /// The parts of the TIP-20 interface the tests read (tempo-contracts `ITIP20`).
    interface ITIP20 {
        function balanceOf(address account) external view returns (uint256);
        function transferWithMemo(address to, uint256 amount, bytes32 memo) external;
        event Transfer(address indexed from, address indexed to, uint256 amount);
        event TransferWithMemo(
            address indexed from,
            address indexed to,
            uint256 amount,
            bytes32 indexed memo
        );
    }

    /// The nonce precompile (tempo-contracts `INonce`).
    interface INonce {
        function getNonce(address account, uint256 nonceKey) external view returns (uint64 nonce);
    }
}

/// One `Transfer` log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferLog {
    pub from: Address,
    pub to: Address,
    pub amount: U256,
    pub tx_hash: B256,
    pub block_number: u64,
    pub log_index: u64,
}

/// One `TransferWithMemo` log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoTransferLog {
    pub from: Address,
    pub to: Address,
    pub amount: U256,
    pub memo: B256,
    pub tx_hash: B256,
    pub block_number: u64,
    pub log_index: u64,
}

/// JSON-RPC client of one dev node.
#[derive(Clone, Debug)]
pub struct Chain {
    http: reqwest::Client,
    url: String,
}

impl Chain {
    pub fn new(url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        Self {
            http,
            url: url.to_string(),
        }
    }

    /// One JSON-RPC call; the `result`, or the node's error as `Err`.
    pub async fn rpc(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response: Value = self
            .http
            .post(&self.url)
            .json(&request)
            .send()
            .await
            .with_context(|| format!("{method} to {}", self.url))?
            .json()
            .await
            .with_context(|| format!("{method}: response is not JSON"))?;
        if let Some(error) = response.get("error") {
            bail!("{method}: node error {error}");
        }
        response
            .get("result")
            .cloned()
            .ok_or_else(|| anyhow!("{method}: no result: {response}"))
    }

    pub async fn chain_id(&self) -> anyhow::Result<u64> {
        quantity(&self.rpc("eth_chainId", json!([])).await?)
    }

    pub async fn block_number(&self) -> u64 {
        let result = self
            .rpc("eth_blockNumber", json!([]))
            .await
            .expect("eth_blockNumber");
        quantity(&result).expect("block number")
    }

    /// Mines one block (`evm_mine`), for stacks started with `no_mining`.
    pub async fn mine(&self) {
        self.rpc("evm_mine", json!([])).await.expect("evm_mine");
    }

    /// TIP-20 `balanceOf(owner)` of `token`, in base units.
    pub async fn balance_of(&self, token: Address, owner: Address) -> U256 {
        let data = ITIP20::balanceOfCall { account: owner }.abi_encode();
        let out = self.call(token, data).await.expect("balanceOf");
        ITIP20::balanceOfCall::abi_decode_returns(&out).expect("decode balanceOf")
    }

    /// [`Chain::balance_of`] as u128 (every dev balance fits).
    pub async fn balance_u128(&self, token: Address, owner: Address) -> u128 {
        self.balance_of(token, owner)
            .await
            .try_into()
            .expect("balance fits u128")
    }

    /// The lane nonce of `account`: key 0 is the protocol nonce (`eth_getTransactionCount`),
    /// other keys live in the nonce precompile.
    pub async fn lane_nonce(&self, account: Address, nonce_key: U256) -> u64 {
        if nonce_key.is_zero() {
            let result = self
                .rpc("eth_getTransactionCount", json!([account, "latest"]))
                .await
                .expect("eth_getTransactionCount");
            return quantity(&result).expect("nonce");
        }
        let data = INonce::getNonceCall {
            account,
            nonceKey: nonce_key,
        }
        .abi_encode();
        let out = self.call(NONCE_PRECOMPILE, data).await.expect("getNonce");
        INonce::getNonceCall::abi_decode_returns(&out).expect("decode getNonce")
    }

    /// Every `Transfer` of `token` to `to`, oldest first.
    pub async fn transfers_to(&self, token: Address, to: Address) -> Vec<TransferLog> {
        let logs = self.logs(token, ITIP20::Transfer::SIGNATURE_HASH, to).await;
        logs.iter()
            .map(|log| {
                let raw = raw_log(log).expect("well-formed Transfer log");
                let event = ITIP20::Transfer::decode_raw_log(raw.topics.iter().copied(), &raw.data)
                    .expect("decode Transfer");
                TransferLog {
                    from: event.from,
                    to: event.to,
                    amount: event.amount,
                    tx_hash: raw.tx_hash,
                    block_number: raw.block_number,
                    log_index: raw.log_index,
                }
            })
            .collect()
    }

    /// Every `TransferWithMemo` of `token` to `to`, oldest first.
    pub async fn memo_transfers_to(&self, token: Address, to: Address) -> Vec<MemoTransferLog> {
        let logs = self
            .logs(token, ITIP20::TransferWithMemo::SIGNATURE_HASH, to)
            .await;
        logs.iter()
            .map(|log| {
                let raw = raw_log(log).expect("well-formed TransferWithMemo log");
                let topics = raw.topics.iter().copied();
                let event = ITIP20::TransferWithMemo::decode_raw_log(topics, &raw.data)
                    .expect("decode TransferWithMemo");
                MemoTransferLog {
                    from: event.from,
                    to: event.to,
                    amount: event.amount,
                    memo: event.memo,
                    tx_hash: raw.tx_hash,
                    block_number: raw.block_number,
                    log_index: raw.log_index,
                }
            })
            .collect()
    }

    /// The receipt of `tx_hash`, if mined.
    pub async fn receipt(&self, tx_hash: B256) -> Option<Value> {
        let result = self
            .rpc("eth_getTransactionReceipt", json!([tx_hash]))
            .await
            .expect("eth_getTransactionReceipt");
        (!result.is_null()).then_some(result)
    }

    /// The transaction `tx_hash` as the node knows it (mined or pending), if at all.
    pub async fn transaction(&self, tx_hash: B256) -> Option<Value> {
        let result = self
            .rpc("eth_getTransactionByHash", json!([tx_hash]))
            .await
            .expect("eth_getTransactionByHash");
        (!result.is_null()).then_some(result)
    }

    async fn call(&self, to: Address, data: Vec<u8>) -> anyhow::Result<Bytes> {
        let result = self
            .rpc(
                "eth_call",
                json!([{"to": to, "data": Bytes::from(data)}, "latest"]),
            )
            .await?;
        Ok(serde_json::from_value(result)?)
    }

    async fn logs(&self, token: Address, signature: B256, to: Address) -> Vec<Value> {
        let filter = json!({
            "address": token,
            "fromBlock": "0x0",
            "toBlock": "latest",
            "topics": [signature, null, to.into_word()],
        });
        let result = self
            .rpc("eth_getLogs", json!([filter]))
            .await
            .expect("eth_getLogs");
        let mut logs = result.as_array().cloned().unwrap_or_default();
        logs.sort_by_key(|log| {
            (
                quantity(&log["blockNumber"]).unwrap_or(0),
                quantity(&log["logIndex"]).unwrap_or(0),
            )
        });
        logs
    }
}

struct RawLog {
    topics: Vec<B256>,
    data: Bytes,
    tx_hash: B256,
    block_number: u64,
    log_index: u64,
}

fn raw_log(log: &Value) -> anyhow::Result<RawLog> {
    Ok(RawLog {
        topics: serde_json::from_value(log["topics"].clone())?,
        data: serde_json::from_value(log["data"].clone())?,
        tx_hash: serde_json::from_value(log["transactionHash"].clone())?,
        block_number: quantity(&log["blockNumber"])?,
        log_index: quantity(&log["logIndex"])?,
    })
}

/// A JSON-RPC quantity ("0x1a") as u64.
pub fn quantity(value: &Value) -> anyhow::Result<u64> {
    let text = value
        .as_str()
        .ok_or_else(|| anyhow!("not a quantity: {value}"))?;
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| anyhow!("not a quantity: {text}"))?;
    Ok(u64::from_str_radix(digits, 16)?)
}

/// Parses a "0x…" hash as the API or the node writes it.
pub fn parse_b256(text: &str) -> B256 {
    B256::from_str(text).unwrap_or_else(|err| panic!("not a 32-byte hex value {text:?}: {err}"))
}

/// Parses an address in any case (no checksum check: that is the API's job, not the test's).
pub fn parse_address(text: &str) -> Address {
    Address::from_str(text).unwrap_or_else(|err| panic!("not an address {text:?}: {err}"))
}
