//! Leader election for periodic jobs: a session-level PostgreSQL advisory lock per job
//! name, held on a dedicated connection for the length of one run.
//!
//! Those connections come from a pool of their own (at most [`MAX_RUNNING_JOBS`]), not the
//! pool requests and the jobs' work use. When they came from that pool, a dozen jobs
//! ticking together (at start-up, and whenever their intervals met) took every connection
//! for their locks and then waited on each other for one to work with: the API stalled
//! for the pool's acquire timeout and the jobs failed.
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

/// Most job runs in progress at once in one process (connections of the job-lock pool).
pub const MAX_RUNNING_JOBS: u32 = 32;

impl Db {
    /// Takes the advisory lock of job `name` if no other session holds it.
    pub async fn try_job_lock(&self, name: &str) -> Result<Option<JobLock>, DbError> {
        let mut conn = self.job_locks.acquire().await?;
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
