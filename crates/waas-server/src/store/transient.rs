//! Which database errors pass by themselves: the one place that decides whether a request
//! that met one is answered `UNAVAILABLE` (503, to be sent again) or `INTERNAL` (500).
//!
//! Every store method is one transaction, so a failed call changed nothing that the caller
//! can see, except in one case: the connection is lost while a COMMIT is on its way, and the
//! commit may have happened. Requests that may be sent again are made for that: exchange rounds
//! answer a repeat with the stored answer, creations take a request id. So "transient" only
//! says whether the same request has a fair chance to succeed a moment later:
//! - the connection failed or was lost (an I/O error), no connection came free in time (the
//!   pool's acquire timeout, `--database-connect-timeout`), or the pool is closing (the server
//!   is shutting down);
//! - PostgreSQL said so: connection errors (SQLSTATE class 08, but for 08P01, a protocol
//!   violation, which is a bug), too many connections (53300), an administrator or a crash
//!   shutting it down or a start still in progress (57P01, 57P02, 57P03), a session ended for
//!   idling (57P05, and 25P03 inside a transaction: the store's own
//!   `idle_in_transaction_session_timeout`), a statement cancelled (57014: by an administrator
//!   or a `statement_timeout`), a lock not available (55P03: a `lock_timeout`), a write on a
//!   server that is read-only (25006: the connection still goes to a former primary after a
//!   failover), a serialization failure or a deadlock (40001, 40P01: the transaction was rolled
//!   back, and retrying it is what PostgreSQL asks), and a commit whose outcome is unknown
//!   (40003: as for a connection lost during a COMMIT, requests are made to be sent again);
//! - SQLite's file was locked by another process for longer than the busy timeout (SQLITE_BUSY,
//!   SQLITE_LOCKED).
//!
//! Anything else is not: a constraint violation, a value that does not decode, a missing
//! column, a full disk, and TLS errors. sqlx reports a socket that fails during the TLS
//! handshake as an I/O error; what it reports as TLS is configuration or trust (a certificate
//! that does not verify, a server without TLS when the URL requires it, a build without TLS), which
//! waiting does not change. Sending the request again would get the same answer, so it is a bug,
//! damage or a setting for the operator (logged in full), not a wait for the client; at start it
//! ends the wait for PostgreSQL at once, saying why.

use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

/// Whether `error` may pass by itself, so that the same request may succeed if sent again.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        // A connection's worker thread died: the pool opens another.
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => {
            if let Some(error) = error.try_downcast_ref::<PgDatabaseError>() {
                transient_sqlstate(error.code())
            } else if error.try_downcast_ref::<SqliteError>().is_some() {
                error
                    .code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .is_some_and(transient_sqlite_code)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// A PostgreSQL SQLSTATE that passes by itself (see the module's notes).
fn transient_sqlstate(code: &str) -> bool {
    (code.starts_with("08") && code != "08P01")
        || matches!(
            code,
            "25006"
                | "25P03"
                | "40001"
                | "40003"
                | "40P01"
                | "53300"
                | "55P03"
                | "57014"
                | "57P01"
                | "57P02"
                | "57P03"
                | "57P05"
        )
}

/// A SQLite result code (extended or primary) that passes by itself: SQLITE_BUSY (5) and
/// SQLITE_LOCKED (6), whatever their extended reason (the low byte is the primary code).
fn transient_sqlite_code(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_and_timeouts_are_transient() {
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::TimedOut,
        ] {
            assert!(is_transient(&sqlx::Error::Io(kind.into())), "{kind:?}");
        }
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(is_transient(&sqlx::Error::PoolClosed));
    }

    #[test]
    fn bugs_and_damage_are_not() {
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        assert!(!is_transient(&sqlx::Error::ColumnNotFound("x".into())));
        assert!(!is_transient(&sqlx::Error::Protocol("garbage".into())));
        assert!(!is_transient(&sqlx::Error::Decode("not a number".into())));
        // A certificate that does not verify, or TLS the build or the server lacks.
        assert!(!is_transient(&sqlx::Error::Tls(
            "invalid peer certificate: UnknownIssuer".into()
        )));
        assert!(!is_transient(&sqlx::Error::Tls(
            "server does not support TLS".into()
        )));
    }

    #[test]
    fn postgres_codes() {
        // Connection errors; serialization failure, deadlock, commit outcome unknown; too many
        // connections; shutdowns and starts; idle session timeouts; statement cancelled, lock
        // not available; read-only after a failover.
        for code in [
            "08000", "08003", "08006", "08001", "08004", "40001", "40P01", "40003", "53300",
            "57P01", "57P02", "57P03", "57P05", "25P03", "57014", "55P03", "25006",
        ] {
            assert!(transient_sqlstate(code), "{code}");
        }
        // Unique, foreign key, not null, check; syntax; protocol violation; disk full;
        // undefined table; value too long for the index (54000); other transaction states
        // (25001, active; 25P02, failed); password; no such database.
        for code in [
            "23505", "23503", "23502", "23514", "42601", "08P01", "53100", "42P01", "54000",
            "25001", "25P02", "28P01", "3D000",
        ] {
            assert!(!transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn sqlite_codes() {
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_BUSY_SNAPSHOT (517), SQLITE_LOCKED_SHAREDCACHE (262).
        for code in [5, 6, 517, 262] {
            assert!(transient_sqlite_code(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE (2067), SQLITE_CORRUPT (11), SQLITE_FULL (13),
        // SQLITE_IOERR (10), SQLITE_READONLY (8).
        for code in [2067, 11, 13, 10, 8] {
            assert!(!transient_sqlite_code(code), "{code}");
        }
    }
}
