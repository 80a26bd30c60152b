//! Accepted sends, end to end: a payment goes from `POST /api/v1/send` to a confirmed transfer
//! whose amount, recipient and memo are checked on the node itself, then read back through
//! `/history` and `/balance`. Covers issue 2's `send_confirms` and the accepting halves of C03
//! (exact amounts), C04 (memos up to 32 bytes), C05 (memo bytes) and C06 (address case).
//!
//! All tests share one stack; each pays its own fresh recipients, so they do not interfere.

use std::sync::{Arc, OnceLock};

use alloy::primitives::{Address, B256, U256};
use fluxus_tests::{
    Api, Chain, PATH_USD, SENDER, Stack, StackOpts, checksummed, confirm_deadline, fresh_address,
    normalize_decimal, parse_address, parse_b256, shared_stack, text,
};
use serde_json::{Value, json};

static STACK: OnceLock<Arc<Stack>> = OnceLock::new();

fn stack() -> Arc<Stack> {
    shared_stack(&STACK, StackOpts::default)
}

/// The bytes32 a text memo must land as: its UTF-8 bytes, right-padded with zeros.
fn memo_word(memo: &str) -> B256 {
    let bytes = memo.as_bytes();
    assert!(bytes.len() <= 32, "test memo {memo:?} is over 32 bytes");
    let mut word = [0u8; 32];
    word[..bytes.len()].copy_from_slice(bytes);
    B256::from(word)
}

/// Posts a send that must be accepted; the job id.
async fn accept(api: &Api, body: Value) -> String {
    let (status, job) = api.send(&body, None).await;
    assert_eq!(status, 202, "send {body} was not accepted: {job}");
    text(&job, "id").to_string()
}

/// Polls `/history/{address}` until it lists `tx_hash`; the whole page.
async fn history_listing(api: &Api, address: Address, tx_hash: &str) -> Value {
    let address = checksummed(address);
    let what = format!("history of {address} to list {tx_hash}");
    fluxus_tests::poll(&what, confirm_deadline(), || async {
        let reply = api.try_get(&format!("/api/v1/history/{address}")).await?;
        anyhow::ensure!(reply.status == 200, "{} {}", reply.status, reply.text);
        let entries = reply.body["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let listed = entries
            .iter()
            .any(|e| e["tx_hash"].as_str() == Some(tx_hash));
        Ok(listed.then_some(reply.body))
    })
    .await
}

/// The single history entry of `tx_hash` on a page (Transfer and TransferWithMemo merged).
fn only_entry_of<'a>(history: &'a Value, tx_hash: &str) -> &'a Value {
    let entries: Vec<&Value> = history["entries"]
        .as_array()
        .expect("entries array")
        .iter()
        .filter(|entry| entry["tx_hash"] == tx_hash)
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "want one history entry for {tx_hash}: {history}"
    );
    entries[0]
}

