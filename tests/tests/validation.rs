//! Refused sends: every bad input is a 400 problem+json naming the offending field (401 without
//! the bearer key), and leaves nothing behind in Redis: no payment record, no idempotency key,
//! no queued job. Covers C01, C02, the refusing halves of C04 and C06, and malformed bodies.
//!
//! Every request carries an `Idempotency-Key`, so a refusal that still stored the key shows up.
//! The tests share one stack and take turns (`SERIAL`) so a leftover is blamed on the right case.

use std::sync::{Arc, OnceLock};

use fluxus_tests::{
    ALPHA_USD, Api, Auth, PATH_USD, Stack, StackOpts, Store, checksummed, fresh_address,
    random_hex, shared_stack,
};
use serde_json::{Value, json};
use tokio::sync::Mutex;

static STACK: OnceLock<Arc<Stack>> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Has a valid EIP-55 checksum (from round1.md).
const EIP55: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

fn stack() -> Arc<Stack> {
    shared_stack(&STACK, StackOpts::default)
}

/// One refused request and what the refusal must look like.
struct Case {
    name: String,
    body: String,
    auth: Auth,
    status: u16,
    slug: Option<&'static str>,
    field: Option<&'static str>,
    /// Words the `detail` must contain (case-insensitive), e.g. the 32-byte memo limit.
    detail_mentions: Option<&'static str>,
}

impl Case {
    /// A body that is valid except for `key` set to `value` (`Value::Null` removes it).
    fn field(name: &str, key: &'static str, value: Value) -> Self {
        let mut body =
            json!({"to": checksummed(fresh_address()), "amount": "1", "token": "pathUSD"});
        if value.is_null() {
            body.as_object_mut().expect("object").remove(key);
        } else {
            body[key] = value;
        }
        Self {
            name: name.to_string(),
            body: body.to_string(),
            auth: Auth::Bearer,
            status: 400,
            slug: Some("invalid-field"),
            field: Some(key),
            detail_mentions: None,
        }
    }

    fn mentioning(mut self, words: &'static str) -> Self {
        self.detail_mentions = Some(words);
        self
    }
}

