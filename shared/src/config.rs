//! Configuration from the environment, read once at start.
//!
//! A missing or malformed value stops the process with a message naming the variable. URLs and
//! keys are held as [`Secret`]s (a Redis or RPC URL can carry a password), so `Debug` of any
//! config never shows them.

use std::{net::SocketAddr, str::FromStr};

use crate::{
    secret::Secret,
    token::{Token, Tokens, default_tokens},
};

/// Moderato, the public Tempo testnet; used when no RPC URL is configured.
pub const DEFAULT_RPC_URL: &str = "https://rpc.moderato.tempo.xyz";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, thiserror::Error)]
#[error("configuration: {name} {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

fn error(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        reason: reason.into(),
    }
}

/// Reads a variable; an empty value counts as unset.
fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    var(name).ok_or_else(|| error(name, "is not set"))
}

fn parsed<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| error(name, format!("is malformed: {e}"))),
    }
}

/// What both the API and the worker need.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub redis_url: Secret,
    pub rpc_url: Secret,
    pub tokens: Tokens,
    /// The TIP-20 token the sender pays transaction fees in.
    pub fee_token: Token,
}

impl CommonConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let redis_url = var("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.into());
        if !redis_url.starts_with("redis://") && !redis_url.starts_with("rediss://") {
            return Err(error("REDIS_URL", "must start with redis:// or rediss://"));
        }
        let rpc_url = var("NEXT_PUBLIC_TEMPO_RPC_URL")
            .or_else(|| var("TEMPO_RPC_URL"))
            .unwrap_or_else(|| DEFAULT_RPC_URL.into());
        if !rpc_url.starts_with("http://") && !rpc_url.starts_with("https://") {
            return Err(error(
                "NEXT_PUBLIC_TEMPO_RPC_URL",
                "must be an http:// or https:// URL",
            ));
        }
        let tokens = match var("FLUXUS_TOKENS") {
            None => default_tokens(),
            Some(list) => Tokens::parse_list(&list).map_err(|e| error("FLUXUS_TOKENS", e))?,
        };
        let fee_token = match var("FLUXUS_FEE_TOKEN") {
            None => tokens.all()[0].clone(),
            Some(t) => tokens
                .resolve(t.trim())
                .map_err(|e| error("FLUXUS_FEE_TOKEN", e.to_string()))?
                .clone(),
        };
        Ok(Self {
            redis_url: Secret::new(redis_url),
            rpc_url: Secret::new(rpc_url),
            tokens,
            fee_token,
        })
    }
}

/// fluxus-api's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub common: CommonConfig,
    pub api_key: Secret,
    pub listen: SocketAddr,
    /// How many recent blocks `GET /history` scans.
    pub history_blocks: u64,
    /// Jobs waiting in the send queue above which new payments are refused with 503.
    pub max_queue_depth: u64,
}

/// apalis-redis stops fetching once about 8,000 jobs are due at once in its retry set (a Lua
/// `unpack` limit); keeping the whole queue below that keeps even a mass retry under it.
pub const DEFAULT_MAX_QUEUE_DEPTH: u64 = 5_000;

/// The shortest API key accepted; a shorter bearer token is guessable.
pub const API_KEY_MIN_LEN: usize = 16;

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let api_key = required("FLUXUS_API_KEY")?;
        if api_key.len() < API_KEY_MIN_LEN {
            return Err(error("FLUXUS_API_KEY", "must be at least 16 characters"));
        }
        Ok(Self {
            common: CommonConfig::from_env()?,
            api_key: Secret::new(api_key),
            listen: parsed(
                "FLUXUS_LISTEN",
                DEFAULT_LISTEN.parse().expect("valid default"),
            )?,
            history_blocks: parsed("FLUXUS_HISTORY_BLOCKS", 10_000)?,
            max_queue_depth: parsed("FLUXUS_MAX_QUEUE_DEPTH", DEFAULT_MAX_QUEUE_DEPTH)?,
        })
    }
}

/// Most payments one transaction may carry: 64 transfers need well under a tenth of a block's
/// 30M gas.
pub const MAX_BATCH: u32 = 64;

/// fluxus-worker's configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub common: CommonConfig,
    pub sender_key: Secret,
    /// Nonce lanes this process leases; its parallelism.
    pub lanes: u32,
    /// Size of the shared lane pool (nonce keys 1..=pool) that all workers lease from.
    pub lane_pool: u32,
    /// Seconds a signed transaction stays valid (`valid_before = now + this`).
    pub tx_validity_secs: u64,
    /// Most payments one transaction carries (its atomic `calls`); 1 sends each alone.
    pub batch_max: u32,
}

impl WorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let sender_key = required("FLUXUS_SENDER_PRIVATE_KEY")?;
        if crate::tx::signer_from_hex(&sender_key).is_err() {
            return Err(error(
                "FLUXUS_SENDER_PRIVATE_KEY",
                "is not a 32-byte hex private key",
            ));
        }
        let lanes: u32 = parsed("FLUXUS_WORKER_LANES", 4)?;
        let lane_pool: u32 = parsed("FLUXUS_LANE_POOL", 64)?;
        if lanes == 0 || lanes > lane_pool {
            return Err(error(
                "FLUXUS_WORKER_LANES",
                "must be between 1 and FLUXUS_LANE_POOL",
            ));
        }
        let tx_validity_secs = parsed("FLUXUS_TX_VALIDITY_SECS", 30)?;
        if !(5..=3600).contains(&tx_validity_secs) {
            return Err(error(
                "FLUXUS_TX_VALIDITY_SECS",
                "must be between 5 and 3600",
            ));
        }
        let batch_max = parsed("FLUXUS_BATCH_MAX", 16)?;
        if !(1..=MAX_BATCH).contains(&batch_max) {
            return Err(error("FLUXUS_BATCH_MAX", "must be between 1 and 64"));
        }
        Ok(Self {
            common: CommonConfig::from_env()?,
            sender_key: Secret::new(sender_key),
            lanes,
            lane_pool,
            tx_validity_secs,
            batch_max,
        })
    }
}
