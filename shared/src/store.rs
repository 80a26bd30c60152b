//! Payment records, idempotency keys and leases in Redis.
//!
//! Key layout (every key Fluxus owns starts with `fluxus:`):
//! - `fluxus:payment:{id}`: the [`PaymentRecord`] as JSON.
//! - `fluxus:idem:{key}`: `{fingerprint}|{payment id}`, kept [`IDEMPOTENCY_TTL_SECS`].
//! - `fluxus:outbox`: accepted payments whose job push is not confirmed yet.
//! - `fluxus:lock:payment:{id}`: the worker currently driving a payment.
//! - `fluxus:lane:{sender}:{nonce key}`: the worker leasing a nonce lane.
//! - `fluxus:metrics:*`: job outcome counters and the latency histogram shared by all workers.
//!
//! A record, its idempotency key and its outbox entry are written by one Lua script, so a
//! request is either wholly accepted or leaves nothing behind, and an accepted payment always
//! reaches the queue.

use std::time::Duration;

use alloy::primitives::Address;
use redis::{AsyncCommands, Script, aio::ConnectionManager};

use crate::{
    queue::{
        SEND_ACTIVE_LIST, SEND_DATA_HASH, SEND_DONE_SET, SEND_META_PREFIX, SEND_SCHEDULED_SET,
    },
    record::PaymentRecord,
};

/// Idempotency keys live 48 hours (the promise to clients is at least 24 hours).
pub const IDEMPOTENCY_TTL_SECS: u64 = 48 * 3600;
/// A slow Redis answer is not a dead Redis: wait this long before giving up on a reply.
pub const REDIS_RESPONSE_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("corrupt payment record {id}: {source}")]
    Corrupt {
        id: String,
        source: serde_json::Error,
    },
}

/// Result of trying to create a payment under an idempotency key.
#[derive(Debug)]
pub enum Created {
    /// The record was stored now.
    New,
    /// The key was already used; here is what it points to.
    Existing { fingerprint: String, id: String },
    /// Nothing was stored: the queue holds `max_depth` jobs or more.
    QueueFull,
}

#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
}

pub fn payment_key(id: &str) -> String {
    format!("fluxus:payment:{id}")
}

fn idempotency_key(key: &str) -> String {
    format!("fluxus:idem:{key}")
}

fn lock_key(id: &str) -> String {
    format!("fluxus:lock:payment:{id}")
}

fn lane_key(sender: &Address, nonce_key: u64) -> String {
    format!("fluxus:lane:{sender:#x}:{nonce_key}")
}

/// Payments stored but whose job may not be pushed yet, scored by acceptance time (ms). The
/// record and its outbox entry are written together, so a payment whose push failed or whose
/// API died before pushing is still found and pushed by a worker.
const OUTBOX_KEY: &str = "fluxus:outbox";
const METRICS_JOBS_KEY: &str = "fluxus:metrics:jobs";
const METRICS_LATENCY_KEY: &str = "fluxus:metrics:latency";
/// Upper bounds (ms) of the accept-to-confirmed latency histogram buckets.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [
    100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000,
];

/// KEYS: payment, outbox, queue active list, queue scheduled set[, idempotency key].
/// ARGV: record JSON, `fingerprint|id`, idempotency TTL, queue depth limit, now (ms), id.
/// Returns the existing `fingerprint|id`, `FULL` when the queue is at its limit, or nil.
const CREATE_SCRIPT: &str = r#"
if #KEYS == 5 then
  local existing = redis.call('GET', KEYS[5])
  if existing then return existing end
end
local depth = redis.call('LLEN', KEYS[3]) + redis.call('ZCARD', KEYS[4])
if depth >= tonumber(ARGV[4]) then return 'FULL' end
if #KEYS == 5 then redis.call('SET', KEYS[5], ARGV[2], 'EX', ARGV[3]) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
return false
"#;

/// Sets a lease only if it is free or already ours; refreshes its TTL either way.
const LEASE_SCRIPT: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

