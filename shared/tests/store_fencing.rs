//! The fenced writes a worker relies on, against a real Redis (`REDIS_URL`, default the local
//! one; every key carries a fresh id): records of a shared transaction are written all or none,
//! only while the writer holds every payment's lock and only over the version it read; a lock
//! renewal never takes back a lock released meanwhile.

use alloy::primitives::Address;
use fluxus_shared::record::{JobStatus, PaymentRecord};
use fluxus_shared::store::{self, Store};

const HOLDER: &str = "worker-a";
const OTHER: &str = "worker-b";
const LOCK_TTL_MS: u64 = 60_000;

fn record(status: JobStatus) -> PaymentRecord {
    PaymentRecord {
        id: uuid::Uuid::new_v4().simple().to_string(),
        kind: "send".into(),
        status,
        to: Address::repeat_byte(0x11),
        token: Address::repeat_byte(0x20),
        amount: 1,
        memo: None,
        fingerprint: "f".into(),
        attempts: Vec::new(),
        block_number: None,
        fee: None,
        reason: None,
        created_at_ms: 0,
        updated_at_ms: 0,
        version: 0,
    }
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn store() -> Store {
    Store::new(
        store::connect(&redis_url())
            .await
            .expect("a Redis to test against"),
    )
}

/// Stores `r` as the API does (version 0).
async fn put(r: &PaymentRecord) {
    let mut conn = store::connect(&redis_url()).await.expect("redis");
    let json = serde_json::to_string(r).expect("json");
    let () = redis::cmd("SET")
        .arg(store::payment_key(&r.id))
        .arg(json)
        .query_async(&mut conn)
        .await
        .expect("SET");
}

/// Deletes what the test wrote.
async fn remove(records: &[PaymentRecord]) {
    let mut conn = store::connect(&redis_url()).await.expect("redis");
    for r in records {
        let _: i64 = redis::cmd("DEL")
            .arg(store::payment_key(&r.id))
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

/// The next version of `r`, as a worker writes it.
fn next(r: &PaymentRecord, status: JobStatus) -> PaymentRecord {
    PaymentRecord {
        status,
        version: r.version + 1,
        ..r.clone()
    }
}

async fn stored_status(store: &Store, r: &PaymentRecord) -> JobStatus {
    store.get(&r.id).await.unwrap().unwrap().status
}

#[tokio::test]
async fn a_shared_write_is_all_or_none_and_needs_every_lock_and_a_fresh_copy() {
    let store = store().await;
    let read = [record(JobStatus::Queued), record(JobStatus::Queued)];
    for r in &read {
        put(r).await;
        assert!(
            store
                .lock_payment(&r.id, HOLDER, LOCK_TTL_MS)
                .await
                .unwrap()
        );
    }
    let submitted = read.clone().map(|r| next(&r, JobStatus::Submitted));
    let both: Vec<&PaymentRecord> = submitted.iter().collect();
    assert!(
        store
            .save_all_locked(&both, HOLDER)
            .await
            .unwrap()
            .is_empty()
    );
    for r in &read {
        assert_eq!(stored_status(&store, r).await, JobStatus::Submitted);
    }

    // Two deliveries of one payment in one shared write: refused, nothing written.
    let twice = [
        next(&submitted[0], JobStatus::Confirmed),
        next(&submitted[0], JobStatus::Confirmed),
    ];
    let both: Vec<&PaymentRecord> = twice.iter().collect();
    assert_eq!(store.save_all_locked(&both, HOLDER).await.unwrap(), vec![1]);
    assert_eq!(stored_status(&store, &read[0]).await, JobStatus::Submitted);

    // A stale copy (the version read before that write) is refused, lock or not.
    let stale = next(&read[0], JobStatus::Queued);
    assert!(!store.save_locked(&stale, HOLDER).await.unwrap());
    assert_eq!(stored_status(&store, &read[0]).await, JobStatus::Submitted);

    // The second payment's lock passes to another worker: nothing of the pair is written.
    store.unlock_payment(&read[1].id, HOLDER).await.unwrap();
    assert!(
        store
            .lock_payment(&read[1].id, OTHER, LOCK_TTL_MS)
            .await
            .unwrap()
    );
    let confirmed = submitted.clone().map(|r| next(&r, JobStatus::Confirmed));
    let both: Vec<&PaymentRecord> = confirmed.iter().collect();
    assert_eq!(store.save_all_locked(&both, HOLDER).await.unwrap(), vec![1]);
    for r in &read {
        assert_eq!(
            stored_status(&store, r).await,
            JobStatus::Submitted,
            "written without every lock"
        );
    }

    // A renewal never takes back a lock that was released meanwhile.
    store.unlock_payment(&read[1].id, OTHER).await.unwrap();
    assert!(
        !store
            .renew_payment_lock(&read[1].id, HOLDER, LOCK_TTL_MS)
            .await
            .unwrap()
    );
    assert!(!store.save_locked(&confirmed[1], HOLDER).await.unwrap());
    assert!(
        store
            .renew_payment_lock(&read[0].id, HOLDER, LOCK_TTL_MS)
            .await
            .unwrap()
    );

    for r in &read {
        store.unlock_payment(&r.id, HOLDER).await.unwrap();
    }
    remove(&read).await;
}
