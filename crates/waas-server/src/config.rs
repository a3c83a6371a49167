//! Command-line flags, each also settable from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use waas_api::{DeviceGroupName, DeviceName, MpcOperationName};

/// The reference WaaS server.
#[derive(Clone, Debug, Parser)]
#[command(name = "waas-server", version, about)]
pub struct Config {
    /// An operator command instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on. Port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "WAAS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The database: a SQLite file path or `sqlite:` URL (created, with its folder, if missing),
    /// or a PostgreSQL URL, `postgres://user:password@host:port/database` (the database must
    /// exist; its tables are created and migrated at start).
    #[arg(
        long,
        env = "WAAS_DATABASE",
        // `--help` would show the variable's value, a PostgreSQL URL's password with it.
        hide_env_values = true,
        default_value = "./data/waas.db",
        global = true
    )]
    pub database: String,

    /// PostgreSQL only: how long the server waits for the database. At start, a database out of
    /// reach for this long (or refusing the login at once) stops the server with an error;
    /// while it runs, a request that waits this long for a connection is answered UNAVAILABLE
    /// (503, to be sent again). A duration with its unit (`5s`, `500ms`), from 100 ms to 10 min.
    #[arg(
        long,
        env = "WAAS_DATABASE_CONNECT_TIMEOUT",
        default_value = "5s",
        value_parser = parse_connect_timeout,
        global = true
    )]
    pub database_connect_timeout: Duration,

    /// PostgreSQL only: the most connections this server opens to the database at once (each
    /// request holds one for its transaction). Replicas each have their own: keep their sum
    /// under the database's `max_connections`.
    #[arg(
        long,
        env = "WAAS_DATABASE_MAX_CONNECTIONS",
        default_value_t = crate::store::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub database_max_connections: u32,

    /// PostgreSQL only: start although the database streams to standbys none of which is
    /// synchronous. A failover to such a standby loses the last commits, and with them the
    /// guarantee that an MPC round answered once is never computed again: only for an operator
    /// who never fails over to them (read replicas, backups).
    #[arg(long, env = "WAAS_DATABASE_ALLOW_ASYNC_STANDBYS")]
    pub database_allow_async_standbys: bool,

    /// The master key that seals shares and MPC state at rest: 32 bytes, mode 0600. Created
    /// (with its folder) on first start.
    #[arg(
        long,
        env = "WAAS_MASTER_KEY_FILE",
        default_value = "./data/master.key",
        global = true
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

    /// The base of the passcode backoff: after 3 failed logins, each attempt waits
    /// base · 2^(failures − 3) after the last one. Seconds (`1`, `0.5`) or milliseconds (`250ms`).
    #[arg(
        long,
        env = "WAAS_PASSCODE_BACKOFF",
        default_value = "1",
        value_parser = parse_backoff
    )]
    pub passcode_backoff: Duration,

    /// How long a replaced backup still recovers the wallet before it is deleted: the time a
    /// user has to revoke a stolen device (which brings back the backup a thief's replaced) and
    /// to save a new backup string. A duration with its unit (`7d`, `12h`, `30m`) or `0`, at
    /// most a year. `0` deletes a backup at the first sweep after it is replaced: for tests only.
    #[arg(
        long,
        env = "WAAS_BACKUP_RETENTION",
        default_value = "7d",
        value_parser = parse_retention
    )]
    pub backup_retention: Duration,
}

impl Config {
    /// How the PostgreSQL store is to be opened, from the `--database-…` flags.
    pub fn pg_settings(&self) -> crate::store::PgSettings {
        crate::store::PgSettings {
            connect_timeout: self.database_connect_timeout,
            max_connections: self.database_max_connections,
            allow_async_standbys: self.database_allow_async_standbys,
        }
    }
}

/// Operator commands, run against the database (`--database`) while the server runs or not.
/// They take the server's data flags (`--database`, `--master-key-file`) before or after them,
/// so an operator can reuse the server's command line.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Clears a device's passcode lock and failed-login count in a device group. Run it only
    /// after checking out of band that the user asking is the wallet's owner: the lock is what
    /// stops online passcode guessing with a stolen device.
    UnlockPasscode {
        /// The device group, `pools/{pool}/deviceGroups/{id}`.
        #[arg(long)]
        device_group: DeviceGroupName,
        /// The device, `devices/{id}`.
        #[arg(long)]
        device: DeviceName,
    },
    /// Clears the recovery locks and failed-recovery counts of a device group's backups
    /// (AddDevice with a backup: counted per backup, so a string locks only itself), or of one
    /// backup with `--backup`. Run it only after checking out of band that the user asking is
    /// the wallet's owner and holds that backup's string: the lock is what stops online passcode
    /// guessing by whoever holds the string.
    UnlockRecovery {
        /// The device group, `pools/{pool}/deviceGroups/{id}`.
        #[arg(long)]
        device_group: DeviceGroupName,
        /// Only this backup of the group, `…/deviceGroups/{id}/mpcOperations/{id}` (the id in
        /// the string); all of the group's when left out.
        #[arg(long)]
        backup: Option<MpcOperationName>,
    },
}

