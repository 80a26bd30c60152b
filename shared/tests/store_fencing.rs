//! The fenced writes a worker relies on, against a real Redis (`REDIS_URL`, default the local
//! one; every key carries a fresh id): records of a shared transaction are written all or none,
//! and only while the writer holds every payment's lock.

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

#[tokio::test]
async fn a_shared_write_is_all_or_none_and_needs_every_lock() {
    let store = store().await;
    let mut records = [record(JobStatus::Queued), record(JobStatus::Queued)];
    for r in &records {
        assert!(
            store
                .lock_payment(&r.id, HOLDER, LOCK_TTL_MS)
                .await
                .unwrap()
        );
    }
    for r in &mut records {
        r.status = JobStatus::Submitted;
    }
    let both: Vec<&PaymentRecord> = records.iter().collect();
    assert_eq!(
        store.save_all_locked(&both, HOLDER).await.unwrap(),
        Vec::<usize>::new()
    );
    for r in &records {
        assert_eq!(
            store.get(&r.id).await.unwrap().unwrap().status,
            JobStatus::Submitted
        );
    }

    // The second payment's lock passes to another worker: nothing of the pair is written.
    store.unlock_payment(&records[1].id, HOLDER).await.unwrap();
    assert!(
        store
            .lock_payment(&records[1].id, OTHER, LOCK_TTL_MS)
            .await
            .unwrap()
    );
    for r in &mut records {
        r.status = JobStatus::Confirmed;
    }
    let both: Vec<&PaymentRecord> = records.iter().collect();
    assert_eq!(store.save_all_locked(&both, HOLDER).await.unwrap(), vec![1]);
    for r in &records {
        let stored = store.get(&r.id).await.unwrap().unwrap();
        assert_eq!(
            stored.status,
            JobStatus::Submitted,
            "written without every lock"
        );
    }
    for r in &records {
        store.unlock_payment(&r.id, HOLDER).await.unwrap();
        store.unlock_payment(&r.id, OTHER).await.unwrap();
    }
    remove(&records).await;
}
