//! Liveness and readiness.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use crate::state::AppState;

#[derive(Debug, Object)]
pub struct Health {
    pub status: String,
    #[oai(skip_serializing_if_is_none)]
    pub redis: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub node: Option<String>,
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    #[oai(status = 200)]
    Ok(Json<Health>),
    /// A dependency is unreachable.
    #[oai(status = 503)]
    Unavailable(Json<Health>),
}

pub struct HealthApi;

#[OpenApi]
impl HealthApi {
    /// The process is up.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> HealthResponse {
        HealthResponse::Ok(Json(Health {
            status: "ok".into(),
            redis: None,
            node: None,
        }))
    }

    /// Redis and the Tempo node both answer.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&Arc<AppState>>) -> HealthResponse {
        let (redis, node) = tokio::join!(state.store.ping(), state.chain.block_number());
        let word = |ok: bool| if ok { "ok" } else { "unreachable" }.to_owned();
        let ready = redis.is_ok() && node.is_ok();
        let health = Health {
            status: if ready { "ready" } else { "not ready" }.into(),
            redis: Some(word(redis.is_ok())),
            node: Some(word(node.is_ok())),
        };
        if ready {
            HealthResponse::Ok(Json(health))
        } else {
            HealthResponse::Unavailable(Json(health))
        }
    }
}
