//! The stablecoins Fluxus may move, named by symbol (any case) or address.

use alloy::primitives::{Address, address};
use serde::{Deserialize, Serialize};

use crate::address::{is_tip20_address, parse_address};

/// A supported TIP-20 token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub symbol: String,
    pub address: Address,
}

/// The tokens this deployment supports, in the order they are listed to users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens(Vec<Token>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("is not a supported token; use one of: {0}")]
    Unsupported(String),
}

pub const PATH_USD: Address = address!("0x20c0000000000000000000000000000000000000");

/// The tokens of a Tempo network: pathUSD, AlphaUSD, BetaUSD and ThetaUSD.
pub fn default_tokens() -> Tokens {
    Tokens(
        [
            ("pathUSD", PATH_USD),
            (
                "AlphaUSD",
                address!("0x20c0000000000000000000000000000000000001"),
            ),
            (
                "BetaUSD",
                address!("0x20c0000000000000000000000000000000000002"),
            ),
            (
                "ThetaUSD",
                address!("0x20c0000000000000000000000000000000000003"),
            ),
        ]
        .into_iter()
        .map(|(symbol, address)| Token {
            symbol: symbol.to_owned(),
            address,
        })
        .collect(),
    )
}

impl Tokens {
    /// Parses `SYMBOL=0xADDRESS,…`; every address must be a TIP-20 address.
    pub fn parse_list(input: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        for entry in input.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (symbol, addr) = entry
                .split_once('=')
                .ok_or_else(|| format!("entry {entry:?} is not SYMBOL=0xADDRESS"))?;
            let address = parse_address(addr.trim()).map_err(|e| format!("{addr:?} {e}"))?;
            if !is_tip20_address(&address) {
                return Err(format!("{addr:?} is not a TIP-20 token address (0x20c0…)"));
            }
            tokens.push(Token {
                symbol: symbol.trim().to_owned(),
                address,
            });
        }
        if tokens.is_empty() {
            return Err("lists no token".into());
        }
        Ok(Self(tokens))
    }

    pub fn all(&self) -> &[Token] {
        &self.0
    }

    /// Finds a token by symbol (any case) or by address.
    pub fn resolve(&self, input: &str) -> Result<&Token, TokenError> {
        let by_address = parse_address(input).ok();
        self.0
            .iter()
            .find(|t| t.symbol.eq_ignore_ascii_case(input) || Some(t.address) == by_address)
            .ok_or_else(|| TokenError::Unsupported(self.symbols()))
    }

    pub fn by_address(&self, address: &Address) -> Option<&Token> {
        self.0.iter().find(|t| t.address == *address)
    }

    fn symbols(&self) -> String {
        self.0
            .iter()
            .map(|t| t.symbol.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_symbol_in_any_case_and_address() {
        let tokens = default_tokens();
        assert_eq!(tokens.resolve("PATHUSD").unwrap().address, PATH_USD);
        assert_eq!(tokens.resolve("alphausd").unwrap().symbol, "AlphaUSD");
        let beta = "0x20c0000000000000000000000000000000000002";
        assert_eq!(tokens.resolve(beta).unwrap().symbol, "BetaUSD");
        assert!(tokens.resolve("USDC").is_err());
        assert!(
            tokens
                .resolve("0x20c0000000000000000000000000000000000009")
                .is_err()
        );
    }

    #[test]
    fn parses_a_token_list() {
        let list =
            Tokens::parse_list("pathUSD=0x20c0000000000000000000000000000000000000").unwrap();
        assert_eq!(list.all().len(), 1);
        assert!(Tokens::parse_list("x=0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").is_err());
        assert!(Tokens::parse_list("").is_err());
    }
}
