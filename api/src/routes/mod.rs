//! The HTTP operations, one file each.

pub mod balance;
pub mod health;
pub mod history;
pub mod jobs;
pub mod send;

/// Every operation, as one poem-openapi API.
pub type Api = (
    send::SendApi,
    jobs::JobsApi,
    balance::BalanceApi,
    history::HistoryApi,
    health::HealthApi,
);

pub fn api() -> Api {
    (
        send::SendApi,
        jobs::JobsApi,
        balance::BalanceApi,
        history::HistoryApi,
        health::HealthApi,
    )
}
