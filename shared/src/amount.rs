//! Exact token amounts: a decimal string parsed once into integer base units.
//!
//! TIP-20 tokens have 6 decimals. No float ever touches an amount: the grammar is
//! `digits [ "." 1-6 digits ]`, and anything else (signs, exponents, blanks, `_`, hex, a lone
//! `.`, more than 6 fractional digits, zero) is refused with a reason a person can act on.

use std::fmt;

/// Fractional digits of every supported TIP-20 token.
pub const TOKEN_DECIMALS: u32 = 6;

const BASE_UNITS_PER_TOKEN: u128 = 10u128.pow(TOKEN_DECIMALS);

/// A positive amount of a 6-decimal token, held as base units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u128);

/// Why a string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a non-empty decimal string such as \"1.25\"")]
    Empty,
    #[error(
        "must be a plain decimal string such as \"1.25\": digits, optionally one '.' followed by \
         1 to 6 digits; no sign, exponent, blank, '_' or hex"
    )]
    Syntax,
    #[error("has more than 6 fractional digits; the token has 6 decimals")]
    TooPrecise,
    #[error("must be greater than zero")]
    Zero,
    #[error(
        "is too large: at most 340282366920938463463374607431768.211455 (2^128 - 1 base units)"
    )]
    TooLarge,
}

impl Amount {
    /// Parses the decimal grammar described in the module doc.
    pub fn parse(input: &str) -> Result<Self, AmountError> {
        if input.is_empty() {
            return Err(AmountError::Empty);
        }
        let (whole, fraction) = match input.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (input, None),
        };
        if !is_digits(whole) || fraction.is_some_and(|f| !is_digits(f)) {
            return Err(AmountError::Syntax);
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > TOKEN_DECIMALS as usize {
            return Err(AmountError::TooPrecise);
        }

        let whole: u128 = whole.parse().map_err(|_| AmountError::TooLarge)?;
        let scale = 10u128.pow(TOKEN_DECIMALS - fraction.len() as u32);
        let fraction: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().unwrap_or(0)
        };
        let base = whole
            .checked_mul(BASE_UNITS_PER_TOKEN)
            .and_then(|w| w.checked_add(fraction * scale))
            .ok_or(AmountError::TooLarge)?;
        Self::from_base_units(base).ok_or(AmountError::Zero)
    }

    /// An amount from base units; `None` for zero.
    pub fn from_base_units(base_units: u128) -> Option<Self> {
        (base_units > 0).then_some(Self(base_units))
    }

    pub fn base_units(self) -> u128 {
        self.0
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Formats base units of a 6-decimal token as the shortest exact decimal string (`1.25`, `2`).
pub fn format_base_units(base_units: u128) -> String {
    let whole = base_units / BASE_UNITS_PER_TOKEN;
    let fraction = base_units % BASE_UNITS_PER_TOKEN;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_base_units(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_base_units() {
        assert_eq!(Amount::parse("2.01").unwrap().base_units(), 2_010_000);
        assert_eq!(Amount::parse("1.005").unwrap().base_units(), 1_005_000);
        assert_eq!(
            Amount::parse("9007199254.740993").unwrap().base_units(),
            9_007_199_254_740_993
        );
        assert_eq!(Amount::parse("0.000001").unwrap().base_units(), 1);
        assert_eq!(Amount::parse("1.250000").unwrap().base_units(), 1_250_000);
        assert_eq!(Amount::parse("007").unwrap().base_units(), 7_000_000);
    }

    #[test]
    fn refuses_every_other_spelling() {
        for bad in [
            "1e-3", "1_000", "+1", " 1", "1 ", ".5", "1.", "0x10", "NaN", "-1", "-0", "", "1..2",
            "1.2.3", "١", "inf", "1,5",
        ] {
            assert!(Amount::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(Amount::parse("1.5000000"), Err(AmountError::TooPrecise));
        assert_eq!(Amount::parse("0"), Err(AmountError::Zero));
        assert_eq!(Amount::parse("0.000000"), Err(AmountError::Zero));
        assert_eq!(
            Amount::parse("99999999999999999999999999999999999999999"),
            Err(AmountError::TooLarge)
        );
        let most = format_base_units(u128::MAX);
        assert!(
            AmountError::TooLarge.to_string().contains(&most),
            "the message names the limit {most}"
        );
        assert_eq!(Amount::parse(&most).map(|a| a.base_units()), Ok(u128::MAX));
    }

    #[test]
    fn formats_shortest_exact_decimal() {
        assert_eq!(format_base_units(1_250_000), "1.25");
        assert_eq!(format_base_units(2_000_000), "2");
        assert_eq!(format_base_units(1), "0.000001");
        assert_eq!(
            format_base_units(9_007_199_254_740_993),
            "9007199254.740993"
        );
    }
}
