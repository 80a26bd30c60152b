//! Read-only look into a stack's Redis by key name, for "a rejected request leaves nothing
//! behind": payment records `fluxus:payment:*`, idempotency keys `fluxus:idem:*` and the send
//! queue's job data hash `fluxus-send:data`. Tests never write here.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, bail};
use redis::Commands;

/// Pattern of payment record keys.
pub const PAYMENT_KEYS: &str = "fluxus:payment:*";
/// Pattern of idempotency keys.
pub const IDEMPOTENCY_KEYS: &str = "fluxus:idem:*";
/// Hash holding the data of every job of the send queue (apalis-redis `{queue}:data`).
pub const SEND_QUEUE_DATA: &str = "fluxus-send:data";

/// What a request can leave behind in Redis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub payments: BTreeSet<String>,
    pub idempotency: BTreeSet<String>,
    /// Job ids (fields) of the send queue's data hash.
    pub queued: BTreeSet<String>,
}

impl Leftovers {
    /// What is in `self` but was not in `before`.
    pub fn since(&self, before: &Self) -> Self {
        let new = |now: &BTreeSet<String>, then: &BTreeSet<String>| {
            now.difference(then).cloned().collect::<BTreeSet<_>>()
        };
        Self {
            payments: new(&self.payments, &before.payments),
            idempotency: new(&self.idempotency, &before.idempotency),
            queued: new(&self.queued, &before.queued),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.payments.is_empty() && self.idempotency.is_empty() && self.queued.is_empty()
    }
}

/// Redis of one stack.
#[derive(Clone, Debug)]
pub struct Store {
    client: redis::Client,
}

impl Store {
    pub fn new(url: &str) -> Self {
        Self {
            client: redis::Client::open(url).expect("valid redis url"),
        }
    }

    pub fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.connect()?;
        let pong: String = redis::cmd("PING").query(&mut conn)?;
        anyhow::ensure!(pong == "PONG", "PING answered {pong}");
        Ok(())
    }

    /// Every key matching `pattern` (SCAN, not KEYS).
    pub fn keys(&self, pattern: &str) -> anyhow::Result<BTreeSet<String>> {
        let mut conn = self.connect()?;
        let keys = conn
            .scan_match::<_, String>(pattern)?
            .collect::<Result<_, _>>()?;
        Ok(keys)
    }

    /// The current payment records, idempotency keys and queued send jobs.
    pub fn leftovers(&self) -> Leftovers {
        let read = || -> anyhow::Result<Leftovers> {
            Ok(Leftovers {
                payments: self.keys(PAYMENT_KEYS)?,
                idempotency: self.keys(IDEMPOTENCY_KEYS)?,
                queued: self.hash_fields(SEND_QUEUE_DATA)?,
            })
        };
        read().unwrap_or_else(|err| panic!("read redis: {err:#}"))
    }

    /// Fields of a hash; empty if the key does not exist, an error if it is not a hash.
    pub fn hash_fields(&self, key: &str) -> anyhow::Result<BTreeSet<String>> {
        let mut conn = self.connect()?;
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut conn)?;
        match kind.as_str() {
            "none" => Ok(BTreeSet::new()),
            "hash" => Ok(redis::cmd("HKEYS").arg(key).query(&mut conn)?),
            other => bail!("{key} is a {other}, not a hash"),
        }
    }

    fn connect(&self) -> anyhow::Result<redis::Connection> {
        let conn = self
            .client
            .get_connection_with_timeout(Duration::from_secs(2))
            .context("connect to redis")?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(conn)
    }
}
