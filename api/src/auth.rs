//! Bearer authentication for the routes that move money or reveal jobs.

use poem_openapi::{SecurityScheme, auth::Bearer};
use subtle::ConstantTimeEq;

use crate::problem::ProblemResponse;

/// `Authorization: Bearer <FLUXUS_API_KEY>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct ApiKey(Bearer);

impl ApiKey {
    pub fn check(&self, expected: &str) -> Result<(), ProblemResponse> {
        if key_matches(&self.0.token, expected) {
            Ok(())
        } else {
            Err(ProblemResponse::unauthorized())
        }
    }
}

/// Compares in constant time, so timing reveals nothing about the key.
pub fn key_matches(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}