/// Runs every case, collecting all failures before failing, so one report shows them all.
async fn run(cases: Vec<Case>) {
    let _turn = SERIAL.lock().await;
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let (api, store) = (stack.api(), stack.store());

    let mut failures = Vec::new();
    for case in &cases {
        if let Err(err) = check(&api, &store, case).await {
            failures.push(format!("{}: {err}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

async fn check(api: &Api, store: &Store, case: &Case) -> Result<(), String> {
    let before = store.leftovers();
    let key = format!("refused-{}", random_hex(8));
    let reply = api
        .post_raw("/api/v1/send", case.body.clone(), Some(&key), case.auth)
        .await;

    let mut wrong = Vec::new();
    if let Err(err) = reply.check_problem(case.status, case.slug, case.field) {
        wrong.push(err);
    }
    if let Some(words) = case.detail_mentions {
        let detail = reply.body["detail"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        if !detail.contains(&words.to_lowercase()) {
            wrong.push(format!(
                "detail does not mention {words:?}: {}",
                reply.body["detail"]
            ));
        }
    }
    let left = store.leftovers().since(&before);
    if !left.is_empty() {
        wrong.push(format!("left behind in redis: {left:?}"));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{} (body {})", wrong.join("; "), case.body))
    }
}

/// C01 and C02: amounts that are not a plain positive decimal with at most 6 places.
#[tokio::test]
async fn c01_c02_bad_amounts_are_refused() {
    let texts = [
        "1.5000000",
        "1e-3",
        "1_000",
        "+1",
        " 1",
        ".5",
        "1.",
        "0x10",
        "NaN",
        "-1",
        "-0",
        "0",
        "0.000000",
        "",
        "1,5",
        "1 000",
        "Infinity",
        "1.2.3",
        "١",
    ];
    let mut cases: Vec<Case> = texts
        .iter()
        .map(|amount| Case::field(&format!("amount {amount:?}"), "amount", json!(amount)))
        .collect();
    cases.push(Case::field(
        "amount as JSON number 1.5",
        "amount",
        json!(1.5),
    ));
    cases.push(Case::field("amount as JSON number 1", "amount", json!(1)));
    cases.push(Case::field("amount missing", "amount", Value::Null));
    cases.push(
        Case::field(
            "amount above 2^128 - 1 base units",
            "amount",
            json!("340282366920938463463374607431768.211456"),
        )
        .mentioning("at most 340282366920938463463374607431768.211455"),
    );
    run(cases).await;
}

/// C04 (refusing half): memos over 32 UTF-8 bytes are refused, never truncated.
#[tokio::test]
async fn c04_memos_over_32_bytes_are_refused() {
    let memos = [
        "x".repeat(33),
        "€".repeat(11),
        format!("{}é", "a".repeat(31)),
    ];
    let cases = memos
        .iter()
        .map(|memo| {
            assert_eq!(memo.len(), 33, "test memo {memo:?} should be 33 bytes");
            Case::field(&format!("memo {memo:?}"), "memo", json!(memo)).mentioning("32")
        })
        .collect();
    run(cases).await;
}

/// C06 (refusing half): broken checksums, wrong lengths, the zero address and TIP-20 token
/// addresses are refused; a broken checksum is never silently corrected.
#[tokio::test]
async fn c06_bad_recipients_are_refused() {
    let broken_checksum = format!("{}D", &EIP55[..EIP55.len() - 1]);
    let cases = vec![
        Case::field("broken checksum", "to", json!(broken_checksum)).mentioning("checksum"),
        Case::field("39 hex chars", "to", json!(&EIP55[..41])),
        Case::field("41 hex chars", "to", json!(format!("{EIP55}0"))),
        Case::field(
            "zero address",
            "to",
            json!("0x0000000000000000000000000000000000000000"),
        ),
        Case::field(
            "pathUSD token address",
            "to",
            json!(format!("{PATH_USD:#x}")),
        ),
        Case::field(
            "AlphaUSD token address",
            "to",
            json!(checksummed(ALPHA_USD)),
        ),
        Case::field("no 0x prefix", "to", json!(&EIP55[2..])),
        Case::field("0xABC", "to", json!("0xABC")),
        Case::field("empty", "to", json!("")),
        Case::field("to missing", "to", Value::Null),
    ];
    run(cases).await;
}

/// Unknown tokens, unknown fields, `null` fields (a token `null` must not mean the default
/// token) and bodies that are not JSON.
#[tokio::test]
async fn malformed_requests_are_refused() {
    let mut malformed = Case::field("not JSON", "to", json!("unused"));
    malformed.body = r#"{"to": "#.to_string();
    malformed.slug = Some("invalid-body");
    malformed.field = None;

    let mut unknown = Case::field("unknown field", "to", json!(checksummed(fresh_address())));
    let mut body: Value = serde_json::from_str(&unknown.body).expect("json");
    body["amout"] = json!("1");
    unknown.body = body.to_string();
    unknown.field = Some("amout");

    let null = |key: &'static str| {
        let mut case = Case::field(&format!("{key} null"), key, json!("unused"));
        let mut body: Value = serde_json::from_str(&case.body).expect("json");
        body[key] = Value::Null;
        case.body = body.to_string();
        case.mentioning("null")
    };
    let cases = vec![
        null("token"),
        null("memo"),
        null("amount"),
        Case::field("unknown token symbol", "token", json!("DOGE")),
        Case::field("token as a number", "token", json!(1)),
        Case::field("memo as a number", "memo", json!(102329716)),
        unknown,
        malformed,
    ];
    run(cases).await;
}

/// Without the right bearer key nothing is accepted, even a valid body.
#[tokio::test]
async fn missing_or_wrong_bearer_is_401() {
    let valid = json!({"to": checksummed(fresh_address()), "amount": "1"}).to_string();
    let cases = [
        ("no Authorization header", Auth::Missing),
        ("wrong key", Auth::Wrong),
    ]
    .into_iter()
    .map(|(name, auth)| Case {
        name: name.to_string(),
        body: valid.clone(),
        auth,
        status: 401,
        slug: None,
        field: None,
        detail_mentions: None,
    })
    .collect();
    run(cases).await;
}

/// The bearer scheme is case-insensitive (RFC 9110): `bearer <key>` sends and reads a job.
#[tokio::test]
async fn lowercase_bearer_scheme_is_accepted() {
    let _turn = SERIAL.lock().await;
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let api = stack.api();
    let body = json!({"to": checksummed(fresh_address()), "amount": "0.01"}).to_string();
    let key = format!("lowercase-{}", random_hex(8));
    let reply = api
        .post_raw("/api/v1/send", body, Some(&key), Auth::LowercaseScheme)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let location = reply.header("Location").expect("Location").to_string();
    let read = api.get_as(&location, Auth::LowercaseScheme).await;
    assert_eq!(
        read.status, 200,
        "GET {location} with `bearer`: {}",
        read.text
    );
}

/// An unknown job id is a 404 problem; reading a job needs the bearer key too.
#[tokio::test]
async fn unknown_job_is_404_and_jobs_need_the_key() {
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let api = stack.api();

    let unknown = api.get(&format!("/api/v1/jobs/{}", random_hex(16))).await;
    unknown.assert_problem(404, None, None);

    let anonymous = Api::new(&stack.api_url(), "not-the-key-of-this-stack");
    let refused = anonymous
        .get(&format!("/api/v1/jobs/{}", random_hex(16)))
        .await;
    refused.assert_problem(401, None, None);
}

/// Health, readiness, metrics and the OpenAPI document answer.
#[tokio::test]
async fn service_endpoints_answer() {
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let api = stack.api();

    for path in ["/healthz", "/readyz", "/metrics"] {
        let reply = api.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
    let spec = api.get("/openapi.json").await.expect_status(200);
    assert!(
        spec["paths"]["/api/v1/send"].is_object(),
        "no send operation in the spec"
    );
}

/// A field given twice (the last would win in most JSON readers), a system contract recipient
/// and an oversized body: each refused, nothing stored.
#[tokio::test]
async fn repeated_fields_system_recipients_and_big_bodies_are_refused() {
    let mut repeated = Case::field("amount given twice", "amount", json!("0.01"));
    repeated.body = repeated.body.replacen('{', r#"{"amount":"1000","#, 1);

    let mut big = Case::field("16 KiB+ body", "memo", json!("a".repeat(20_000)));
    big.status = 413;
    big.slug = Some("body-too-large");
    big.field = None;

    let mut cases = vec![repeated, big];
    for system in [
        "0x0000000000000000000000000000000000000001",
        "0x4e4F4E4345000000000000000000000000000000",
        "0xfeEC000000000000000000000000000000000000",
    ] {
        cases.push(Case::field(system, "to", json!(system)).mentioning("system"));
    }
    run(cases).await;
}

/// An Idempotency-Key the server could not read must refuse the request, never be ignored (a
/// retry would pay again); so must two keys, and a body that is not `application/json`.
#[tokio::test]
async fn unreadable_keys_and_wrong_content_types_are_refused() {
    let _turn = SERIAL.lock().await;
    let stack = stack();
    let _logs = stack.logs_on_panic();
    let store = stack.store();
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/send", stack.api_url());
    let body = json!({"to": checksummed(fresh_address()), "amount": "0.01"}).to_string();

    let non_ascii = reqwest::header::HeaderValue::from_bytes("clé-€".as_bytes()).expect("bytes");
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "non-ASCII key",
            http.post(&url).header("Idempotency-Key", non_ascii),
            400,
            "invalid-field",
        ),
        (
            "two keys",
            http.post(&url)
                .header("Idempotency-Key", "k1")
                .header("Idempotency-Key", "k2"),
            400,
            "invalid-field",
        ),
        (
            "merge-patch content type",
            http.post(&url),
            415,
            "unsupported-media-type",
        ),
    ];
    for (name, request, status, slug) in cases {
        let before = store.leftovers();
        let content_type = if status == 415 {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let reply = request
            .bearer_auth(&stack.api_key)
            .header("Content-Type", content_type)
            .body(body.clone())
            .send()
            .await
            .expect("the API answers");
        assert_eq!(reply.status().as_u16(), status, "{name}");
        let problem: Value = reply.json().await.expect("problem+json");
        assert_eq!(
            problem["type"],
            format!("urn:fluxus:problem:{slug}"),
            "{name}: {problem}"
        );
        let left = store.leftovers().since(&before);
        assert!(left.is_empty(), "{name}: left behind in redis: {left:?}");
    }
}
