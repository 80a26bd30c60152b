//! `GET /api/v1/history/{address}`: TIP-20 transfers in and out, newest first.
//!
//! Served from a scan of the last `FLUXUS_HISTORY_BLOCKS` blocks (`source: "scan"`); older
//! transfers are not shown. The response shape (keyset cursor over block and log index) is the
//! one an indexer will serve too.

use std::{collections::HashMap, sync::Arc};

use alloy::primitives::Address;
use fluxus_shared::{
    address::parse_address,
    amount::format_base_units,
    history::{Cursor, Transfer, merge},
    memo::memo_text,
};
use futures::future::join_all;
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use crate::{
    problem::ProblemResponse,
    state::AppState,
    views::{TokenView, rfc3339_ms, token_view, u256_to_u128},
};

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

#[derive(Debug, Object)]
pub struct HistoryEntry {
    /// `in`, `out`, or `self` (sent to itself).
    pub direction: String,
    pub counterparty: String,
    pub token: TokenView,
    pub amount: String,
    pub base_units: String,
    /// The memo as text when it is UTF-8 after removing trailing zero bytes.
    pub memo: Option<String>,
    pub memo_hex: Option<String>,
    pub tx_hash: String,
    pub block_number: u64,
    pub log_index: u64,
    pub timestamp: Option<String>,
}

#[derive(Debug, Object)]
pub struct History {
    pub address: String,
    /// Where the entries come from: `scan` (recent blocks).
    pub source: String,
    pub from_block: u64,
    pub to_block: u64,
    pub entries: Vec<HistoryEntry>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum HistoryResponse {
    #[oai(status = 200)]
    Ok(Json<History>),
}

pub struct HistoryApi;

#[OpenApi]
impl HistoryApi {
    /// TIP-20 transfers to and from an address across the supported tokens, newest first.
    #[oai(
        path = "/api/v1/history/:address",
        method = "get",
        operation_id = "getHistory"
    )]
    async fn history(
        &self,
        state: Data<&Arc<AppState>>,
        address: Path<String>,
        /// Entries per page, 1 to 100 (default 20).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<HistoryResponse, ProblemResponse> {
        let account =
            parse_address(&address.0).map_err(|e| ProblemResponse::invalid_field("address", e))?;
        let limit = limit.0.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ProblemResponse::invalid_field(
                "limit",
                "must be between 1 and 100",
            ));
        }
        let cursor = cursor
            .0
            .as_deref()
            .map(|c| {
                Cursor::decode(c).ok_or_else(|| {
                    ProblemResponse::invalid_field("cursor", "is not a cursor this API returned")
                })
            })
            .transpose()?;

        let node = || ProblemResponse::unavailable("the Tempo node");
        let to_block = state.chain.block_number().await.map_err(|_| node())?;
        let from_block = to_block.saturating_sub(state.config.history_blocks.saturating_sub(1));
        let tokens: Vec<Address> = state
            .config
            .common
            .tokens
            .all()
            .iter()
            .map(|t| t.address)
            .collect();
        let logs = state
            .chain
            .transfer_logs(&tokens, account, from_block, to_block)
            .await
            .map_err(|_| node())?;

        let mut page: Vec<Transfer> = merge(&logs)
            .into_iter()
            .filter(|t| cursor.is_none_or(|c| t.cursor() < c))
            .take(limit as usize + 1)
            .collect();
        let next_cursor = (page.len() > limit as usize).then(|| {
            page.truncate(limit as usize);
            page.last().map(|t| t.cursor().encode())
        });
        fill_timestamps(&state, &mut page).await;

        let entries = page.iter().map(|t| entry(&state, account, t)).collect();
        Ok(HistoryResponse::Ok(Json(History {
            address: account.to_checksum(None),
            source: "scan".into(),
            from_block,
            to_block,
            entries,
            next_cursor: next_cursor.flatten(),
        })))
    }
}

/// Nodes that do not put `blockTimestamp` on logs get one header read per block.
async fn fill_timestamps(state: &AppState, page: &mut [Transfer]) {
    let mut missing: Vec<u64> = page
        .iter()
        .filter(|t| t.block_timestamp.is_none())
        .map(|t| t.block_number)
        .collect();
    missing.dedup();
    let found = join_all(missing.iter().map(|n| state.chain.block_timestamp(*n))).await;
    let times: HashMap<u64, u64> = missing
        .into_iter()
        .zip(found)
        .filter_map(|(n, t)| Some((n, t.ok().flatten()?)))
        .collect();
    for t in page.iter_mut().filter(|t| t.block_timestamp.is_none()) {
        t.block_timestamp = times.get(&t.block_number).copied();
    }
}

fn entry(state: &AppState, account: Address, t: &Transfer) -> HistoryEntry {
    let (direction, counterparty) = match (t.from == account, t.to == account) {
        (true, true) => ("self", t.to),
        (true, false) => ("out", t.to),
        _ => ("in", t.from),
    };
    HistoryEntry {
        direction: direction.into(),
        counterparty: counterparty.to_checksum(None),
        token: token_view(&state.config.common.tokens, &t.token),
        amount: format_base_units(u256_to_u128(t.amount)),
        base_units: t.amount.to_string(),
        memo: t.memo.as_ref().and_then(memo_text),
        memo_hex: t.memo.map(|m| format!("{m:#x}")),
        tx_hash: format!("{:#x}", t.tx_hash),
        block_number: t.block_number,
        log_index: t.log_index,
        timestamp: t.block_timestamp.map(|s| rfc3339_ms(s * 1000)),
    }
}
