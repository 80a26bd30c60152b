//! HTTP client for the Fluxus API as a customer sees it: bearer auth, `Idempotency-Key`, JSON in
//! and out, problem+json errors. Helpers check replies but never interpret them the way the
//! product does; a test states what it expects.

use std::time::Duration;

use reqwest::{
    RequestBuilder,
    header::{CONTENT_TYPE, HeaderMap},
};
use serde_json::Value;

use crate::wait::{POLL_INTERVAL_MS, poll};

/// Timeout of one HTTP request; the API answers in milliseconds, so this only bounds a hang.
pub const REQUEST_TIMEOUT_SECS: u64 = 30;
/// Pause of [`Api::send_until_accepted`] before it tries again.
pub const SEND_RETRY_PAUSE_MS: u64 = 250;
/// Prefix of every problem `type`.
pub const PROBLEM_PREFIX: &str = "urn:fluxus:problem:";
/// Statuses a job never leaves.
pub const TERMINAL_STATUSES: [&str; 4] = ["confirmed", "failed", "expired", "canceled"];

/// Which `Authorization` header a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The stack's key.
    Bearer,
    /// No header at all.
    Missing,
    /// A well-formed bearer header with a key the API was not given.
    Wrong,
    /// The stack's key under the scheme spelled `bearer` (schemes are case-insensitive).
    LowercaseScheme,
}

/// One HTTP answer, kept whole so a failed assertion can print it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body parsed as JSON, or `Value::Null` if it is not JSON.
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn content_type(&self) -> &str {
        self.header(CONTENT_TYPE.as_str()).unwrap_or_default()
    }

    /// `Ok` if this is an RFC 9457 problem with `status`, type `urn:fluxus:problem:{slug}` (any
    /// Fluxus problem type if `slug` is `None`) and, when given, `field`; `Err` says what differs
    /// (for tests collecting several failures).
    pub fn check_problem(
        &self,
        status: u16,
        slug: Option<&str>,
        field: Option<&str>,
    ) -> Result<(), String> {
        let mut wrong = Vec::new();
        if self.status != status {
            wrong.push(format!("status {} (want {status})", self.status));
        }
        if !self.content_type().starts_with("application/problem+json") {
            wrong.push(format!("content-type {:?}", self.content_type()));
        }
        let problem_type = self.body["type"].as_str().unwrap_or_default();
        let want_type = format!("{PROBLEM_PREFIX}{}", slug.unwrap_or_default());
        let type_ok = match slug {
            Some(_) => problem_type == want_type,
            None => problem_type.starts_with(PROBLEM_PREFIX),
        };
        if !type_ok {
            wrong.push(format!("type {} (want {want_type})", self.body["type"]));
        }
        if self.body["status"] != status {
            wrong.push(format!("body status {}", self.body["status"]));
        }
        let detail = self.body["detail"].as_str().unwrap_or_default();
        if detail.trim().is_empty() {
            wrong.push("no detail".to_string());
        }
        if let Some(field) = field
            && self.body["field"] != field
        {
            wrong.push(format!("field {} (want {field:?})", self.body["field"]));
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}; reply: {} {}",
                wrong.join(", "),
                self.status,
                self.text
            ))
        }
    }

    /// Panicking form of [`Reply::check_problem`].
    pub fn assert_problem(&self, status: u16, slug: Option<&str>, field: Option<&str>) {
        if let Err(err) = self.check_problem(status, slug, field) {
            panic!("not the expected problem: {err}");
        }
    }

    /// The body, after asserting the status; panics with the whole reply otherwise.
    pub fn expect_status(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected reply: {}", self.text);
        self.body
    }
}

