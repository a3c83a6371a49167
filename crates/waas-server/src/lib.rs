//! The reference WaaS server: the REST API of `waas-api` and the server's side of every protocol of
//! `waas-mpc`, persisted in an embedded SQLite database by default, or in PostgreSQL
//! (`--database postgres://…`), where several replicas may share one database.
//!
//! [`run`] is the whole server; [`app`] builds the router alone, for tests that call it in-process.

mod api;
mod auth;
mod config;
mod error;
pub mod sealing;
mod services;
pub mod store;
mod time;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

pub use api::{app, cors};
pub use config::{Command, Config};
pub use error::{ApiError, ServerError};
pub use services::{Services, Settings};
pub use store::{DEFAULT_POOL, PostgresStore, SqliteStore, Store};

/// Opens the database, binds the listener, serves until `shutdown` resolves, then closes the
/// database cleanly.
///
/// Prints one line to stdout once it accepts connections: `waas-server listening on http://ADDR`,
/// with the address actually bound (so `--listen 127.0.0.1:0` tells its caller the port).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // Flags first, so a bad one stops the server before it creates any file.
    let cors = api::cors(&config.allowed_origins)
        .map_err(|error| ServerError::Config(error.to_string()))?;
    if store::is_postgres_url(&config.database) {
        let store = PostgresStore::open_with(&config.database, &config.pg_settings()).await?;
        serve(config, cors, store, shutdown).await
    } else {
        let store = SqliteStore::open(&config.database).await?;
        serve(config, cors, store, shutdown).await
    }
}

/// [`run`] on an open store.
async fn serve<S: Store>(
    config: Config,
    cors: Option<tower_http::cors::CorsLayer>,
    store: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // Loaded at start so a missing or unsafe key fails now, not at the first operation.
    let (master_key, created) = sealing::MasterKey::load_or_create(&config.master_key_file)?;
    if created {
        tracing::info!(
            path = %config.master_key_file.display(),
            "created the master key: back it up, it opens every stored share"
        );
    }
    if config.no_dev_api_key {
        store.remove_api_key(auth::DEV_API_KEY_NAME).await?;
    } else if auth::ensure_dev_api_key(&store, &config.dev_api_key_file).await? {
        tracing::info!(
            path = %config.dev_api_key_file.display(),
            name = auth::DEV_API_KEY_NAME,
            "created a development API key"
        );
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr: SocketAddr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;

    if let Some(dir) = &config.static_dir {
        tracing::info!(dir = %dir.display(), "serving the web app");
    }
    let services = Services::open(
        store.clone(),
        master_key,
        Settings {
            audience: config.audience.clone(),
            passcode_backoff: config.passcode_backoff,
            backup_retention: config.backup_retention,
        },
    )
    .await?;
    tokio::spawn(expire_operations(services.clone()));
    let router = app(services, config.static_dir.as_deref(), cors);
    println!("waas-server listening on http://{addr}");

    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Serve)?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Fails, every half minute, the operations that waited too long for their device (deleting
/// their sessions), forgets passcode logins past their use and deletes the backups replaced for
/// longer than the retention, so that no MPC session, login secret or replaced d_srv outlives
/// its use; and forgets the ids of request tokens no replica accepts any more. The first sweep
/// runs at start. Each replica sweeps; their sweeps pass over the rows another one holds.
async fn expire_operations<S: Store>(services: Services<S>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        every.tick().await;
        if let Err(error) = services.expire_operations().await {
            tracing::warn!(%error, "could not expire operations");
        }
        if let Err(error) = auth::forget_token_ids(services.store(), time::now_ms()).await {
            tracing::warn!(%error, "could not forget old request token ids");
        }
        if let Err(error) = services.forget_passcode_logins().await {
            tracing::warn!(%error, "could not forget old passcode logins");
        }
        if let Err(error) = services.forget_replaced_backups().await {
            tracing::warn!(%error, "could not delete replaced backups");
        }
    }
}

/// `waas-server unlock-passcode`: clears a device's passcode lock and failure count in a group,
/// on the database of `--database` (which must exist; PostgreSQL is waited for at most
/// `--database-connect-timeout`). Returns what to tell the operator.
pub async fn unlock_passcode(
    config: &Config,
    group: &waas_api::DeviceGroupName,
    device: &waas_api::DeviceName,
) -> Result<String, ServerError> {
    let database = config.database.as_str();
    let before = if store::is_postgres_url(database) {
        let store = PostgresStore::open_existing(database, &config.pg_settings()).await?;
        closing(&store, store.unlock_passcode(group, device).await).await?
    } else {
        let store = SqliteStore::open_existing(database).await?;
        closing(&store, store.unlock_passcode(group, device).await).await?
    };
    Ok(match before {
        Some(before) => {
            tracing::info!(%group, %device, failures = before.failures, locked = before.locked, "unlocked the passcode");
            format!("unlocked {device} in {group}: {}", cleared(&before))
        }
        None => format!("{device} has no failed passcode attempts in {group}: nothing to unlock"),
    })
}

/// `waas-server unlock-recovery`: clears the recovery locks and failed-recovery counts of a
/// group's backups, or of its one backup `backup`, on the database of `--database` (which must
/// exist; as [`unlock_passcode`]). Returns what to tell the operator: one line per backup.
pub async fn unlock_recovery(
    config: &Config,
    group: &waas_api::DeviceGroupName,
    backup: Option<&waas_api::MpcOperationName>,
) -> Result<String, ServerError> {
    let database = config.database.as_str();
    let before = if store::is_postgres_url(database) {
        let store = PostgresStore::open_existing(database, &config.pg_settings()).await?;
        closing(&store, store.unlock_recovery(group, backup).await).await?
    } else {
        let store = SqliteStore::open_existing(database).await?;
        closing(&store, store.unlock_recovery(group, backup).await).await?
    };
    if before.is_empty() {
        return Ok(match backup {
            Some(backup) => {
                format!("{backup} has no failed recovery attempts in {group}: nothing to unlock")
            }
            None => format!("{group} has no failed recovery attempts: nothing to unlock"),
        });
    }
    let lines: Vec<String> = before
        .iter()
        .map(|(backup, before)| {
            tracing::info!(%group, %backup, failures = before.failures, locked = before.locked, "unlocked recovery");
            format!("unlocked recovery of {group} with {backup}: {}", cleared(before))
        })
        .collect();
    Ok(lines.join("\n"))
}

/// Closes an operator command's store, then gives its `result`.
async fn closing<T>(
    store: &impl Store,
    result: Result<T, store::StoreError>,
) -> Result<T, ServerError> {
    store.close().await;
    Ok(result?)
}

/// What an unlock cleared, for the operator.
fn cleared(before: &store::Attempts) -> String {
    format!(
        "{} failed attempt(s) cleared{}",
        before.failures,
        if before.locked { ", lock lifted" } else { "" }
    )
}

/// Resolves on Ctrl-C or SIGTERM, so in-flight requests finish before the server exits.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
