//! fluxus-worker binary: configuration from the environment, then [`fluxus_worker::run`].

use fluxus_shared::config::WorkerConfig;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match WorkerConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("fluxus-worker: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = fluxus_worker::run(config).await {
        tracing::error!(cause = %e, "worker stopped on an error");
        std::process::exit(1);
    }
}