/// Client of one stack's API.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
            .build()
            .expect("http client");
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
        }
    }

    /// `POST /api/v1/send` with the bearer key: (status, body).
    pub async fn send(&self, body: &Value, idempotency_key: Option<&str>) -> (u16, Value) {
        let reply = self.send_reply(body, idempotency_key).await;
        (reply.status, reply.body)
    }

    /// `POST /api/v1/send` with the bearer key, the whole reply.
    pub async fn send_reply(&self, body: &Value, idempotency_key: Option<&str>) -> Reply {
        self.post_raw(
            "/api/v1/send",
            body.to_string(),
            idempotency_key,
            Auth::Bearer,
        )
        .await
    }

    /// `POST /api/v1/send` with the bearer key; a transport failure (connection refused or
    /// reset, timeout) as `Err` instead of a panic, for tests that break the API's path.
    pub async fn try_send(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut request = self
            .http
            .post(format!("{}/api/v1/send", self.base))
            .header(CONTENT_TYPE, "application/json")
            .bearer_auth(&self.key)
            .body(body.to_string());
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        Self::reply(request, "/api/v1/send").await
    }

    /// Sends as a careful client does: a transport failure or a 503 is retried with the same
    /// `Idempotency-Key` (after a short pause) until the API answers 202, which is returned
    /// with the number of tries. Any other answer, or no 202 within `deadline`, panics.
    pub async fn send_until_accepted(
        &self,
        body: &Value,
        idempotency_key: &str,
        deadline: Duration,
    ) -> (Reply, u32) {
        let started = std::time::Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let last = match self.try_send(body, Some(idempotency_key)).await {
                Ok(reply) if reply.status == 202 => return (reply, tries),
                Ok(reply) if reply.status == 503 => format!("503 {}", reply.text),
                Ok(reply) => panic!(
                    "send {body} (key {idempotency_key}) answered {}: {}",
                    reply.status, reply.text
                ),
                Err(err) => format!("{err:#}"),
            };
            assert!(
                started.elapsed() < deadline,
                "send {body} (key {idempotency_key}) not accepted within {deadline:?} after \
                 {tries} tries; last: {last}"
            );
            tokio::time::sleep(Duration::from_millis(SEND_RETRY_PAUSE_MS)).await;
        }
    }

    /// POST of an arbitrary (possibly malformed) JSON body.
    pub async fn post_raw(
        &self,
        path: &str,
        body: String,
        idempotency_key: Option<&str>,
        auth: Auth,
    ) -> Reply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        request = self.authorize(request, auth);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        Self::reply(request, path)
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err:#}"))
    }

    /// Adds the `Authorization` header `auth` stands for.
    fn authorize(&self, request: RequestBuilder, auth: Auth) -> RequestBuilder {
        match auth {
            Auth::Bearer => request.bearer_auth(&self.key),
            Auth::Wrong => request.bearer_auth(format!("{}x", self.key)),
            Auth::LowercaseScheme => {
                request.header("Authorization", format!("bearer {}", self.key))
            }
            Auth::Missing => request,
        }
    }

    /// GET with the bearer key.
    pub async fn get(&self, path: &str) -> Reply {
        self.get_as(path, Auth::Bearer).await
    }

    /// GET with the `Authorization` header `auth` stands for.
    pub async fn get_as(&self, path: &str, auth: Auth) -> Reply {
        self.try_get_as(path, auth)
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err:#}"))
    }

    /// GET with the bearer key; transport errors as `Err` (for polls).
    pub async fn try_get(&self, path: &str) -> anyhow::Result<Reply> {
        self.try_get_as(path, Auth::Bearer).await
    }

    async fn try_get_as(&self, path: &str, auth: Auth) -> anyhow::Result<Reply> {
        let request = self.authorize(self.http.get(format!("{}{path}", self.base)), auth);
        Self::reply(request, path).await
    }

    /// `GET /api/v1/jobs/{id}`; panics unless 200.
    pub async fn job(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/jobs/{id}"))
            .await
            .expect_status(200)
    }

    /// Polls the job until its status is one of `wanted`. Panics at the deadline, or at once if
    /// the job reaches a terminal status that is not wanted (it would never change again).
    pub async fn wait_for_status(&self, id: &str, wanted: &[&str], deadline: Duration) -> Value {
        let what = format!("job {id} to reach {wanted:?}");
        poll(&what, deadline, || async {
            let reply = self.try_get(&format!("/api/v1/jobs/{id}")).await?;
            anyhow::ensure!(
                reply.status == 200,
                "GET job: {} {}",
                reply.status,
                reply.text
            );
            let status = reply.body["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if wanted.contains(&status.as_str()) {
                return Ok(Some(reply.body));
            }
            if TERMINAL_STATUSES.contains(&status.as_str()) {
                panic!("job {id} ended {status}, wanted {wanted:?}: {}", reply.text);
            }
            anyhow::bail!("status {status}: {}", reply.text)
        })
        .await
    }

    /// Polls every job until each has a status in `wanted`, within one overall deadline; the
    /// final job JSONs in the order of `ids`.
    pub async fn wait_all(
        &self,
        ids: &[String],
        wanted: &[&str],
        deadline: Duration,
    ) -> Vec<Value> {
        let started = std::time::Instant::now();
        let mut done: Vec<Option<Value>> = vec![None; ids.len()];
        loop {
            let mut last = String::new();
            for (id, slot) in ids.iter().zip(done.iter_mut()).filter(|(_, s)| s.is_none()) {
                let job = match self.try_get(&format!("/api/v1/jobs/{id}")).await {
                    Ok(job) if job.status == 200 => job,
                    Ok(job) => panic!("GET job {id}: {} {}", job.status, job.text),
                    Err(err) => {
                        last = format!("GET job {id}: {err:#}");
                        continue;
                    }
                };
                let status = job.body["status"].as_str().unwrap_or_default();
                if wanted.contains(&status) {
                    *slot = Some(job.body);
                } else if TERMINAL_STATUSES.contains(&status) {
                    panic!("job {id} ended {status}, wanted {wanted:?}: {}", job.text);
                } else {
                    last = job.text;
                }
            }

            let pending = done.iter().filter(|slot| slot.is_none()).count();
            if pending == 0 {
                return done.into_iter().flatten().collect();
            }
            if started.elapsed() >= deadline {
                panic!(
                    "timed out after {deadline:?}: {pending} of {} jobs not in {wanted:?}; \
                     last seen: {last}",
                    ids.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
    }

    /// `GET /api/v1/balance/{address}`; panics unless 200.
    pub async fn balance(&self, address: &str) -> Value {
        self.get(&format!("/api/v1/balance/{address}"))
            .await
            .expect_status(200)
    }

    /// `GET /api/v1/history/{address}` with optional `limit` and `cursor`; panics unless 200.
    pub async fn history(&self, address: &str, limit: Option<u32>, cursor: Option<&str>) -> Value {
        let mut query = Vec::new();
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        if let Some(cursor) = cursor {
            query.push(format!("cursor={}", percent_encode(cursor)));
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        self.get(&format!("/api/v1/history/{address}{query}"))
            .await
            .expect_status(200)
    }

    async fn reply(request: RequestBuilder, path: &str) -> anyhow::Result<Reply> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 500 {
            eprintln!("{path} answered {status}: {text}");
        }
        Ok(Reply {
            status,
            headers,
            body,
            text,
        })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (cursors are opaque).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The string at `key` of a JSON object; panics with the whole object if absent or not a string.
pub fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {value}"))
}
