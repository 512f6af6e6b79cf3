//! Leader election for periodic jobs: a session-level PostgreSQL advisory lock per job
//! name, held on a dedicated pooled connection for the length of one run.
//!
//! Whoever holds the lock runs the job; other instances skip that run. If the process
//! dies or its connection drops, PostgreSQL releases the lock at once, so a job never
//! stays leaderless for longer than one interval.

use sqlx::Postgres;
use sqlx::pool::PoolConnection;

use crate::{Db, DbError};

/// The lock of one job run; release it with [`JobLock::release`] (dropping it returns the
/// connection to the pool, which would keep the lock: the connection is closed instead).
#[derive(Debug)]
pub struct JobLock {
    conn: Option<PoolConnection<Postgres>>,
    name: String,
}

impl Db {
    /// Takes the advisory lock of job `name` if no other session holds it.
    pub async fn try_job_lock(&self, name: &str) -> Result<Option<JobLock>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let taken: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('wellpulse.job.' || $1, 0))",
        )
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
        Ok(taken.then(|| JobLock {
            conn: Some(conn),
            name: name.to_owned(),
        }))
    }
}

impl JobLock {
    /// Releases the lock (the connection goes back to the pool).
    pub async fn release(mut self) -> Result<(), DbError> {
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        sqlx::query("SELECT pg_advisory_unlock(hashtextextended('wellpulse.job.' || $1, 0))")
            .bind(&self.name)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        // Not released (a panic or a cancelled run): close the connection rather than
        // return a session that still holds the lock to the pool.
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}
