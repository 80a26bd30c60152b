//! End-to-end test harness for Fluxus: starts a real stack (Tempo dev node, Redis, `fluxus-api`,
//! `fluxus-worker`) as child processes on free loopback ports and drives it only from outside:
//! HTTP for the API, JSON-RPC for the chain, key names for Redis. It never links product code.
//! Faults are injected from outside too: [`FaultProxy`] between Fluxus and the node or Redis,
//! signals to processes, and Redis restarts on its append-only file.
//!
//! Run: `cargo build --workspace --bins && cargo test -p fluxus-tests --no-fail-fast --
//! --test-threads=2`. `FLUXUS_BIN_DIR` points at other binaries; `FLUXUS_E2E_KEEP_LOGS=1` keeps
//! the logs of passing stacks under `target/fluxus-e2e/` (a failing stack's are always kept and
//! their tails printed).

pub mod api;
pub mod chain;
pub mod checks;
pub mod process;
pub mod proxy;
pub mod stack;
pub mod store;
pub mod wait;

use std::time::Duration;

use alloy::primitives::{Address, address};

pub use api::{Api, Auth, Reply, text};
pub use chain::{Chain, MemoTransferLog, TransferLog, parse_address, parse_b256};
pub use checks::{assert_lanes_gapless, wait_held, wait_submitted};
pub use process::Signal;
pub use proxy::{FaultProxy, ProxyControl, ProxyStats, ResetWhen, Trigger};
pub use stack::{Stack, StackOpts, WorkerId, shared_stack, spawn_stack};
pub use store::{Leftovers, Store};
pub use wait::poll;

/// pathUSD, the default token of a send.
pub const PATH_USD: Address = address!("0x20c0000000000000000000000000000000000000");
pub const ALPHA_USD: Address = address!("0x20c0000000000000000000000000000000000001");
pub const BETA_USD: Address = address!("0x20c0000000000000000000000000000000000002");
pub const THETA_USD: Address = address!("0x20c0000000000000000000000000000000000003");

/// Dev account 0 of the node: the sender every stack signs with.
pub const SENDER_PRIVATE_KEY: &str =
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const SENDER: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

/// Chain id the dev node is started with (Moderato's).
pub const CHAIN_ID: u64 = 42431;

/// Deadline for one payment to go from accepted to `confirmed` on an automining node. Generous:
/// the machine is shared and has 2 cores; a healthy stack needs a few seconds.
pub const CONFIRM_SECS: u64 = 120;

/// [`CONFIRM_SECS`] as a `Duration`.
pub fn confirm_deadline() -> Duration {
    Duration::from_secs(CONFIRM_SECS)
}

/// The EIP-55 spelling of an address, as the API must answer it.
pub fn checksummed(address: Address) -> String {
    address.to_checksum(None)
}

/// A random address nobody has used: a recipient whose balance and logs belong to one test.
pub fn fresh_address() -> Address {
    let mut bytes = [0u8; 20];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..4]);
    Address::from(bytes)
}

/// A random lowercase hex string of `bytes` bytes (API keys, idempotency keys).
pub fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

/// `value` base units of a 6-decimal token as the canonical decimal string ("1.25", "3").
pub fn format_units6(value: u128) -> String {
    let (whole, frac) = (value / 1_000_000, value % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// A decimal string with trailing fractional zeros removed, so "1.250000" and "1.25" compare
/// equal. Only for comparing values the contract does not pin to one spelling.
pub fn normalize_decimal(text: &str) -> String {
    match text.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_string()
            } else {
                format!("{whole}.{frac}")
            }
        }
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_base_units() {
        assert_eq!(format_units6(1_250_000), "1.25");
        assert_eq!(format_units6(3_000_000), "3");
        assert_eq!(format_units6(1), "0.000001");
        assert_eq!(format_units6(9_007_199_254_740_993), "9007199254.740993");
    }

    #[test]
    fn normalizes_decimals() {
        assert_eq!(normalize_decimal("1.250000"), "1.25");
        assert_eq!(normalize_decimal("2.000000"), "2");
        assert_eq!(normalize_decimal("7"), "7");
    }

    #[test]
    fn fresh_addresses_differ() {
        assert_ne!(fresh_address(), fresh_address());
        assert_eq!(random_hex(16).len(), 32);
    }
}
