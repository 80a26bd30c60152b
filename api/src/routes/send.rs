//! `POST /api/v1/send`: validate, store the record durably, enqueue, answer 202.

use std::sync::Arc;

use alloy::primitives::keccak256;
use apalis::prelude::TaskSink;
use fluxus_shared::{
    address::parse_recipient,
    amount::Amount,
    memo::Memo,
    queue::SendJob,
    record::{JobStatus, PaymentRecord, now_ms},
    store::Created,
};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Header, payload::Json};
use tracing::{info, warn};

use crate::{
    auth::ApiKey,
    problem::ProblemResponse,
    state::AppState,
    views::{JobView, job_view},
};

/// A payment to make.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SendRequest {
    /// Recipient: `0x` + 40 hex digits, EIP-55 checksummed when mixed case.
    pub to: String,
    /// Decimal string with at most 6 fractional digits, e.g. `"1.25"`.
    pub amount: String,
    /// Token symbol (any case) or address; default pathUSD.
    pub token: Option<String>,
    /// Up to 32 UTF-8 bytes of text, or `0x` + 64 hex digits as raw bytes32.
    pub memo: Option<String>,
}

#[derive(ApiResponse)]
pub enum SendResponse {
    /// Accepted: the record is durable and the job queued.
    #[oai(status = 202)]
    Accepted(
        Json<JobView>,
        /// `true` when this answers a repeat of an earlier request with the same key.
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
        /// The job's URL.
        #[oai(header = "Location")]
        String,
    ),
}

pub struct SendApi;

/// A validated request, ready to become a record.
struct Payment {
    to: alloy::primitives::Address,
    token: alloy::primitives::Address,
    amount: Amount,
    memo: Option<Memo>,
}

fn validate(state: &AppState, req: &SendRequest) -> Result<Payment, ProblemResponse> {
    let to = parse_recipient(&req.to).map_err(|e| ProblemResponse::invalid_field("to", e))?;
    let amount =
        Amount::parse(&req.amount).map_err(|e| ProblemResponse::invalid_field("amount", e))?;
    let tokens = &state.config.common.tokens;
    let token = match req.token.as_deref() {
        None => tokens.all()[0].address,
        Some(t) => {
            tokens
                .resolve(t)
                .map_err(|e| ProblemResponse::invalid_field("token", e))?
                .address
        }
    };
    let memo = req
        .memo
        .as_deref()
        .map(Memo::parse)
        .transpose()
        .map_err(|e| ProblemResponse::invalid_field("memo", e))?;
    Ok(Payment {
        to,
        token,
        amount,
        memo,
    })
}

impl Payment {
    /// Identifies the request's meaning, to tell a replay from a reused key.
    fn fingerprint(&self) -> String {
        let memo = self.memo.map(|m| m.hex()).unwrap_or_default();
        let canonical = format!(
            "send|{:#x}|{:#x}|{}|{memo}",
            self.to,
            self.token,
            self.amount.base_units()
        );
        format!("{:x}", keccak256(canonical.as_bytes()))
    }

    fn into_record(self) -> PaymentRecord {
        let now = now_ms();
        PaymentRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            kind: "send".into(),
            status: JobStatus::Queued,
            fingerprint: self.fingerprint(),
            to: self.to,
            token: self.token,
            amount: self.amount.base_units(),
            memo: self.memo.map(|m| m.bytes32()),
            attempts: Vec::new(),
            block_number: None,
            fee: None,
            reason: None,
            created_at_ms: now,
            updated_at_ms: now,
            version: 0,
        }
    }
}

#[OpenApi]
impl SendApi {
    /// Send a TIP-20 payment.
    ///
    /// Answers 202 once the payment is durably stored and queued; poll the job's link for its
    /// status. Repeat a request with the same `Idempotency-Key` to get the same job back.
    #[oai(path = "/api/v1/send", method = "post", operation_id = "send")]
    async fn send(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiKey,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: Json<SendRequest>,
    ) -> Result<SendResponse, ProblemResponse> {
        auth.check(state.config.api_key.expose())?;
        // Its syntax was checked with the bearer by the money-route guard (`strict`).
        let key = idempotency_key.0.as_deref();
        let record = validate(&state, &body.0)?.into_record();

        let max_depth = state.config.max_queue_depth;
        let created = state
            .store
            .create(&record, key, max_depth)
            .await
            .map_err(|e| {
                warn!(cause = %e, "could not store payment");
                ProblemResponse::store_unavailable()
            })?;
        match created {
            Created::New => {
                enqueue(&state, &record.id).await;
                state.metrics.accepted("send");
                info!(payment_id = %record.id, "payment accepted");
                let view = job_view(&record, &state.config.common.tokens);
                let location = view.links.self_.clone();
                Ok(SendResponse::Accepted(Json(view), None, location))
            }
            Created::Existing { fingerprint, id } if fingerprint == record.fingerprint => {
                replay(&state, &id).await
            }
            Created::Existing { id, .. } => Err(ProblemResponse::idempotency_reused(&id)),
            Created::QueueFull => {
                state.metrics.refused_queue_full();
                Err(ProblemResponse::queue_full())
            }
        }
    }
}

/// Pushes the job. The record is already durable and in the outbox, so a failed push only
/// delays the payment: a worker's outbox sweep pushes it. The client still gets its 202.
async fn enqueue(state: &AppState, id: &str) {
    let job = SendJob {
        payment_id: id.to_owned(),
    };
    match state.queue.clone().push(job).await {
        Ok(()) => {
            if let Err(e) = state.store.pushed(id).await {
                let cause = e.to_string();
                warn!(
                    payment_id = id,
                    cause, "could not clear outbox entry; a sweep re-pushes"
                );
            }
        }
        Err(e) => {
            warn!(payment_id = id, cause = %e, "could not enqueue payment; the outbox sweep will")
        }
    }
}

async fn replay(state: &AppState, id: &str) -> Result<SendResponse, ProblemResponse> {
    let record = state
        .store
        .get(id)
        .await
        .map_err(|_| ProblemResponse::unavailable("the payment store"))?
        .ok_or_else(|| ProblemResponse::unavailable("the payment store"))?;
    let view = job_view(&record, &state.config.common.tokens);
    let location = view.links.self_.clone();
    Ok(SendResponse::Accepted(
        Json(view),
        Some("true".into()),
        location,
    ))
}
