//! Nonce lanes: the 2D-nonce keys this process may sign on.
//!
//! Lanes are leased from Redis (`fluxus:lane:{sender}:{key}`, TTL [`LANE_LEASE_TTL_MS`], renewed
//! every [`LANE_RENEW_EVERY_MS`]) so that workers on any machine sign on disjoint lanes. A lane
//! carries one transaction at a time: its next nonce is the chain's lane nonce, with no local
//! counter to drift. The one shortcut: after this process saw its own transaction with nonce `n`
//! included on a lane it still leases, the lane's next nonce is `n + 1`, so that read is
//! skipped; any doubt (a dead or refused transaction, a lost lease) forgets it. A lease lost
//! (this process stalled past the TTL) is dropped and replaced.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::primitives::Address;
use fluxus_shared::store::Store;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Longer than any transaction's validity, so a lane reclaimed from a dead worker no longer
/// carries a transaction that could still be included.
pub const LANE_LEASE_TTL_MS: u64 = 60_000;
pub const LANE_RENEW_EVERY_MS: u64 = 5_000;

pub struct Lanes {
    sender: Address,
    holder: String,
    store: Store,
    wanted: u32,
    pool: u32,
    owned: Mutex<BTreeSet<u64>>,
    /// Next nonce of a lane, known from this process's own included transaction.
    next_nonce: Mutex<HashMap<u64, u64>>,
    free_tx: mpsc::UnboundedSender<u64>,
    free_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<u64>>,
}

/// A lane held for one transaction; it goes back to the pool when dropped.
pub struct Lane {
    pub key: u64,
    lanes: Arc<Lanes>,
}

impl Drop for Lane {
    fn drop(&mut self) {
        if self
            .lanes
            .owned
            .lock()
            .expect("lane set")
            .contains(&self.key)
        {
            let _ = self.lanes.free_tx.send(self.key);
        }
    }
}

impl Lanes {
    pub fn new(store: Store, sender: Address, holder: String, wanted: u32, pool: u32) -> Arc<Self> {
        let (free_tx, free_rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            sender,
            holder,
            store,
            wanted,
            pool,
            owned: Mutex::new(BTreeSet::new()),
            next_nonce: Mutex::new(HashMap::new()),
            free_tx,
            free_rx: tokio::sync::Mutex::new(free_rx),
        })
    }

    /// Leases lanes until this process holds as many as it wants (or the pool is exhausted).
    pub async fn fill(&self) {
        for key in 1..=u64::from(self.pool) {
            if self.owned.lock().expect("lane set").len() >= self.wanted as usize {
                break;
            }
            if self.owned.lock().expect("lane set").contains(&key) {
                continue;
            }
            match self
                .store
                .lease_lane(&self.sender, key, &self.holder, LANE_LEASE_TTL_MS)
                .await
            {
                Ok(true) => {
                    self.owned.lock().expect("lane set").insert(key);
                    let _ = self.free_tx.send(key);
                    info!(lane = key, "leased nonce lane");
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(cause = %e, "could not lease nonce lanes");
                    return;
                }
            }
        }
    }

    /// Renews every lease; drops lanes another worker took, then tops up.
    pub async fn renew(&self) {
        let owned: Vec<u64> = self
            .owned
            .lock()
            .expect("lane set")
            .iter()
            .copied()
            .collect();
        for key in owned {
            match self
                .store
                .lease_lane(&self.sender, key, &self.holder, LANE_LEASE_TTL_MS)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    warn!(lane = key, "nonce lane lease lost; dropping it");
                    self.owned.lock().expect("lane set").remove(&key);
                    self.forget_nonce(key);
                }
                Err(e) => warn!(lane = key, cause = %e, "could not renew nonce lane lease"),
            }
        }
        self.fill().await;
    }

    /// Renews leases until the process stops.
    pub fn spawn_renewal(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let lanes = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(LANE_RENEW_EVERY_MS)).await;
                lanes.renew().await;
            }
        })
    }

    /// Waits for a free lane that this process still leases.
    pub async fn acquire(self: &Arc<Self>) -> Lane {
        let mut rx = self.free_rx.lock().await;
        loop {
            let key = rx.recv().await.expect("the pool holds a sender");
            if self.owned.lock().expect("lane set").contains(&key) {
                return Lane {
                    key,
                    lanes: self.clone(),
                };
            }
        }
    }

    /// Gives every lease back so other workers can take the lanes at once.
    pub async fn release_all(&self) {
        let owned: Vec<u64> = std::mem::take(&mut *self.owned.lock().expect("lane set"))
            .into_iter()
            .collect();
        for key in owned {
            if let Err(e) = self
                .store
                .release_lane(&self.sender, key, &self.holder)
                .await
            {
                warn!(lane = key, cause = %e, "could not release nonce lane");
            }
        }
    }

    /// The lane's next nonce if this process knows it from its own last inclusion.
    pub fn known_next_nonce(&self, key: u64) -> Option<u64> {
        self.next_nonce
            .lock()
            .expect("nonce map")
            .get(&key)
            .copied()
    }

    /// Records that this process's transaction with `nonce` was included on lane `key`.
    pub fn included(&self, key: u64, nonce: u64) {
        if self.owned.lock().expect("lane set").contains(&key) {
            // Inclusions can be observed out of order (a recovered attempt settling late).
            let mut known = self.next_nonce.lock().expect("nonce map");
            let next = known.entry(key).or_insert(0);
            *next = (*next).max(nonce + 1);
        }
    }

    /// Forgets what this process believed about a lane's nonce.
    pub fn forget_nonce(&self, key: u64) {
        self.next_nonce.lock().expect("nonce map").remove(&key);
    }

    pub fn sender(&self) -> Address {
        self.sender
    }
}
