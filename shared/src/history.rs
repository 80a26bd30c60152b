//! Turning TIP-20 logs into a payment history.
//!
//! `transferWithMemo` emits both `Transfer` and `TransferWithMemo`; they are one transfer, so
//! the plain `Transfer` of a pair is dropped and the memo kept. Entries are ordered newest
//! first by (block, log index), which is also what the keyset cursor encodes.

use alloy::{
    primitives::{Address, B256, U256},
    rpc::types::Log,
    sol_types::SolEvent,
};
use tempo_alloy::contracts::precompiles::ITIP20;

/// One transfer seen from `account`'s side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub token: Address,
    pub from: Address,
    pub to: Address,
    pub amount: U256,
    pub memo: Option<B256>,
    pub tx_hash: B256,
    pub block_number: u64,
    pub log_index: u64,
    pub block_timestamp: Option<u64>,
}

/// Position in the newest-first order: (block, log index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub block_number: u64,
    pub log_index: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}-{}", self.block_number, self.log_index)
    }

    pub fn decode(input: &str) -> Option<Self> {
        let (block, log) = input.split_once('-')?;
        Some(Self {
            block_number: block.parse().ok()?,
            log_index: log.parse().ok()?,
        })
    }
}

impl Transfer {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            block_number: self.block_number,
            log_index: self.log_index,
        }
    }
}

fn decode(log: &Log) -> Option<Transfer> {
    let topic0 = *log.topic0()?;
    let (from, to, amount, memo) = if topic0 == ITIP20::TransferWithMemo::SIGNATURE_HASH {
        let e = ITIP20::TransferWithMemo::decode_log(&log.inner).ok()?;
        (e.from, e.to, e.amount, Some(e.memo))
    } else if topic0 == ITIP20::Transfer::SIGNATURE_HASH {
        let e = ITIP20::Transfer::decode_log(&log.inner).ok()?;
        (e.from, e.to, e.amount, None)
    } else {
        return None;
    };
    Some(Transfer {
        token: log.address(),
        from,
        to,
        amount,
        memo,
        tx_hash: log.transaction_hash?,
        block_number: log.block_number?,
        log_index: log.log_index?,
        block_timestamp: log.block_timestamp,
    })
}

/// Decodes, de-duplicates (a log can match both the `from` and `to` query), merges memo
/// pairs and sorts newest first.
pub fn merge(logs: &[Log]) -> Vec<Transfer> {
    let mut transfers: Vec<Transfer> = logs.iter().filter_map(decode).collect();
    transfers.sort_by_key(|t| std::cmp::Reverse(t.cursor()));
    transfers.dedup_by_key(|t| t.cursor());

    let with_memo: Vec<Transfer> = transfers
        .iter()
        .filter(|t| t.memo.is_some())
        .cloned()
        .collect();
    transfers.retain(|t| {
        t.memo.is_some()
            || !with_memo.iter().any(|m| {
                m.tx_hash == t.tx_hash
                    && m.token == t.token
                    && m.from == t.from
                    && m.to == t.to
                    && m.amount == t.amount
            })
    });
    transfers
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{LogData, address};

    fn log(event: LogData, log_index: u64) -> Log {
        Log {
            inner: alloy::primitives::Log {
                address: address!("0x20c0000000000000000000000000000000000000"),
                data: event,
            },
            block_number: Some(7),
            transaction_hash: Some(B256::repeat_byte(1)),
            log_index: Some(log_index),
            ..Default::default()
        }
    }

    #[test]
    fn a_transfer_with_memo_is_one_entry() {
        let from = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
        let to = address!("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
        let amount = U256::from(1_250_000);
        let memo = B256::right_padding_from(b"INV-1");
        let plain = ITIP20::Transfer { from, to, amount }.encode_log_data();
        let rich = ITIP20::TransferWithMemo {
            from,
            to,
            amount,
            memo,
        }
        .encode_log_data();
        let logs = [
            log(plain, 0),
            log(rich, 1),
            log(ITIP20::Transfer { from, to, amount }.encode_log_data(), 0),
        ];

        let merged = merge(&logs);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].memo, Some(memo));
        assert_eq!(merged[0].amount, amount);
    }

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            block_number: 12,
            log_index: 3,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("x-1"), None);
    }
}
