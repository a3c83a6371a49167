//! `waas-server`: the reference WaaS server. See `waas-server --help` for flags.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use waas_server::{Command, Config, shutdown_signal};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAAS_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let config = Config::parse();
    let operator = match &config.command {
        Some(Command::UnlockPasscode {
            device_group,
            device,
        }) => Some((
            "unlock-passcode",
            waas_server::unlock_passcode(&config, device_group, device).await,
        )),
        Some(Command::UnlockRecovery {
            device_group,
            backup,
        }) => Some((
            "unlock-recovery",
            waas_server::unlock_recovery(&config, device_group, backup.as_ref()).await,
        )),
        None => None,
    };
    if let Some((command, result)) = operator {
        return match result {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("waas-server {command}: {error}");
                ExitCode::FAILURE
            }
        };
    }
    match waas_server::run(config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "waas-server failed");
            eprintln!("waas-server: {error}");
            ExitCode::FAILURE
        }
    }
}
