//! Domain types, configuration, Redis store and Tempo client shared by the API and the worker.
//!
//! Every value that reaches a payment is parsed here once ([`amount::Amount`], [`memo::Memo`],
//! recipients in [`address`], [`token::Tokens`]); nothing downstream re-validates strings.

pub mod address;
pub mod amount;
pub mod chain;
pub mod config;
pub mod history;
pub mod memo;
pub mod queue;
pub mod record;
pub mod secret;
pub mod store;
pub mod token;
pub mod tx;
