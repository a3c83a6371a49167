//! A PostgreSQL database of its own for one test server, when the suite runs against
//! PostgreSQL (`WAAS_TEST_DATABASE=postgres`, on the server of `WAAS_TEST_POSTGRES_URL`:
//! `scripts/postgres.sh` starts one). Created empty (the server migrates it), dropped with it.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// Whether test servers run on PostgreSQL rather than on a SQLite file.
pub fn on_postgres() -> bool {
    match std::env::var("WAAS_TEST_DATABASE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("WAAS_TEST_DATABASE={other}: sqlite or postgres"),
    }
}

/// A database on the test PostgreSQL server, dropped (connections and all) when dropped.
#[derive(Debug)]
pub struct PgDatabase {
    server: String,
    name: String,
    /// `postgres://…/{name}`, for `--database`.
    pub url: String,
}

impl PgDatabase {
    /// Creates an empty database. Blocking: callable from sync code and from a test's runtime.
    pub fn create() -> Self {
        let server = std::env::var("WAAS_TEST_POSTGRES_URL").expect(
            "WAAS_TEST_DATABASE=postgres needs WAAS_TEST_POSTGRES_URL (run under scripts/postgres.sh)",
        );
        let name = format!("waas_test_{}", uuid::Uuid::new_v4().simple());
        admin(&server, format!("CREATE DATABASE {name}"));
        let (base, _) = server.rsplit_once('/').unwrap();
        Self {
            url: format!("{base}/{name}"),
            server,
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        admin(
            &self.server,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement on the server's maintenance database, on a thread and runtime of its own
/// (a test's runtime may be the caller's, and cannot be blocked on).
fn admin(server: &str, statement: String) {
    let server = server.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let mut connection = PgConnection::connect(&server).await?;
                sqlx::query(AssertSqlSafe(statement.clone()))
                    .execute(&mut connection)
                    .await?;
                connection.close().await
            })
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    })
    .join()
    .unwrap();
}

/// Every row of every table but `skipped`, as PostgreSQL writes a row as text, in text order
/// (the same database, dumped twice, compares equal if and only if no row changed).
pub async fn pg_dump(url: &str, skipped: &[&str]) -> String {
    let mut connection = PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let mut dump = String::new();
    for table in tables.iter().filter(|t| !skipped.contains(&t.as_str())) {
        // Names come from the schema itself, not from input.
        let select = format!("SELECT t::text FROM \"{table}\" t ORDER BY 1");
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(select))
            .fetch_all(&mut connection)
            .await
            .unwrap();
        dump.push_str(&format!("== {table}\n"));
        for row in rows {
            dump.push_str(&row);
            dump.push('\n');
        }
    }
    connection.close().await.unwrap();
    dump
}