#[tokio::test]
async fn send_confirms() {
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();

    // Accepted at once with the job as it stands.
    let body =
        json!({"to": checksummed(to), "amount": "1.25", "token": "pathUSD", "memo": "INV-1"});
    let (status, job) = api.send(&body, None).await;
    assert_eq!(status, 202, "{job}");
    let id = text(&job, "id").to_string();
    assert_eq!(job["kind"], "send", "{job}");
    let status = text(&job, "status");
    assert!(
        ["queued", "submitted", "confirmed"].contains(&status),
        "{job}"
    );
    assert_eq!(job["to"], checksummed(to), "{job}");
    assert_eq!(job["token"]["symbol"], "pathUSD", "{job}");
    assert_eq!(
        parse_address(text(&job["token"], "address")),
        PATH_USD,
        "{job}"
    );
    assert_eq!(job["amount"], "1.25", "{job}");
    assert_eq!(job["amount_base_units"], "1250000", "{job}");
    assert_eq!(job["memo"], "INV-1", "{job}");
    assert_eq!(
        parse_b256(text(&job, "memo_hex")),
        memo_word("INV-1"),
        "{job}"
    );
    assert_eq!(job["links"]["self"], format!("/api/v1/jobs/{id}"), "{job}");
    assert_eq!(api.job(&id).await["id"], id.as_str());

    // Confirmed, with the facts of the transaction.
    let job = api
        .wait_for_status(&id, &["confirmed"], confirm_deadline())
        .await;
    let tx_hash = text(&job, "tx_hash").to_string();
    let block = job["block_number"]
        .as_u64()
        .unwrap_or_else(|| panic!("block_number: {job}"));
    let fee = &job["fee"];
    for key in ["symbol", "token", "amount", "base_units"] {
        assert!(fee[key].is_string(), "fee.{key} missing: {job}");
    }
    text(fee, "base_units")
        .parse::<u128>()
        .expect("fee base units are an integer");
    assert!(job["reason"].is_null(), "{job}");
    let attempts = job["attempts"].as_array().expect("attempts array");
    assert!(
        attempts.iter().any(|a| a["tx_hash"] == tx_hash.as_str()),
        "{job}"
    );
    text(&job, "nonce_key")
        .parse::<U256>()
        .expect("nonce_key is a decimal string");
    text(&job, "nonce")
        .parse::<u64>()
        .expect("nonce is a decimal string");
    assert_receipt_ok(&chain, &tx_hash, block).await;

    // The node agrees: exactly 1.25 pathUSD arrived, once, with the memo.
    assert_eq!(chain.balance_u128(PATH_USD, to).await, 1_250_000);
    let transfers = chain.transfers_to(PATH_USD, to).await;
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    assert_eq!(transfers[0].amount, U256::from(1_250_000u64));
    assert_eq!(transfers[0].from, SENDER);
    assert_eq!(transfers[0].tx_hash, parse_b256(&tx_hash));
    let memos = chain.memo_transfers_to(PATH_USD, to).await;
    assert_eq!(memos.len(), 1, "{memos:?}");
    assert_eq!(memos[0].memo, memo_word("INV-1"));

    // History merges Transfer and TransferWithMemo into one incoming entry.
    let history = history_listing(&api, to, &tx_hash).await;
    assert_eq!(history["source"], "scan", "{history}");
    assert_eq!(
        history["entries"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
    let entry = only_entry_of(&history, &tx_hash);
    assert_eq!(entry["direction"], "in", "{entry}");
    assert_eq!(entry["counterparty"], checksummed(SENDER), "{entry}");
    assert_eq!(entry["token"]["symbol"], "pathUSD", "{entry}");
    assert_eq!(entry["amount"], "1.25", "{entry}");
    assert_eq!(entry["base_units"], "1250000", "{entry}");
    assert_eq!(entry["memo"], "INV-1", "{entry}");
    assert_eq!(
        parse_b256(text(entry, "memo_hex")),
        memo_word("INV-1"),
        "{entry}"
    );
    assert_eq!(entry["block_number"].as_u64(), Some(block), "{entry}");

    // The balance endpoint shows the same 1.25 pathUSD.
    let balance = api.balance(&checksummed(to)).await;
    let path_usd = balance["balances"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["symbol"] == "pathUSD"))
        .unwrap_or_else(|| panic!("no pathUSD balance: {balance}"));
    assert_eq!(path_usd["base_units"], "1250000", "{balance}");
    assert_eq!(
        normalize_decimal(text(path_usd, "balance")),
        "1.25",
        "{balance}"
    );
}

/// C03: decimal amounts become exact base units on chain, including one above 2^53.
#[tokio::test]
async fn c03_amounts_land_exactly() {
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let (api, chain) = (stack.api(), stack.chain());
    let cases = [
        ("2.01", 2_010_000u128),
        ("1.005", 1_005_000),
        ("9007199254.740993", 9_007_199_254_740_993),
    ];

    let mut ids = Vec::new();
    let mut recipients = Vec::new();
    for (amount, _) in cases {
        let to = fresh_address();
        ids.push(accept(&api, json!({"to": checksummed(to), "amount": amount})).await);
        recipients.push(to);
    }
    let jobs = api.wait_all(&ids, &["confirmed"], confirm_deadline()).await;

    for (((amount, base_units), to), job) in cases.iter().zip(&recipients).zip(&jobs) {
        assert_eq!(job["amount"], *amount, "{job}");
        assert_eq!(job["amount_base_units"], base_units.to_string(), "{job}");
        let transfers = chain.transfers_to(PATH_USD, *to).await;
        assert_eq!(transfers.len(), 1, "{amount}: {transfers:?}");
        assert_eq!(
            transfers[0].amount,
            U256::from(*base_units),
            "{amount} landed wrong"
        );
        assert_eq!(transfers[0].tx_hash, parse_b256(text(job, "tx_hash")));
    }
}

/// C04: memos of at most 32 UTF-8 bytes are accepted and come back exactly, from the job, from
/// the chain and from history.
#[tokio::test]
async fn c04_memos_up_to_32_bytes_round_trip() {
    let memos = [
        "abcdefghijklmnopqrstuvwxyz012345".to_string(),
        "💸".repeat(8),
    ];
    for memo in &memos {
        assert_eq!(
            memo.len(),
            32,
            "test memo {memo:?} should be exactly 32 bytes"
        );
    }
    round_trip_memos(&memos).await;
}

/// C05: a memo of digits is text, not a number: its UTF-8 bytes right-padded with zeros.
#[tokio::test]
async fn c05_numeric_memo_is_utf8_bytes() {
    round_trip_memos(&["102329716".to_string()]).await;
}

/// A raw bytes32 memo (`0x` + 64 hex) lands on chain verbatim.
#[tokio::test]
async fn raw_bytes32_memo_lands_verbatim() {
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let (api, chain) = (stack.api(), stack.chain());
    let raw = "0x00ff00ff496e766f6963652d3432000000000000000000000000000000c0ffee";
    let to = fresh_address();

    let id = accept(
        &api,
        json!({"to": checksummed(to), "amount": "0.01", "memo": raw}),
    )
    .await;
    let job = api
        .wait_for_status(&id, &["confirmed"], confirm_deadline())
        .await;
    assert_eq!(text(&job, "memo_hex").to_lowercase(), raw, "{job}");

    let memos = chain.memo_transfers_to(PATH_USD, to).await;
    assert_eq!(memos.len(), 1, "{memos:?}");
    assert_eq!(memos[0].memo, parse_b256(raw));
    let history = history_listing(&api, to, text(&job, "tx_hash")).await;
    let entry = only_entry_of(&history, text(&job, "tx_hash"));
    assert_eq!(text(entry, "memo_hex").to_lowercase(), raw, "{entry}");
}

/// C06 (accepting half): all-lowercase and all-uppercase hex carry no checksum and are accepted;
/// the job records the EIP-55 spelling.
#[tokio::test]
async fn c06_lower_and_upper_case_recipients_accepted() {
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let (api, chain) = (stack.api(), stack.chain());
    let eip55 = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    let lower = eip55.to_lowercase();
    let upper = format!("0x{}", eip55[2..].to_uppercase());
    let before = chain
        .transfers_to(PATH_USD, parse_address(eip55))
        .await
        .len();

    let mut ids = Vec::new();
    for to in [lower.as_str(), upper.as_str()] {
        let (status, job) = api.send(&json!({"to": to, "amount": "0.02"}), None).await;
        assert_eq!(status, 202, "{to} refused: {job}");
        assert_eq!(job["to"], eip55, "{to} not recorded as EIP-55: {job}");
        ids.push(text(&job, "id").to_string());
    }
    let jobs = api.wait_all(&ids, &["confirmed"], confirm_deadline()).await;
    let transfers = chain.transfers_to(PATH_USD, parse_address(eip55)).await;
    assert_eq!(transfers.len(), before + 2, "{transfers:?}");
    for job in &jobs {
        let tx_hash = parse_b256(text(job, "tx_hash"));
        assert!(
            transfers.iter().any(|t| t.tx_hash == tx_hash),
            "{job} not on chain"
        );
    }
}

/// History pages newest first with a keyset cursor: no entry twice, none skipped.
#[tokio::test]
async fn history_pages_newest_first() {
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let api = stack.api();
    let to = fresh_address();

    // One after the other, so the chain order is the order sent.
    let mut tx_hashes = Vec::new();
    for amount in ["0.01", "0.02", "0.03"] {
        let id = accept(&api, json!({"to": checksummed(to), "amount": amount})).await;
        let job = api
            .wait_for_status(&id, &["confirmed"], confirm_deadline())
            .await;
        tx_hashes.push(text(&job, "tx_hash").to_string());
    }
    history_listing(&api, to, &tx_hashes[2]).await;

    let first = api.history(&checksummed(to), Some(2), None).await;
    let cursor = text(&first, "next_cursor").to_string();
    let second = api.history(&checksummed(to), Some(2), Some(&cursor)).await;
    assert!(second["next_cursor"].is_null(), "a third page? {second}");

    let paged: Vec<&str> = [&first, &second]
        .iter()
        .flat_map(|page| page["entries"].as_array().expect("entries").iter())
        .map(|entry| text(entry, "tx_hash"))
        .collect();
    let newest_first: Vec<&str> = tx_hashes.iter().rev().map(String::as_str).collect();
    assert_eq!(paged, newest_first, "pages: {first} / {second}");
}

/// Sends each memo to its own fresh recipient and checks job, chain and history.
async fn round_trip_memos(memos: &[String]) {
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let (api, chain) = (stack.api(), stack.chain());

    let mut ids = Vec::new();
    let mut recipients = Vec::new();
    for memo in memos {
        let to = fresh_address();
        let body = json!({"to": checksummed(to), "amount": "0.01", "memo": memo});
        ids.push(accept(&api, body).await);
        recipients.push(to);
    }
    let jobs = api.wait_all(&ids, &["confirmed"], confirm_deadline()).await;

    for ((memo, to), job) in memos.iter().zip(&recipients).zip(&jobs) {
        assert_eq!(job["memo"], memo.as_str(), "{job}");
        assert_eq!(parse_b256(text(job, "memo_hex")), memo_word(memo), "{job}");

        let on_chain = chain.memo_transfers_to(PATH_USD, *to).await;
        assert_eq!(on_chain.len(), 1, "{memo:?}: {on_chain:?}");
        assert_eq!(
            on_chain[0].memo,
            memo_word(memo),
            "{memo:?} landed as other bytes"
        );

        let tx_hash = text(job, "tx_hash");
        let history = history_listing(&api, *to, tx_hash).await;
        let entry = only_entry_of(&history, tx_hash);
        assert_eq!(
            entry["memo"],
            memo.as_str(),
            "{memo:?} did not round-trip: {entry}"
        );
        assert_eq!(
            parse_b256(text(entry, "memo_hex")),
            memo_word(memo),
            "{entry}"
        );
    }
}

async fn assert_receipt_ok(chain: &Chain, tx_hash: &str, block: u64) {
    let receipt = chain
        .receipt(parse_b256(tx_hash))
        .await
        .expect("receipt of a confirmed job");
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let mined_in = fluxus_tests::chain::quantity(&receipt["blockNumber"]).expect("blockNumber");
    assert_eq!(
        mined_in, block,
        "job block_number differs from the receipt's"
    );
}
