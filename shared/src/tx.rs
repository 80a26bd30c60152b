//! Building and signing Tempo (0x76) transfer transactions.
//!
//! Everything the chain will check is set here explicitly (chain id, lane, nonce, gas, fees,
//! fee token, `valid_before`): alloy's fillers ignore nonce lanes, so nothing is left to them.

use std::num::NonZeroU64;

use alloy::{
    eips::eip2718::Encodable2718,
    primitives::{Address, B256, Bytes, U256},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::SolCall,
};
use tempo_alloy::{
    contracts::precompiles::ITIP20,
    primitives::{TempoTransaction, transaction::Call},
};

/// Parses a hex private key (with or without `0x`). The error never contains the key.
pub fn signer_from_hex(key: &str) -> Result<PrivateKeySigner, &'static str> {
    key.trim()
        .parse::<PrivateKeySigner>()
        .map_err(|_| "not a 32-byte hex private key")
}

/// One TIP-20 transfer: `transferWithMemo` when a memo is given, else `transfer`.
pub fn transfer_call(token: Address, to: Address, amount: u128, memo: Option<B256>) -> Call {
    let amount = U256::from(amount);
    let input = match memo {
        Some(memo) => ITIP20::transferWithMemoCall { to, amount, memo }.abi_encode(),
        None => ITIP20::transferCall { to, amount }.abi_encode(),
    };
    Call {
        to: token.into(),
        value: U256::ZERO,
        input: input.into(),
    }
}

/// Everything about a transaction that is not its calls.
#[derive(Clone, Debug)]
pub struct TxParams {
    pub chain_id: u64,
    pub nonce_key: u64,
    pub nonce: u64,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    pub fee_token: Address,
    /// Unix seconds; must be more than 3 s in the future when the node sees it.
    pub valid_before: u64,
}

/// A signed transaction ready to broadcast.
#[derive(Clone, Debug)]
pub struct SignedTx {
    pub raw: Bytes,
    pub hash: B256,
}

pub fn sign(signer: &PrivateKeySigner, params: &TxParams, calls: Vec<Call>) -> SignedTx {
    let tx = TempoTransaction {
        chain_id: params.chain_id,
        fee_token: Some(params.fee_token),
        max_priority_fee_per_gas: params.max_priority_fee_per_gas,
        max_fee_per_gas: params.max_fee_per_gas,
        gas_limit: params.gas_limit,
        calls,
        nonce_key: U256::from(params.nonce_key),
        nonce: params.nonce,
        valid_before: NonZeroU64::new(params.valid_before),
        ..Default::default()
    };
    let signature = signer
        .sign_hash_sync(&tx.signature_hash())
        .expect("a local secp256k1 key signs any 32-byte hash");
    let signed = tx.into_signed(signature.into());
    SignedTx {
        hash: *signed.hash(),
        raw: signed.encoded_2718().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    #[test]
    fn signs_a_decodable_0x76_transfer() {
        let signer =
            signer_from_hex("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap();
        let params = TxParams {
            chain_id: 42431,
            nonce_key: 3,
            nonce: 7,
            gas_limit: 100_000,
            max_fee_per_gas: 20_000_000_000,
            max_priority_fee_per_gas: 0,
            fee_token: address!("0x20c0000000000000000000000000000000000000"),
            valid_before: 2_000_000_000,
        };
        let to = address!("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
        let call = transfer_call(params.fee_token, to, 1_250_000, None);
        let signed = sign(&signer, &params, vec![call]);
        assert_eq!(signed.raw[0], 0x76);
        assert_eq!(signed.hash, alloy::primitives::keccak256(&signed.raw));
    }

    #[test]
    fn key_errors_do_not_echo_the_key() {
        let err = signer_from_hex("0xdeadbeef-secret").unwrap_err();
        assert!(!err.contains("secret"));
    }
}
