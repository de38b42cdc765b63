//! Database connection and migrations for both backends.

use std::{future::Future, pin::Pin, time::Duration};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::{Error, Result};

/// How long a SQLite statement waits for the write lock before `database is locked`.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn connect(url: &str) -> Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if url.starts_with("sqlite:") {
        // sea-orm defaults SQLite to a single connection; WAL (persistent in the
        // file) lets readers run beside the one writer. sqlx turns foreign keys
        // on for every connection it opens.
        opts.max_connections(8)
            .min_connections(1)
            // Writers queue for the one write lock; a long load or trait run
            // holds it for seconds, so wait rather than fail at sqlx' 5 s.
            .map_sqlx_sqlite_opts(|o| {
                // Deleted rows are overwritten in the file, so an erased
                // player's data does not linger in free pages.
                o.busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .pragma("secure_delete", "ON")
            });
    } else {
        opts.max_connections(20).min_connections(1);
    }
    let db = Database::connect(opts)
        .await
        .map_err(|e| Error::Unavailable(format!("database {}: {e}", redact(url))))?;
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA journal_mode=WAL;").await?;
    }
    Ok(db)
}

pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    Migrator::up(db, None).await?;
    Ok(())
}

/// A connection URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A read-write transaction; on SQLite with the write lock taken up front
/// (see [`write_tx`]). Prefer `write_tx`; this is for bodies that borrow.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction> {
    Ok(db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?)
}

/// Runs `f` in a read-write transaction, committing on `Ok`. On SQLite the
/// write lock is taken up front (`BEGIN IMMEDIATE`): a deferred transaction
/// that reads and then writes fails with `SQLITE_BUSY_SNAPSHOT` when another
/// writer committed in between, and the busy timeout cannot retry that.
pub async fn write_tx<T, F>(db: &DatabaseConnection, f: F) -> Result<T>
where
    T: Send,
    F: for<'c> FnOnce(
            &'c DatabaseTransaction,
        ) -> Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>
        + Send,
{
    let tx = begin_write(db).await?;
    match f(&tx).await {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}

/// An exclusive transaction-scoped advisory lock on (`class`, `ws`)
/// (PostgreSQL; SQLite's write lock already serializes writers).
pub(crate) async fn advisory_xact_lock(
    tx: &sea_orm::DatabaseTransaction,
    class: i32,
    ws: uuid::Uuid,
) -> Result<()> {
    advisory_xact_lock_key(tx, class, advisory_key(ws)).await
}

/// The advisory lock key of an id (its last four bytes).
pub(crate) fn advisory_key(id: uuid::Uuid) -> i32 {
    i32::from_be_bytes(id.as_bytes()[12..].try_into().expect("4 bytes"))
}

/// [`advisory_xact_lock`] on a key already derived (callers locking many
/// keys take them in key order).
pub(crate) async fn advisory_xact_lock_key(
    tx: &sea_orm::DatabaseTransaction,
    class: i32,
    key: i32,
) -> Result<()> {
    advisory(tx, "pg_advisory_xact_lock", class, key).await
}

/// [`advisory_xact_lock`] shared: holders exclude only the exclusive one.
pub(crate) async fn advisory_xact_lock_shared(
    tx: &sea_orm::DatabaseTransaction,
    class: i32,
    ws: uuid::Uuid,
) -> Result<()> {
    advisory(tx, "pg_advisory_xact_lock_shared", class, advisory_key(ws)).await
}

async fn advisory(
    tx: &sea_orm::DatabaseTransaction,
    function: &str,
    class: i32,
    key: i32,
) -> Result<()> {
    if tx.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    tx.execute_raw(sea_orm::Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("SELECT {function}($1, $2)"),
        [class.into(), key.into()],
    ))
    .await?;
    Ok(())
}

/// Bound values of a statement written by hand, with each placeholder in
/// the backend's spelling (`$n`, or `?` bound by position: call [`Binds::bind`]
/// in the order the placeholders appear in the text).
pub(crate) struct Binds {
    backend: DbBackend,
    pub values: Vec<sea_orm::Value>,
}

impl Binds {
    pub fn new(backend: DbBackend) -> Self {
        Binds {
            backend,
            values: Vec::new(),
        }
    }

    pub fn bind(&mut self, v: impl Into<sea_orm::Value>) -> String {
        self.values.push(v.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_owned(),
        }
    }

    pub fn statement(self, sql: String) -> sea_orm::Statement {
        sea_orm::Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// Rows written at once above which PostgreSQL's statistics of the table
/// are refreshed right away (see [`analyze_after_bulk_write`]).
const ANALYZE_AFTER_ROWS: u64 = 10_000;

/// After a statement wrote many rows (a trait's first full run, a segment's
/// members), refreshes PostgreSQL's statistics of the table at once instead
/// of within autovacuum's next minute: the incremental passes that follow
/// probe it per player, and with the old statistics (a trait with no values)
/// the planner scans all of the trait's values instead. ANALYZE samples a
/// fixed number of rows, so this costs the same at any size. SQLite plans
/// from its indexes alone.
pub async fn analyze_after_bulk_write(db: &DatabaseConnection, table: &str, rows: u64) {
    if db.get_database_backend() != DbBackend::Postgres || rows < ANALYZE_AFTER_ROWS {
        return;
    }
    if let Err(e) = db.execute_unprepared(&format!("ANALYZE \"{table}\"")).await {
        tracing::warn!(table, error = %e, "could not refresh the table's statistics");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            super::redact("postgres://tf:s3cret@db:5432/tf"),
            "postgres://tf:***@db:5432/tf"
        );
        assert_eq!(super::redact("postgres://tf@db/tf"), "postgres://tf@db/tf");
        assert_eq!(
            super::redact("sqlite://x.db?mode=rwc"),
            "sqlite://x.db?mode=rwc"
        );
    }
}
