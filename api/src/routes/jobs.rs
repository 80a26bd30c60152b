//! `GET /api/v1/jobs/{id}`: a payment's status and transaction, straight from its record.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{ApiResponse, OpenApi, param::Path, payload::Json};

use crate::{
    auth::ApiKey,
    problem::ProblemResponse,
    state::AppState,
    views::{JobView, job_view},
};

#[derive(ApiResponse)]
pub enum JobResponse {
    #[oai(status = 200)]
    Ok(Json<JobView>),
}

pub struct JobsApi;

#[OpenApi]
impl JobsApi {
    /// A payment job's status, transaction, fee and (when failed) the reason.
    #[oai(path = "/api/v1/jobs/:id", method = "get", operation_id = "getJob")]
    async fn job(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiKey,
        id: Path<String>,
    ) -> Result<JobResponse, ProblemResponse> {
        auth.check(state.config.api_key.expose())?;
        // Ids are 32 lowercase hex digits; anything else cannot name a job.
        if id.0.len() != 32 || !id.0.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ProblemResponse::not_found(&format!(
                "job {}",
                id.0.escape_debug()
            )));
        }
        let record = state
            .store
            .get(&id.0)
            .await
            .map_err(|_| ProblemResponse::unavailable("the payment store"))?
            .ok_or_else(|| ProblemResponse::not_found(&format!("job {}", id.0)))?;
        Ok(JobResponse::Ok(Json(job_view(
            &record,
            &state.config.common.tokens,
        ))))
    }
}
