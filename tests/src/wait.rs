//! Waiting on the stack: every wait polls a condition until a deadline, never sleeps and hopes.
//! A missed deadline panics with what was being waited for and the last thing seen.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions are re-checked; small against any deadline, gentle on a 2-core machine.
pub const POLL_INTERVAL_MS: u64 = 150;

/// Polls `check` until it yields `Ok(Some(value))` or `deadline` passes.
///
/// `Ok(None)` means "not yet"; `Err` also means "not yet" but is remembered and printed if the
/// deadline passes, so a wait that never succeeds says why. A condition that can never become
/// true (a crashed process, a terminal status) should panic inside `check` instead.
pub async fn poll<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(Some(value)) => return value,
            Ok(None) => "condition not met yet".to_string(),
            Err(err) => format!("{err:#}"),
        };
        if started.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
}
