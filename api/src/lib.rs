//! fluxus-api: accepts payments, answers reads, serves metrics, health and the OpenAPI spec.
//!
//! - [`routes`]: one file per operation.
//! - [`problem`]: every error as RFC 9457 problem+json.
//! - [`metrics`]: Prometheus text at `/metrics`.

// `ProblemResponse` is the operations' declared error type (poem-openapi documents it); it is
// built once per failed request, so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod metrics;
pub mod problem;
pub mod routes;
pub mod state;
pub mod strict;
pub mod views;

use std::sync::Arc;

use apalis_redis::{Config as QueueConfig, RedisStorage};
use fluxus_shared::{
    chain::Chain,
    config::ApiConfig,
    queue::SEND_QUEUE,
    store::{self, Store},
};
use poem::{
    Endpoint, EndpointExt, IntoResponse, Route, get, handler, listener::TcpListener, web::Data,
};
use poem_openapi::OpenApiService;
use tracing::info;

use crate::{metrics::Metrics, state::AppState};

/// The OpenAPI service: the spec served at `/openapi.json` and committed in `openapi/`.
pub fn openapi() -> OpenApiService<routes::Api, ()> {
    OpenApiService::new(routes::api(), "Fluxus", env!("CARGO_PKG_VERSION")).description(
        "Payments in TIP-20 stablecoins on Tempo: accepted at once, kept durably, \
                      signed, submitted and confirmed by workers.",
    )
}

#[handler]
async fn metrics_text(state: Data<&Arc<AppState>>) -> impl IntoResponse {
    state
        .metrics
        .render(&state.store)
        .await
        .with_content_type("text/plain; version=0.0.4")
}

/// The whole HTTP application.
pub fn app(state: Arc<AppState>) -> impl Endpoint {
    let service = openapi();
    Route::new()
        .at("/openapi.json", get(service.spec_endpoint()))
        .nest("/docs", service.swagger_ui())
        .at("/metrics", get(metrics_text))
        .nest("/", service)
        .around(strict::strict_bodies)
        .catch_all_error(|err| async move { problem::render_error(err) })
        .around(|ep, req| async move {
            let state = req.data::<Arc<AppState>>().cloned();
            let path = req.uri().path().to_owned();
            let resp = ep.get_response(req).await;
            if let Some(state) = state {
                state.metrics.observe_http(&path, resp.status().as_u16());
            }
            Ok(resp)
        })
        .data(state)
}

/// Connects to Redis and the node, then serves until SIGINT or SIGTERM.
pub async fn run(config: ApiConfig) -> anyhow::Result<()> {
    let conn = store::connect(config.common.redis_url.expose()).await?;
    let chain = Chain::connect(config.common.rpc_url.expose()).map_err(anyhow::Error::msg)?;
    let queue =
        RedisStorage::new(conn.clone()).with_config(QueueConfig::default().queue(SEND_QUEUE));
    let listen = config.listen;
    let state = Arc::new(AppState {
        config,
        store: Store::new(conn),
        chain,
        queue,
        metrics: Metrics::new(),
    });

    info!(%listen, "fluxus-api listening");
    poem::Server::new(TcpListener::bind(listen))
        .run_with_graceful_shutdown(app(state), shutdown_signal(), None)
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
