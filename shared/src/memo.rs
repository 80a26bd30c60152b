//! Transfer memos: the 32 bytes that `transferWithMemo` carries.
//!
//! A memo is either text of at most 32 UTF-8 bytes, right-padded with zero bytes (never
//! truncated), or `0x` + 64 hex digits taken as the raw bytes32.

use alloy::primitives::B256;

pub const MEMO_MAX_BYTES: usize = 32;

/// A memo as it goes on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Memo(B256);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoError {
    #[error("is {0} UTF-8 bytes; a memo holds at most 32 bytes (or 0x + 64 hex digits)")]
    TooLong(usize),
    #[error("must not be empty; leave it out instead")]
    Empty,
    #[error("must not contain NUL characters")]
    Nul,
}

impl Memo {
    pub fn parse(input: &str) -> Result<Self, MemoError> {
        if input.is_empty() {
            return Err(MemoError::Empty);
        }
        if let Some(raw) = parse_raw_bytes32(input) {
            return Ok(Self(raw));
        }
        let bytes = input.as_bytes();
        if bytes.len() > MEMO_MAX_BYTES {
            return Err(MemoError::TooLong(bytes.len()));
        }
        // A NUL would be indistinguishable from the zero padding when read back.
        if bytes.contains(&0) {
            return Err(MemoError::Nul);
        }
        let mut padded = [0u8; MEMO_MAX_BYTES];
        padded[..bytes.len()].copy_from_slice(bytes);
        Ok(Self(B256::from(padded)))
    }

    pub fn bytes32(&self) -> B256 {
        self.0
    }

    /// The text view: UTF-8 after removing trailing zero bytes, if it is valid UTF-8.
    pub fn text(&self) -> Option<String> {
        memo_text(&self.0)
    }

    pub fn hex(&self) -> String {
        format!("{:#x}", self.0)
    }
}

fn parse_raw_bytes32(input: &str) -> Option<B256> {
    let hex = input
        .strip_prefix("0x")
        .or_else(|| input.strip_prefix("0X"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    hex.parse().ok()
}

/// UTF-8 text of a bytes32 memo after removing trailing zero bytes; `None` when not UTF-8,
/// empty, or holding control characters other than whitespace.
pub fn memo_text(raw: &B256) -> Option<String> {
    let end = raw.iter().rposition(|b| *b != 0)? + 1;
    let text = std::str::from_utf8(&raw[..end]).ok()?;
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return None;
    }
    Some(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_memos_up_to_32_bytes_round_trip() {
        for ok in ["INV-1", &"a".repeat(32), &"💸".repeat(8), "102329716"] {
            let memo = Memo::parse(ok).unwrap();
            assert_eq!(memo.text().as_deref(), Some(ok));
        }
        let memo = Memo::parse("102329716").unwrap();
        assert_eq!(&memo.bytes32()[..9], b"102329716");
        assert!(memo.bytes32()[9..].iter().all(|b| *b == 0));
    }

    #[test]
    fn longer_memos_are_refused_not_truncated() {
        let eleven_euros = "€".repeat(11);
        let a31_e = format!("{}é", "a".repeat(31));
        for bad in ["a".repeat(33), eleven_euros, a31_e] {
            assert_eq!(Memo::parse(&bad), Err(MemoError::TooLong(33)));
        }
    }

    #[test]
    fn raw_bytes32_is_taken_as_is() {
        let hex = format!("0x{}", "ab".repeat(32));
        let memo = Memo::parse(&hex).unwrap();
        assert_eq!(memo.hex(), hex);
        assert_eq!(memo.text(), None);
    }
}
