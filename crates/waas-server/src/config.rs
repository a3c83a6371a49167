//! Command-line flags, each also settable from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// The reference WaaS server.
#[derive(Clone, Debug, Parser)]
#[command(name = "waas-server", version, about)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "WAAS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The database: a SQLite file path, or a `sqlite:` URL. Created, with its folder, if missing.
    #[arg(long, env = "WAAS_DATABASE", default_value = "./data/waas.db")]
    pub database: String,

    /// The master key that seals shares and MPC state at rest: 32 bytes, mode 0600. Created
    /// (with its folder) on first start.
    #[arg(
        long,
        env = "WAAS_MASTER_KEY_FILE",
        default_value = "./data/master.key"
    )]
    pub master_key_file: PathBuf,

    /// The audience (`aud`) request tokens must name: this server, as its clients know it.
    #[arg(long, env = "WAAS_AUDIENCE", default_value = "waas-server")]
    pub audience: String,

    /// An origin (`https://wallet.example`) whose pages may call the API cross-origin.
    /// Repeatable; from the environment, comma-separated.
    #[arg(
        long = "allowed-origin",
        env = "WAAS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// The development API key (JSON: name and PKCS#8 private key), created on first start so
    /// the demo and tests can act as an app backend. Keep it private; in production pass
    /// `--no-dev-api-key`.
    #[arg(
        long,
        env = "WAAS_DEV_API_KEY_FILE",
        default_value = "./data/dev-api-key.json"
    )]
    pub dev_api_key_file: PathBuf,

    /// Do not create or accept the development API key.
    #[arg(long, env = "WAAS_NO_DEV_API_KEY")]
    pub no_dev_api_key: bool,

    /// A folder of static files (the built web app) to serve at `/`. Without it only the API is served.
    #[arg(long, env = "WAAS_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
}
