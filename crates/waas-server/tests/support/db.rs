//! The database as text, to show that a refused request changed nothing.

use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

/// Tables left out: the ids of used request tokens are recorded by design, even for requests
/// that are then refused.
pub(super) const SKIPPED: &[&str] = &["request_tokens"];

/// Every row of every table (but [`SKIPPED`]), one line per row, each value SQL-quoted, in rowid
/// order. Read through a separate connection while the server runs (the database is in WAL mode,
/// so this reader sees the last committed state and blocks no one).
pub async fn db_dump(path: &Path) -> String {
    let mut connection = reader(path).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master \
         WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let mut dump = String::new();
    for table in tables.iter().filter(|t| !SKIPPED.contains(&t.as_str())) {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(table)
                .fetch_all(&mut connection)
                .await
                .unwrap();
        let row = columns
            .iter()
            .map(|column| format!("quote(\"{column}\")"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        // Names come from the schema itself, not from input.
        let select = format!("SELECT {row} FROM \"{table}\" ORDER BY rowid");
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(select))
            .fetch_all(&mut connection)
            .await
            .unwrap();
        dump.push_str(&format!("== {table} ({})\n", columns.join(", ")));
        for row in rows {
            dump.push_str(&row);
            dump.push('\n');
        }
    }
    connection.close().await.unwrap();
    dump
}

/// A read-only connection of its own to the server's database, opened while the server runs
/// (WAL mode: it sees the last committed state and blocks no one).
async fn reader(path: &Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()))
}

/// A read-write connection of its own to the server's database, opened while the server runs
/// (WAL mode: it waits for the server's writers, up to the busy timeout, and they wait for it).
async fn writer(path: &Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()))
}

/// Runs one statement with text parameters bound to its `?`s, as an operator or a test
/// playing for time would (to revoke a device before RevokeDevice exists, or to age an
/// operation), and returns how many rows it changed. Statements are the test's own text.
pub async fn db_execute(path: &Path, sql: &str, params: &[&str]) -> u64 {
    let mut connection = writer(path).await;
    let mut query = sqlx::query(AssertSqlSafe(sql.to_owned()));
    for param in params {
        query = query.bind(*param);
    }
    let done = query
        .execute(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    connection.close().await.unwrap();
    done.rows_affected()
}

/// The first column of every row of a query (with text parameters), as text: select
/// `quote(column)` to see NULLs and blobs too. Read through a read-only connection.
pub async fn db_query(path: &Path, sql: &str, params: &[&str]) -> Vec<String> {
    let mut connection = reader(path).await;
    let mut query = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()));
    for param in params {
        query = query.bind(*param);
    }
    let rows: Vec<String> = query
        .fetch_all(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    connection.close().await.unwrap();
    rows
}
