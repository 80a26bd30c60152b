//! Idempotency keys (C14): duplicate requests, concurrent or late, return the one original job
//! and move money once; the same key with another body is refused; a refused request does not
//! use up its key.

use std::sync::{Arc, OnceLock};

use fluxus_tests::{
    Api, PATH_USD, Stack, StackOpts, checksummed, confirm_deadline, fresh_address, parse_b256,
    random_hex, shared_stack, text,
};
use serde_json::json;
use tokio::sync::Mutex;

static STACK: OnceLock<Arc<Stack>> = OnceLock::new();
/// The tests take turns so that Redis snapshots see only the running test's writes.
static SERIAL: Mutex<()> = Mutex::const_new(());

fn stack() -> Arc<Stack> {
    shared_stack(&STACK, StackOpts::default)
}

fn replayed(reply: &fluxus_tests::Reply) -> bool {
    reply.header("Idempotent-Replayed") == Some("true")
}

/// C14: `Idempotency-Key: abc` twice at once, again after confirmation, then with another amount.
#[tokio::test]
async fn c14_duplicate_requests_pay_once() {
    let _turn = SERIAL.lock().await;
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let (api, chain, store) = (stack.api(), stack.chain(), stack.store());
    let to = fresh_address();
    let body = json!({"to": checksummed(to), "amount": "0.5", "memo": "C14"});
    let before = store.leftovers();

    // Two identical requests in flight together: one job.
    let (first, second) = tokio::join!(
        api.send_reply(&body, Some("abc")),
        api.send_reply(&body, Some("abc"))
    );
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(second.status, 202, "{}", second.text);
    let id = text(&first.body, "id").to_string();
    assert_eq!(second.body["id"], id.as_str(), "two jobs for one key");
    assert_eq!(
        [&first, &second]
            .iter()
            .filter(|reply| replayed(reply))
            .count(),
        1,
        "exactly one of the two should be marked replayed: {:?} / {:?}",
        first.header("Idempotent-Replayed"),
        second.header("Idempotent-Replayed")
    );

    // Once more after it confirmed: the same job, as it now stands.
    let job = api
        .wait_for_status(&id, &["confirmed"], confirm_deadline())
        .await;
    let late = api.send_reply(&body, Some("abc")).await;
    assert_eq!(late.status, 202, "{}", late.text);
    assert_eq!(late.body["id"], id.as_str(), "{}", late.text);
    assert!(
        replayed(&late),
        "late replay not marked: {:?}",
        late.headers
    );

    // Same key, another amount: refused, and nothing new stored.
    let before_reuse = store.leftovers();
    let other = json!({"to": checksummed(to), "amount": "0.6", "memo": "C14"});
    let reused = api.send_reply(&other, Some("abc")).await;
    reused.assert_problem(422, Some("idempotency-key-reused"), None);
    let left = store.leftovers().since(&before_reuse);
    assert!(
        left.payments.is_empty() && left.queued.is_empty(),
        "{left:?}"
    );

    // One record, one transfer.
    let created = store.leftovers().since(&before);
    assert_eq!(
        created.payments.len(),
        1,
        "payment records created: {created:?}"
    );
    let transfers = chain.transfers_to(PATH_USD, to).await;
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    assert_eq!(transfers[0].tx_hash, parse_b256(text(&job, "tx_hash")));
}

/// A request refused with 400 does not store its key: the same key then works with a valid body.
#[tokio::test]
async fn refused_request_does_not_use_up_its_key() {
    let _turn = SERIAL.lock().await;
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let (api, chain) = (stack.api(), stack.chain());
    let key = format!("retry-after-fix-{}", random_hex(8));
    let to = fresh_address();

    let bad = json!({"to": checksummed(to), "amount": "1.5000000"});
    let refused = api.send_reply(&bad, Some(&key)).await;
    refused.assert_problem(400, Some("invalid-field"), Some("amount"));

    let fixed = json!({"to": checksummed(to), "amount": "1.5"});
    let id = accepted_id(&api, &fixed, &key).await;
    api.wait_for_status(&id, &["confirmed"], confirm_deadline())
        .await;
    assert_eq!(chain.balance_u128(PATH_USD, to).await, 1_500_000);
}

/// The same body with its fields in another order is the same request.
#[tokio::test]
async fn replay_ignores_json_field_order() {
    let _turn = SERIAL.lock().await;
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let api = stack.api();
    let key = format!("order-{}", random_hex(8));
    let to = checksummed(fresh_address());

    let one = format!(r#"{{"to":"{to}","amount":"0.03","memo":"order"}}"#);
    let other = format!(r#"{{ "memo": "order", "amount": "0.03", "to": "{to}" }}"#);
    let first = api
        .post_raw("/api/v1/send", one, Some(&key), fluxus_tests::Auth::Bearer)
        .await;
    let second = api
        .post_raw(
            "/api/v1/send",
            other,
            Some(&key),
            fluxus_tests::Auth::Bearer,
        )
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(
        second.status, 202,
        "reordered body refused: {}",
        second.text
    );
    assert_eq!(first.body["id"], second.body["id"]);
    api.wait_for_status(text(&first.body, "id"), &["confirmed"], confirm_deadline())
        .await;
}

async fn accepted_id(api: &Api, body: &serde_json::Value, key: &str) -> String {
    let reply = api.send_reply(body, Some(key)).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert!(!replayed(&reply), "a fresh request marked replayed");
    text(&reply.body, "id").to_string()
}
