//! Recipient addresses, checked the way a payment must be: EIP-55 or nothing.
//!
//! Mixed-case input must match its EIP-55 checksum exactly (a broken checksum is a typo, never
//! silently "corrected"); all-lowercase and all-uppercase hex carry no checksum and are taken
//! as they are. The zero address and TIP-20 token addresses are refused: the chain would revert
//! the transfer with `InvalidRecipient`.

use alloy::primitives::Address;

/// The 12-byte prefix shared by every TIP-20 token address (`0x20c0…`).
const TIP20_PREFIX: [u8; 12] = [0x20, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("must be 0x followed by 40 hex digits (got {0} characters after 0x)")]
    Length(usize),
    #[error("must start with 0x")]
    Prefix,
    #[error("holds a character that is not a hex digit")]
    NotHex,
    #[error("fails its EIP-55 checksum (mixed case must match exactly; check for a typo)")]
    Checksum,
    #[error("is the zero address; tokens sent there are lost")]
    Zero,
    #[error("is a TIP-20 token address, which cannot receive transfers")]
    TokenAddress,
    #[error("is a precompile or system contract address; tokens sent there are lost")]
    SystemAddress,
}

/// Parses any well-formed address, checksum-checked, without recipient rules.
pub fn parse_address(input: &str) -> Result<Address, AddressError> {
    let hex = input.strip_prefix("0x").ok_or(AddressError::Prefix)?;
    if !hex.is_ascii() {
        return Err(AddressError::NotHex);
    }
    if hex.len() != 40 {
        return Err(AddressError::Length(hex.chars().count()));
    }
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AddressError::NotHex);
    }
    let address: Address = hex.parse().map_err(|_| AddressError::NotHex)?;

    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper && address.to_checksum(None)[2..] != *hex {
        return Err(AddressError::Checksum);
    }
    Ok(address)
}

/// Parses an address that may receive a TIP-20 transfer.
pub fn parse_recipient(input: &str) -> Result<Address, AddressError> {
    let address = parse_address(input)?;
    if address.is_zero() {
        return Err(AddressError::Zero);
    }
    if is_tip20_address(&address) {
        return Err(AddressError::TokenAddress);
    }
    if is_system_address(&address) {
        return Err(AddressError::SystemAddress);
    }
    Ok(address)
}

/// Precompiles (`0x0000…00ff`-style, at most 2 significant bytes) and Tempo's system contracts
/// (a short tag followed by zeros, e.g. `0xfeec00…`, `0x4e4f4e4345…`). No key-derived account
/// has 15 trailing or 18 leading zero bytes in practice (a 2^-120 chance), so refusing these
/// can only stop mistakes.
fn is_system_address(address: &Address) -> bool {
    let bytes = address.as_slice();
    bytes[5..].iter().all(|b| *b == 0) || bytes[..18].iter().all(|b| *b == 0)
}

pub fn is_tip20_address(address: &Address) -> bool {
    address.as_slice()[..12] == TIP20_PREFIX
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    #[test]
    fn accepts_checksummed_lower_and_upper() {
        let a = parse_recipient(GOOD).unwrap();
        assert_eq!(parse_recipient(&GOOD.to_lowercase()).unwrap(), a);
        assert_eq!(
            parse_recipient(&format!("0x{}", GOOD[2..].to_uppercase())).unwrap(),
            a
        );
        assert_eq!(a.to_checksum(None), GOOD);
    }

    #[test]
    fn refuses_typos_and_unpayable_addresses() {
        let broken = format!("{}D", &GOOD[..GOOD.len() - 1]);
        assert_eq!(parse_recipient(&broken), Err(AddressError::Checksum));
        assert_eq!(parse_recipient(&GOOD[..41]), Err(AddressError::Length(39)));
        assert_eq!(
            parse_recipient(&format!("{GOOD}a")),
            Err(AddressError::Length(41))
        );
        assert_eq!(parse_recipient(&GOOD[2..]), Err(AddressError::Prefix));
        let zero = format!("0x{}", "0".repeat(40));
        assert_eq!(parse_recipient(&zero), Err(AddressError::Zero));
        let token = "0x20c0000000000000000000000000000000000001";
        assert_eq!(parse_recipient(token), Err(AddressError::TokenAddress));
        assert_eq!(parse_recipient("0xABC"), Err(AddressError::Length(3)));
        for system in [
            "0x0000000000000000000000000000000000000001",
            "0x4e4F4E4345000000000000000000000000000000",
            "0xfeEC000000000000000000000000000000000000",
            "0x403c000000000000000000000000000000000000",
        ] {
            assert_eq!(
                parse_recipient(system),
                Err(AddressError::SystemAddress),
                "{system}"
            );
        }
        assert_eq!(
            parse_recipient(&format!("0x{}g", &GOOD[2..41])),
            Err(AddressError::NotHex)
        );
    }
}
