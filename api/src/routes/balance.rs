//! `GET /api/v1/balance/{address}`: every supported token's balance, read from the node.

use std::sync::Arc;

use fluxus_shared::{address::parse_address, amount::format_base_units};
use futures::future::try_join_all;
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use crate::{problem::ProblemResponse, state::AppState, views::u256_to_u128};

#[derive(Debug, Object)]
pub struct TokenBalance {
    pub symbol: String,
    pub token: String,
    /// Decimal string.
    pub balance: String,
    pub base_units: String,
}

#[derive(Debug, Object)]
pub struct Balances {
    pub address: String,
    pub balances: Vec<TokenBalance>,
}

#[derive(ApiResponse)]
pub enum BalanceResponse {
    #[oai(status = 200)]
    Ok(Json<Balances>),
}

pub struct BalanceApi;

#[OpenApi]
impl BalanceApi {
    /// Balances of every supported stablecoin for an address.
    #[oai(
        path = "/api/v1/balance/:address",
        method = "get",
        operation_id = "getBalance"
    )]
    async fn balance(
        &self,
        state: Data<&Arc<AppState>>,
        address: Path<String>,
    ) -> Result<BalanceResponse, ProblemResponse> {
        let owner =
            parse_address(&address.0).map_err(|e| ProblemResponse::invalid_field("address", e))?;
        let tokens = state.config.common.tokens.all();
        let amounts = try_join_all(
            tokens
                .iter()
                .map(|t| state.chain.balance_of(t.address, owner)),
        )
        .await
        .map_err(|_| ProblemResponse::unavailable("the Tempo node"))?;
        let balances = tokens
            .iter()
            .zip(amounts)
            .map(|(t, amount)| {
                let units = u256_to_u128(amount);
                TokenBalance {
                    symbol: t.symbol.clone(),
                    token: t.address.to_checksum(None),
                    balance: format_base_units(units),
                    base_units: amount.to_string(),
                }
            })
            .collect();
        Ok(BalanceResponse::Ok(Json(Balances {
            address: owner.to_checksum(None),
            balances,
        })))
    }
}
