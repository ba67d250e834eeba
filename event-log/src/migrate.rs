//! Applies the SQL files under `migrations/` that are compiled into the binary.
//!
//! Runs through sqlx's `Any` driver so one runner serves PostgreSQL and SQLite. Several
//! instances may start at once against one PostgreSQL: an advisory lock lets one apply while
//! the others wait and then find nothing left to do.

use sqlx::any::{install_default_drivers, AnyConnectOptions};
use sqlx::{AnyConnection, ConnectOptions, Connection};
use std::str::FromStr;

/// One SQL file, applied once, in version order.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations of one schema (the event log or the read models) for one database engine.
#[derive(Debug, Clone, Copy)]
pub struct MigrationSet {
    pub name: &'static str,
    pub migrations: &'static [Migration],
}

impl MigrationSet {
    /// Applies what the database behind `url` has not seen yet.
    ///
    /// Runs on a blocking thread that drives the work itself: the compiler cannot prove a
    /// future holding the `Any` driver's executor `Send`, and callers need theirs to be.
    pub async fn apply(&self, url: &str) -> Result<(), sqlx::Error> {
        let set = *self;
        let url = url.to_owned();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(set.apply_now(&url)))
            .await
            .map_err(|error| sqlx::Error::Protocol(format!("migration task failed: {error}")))?
    }

    async fn apply_now(&self, url: &str) -> Result<(), sqlx::Error> {
        install_default_drivers();
        let options = AnyConnectOptions::from_str(url)?;
        let mut connection = options.connect().await?;
        let postgres = url.starts_with("postgres");
        if postgres {
            sqlx::query("SELECT pg_advisory_lock(7305112690347001)")
                .execute(&mut connection)
                .await?;
        }
        let outcome = self.apply_locked(&mut connection).await;
        if postgres {
            sqlx::query("SELECT pg_advisory_unlock(7305112690347001)")
                .execute(&mut connection)
                .await?;
        }
        connection.close().await?;
        outcome
    }

    async fn apply_locked(&self, connection: &mut AnyConnection) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                migration_set TEXT NOT NULL,
                version BIGINT NOT NULL,
                name TEXT NOT NULL,
                PRIMARY KEY (migration_set, version)
            )",
        )
        .execute(&mut *connection)
        .await?;
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE migration_set = $1")
                .bind(self.name)
                .fetch_all(&mut *connection)
                .await?;
        for migration in self.migrations {
            if applied.contains(&migration.version) {
                continue;
            }
            let mut transaction = connection.begin().await?;
            sqlx::raw_sql(migration.sql)
                .execute(&mut *transaction)
                .await?;
            sqlx::query(
                "INSERT INTO schema_migrations (migration_set, version, name) VALUES ($1, $2, $3)",
            )
            .bind(self.name)
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await?;
            tracing::info!(
                migration.set = self.name,
                migration.version = migration.version,
                migration.name = migration.name,
                "applied migration"
            );
        }
        Ok(())
    }
}

/// Where generation `generation` of a schema lives, beside the database `url` names (which
/// is generation 0): a PostgreSQL schema of its own, chosen by the connection's search path,
/// or an SQLite file next to the first. A rebuild fills a new generation while the old one
/// serves.
pub fn generation_url(url: &str, generation: u64) -> String {
    if generation == 0 {
        return url.to_owned();
    }
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (url, None),
    };
    if url.starts_with("postgres") {
        let option = format!(
            "options=-c%20search_path%3D{}",
            generation_schema(generation)
        );
        return match query {
            Some(query) => format!("{path}?{query}&{option}"),
            None => format!("{path}?{option}"),
        };
    }
    let file = match path.strip_suffix(".db") {
        Some(stem) => format!("{stem}.g{generation}.db"),
        None => format!("{path}.g{generation}"),
    };
    match query {
        Some(query) => format!("{file}?{query}"),
        None => file,
    }
}

/// The PostgreSQL schema of a generation after the first.
pub fn generation_schema(generation: u64) -> String {
    format!("generation_{generation}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_live_beside_the_configured_database() {
        assert_eq!(generation_url("sqlite://d/rm.db", 0), "sqlite://d/rm.db");
        assert_eq!(
            generation_url("sqlite://d/rm.db?mode=rwc", 2),
            "sqlite://d/rm.g2.db?mode=rwc"
        );
        assert_eq!(generation_url("sqlite://d/rm", 1), "sqlite://d/rm.g1");
        assert_eq!(
            generation_url("postgres://u@h/db", 3),
            "postgres://u@h/db?options=-c%20search_path%3Dgeneration_3"
        );
        assert_eq!(
            generation_url("postgres://u@h/db?sslmode=disable", 3),
            "postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Dgeneration_3"
        );
    }
}
