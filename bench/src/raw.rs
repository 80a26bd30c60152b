//! Phase 3, the raw-node baseline: the same number of pathUSD transfers, signed in advance by dev
//! account 1 (never Fluxus's sender, so no nonce collides) over nonce lanes `1..=lanes`, then sent
//! straight to the node. One sequential sender per lane keeps each lane in nonce order, since the
//! dev node silently drops a lane-nonce gap. Timed from the first send to the last receipt.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use fluxus_shared::chain::{Broadcast, Chain};
use fluxus_shared::tx::{SignedTx, TxParams, sign, signer_from_hex, transfer_call};
use fluxus_tests::PATH_USD;
use futures::StreamExt;
use tokio::time::Instant;

use crate::stats::{self, show};

/// Dev account 1 of the node (`0x70997970…79C8`): funded, and not the stack's sender.
const DEV_1_PRIVATE_KEY: &str =
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// 0.01 pathUSD, the amount every Fluxus payment of the run sends.
const AMOUNT_BASE_UNITS: u128 = 10_000;
/// Lifetime of the pre-signed transactions; covers signing and sending with room to spare.
const VALIDITY_SECS: u64 = 120;
const RECEIPT_POLL_MS: u64 = 10;
/// Receipt reads in flight at once when checking every transfer after the timing.
const VERIFY_CONCURRENCY: usize = 16;

/// What phase 3 measured.
pub struct RawReport {
    pub payments: usize,
    pub lanes: u64,
    /// Transfers per second, first send to last receipt; `None` unless all succeeded.
    pub per_s: Option<f64>,
    pub succeeded: usize,
}

impl RawReport {
    pub fn line(&self) -> String {
        format!(
            "raw_node_per_s={} succeeded={}/{} lanes={}",
            show(self.per_s),
            self.succeeded,
            self.payments,
            self.lanes
        )
    }
}

/// Pre-signs `count` transfers to `recipients` over `lanes` lanes, sends them, times them.
pub async fn run(
    rpc_url: &str,
    recipients: &[Address],
    count: usize,
    lanes: u64,
    deadline: Duration,
) -> anyhow::Result<RawReport> {
    let chain = Chain::connect(rpc_url).map_err(anyhow::Error::msg)?;
    let signer = signer_from_hex(DEV_1_PRIVATE_KEY).map_err(anyhow::Error::msg)?;
    let batches = presign(&chain, &signer, recipients, count, lanes).await?;

    // Timing starts here: everything above is preparation.
    let start = Instant::now();
    let sends = batches
        .iter()
        .map(|txs| send_lane(&chain, txs, start + deadline));
    let ends = futures::future::try_join_all(sends).await?;
    let last_receipt = ends.into_iter().max().unwrap_or(start);

    let succeeded = count_successes(&chain, batches.iter().flatten()).await?;
    let per_s = (succeeded == count)
        .then(|| stats::per_second(count, last_receipt - start))
        .flatten();
    Ok(RawReport {
        payments: count,
        lanes,
        per_s,
        succeeded,
    })
}

/// The signed transactions of each lane, in nonce order from the lane's current nonce.
async fn presign(
    chain: &Chain,
    signer: &PrivateKeySigner,
    recipients: &[Address],
    count: usize,
    lanes: u64,
) -> anyhow::Result<Vec<Vec<SignedTx>>> {
    let sender = signer.address();
    let probe = transfer_call(PATH_USD, recipients[0], AMOUNT_BASE_UNITS, None);
    let gas_limit = chain
        .estimate_gas(sender, &probe, PATH_USD)
        .await
        .context("estimate gas of a raw transfer")?;
    let gas_price = chain.gas_price().await.context("eth_gasPrice")?;
    let chain_id = chain.chain_id().await.context("eth_chainId")?;
    let mut params = TxParams {
        chain_id,
        nonce_key: 0,
        nonce: 0,
        gas_limit,
        max_fee_per_gas: gas_price.saturating_mul(2),
        max_priority_fee_per_gas: 0,
        fee_token: PATH_USD,
        valid_before: unix_now_secs() + VALIDITY_SECS,
    };

    let mut next_nonce = Vec::new();
    for key in 1..=lanes {
        let nonce = chain
            .lane_nonce(sender, key)
            .await
            .with_context(|| format!("nonce of lane {key}"))?;
        next_nonce.push(nonce);
    }

    let mut batches = vec![Vec::new(); next_nonce.len()];
    for i in 0..count {
        let lane = i % batches.len();
        params.nonce_key = lane as u64 + 1;
        params.nonce = next_nonce[lane];
        next_nonce[lane] += 1;
        let to = recipients[i % recipients.len()];
        let call = transfer_call(PATH_USD, to, AMOUNT_BASE_UNITS, None);
        batches[lane].push(sign(signer, &params, vec![call]));
    }
    batches.retain(|txs| !txs.is_empty());
    Ok(batches)
}

/// Sends one lane's transactions in order, then waits for the receipt of its last one (a lane
/// mines in nonce order, so that receipt means the whole lane is in). When it was seen.
async fn send_lane(chain: &Chain, txs: &[SignedTx], deadline: Instant) -> anyhow::Result<Instant> {
    for tx in txs {
        let broadcast = chain
            .send_raw(&tx.raw)
            .await
            .with_context(|| format!("eth_sendRawTransaction of {}", tx.hash))?;
        if let Broadcast::NonceTaken = broadcast {
            bail!("the node says the nonce of {} is already used", tx.hash);
        }
    }
    let Some(last) = txs.last() else {
        return Ok(Instant::now());
    };
    loop {
        if chain.receipt(last.hash).await?.is_some() {
            return Ok(Instant::now());
        }
        if Instant::now() >= deadline {
            bail!(
                "no receipt for {} (the last of its lane) by the deadline",
                last.hash
            );
        }
        tokio::time::sleep(Duration::from_millis(RECEIPT_POLL_MS)).await;
    }
}

/// How many of `txs` have a successful receipt.
async fn count_successes(
    chain: &Chain,
    txs: impl Iterator<Item = &SignedTx>,
) -> anyhow::Result<usize> {
    let receipts: Vec<_> = futures::stream::iter(txs)
        .map(|tx| chain.receipt(tx.hash))
        .buffer_unordered(VERIFY_CONCURRENCY)
        .collect()
        .await;
    let mut succeeded = 0;
    for receipt in receipts {
        succeeded += usize::from(
            receipt
                .context("read a receipt")?
                .is_some_and(|r| r.success),
        );
    }
    Ok(succeeded)
}

fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
