//! Bearer authentication for the routes that move money or reveal jobs.

use poem_openapi::{SecurityScheme, auth::Bearer};
use subtle::ConstantTimeEq;

use crate::problem::ProblemResponse;

/// `Authorization: Bearer <FLUXUS_API_KEY>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct ApiKey(Bearer);

impl ApiKey {
    /// Compares in constant time, so timing reveals nothing about the key.
    pub fn check(&self, expected: &str) -> Result<(), ProblemResponse> {
        let given = self.0.token.as_bytes();
        if given.ct_eq(expected.as_bytes()).into() {
            Ok(())
        } else {
            Err(ProblemResponse::unauthorized())
        }
    }
}
