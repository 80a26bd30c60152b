//! fluxus-api binary. `fluxus-api --print-openapi` prints the spec and exits.

use fluxus_shared::config::ApiConfig;

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--print-openapi") {
        println!("{}", fluxus_api::openapi().spec());
        return;
    }
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match ApiConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("fluxus-api: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = fluxus_api::run(config).await {
        tracing::error!(cause = %e, "api stopped on an error");
        std::process::exit(1);
    }
}
