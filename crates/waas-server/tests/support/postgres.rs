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
        let url = format!("{base}/{name}");
        admin(&url, COMPAT.to_owned());
        Self { url, server, name }
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

/// Runs statements on a database of the server (`url`), on a thread and runtime of its own
/// (a test's runtime may be the caller's, and cannot be blocked on).
pub(super) fn admin(server: &str, statement: String) {
    try_admin(server, statement.clone()).unwrap_or_else(|error| panic!("{statement}: {error}"));
}

/// [`admin`], its failure returned.
pub(super) fn try_admin(server: &str, statement: String) -> Result<(), sqlx::Error> {
    let server = server.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let mut connection = PgConnection::connect(&server).await?;
                sqlx::raw_sql(AssertSqlSafe(statement))
                    .execute(&mut connection)
                    .await?;
                connection.close().await
            })
    })
    .join()
    .unwrap()
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

/// The SQLite functions the tests' own SQL uses ([`pg_query`], [`pg_execute`]), in a schema of
/// their own: the server never sees them (its tables are in `public`), nor does [`pg_dump`].
const COMPAT: &str = r"
    CREATE SCHEMA waas_test_compat;
    CREATE FUNCTION waas_test_compat.quote(value bytea) RETURNS text LANGUAGE sql IMMUTABLE
        AS $$ SELECT CASE WHEN value IS NULL THEN 'NULL'
                          ELSE 'X''' || upper(encode(value, 'hex')) || '''' END $$;
    CREATE FUNCTION waas_test_compat.hex(value bytea) RETURNS text LANGUAGE sql IMMUTABLE
        AS $$ SELECT coalesce(upper(encode(value, 'hex')), '') $$;
    CREATE FUNCTION waas_test_compat.ifnull(value text, otherwise text) RETURNS text
        LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(value, otherwise) $$;
    CREATE FUNCTION waas_test_compat.ifnull(value bigint, otherwise text) RETURNS text
        LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(value::text, otherwise) $$;
";

/// A connection to `url` that finds the SQLite functions of [`COMPAT`].
async fn compat_connection(url: &str) -> PgConnection {
    let mut connection = PgConnection::connect(url).await.unwrap();
    sqlx::query("SET search_path = public, waas_test_compat")
        .execute(&mut connection)
        .await
        .unwrap();
    connection
}

/// A test's SQL, written for SQLite, as PostgreSQL reads it: each `?` becomes its parameter as
/// a quoted literal (PostgreSQL gives it the type its place needs, as SQLite's affinity does
/// for text parameters), and a blob literal `x'…'` becomes a bytea one (`'\x…'`).
fn to_postgres(sql: &str, params: &[&str]) -> String {
    let mut out = String::new();
    let mut params = params.iter();
    let mut chars = sql.chars();
    while let Some(c) = chars.next() {
        match c {
            '?' => {
                let param = params.next().expect("fewer parameters than ?s");
                out.push('\'');
                out.push_str(&param.replace('\'', "''"));
                out.push('\'');
            }
            '\'' => {
                // A string literal, copied whole; right after a lone x, a blob.
                let mut before = out.chars().rev();
                let blob = matches!(before.next(), Some('x' | 'X'))
                    && !before
                        .next()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_');
                if blob {
                    out.pop();
                    out.push_str("'\\x");
                } else {
                    out.push('\'');
                }
                for c in chars.by_ref() {
                    out.push(c);
                    if c == '\'' {
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    assert!(params.next().is_none(), "more parameters than ?s");
    out
}

/// [`super::db_query`] on PostgreSQL.
pub async fn pg_query(url: &str, sql: &str, params: &[&str]) -> Vec<String> {
    let mut connection = compat_connection(url).await;
    let statement = to_postgres(sql, params);
    let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(statement.clone()))
        .fetch_all(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
    connection.close().await.unwrap();
    rows
}

/// [`super::db_execute`] on PostgreSQL.
pub async fn pg_execute(url: &str, sql: &str, params: &[&str]) -> u64 {
    let mut connection = compat_connection(url).await;
    let statement = to_postgres(sql, params);
    let done = sqlx::query(AssertSqlSafe(statement.clone()))
        .execute(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
    connection.close().await.unwrap();
    done.rows_affected()
}
