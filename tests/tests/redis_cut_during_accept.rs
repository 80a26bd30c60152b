//! Redis dies (is cut for 2 s) at the moment the API pushes an accepted payment's job, either
//! before Redis took the push or after it did (the API never learns which). The record and its
//! outbox entry are already durable, so the client gets its 202 and the payment must confirm,
//! exactly once, without the client doing anything more; a retry with the same key must return
//! the same job.

use std::time::Duration;

use alloy::primitives::B256;

use fluxus_tests::{
    PATH_USD, ResetWhen, StackOpts, checksummed, confirm_deadline, fresh_address, poll, random_hex,
    spawn_stack, text,
};
use serde_json::json;

/// How long Redis stays away after the push.
const CUT_SECS: u64 = 2;
/// Only the job pushed by the API carries this field on the API's and workers' Redis traffic.
const JOB_PUSH: &str = "\"payment_id\"";

#[tokio::test]
async fn cut_before_the_push_reached_redis() {
    cut_on_push(ResetWhen::BeforeForwarding).await;
}

#[tokio::test]
async fn cut_after_redis_took_the_push() {
    cut_on_push(ResetWhen::AfterForwarding).await;
}

async fn cut_on_push(when: ResetWhen) {
    let stack = spawn_stack(StackOpts {
        redis_proxy: true,
        ..StackOpts::default()
    })
    .await;
    let (api, chain) = (stack.api(), stack.chain());
    let to = fresh_address();

    // A first payment: the workers are up and Redis has the API's push script cached, so the
    // faulted push below really executes when it is forwarded.
    let warm_up = json!({"to": checksummed(to), "amount": "0.01", "memo": "warm-up"});
    let (status, job) = api.send(&warm_up, Some(&random_hex(16))).await;
    assert_eq!(status, 202, "{job}");
    api.wait_for_status(text(&job, "id"), &["confirmed"], confirm_deadline())
        .await;

    let body = json!({"to": checksummed(to), "amount": "0.33", "memo": "push-cut"});
    let key = random_hex(16);

    let fault = stack
        .redis_proxy()
        .cut_on_next(JOB_PUSH, when, Duration::from_secs(CUT_SECS));
    let first = api.try_send(&body, Some(&key)).await;
    fault.fired(Duration::from_secs(5)).await;
    let first = first.expect("the API answers even when the push fails");
    assert_eq!(
        first.status, 202,
        "a durable record is an accepted payment: {}",
        first.text
    );
    let id = text(&first.body, "id").to_string();
    poll(
        "the cut to end",
        Duration::from_secs(CUT_SECS + 5),
        || async { Ok((!stack.redis_proxy().is_cut()).then_some(())) },
    )
    .await;

    // The client does nothing more; a later retry with the same key returns the same job.
    let job = api
        .wait_for_status(&id, &["confirmed"], confirm_deadline())
        .await;
    let (again, _) = api
        .send_until_accepted(&body, &key, confirm_deadline())
        .await;
    assert_eq!(text(&again.body, "id"), id, "{}", again.text);
    let memos = chain.memo_transfers_to(PATH_USD, to).await;
    let paid = memos
        .iter()
        .filter(|log| log.memo == B256::right_padding_from(b"push-cut"))
        .count();
    assert_eq!(paid, 1, "{memos:?}; job {job}");
    stack.assert_alive();
}
