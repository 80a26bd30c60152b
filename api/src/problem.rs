//! RFC 9457 problem details: every error a client sees, with a stable `type` and the field.

use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::{ApiResponse, Object, payload::Json};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 2;
const QUEUE_FULL_RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// Stable identifier of the kind of problem, `urn:fluxus:problem:<slug>`.
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What was wrong and what to do about it.
    pub detail: String,
    /// The request field at fault, when one is.
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
}

/// The error responses of every operation.
#[derive(Debug, ApiResponse)]
pub enum ProblemResponse {
    /// The request is malformed or a field breaks a rule.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing or wrong bearer token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// Always `Bearer`.
        #[oai(header = "WWW-Authenticate")]
        Option<String>,
    ),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The idempotency key was already used for a different request.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// A dependency (Redis, the node) is unavailable, or the queue is full; retry later.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(
        Json<Problem>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        Option<u32>,
    ),
}

fn problem(
    slug: &str,
    title: &str,
    status: StatusCode,
    detail: String,
    field: Option<&str>,
) -> Json<Problem> {
    Json(Problem {
        kind: format!("urn:fluxus:problem:{slug}"),
        title: title.into(),
        status: status.as_u16(),
        detail,
        field: field.map(str::to_owned),
    })
}

impl ProblemResponse {
    /// A field that breaks a rule; `detail` reads as "`field` <rule>".
    pub fn invalid_field(field: &str, rule: impl std::fmt::Display) -> Self {
        Self::BadRequest(problem(
            "invalid-field",
            "Invalid field",
            StatusCode::BAD_REQUEST,
            format!("{field} {rule}"),
            Some(field),
        ))
    }

    pub fn unauthorized() -> Self {
        Self::Unauthorized(
            problem(
                "unauthorized",
                "Unauthorized",
                StatusCode::UNAUTHORIZED,
                "send the API key as `Authorization: Bearer <FLUXUS_API_KEY>`".into(),
                None,
            ),
            Some("Bearer".into()),
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(problem(
            "not-found",
            "Not found",
            StatusCode::NOT_FOUND,
            format!("{what} does not exist"),
            None,
        ))
    }

    pub fn idempotency_reused(existing_id: &str) -> Self {
        Self::Unprocessable(problem(
            "idempotency-key-reused",
            "Idempotency key reused",
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "this Idempotency-Key was already used for a different request \
                 (job {existing_id}); use a new key for a new payment"
            ),
            Some("Idempotency-Key"),
        ))
    }

    /// The payment store failed mid-request: the payment may or may not have been stored.
    pub fn store_unavailable() -> Self {
        Self::Unavailable(
            problem(
                "unavailable",
                "Service unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "the payment store did not answer, so the payment may or may not have been \
                 accepted; retry with the same Idempotency-Key to find out (without a key, check \
                 before paying again)"
                    .into(),
                None,
            ),
            Some(UNAVAILABLE_RETRY_AFTER_SECS),
        )
    }

    pub fn unavailable(what: &str) -> Self {
        Self::Unavailable(
            problem(
                "unavailable",
                "Service unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{what} is unavailable; retry shortly"),
                None,
            ),
            Some(UNAVAILABLE_RETRY_AFTER_SECS),
        )
    }

    pub fn queue_full() -> Self {
        Self::Unavailable(
            problem(
                "queue-full",
                "Queue full",
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "too many payments are waiting to be sent; nothing was accepted, retry after \
                 {QUEUE_FULL_RETRY_AFTER_SECS} s (with the same Idempotency-Key)"
                ),
                None,
            ),
            Some(QUEUE_FULL_RETRY_AFTER_SECS),
        )
    }
}

/// A problem response outside the operations' typed responses.
fn plain(status: StatusCode, slug: &str, title: &str, detail: &str) -> Response {
    let p = problem(slug, title, status, detail.into(), None).0;
    Response::builder()
        .status(status)
        .content_type(PROBLEM_CONTENT_TYPE)
        .body(
            serde_json::json!({
                "type": p.kind, "title": p.title, "status": p.status, "detail": p.detail,
            })
            .to_string(),
        )
}

pub fn unsupported_media_type() -> Response {
    plain(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Send application/json",
        "send the body as JSON with `Content-Type: application/json`",
    )
}

pub fn body_too_large() -> Response {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Body too large",
        "a payment request body is at most 16 KiB",
    )
}

/// A body that cannot be read at all (not JSON, not an object).
pub fn invalid_body(detail: String) -> ProblemResponse {
    ProblemResponse::BadRequest(problem(
        "invalid-body",
        "Invalid request body",
        StatusCode::BAD_REQUEST,
        detail,
        None,
    ))
}

/// Renders every error as problem+json: our own problems as they are, request parsing
/// failures (missing auth, bad parameters, wrong content type) and unknown routes mapped.
pub fn render_error(err: poem::Error) -> Response {
    use poem_openapi::error::{AuthorizationError, ParseParamError, ParsePathError};

    if err.is::<AuthorizationError>() {
        return ProblemResponse::unauthorized().into_response();
    }
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        let rule = match e.name {
            "limit" => "must be a whole number from 1 to 100",
            "cursor" => "must be a `next_cursor` this API returned",
            _ => "has a value of the wrong type",
        };
        return ProblemResponse::invalid_field(e.name, rule).into_response();
    }
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        return ProblemResponse::invalid_field(e.name, &e.reason).into_response();
    }
    // Our own problems arrive as errors made from a response: give that response back.
    if !err.has_source() {
        return err.into_response();
    }
    let status = err.status();
    let (slug, title) = match status {
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Send application/json"),
        s if s.is_client_error() => ("invalid-request", "Invalid request"),
        _ => ("internal", "Internal error"),
    };
    let detail = if status.is_server_error() {
        "internal error; retry later".into()
    } else {
        err.to_string()
    };
    plain(status, slug, title, &detail)
}
