//! The Fluxus API as the benchmark drives it: `POST /api/v1/send` and `GET /api/v1/jobs/{id}`
//! with the stack's bearer key, and `GET /metrics`. Errors are returned, never panicked on, so a
//! phase can count them.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::scrape::Scrape;

/// Timeout of one HTTP request; bounds a hung API, far above any healthy answer.
const REQUEST_TIMEOUT_SECS: u64 = 10;
/// What every benchmark payment sends, in pathUSD.
pub const AMOUNT: &str = "0.01";
/// Job statuses that never change again.
const TERMINAL_STATUSES: [&str; 4] = ["confirmed", "failed", "expired", "canceled"];

#[derive(Clone, Debug)]
pub struct Fluxus {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Fluxus {
    pub fn new(base: &str, key: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
            .build()
            .context("build the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
        })
    }

    /// Sends [`AMOUNT`] to `to` under a fresh `Idempotency-Key`; the job id once accepted (202).
    pub async fn send(&self, to: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/api/v1/send", self.base))
            .bearer_auth(&self.key)
            .header("Idempotency-Key", fluxus_tests::random_hex(16))
            .json(&json!({ "to": to, "amount": AMOUNT }))
            .send()
            .await
            .context("POST /api/v1/send")?;
        let status = response.status().as_u16();
        let body = response.text().await.context("read the send reply")?;
        if status != 202 {
            bail!("POST /api/v1/send answered {status}: {body}");
        }
        let job: Value = serde_json::from_str(&body).context("send reply is not JSON")?;
        job["id"]
            .as_str()
            .map(String::from)
            .with_context(|| format!("send reply has no job id: {body}"))
    }

    /// The job's status (`queued`, `submitted`, `confirmed`, …) and the hash of the
    /// transaction it names, if any.
    pub async fn status(&self, id: &str) -> anyhow::Result<(String, Option<String>)> {
        let path = format!("/api/v1/jobs/{id}");
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status().as_u16();
        let body = response.text().await.context("read the job reply")?;
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        let job: Value = serde_json::from_str(&body).context("job reply is not JSON")?;
        let status = job["status"]
            .as_str()
            .map(String::from)
            .with_context(|| format!("job reply has no status: {body}"))?;
        Ok((status, job["tx_hash"].as_str().map(String::from)))
    }

    /// `GET /metrics` (no auth), parsed.
    pub async fn scrape(&self) -> anyhow::Result<Scrape> {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .context("GET /metrics")?;
        let status = response.status().as_u16();
        let body = response.text().await.context("read the metrics reply")?;
        if status != 200 {
            bail!("GET /metrics answered {status}: {body}");
        }
        Ok(Scrape::parse(&body))
    }
}

pub fn is_terminal(status: &str) -> bool {
    TERMINAL_STATUSES.contains(&status)
}
