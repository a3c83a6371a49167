//! Persistence. One SQLite file (WAL mode) by default; the schema lives in `migrations/` and is
//! applied at start, so a server upgrade migrates its database by itself.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use waas_api::PoolName;

use crate::ServerError;

/// The pool every fresh server has, so the demo works without an operator step.
pub const DEFAULT_POOL: &str = "pools/default";

/// A pool as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRecord {
    /// `pools/{pool}`.
    pub name: PoolName,
    /// When it was created, Unix milliseconds.
    pub create_time_ms: i64,
}

/// The server's database handle: cheap to clone, shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database named by `--database`, migrates it to the current
    /// schema and makes sure `pools/default` exists.
    pub async fn open(database: &str) -> Result<Self, ServerError> {
        let path = sqlite_path(database)?;
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| ServerError::DatabaseDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().connect_with(options).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;

        let store = Self { pool };
        store.ensure_default_pool().await?;
        Ok(store)
    }

    async fn ensure_default_pool(&self) -> Result<(), sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO pools (name, create_time_ms) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(DEFAULT_POOL)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() > 0 {
            tracing::info!(pool = DEFAULT_POOL, "created the default pool");
        }
        Ok(())
    }

    /// Answers whether the database is reachable (for `/healthz`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// The pool of that name, if it exists.
    pub async fn pool(&self, name: &PoolName) -> Result<Option<PoolRecord>, sqlx::Error> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT create_time_ms FROM pools WHERE name = ?")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(create_time_ms,)| PoolRecord {
            name: name.clone(),
            create_time_ms,
        }))
    }

    /// Waits for open connections and checkpoints the WAL into the main file.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The file path of a `--database` value: a plain path or a `sqlite:` URL.
fn sqlite_path(database: &str) -> Result<&str, ServerError> {
    let path = match database.split_once(':') {
        Some(("sqlite", rest)) => rest.strip_prefix("//").unwrap_or(rest),
        // A scheme we don't serve (yet): say so instead of creating a file called "postgres:…".
        Some((scheme, _))
            if scheme.len() > 1
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+') =>
        {
            return Err(ServerError::UnsupportedDatabase(database.to_owned()));
        }
        _ => database,
    };
    if path.is_empty() {
        return Err(ServerError::UnsupportedDatabase(database.to_owned()));
    }
    Ok(path)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_values() {
        assert_eq!(sqlite_path("./data/waas.db").unwrap(), "./data/waas.db");
        assert_eq!(sqlite_path("sqlite://data/w.db").unwrap(), "data/w.db");
        assert_eq!(sqlite_path("sqlite:w.db").unwrap(), "w.db");
        assert!(matches!(
            sqlite_path("postgres://u@h/db"),
            Err(ServerError::UnsupportedDatabase(_))
        ));
        assert!(matches!(
            sqlite_path(""),
            Err(ServerError::UnsupportedDatabase(_))
        ));
        // A Windows drive letter is a path, not a scheme.
        assert_eq!(sqlite_path("C:/w.db").unwrap(), "C:/w.db");
    }

    #[tokio::test]
    async fn open_migrates_and_creates_the_default_pool_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/waas.db");
        let database = file.to_str().unwrap();

        let store = Store::open(database).await.unwrap();
        let pool = store
            .pool(&DEFAULT_POOL.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        store.close().await;

        // Reopening keeps the same pool, and the same creation time.
        let store = Store::open(database).await.unwrap();
        let again = store
            .pool(&DEFAULT_POOL.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again, pool);
        let missing: PoolName = "pools/missing".parse().unwrap();
        assert_eq!(store.pool(&missing).await.unwrap(), None);
        store.close().await;
    }
}