/// The longest backoff base accepted: beyond it the 9th failure would wait for days.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Parses `--passcode-backoff`: seconds (`1`, `0.5`, `2s`) or milliseconds (`250ms`).
fn parse_backoff(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 0.001),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 1, 0.5 or 250ms"))?;
    let seconds = value * scale;
    if !seconds.is_finite() || seconds < 0.0 || seconds > MAX_BACKOFF.as_secs_f64() {
        return Err(format!(
            "the backoff must be between 0 and {} seconds",
            MAX_BACKOFF.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The longest backup retention accepted: a typo (`7y`) must not keep replaced backups forever.
const MAX_RETENTION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses `--backup-retention`: humantime's durations (`7d`, `12h`, `1week`) or `0`.
fn parse_retention(text: &str) -> Result<Duration, String> {
    let retention = humantime::parse_duration(text.trim())
        .map_err(|error| format!("{text:?} is not a duration like 7d, 12h or 0: {error}"))?;
    if retention > MAX_RETENTION {
        return Err(format!(
            "the retention must be at most {} days",
            MAX_RETENTION.as_secs() / 86_400
        ));
    }
    Ok(retention)
}

/// The bounds of `--database-connect-timeout`: below, a busy database would fail requests that a
/// moment's wait would serve; above, a client waits for an answer longer than it would.
const CONNECT_TIMEOUTS: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(600));

/// Parses `--database-connect-timeout`: humantime's durations (`5s`, `500ms`, `1m`).
fn parse_connect_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text.trim())
        .map_err(|error| format!("{text:?} is not a duration like 5s or 500ms: {error}"))?;
    let (least, most) = CONNECT_TIMEOUTS;
    if timeout < least || timeout > most {
        return Err("the timeout must be between 100ms and 10m".to_owned());
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_values() {
        assert_eq!(parse_backoff("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_backoff("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_backoff("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_backoff("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_backoff("0"), Ok(Duration::ZERO));
        for bad in ["", "-1", "abc", "1h", "NaN", "inf", "4000"] {
            assert!(parse_backoff(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retention_values() {
        let day = Duration::from_secs(86_400);
        assert_eq!(parse_retention("7d"), Ok(7 * day));
        assert_eq!(parse_retention("12h"), Ok(day / 2));
        assert_eq!(parse_retention("1week"), Ok(7 * day));
        assert_eq!(parse_retention("0"), Ok(Duration::ZERO));
        assert_eq!(parse_retention("366d"), Ok(366 * day));
        for bad in ["", "7", "-1d", "abc", "367d", "2y"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
        // The default is a week.
        let config = Config::try_parse_from(["waas-server"]).unwrap();
        assert_eq!(config.backup_retention, 7 * day);
        assert_eq!(
            config.backup_retention,
            crate::services::DEFAULT_BACKUP_RETENTION
        );
    }

    #[test]
    fn max_connections_values() {
        let parse = |value: &str| {
            Config::try_parse_from(["waas-server", "--database-max-connections", value])
                .map(|config| config.database_max_connections)
        };
        assert_eq!(parse("64").unwrap(), 64);
        for bad in ["0", "-1", "10001", "many"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let config = Config::try_parse_from(["waas-server"]).unwrap();
        assert_eq!(
            config.database_max_connections,
            crate::store::DEFAULT_MAX_CONNECTIONS
        );
    }

    #[test]
    fn connect_timeout_values() {
        assert_eq!(parse_connect_timeout("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_connect_timeout("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(parse_connect_timeout("10m"), Ok(Duration::from_secs(600)));
        for bad in ["", "5", "0", "50ms", "11m", "abc"] {
            assert!(parse_connect_timeout(bad).is_err(), "{bad}");
        }
        let config = Config::try_parse_from(["waas-server"]).unwrap();
        assert_eq!(
            config.database_connect_timeout,
            crate::store::DEFAULT_CONNECT_TIMEOUT
        );
        // After an operator command, as its other data flags.
        let config = Config::try_parse_from([
            "waas-server",
            "unlock-recovery",
            "--device-group",
            "pools/default/deviceGroups/g1",
            "--database-connect-timeout",
            "2s",
        ])
        .unwrap();
        assert_eq!(config.database_connect_timeout, Duration::from_secs(2));
    }

    #[test]
    fn the_operator_command_takes_the_database_flag_after_it() {
        let config = Config::try_parse_from([
            "waas-server",
            "unlock-passcode",
            "--device-group",
            "pools/default/deviceGroups/g1",
            "--device",
            "devices/d1",
            "--database",
            "/tmp/w.db",
            "--master-key-file",
            "/tmp/master.key",
        ])
        .unwrap();
        assert_eq!(config.database, "/tmp/w.db");
        assert_eq!(config.master_key_file, PathBuf::from("/tmp/master.key"));
        let Some(Command::UnlockPasscode {
            device_group,
            device,
        }) = config.command
        else {
            panic!("{config:?}")
        };
        assert_eq!(device_group.to_string(), "pools/default/deviceGroups/g1");
        assert_eq!(device.to_string(), "devices/d1");
        assert!(
            Config::try_parse_from(["waas-server", "unlock-passcode", "--device", "devices/d1"])
                .is_err(),
            "the group is required"
        );
        let config = Config::try_parse_from([
            "waas-server",
            "--database",
            "/tmp/w.db",
            "unlock-recovery",
            "--device-group",
            "pools/default/deviceGroups/g1",
        ])
        .unwrap();
        assert_eq!(config.database, "/tmp/w.db");
        let Some(Command::UnlockRecovery {
            device_group,
            backup: None,
        }) = config.command
        else {
            panic!("{config:?}")
        };
        assert_eq!(device_group.to_string(), "pools/default/deviceGroups/g1");
        let config = Config::try_parse_from([
            "waas-server",
            "unlock-recovery",
            "--device-group",
            "pools/default/deviceGroups/g1",
            "--backup",
            "pools/default/deviceGroups/g1/mpcOperations/b1",
        ])
        .unwrap();
        let Some(Command::UnlockRecovery {
            backup: Some(backup),
            ..
        }) = config.command
        else {
            panic!("{config:?}")
        };
        assert_eq!(
            backup.to_string(),
            "pools/default/deviceGroups/g1/mpcOperations/b1"
        );
        assert!(Config::try_parse_from(["waas-server", "unlock-recovery"]).is_err());
    }
}