/// Writes records only while `holder` holds each payment's lock and each stored record is still
/// the version the writer read: a worker that lost its lock (it stalled past the TTL and another
/// took over), or that holds a stale copy, can no longer change the payment. All or none: KEYS
/// are lock and record key pairs, ARGV the holder, then per record its JSON and the stored
/// version it expects. A record named twice fails the second time (two deliveries of one job
/// must never ride one transaction). Returns the 1-based pair numbers that failed (then nothing
/// was written), or an empty list.
const SAVE_LOCKED_SCRIPT: &str = r#"
local lost = {}
local seen = {}
for i = 1, #KEYS, 2 do
  local n = (i + 1) / 2
  local fenced = not seen[KEYS[i + 1]] and redis.call('GET', KEYS[i]) == ARGV[1]
  seen[KEYS[i + 1]] = true
  if fenced then
    local stored = redis.call('GET', KEYS[i + 1])
    fenced = stored and (cjson.decode(stored).version or 0) == tonumber(ARGV[2 * n + 1])
  end
  if not fenced then table.insert(lost, n) end
end
if #lost > 0 then return lost end
for i = 1, #KEYS, 2 do redis.call('SET', KEYS[i + 1], ARGV[i + 1]) end
return lost
"#;

/// Extends a lease only while `holder` still holds it; a lease that expired (and may have been
/// taken, used and released by another holder since) is never taken back by a renewal.
const RENEW_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Opens a self-reconnecting connection with a response timeout long enough to ride out a
/// short stall.
pub async fn connect(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(REDIS_RESPONSE_TIMEOUT_MS)))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(3);
    client.get_connection_manager_with_config(config).await
}

