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

    /// A folder of static files (the built web app) to serve at `/`. Without it only the API is served.
    #[arg(long, env = "WAAS_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
}
