//! Throwaway databases for tests and benchmarks.
//!
//! [`ScratchDb::create`] makes a uniquely named database on the server given by
//! `WELLPULSE_PG_ADMIN_URL`, else `DATABASE_URL` (the admin URL `test.sh` and
//! `scripts/services.sh` export, also used by the end-to-end tests), else
//! `postgres://postgres@127.0.0.1:5432/postgres` (the development server), and
//! [`ScratchDb::drop_db`] removes it. If a test panics before dropping it explicitly, `Drop`
//! removes it on a helper thread (best effort), so runs do not pile up databases.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, PgConnection};

use store::DbError;

/// Environment variable naming the administrative connection URL.
pub const ADMIN_URL_ENV: &str = "WELLPULSE_PG_ADMIN_URL";
/// Fallback when [`ADMIN_URL_ENV`] is not set: the admin URL the test scripts export.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists until dropped.
#[derive(Debug)]
pub struct ScratchDb {
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

fn admin_url() -> String {
    [ADMIN_URL_ENV, DATABASE_URL_ENV]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|url| !url.is_empty()))
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_string())
}

/// `url` with its database path replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl ScratchDb {
    /// Creates an empty database named `wp_<prefix>_<pid>_<n>_<random>`.
    pub async fn create(prefix: &str) -> Result<ScratchDb, DbError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let prefix: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(20)
            .collect::<String>()
            .to_ascii_lowercase();
        let name = format!(
            "wp_{prefix}_{}_{}_{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let admin_url = admin_url();
        let mut admin = PgConnection::connect(&admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(ScratchDb {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
            dropped: false,
        })
    }

    /// Connection URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database (disconnecting any remaining session).
    pub async fn drop_db(mut self) -> Result<(), DbError> {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name).await
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), DbError> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => rt.block_on(drop_database(&admin_url, &name)),
                Err(e) => Err(DbError::Invalid {
                    what: "runtime",
                    reason: e.to_string(),
                }),
            }
        });
        if let Ok(Err(error)) = cleanup.join() {
            tracing::warn!(%error, database = %self.name, "could not drop scratch database");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_path_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