impl Store {
    pub fn new(conn: ConnectionManager) -> Self {
        Self { conn }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Stores a new record, guarded by an idempotency key when one is given, unless the send
    /// queue already holds `max_depth` jobs (an idempotent replay is answered even then).
    pub async fn create(
        &self,
        record: &PaymentRecord,
        idempotency: Option<&str>,
        max_depth: u64,
    ) -> Result<Created, StoreError> {
        let json = serde_json::to_string(record).expect("a record always serializes");
        let script = Script::new(CREATE_SCRIPT);
        let mut invocation = script.key(payment_key(&record.id));
        invocation
            .key(OUTBOX_KEY)
            .key(SEND_ACTIVE_LIST)
            .key(SEND_SCHEDULED_SET);
        if let Some(key) = idempotency {
            invocation.key(idempotency_key(key));
        }
        invocation
            .arg(json)
            .arg(format!("{}|{}", record.fingerprint, record.id))
            .arg(IDEMPOTENCY_TTL_SECS)
            .arg(max_depth)
            .arg(record.created_at_ms)
            .arg(&record.id);
        let mut conn = self.conn.clone();
        let existing: Option<String> = invocation.invoke_async(&mut conn).await?;
        Ok(match existing.as_deref() {
            None => Created::New,
            Some("FULL") => Created::QueueFull,
            Some(v) => {
                let (fingerprint, id) = v.split_once('|').unwrap_or((v, ""));
                Created::Existing {
                    fingerprint: fingerprint.into(),
                    id: id.into(),
                }
            }
        })
    }

    /// Jobs waiting in the send queue: not yet fetched, or waiting for a retry.
    pub async fn queue_depth(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let (active, scheduled): (u64, u64) = redis::pipe()
            .llen(SEND_ACTIVE_LIST)
            .zcard(SEND_SCHEDULED_SET)
            .query_async(&mut conn)
            .await?;
        Ok(active + scheduled)
    }

    /// Deletes the data of up to `batch` finished send jobs; returns how many. apalis-redis
    /// keeps finished jobs forever otherwise, and the payment record already holds the outcome.
    pub async fn clean_finished_jobs(&self, batch: usize) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("SPOP")
            .arg(SEND_DONE_SET)
            .arg(batch)
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.hdel(SEND_DATA_HASH, &ids).ignore();
        for id in &ids {
            pipe.del(format!("{SEND_META_PREFIX}{id}")).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(ids.len())
    }

    /// Marks a payment's job as pushed: it leaves the outbox.
    pub async fn pushed(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.zrem(OUTBOX_KEY, id).await?;
        Ok(())
    }

    /// Takes up to `batch` payments that entered the outbox before `before_ms` and were not
    /// marked pushed; each is taken by one caller only (removed as it is returned).
    pub async fn take_unpushed(
        &self,
        before_ms: u64,
        batch: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(OUTBOX_KEY)
            .arg(0)
            .arg(before_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(batch)
            .query_async(&mut conn)
            .await?;
        let mut taken = Vec::with_capacity(ids.len());
        for id in ids {
            let removed: i64 = conn.zrem(OUTBOX_KEY, &id).await?;
            if removed == 1 {
                taken.push(id);
            }
        }
        Ok(taken)
    }

    /// Puts a payment back into the outbox (its push failed again).
    pub async fn return_unpushed(&self, id: &str, at_ms: u64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.zadd(OUTBOX_KEY, id, at_ms).await?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<PaymentRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = conn.get(payment_key(id)).await?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|source| StoreError::Corrupt {
                id: id.into(),
                source,
            })
        })
        .transpose()
    }

    /// Overwrites a record if `holder` still holds its lock and the stored record is the one
    /// this copy was read as; `false` otherwise. `record.version` must already be raised by one
    /// over the version read (see [`PaymentRecord::version`]).
    pub async fn save_locked(
        &self,
        record: &PaymentRecord,
        holder: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.save_all_locked(&[record], holder).await?.is_empty())
    }

    /// [`Store::save_locked`] for several records in one step, all or none: returns the
    /// positions (in `records`) of those whose lock was lost or whose stored version moved on
    /// (then nothing was written), or an empty list.
    pub async fn save_all_locked(
        &self,
        records: &[&PaymentRecord],
        holder: &str,
    ) -> Result<Vec<usize>, StoreError> {
        let script = Script::new(SAVE_LOCKED_SCRIPT);
        let mut invocation = script.arg(holder);
        for record in records {
            let json = serde_json::to_string(record).expect("a record always serializes");
            invocation
                .key(lock_key(&record.id))
                .key(payment_key(&record.id))
                .arg(json)
                // A record not raised over the version read (0) never matches.
                .arg(i128::from(record.version) - 1);
        }
        let mut conn = self.conn.clone();
        let lost: Vec<usize> = invocation.invoke_async(&mut conn).await?;
        Ok(lost.into_iter().map(|n| n - 1).collect())
    }

    /// Counts a finished job and, when it confirmed, its accept-to-confirmed latency.
    pub async fn record_outcome(
        &self,
        kind: &str,
        outcome: &str,
        latency_ms: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.hincr(METRICS_JOBS_KEY, format!("{kind}|{outcome}"), 1)
            .ignore();
        if let Some(ms) = latency_ms {
            for bucket in LATENCY_BUCKETS_MS.iter().filter(|b| ms <= **b) {
                pipe.hincr(METRICS_LATENCY_KEY, bucket.to_string(), 1)
                    .ignore();
            }
            pipe.hincr(METRICS_LATENCY_KEY, "sum_ms", ms).ignore();
            pipe.hincr(METRICS_LATENCY_KEY, "count", 1).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// `(kind, outcome, count)` of every finished job, and the latency hash.
    pub async fn metrics(
        &self,
    ) -> Result<(Vec<(String, String, u64)>, Vec<(String, u64)>), StoreError> {
        let mut conn = self.conn.clone();
        let jobs: Vec<(String, u64)> = conn.hgetall(METRICS_JOBS_KEY).await?;
        let latency: Vec<(String, u64)> = conn.hgetall(METRICS_LATENCY_KEY).await?;
        let jobs = jobs
            .into_iter()
            .filter_map(|(k, n)| {
                k.split_once('|')
                    .map(|(a, b)| (a.to_owned(), b.to_owned(), n))
            })
            .collect();
        Ok((jobs, latency))
    }

    /// Extends `holder`'s lock on a payment; `false` when it no longer holds it.
    pub async fn renew_payment_lock(
        &self,
        id: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let renewed: i64 = Script::new(RENEW_SCRIPT)
            .key(lock_key(id))
            .arg(holder)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(renewed == 1)
    }

    /// Takes (or, when `holder` has it already, renews) the lock on a payment.
    pub async fn lock_payment(
        &self,
        id: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        self.lease(&lock_key(id), holder, ttl_ms).await
    }

    pub async fn unlock_payment(&self, id: &str, holder: &str) -> Result<(), StoreError> {
        self.release(&lock_key(id), holder).await
    }

    /// Takes or renews a nonce lane lease for `holder`.
    pub async fn lease_lane(
        &self,
        sender: &Address,
        nonce_key: u64,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        self.lease(&lane_key(sender, nonce_key), holder, ttl_ms)
            .await
    }

    pub async fn release_lane(
        &self,
        sender: &Address,
        nonce_key: u64,
        holder: &str,
    ) -> Result<(), StoreError> {
        self.release(&lane_key(sender, nonce_key), holder).await
    }

    async fn lease(&self, key: &str, holder: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let taken: i64 = Script::new(LEASE_SCRIPT)
            .key(key)
            .arg(holder)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(taken == 1)
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = Script::new(RELEASE_SCRIPT)
            .key(key)
            .arg(holder)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}
