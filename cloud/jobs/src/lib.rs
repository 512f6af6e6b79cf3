//! `jobs`: the cloud's scheduler. Every periodic task of the cloud is a [`Job`] run by one
//! [`Scheduler`]:
//!
//! - each job runs every `interval` (a run that overruns delays the next, never overlaps);
//! - across instances of `wellpulse-cloud` on one database, one leader per run: a run
//!   starts only after taking the job's advisory lock ([`store::locks`]); the others skip
//!   it (counted as `skipped`);
//! - a failed run is logged and counted, and the job runs again at the next tick;
//! - metrics per job (runs by outcome, duration and time of the last success) go to the
//!   process's Prometheus registry.
//!
//! The jobs the server registers (see `server`): storage maintenance (partitions, rollups,
//! retention), the offline sweep, and the production derivation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use store::Db;
use tokio::task::JoinSet;

/// What a job run returns: a one-line summary for the log, or why it failed.
pub type RunResult = Result<String, Box<dyn std::error::Error + Send + Sync>>;

type RunFn = Arc<dyn Fn(Db) -> Pin<Box<dyn Future<Output = RunResult> + Send>> + Send + Sync>;

/// A periodic job.
#[derive(Clone)]
pub struct Job {
    name: &'static str,
    interval: Duration,
    run: RunFn,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .finish()
    }
}

impl Job {
    /// A job called `name` (also its lock and metric label) running `run` every
    /// `interval`.
    pub fn new<F, Fut>(name: &'static str, interval: Duration, run: F) -> Job
    where
        F: Fn(Db) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RunResult> + Send + 'static,
    {
        Job {
            name,
            interval,
            run: Arc::new(move |db| Box::pin(run(db))),
        }
    }

    /// The job's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// How a run ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelValue,
)]
pub enum Outcome {
    /// Ran and succeeded.
    Ok,
    /// Ran and failed.
    Failed,
    /// Another instance held the lock: not run here.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RunLabels {
    job: &'static str,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobLabels {
    job: &'static str,
}

/// The scheduler's metrics.
#[derive(Debug, Clone, Default)]
pub struct JobMetrics {
    runs: Family<RunLabels, Counter>,
    duration_ms: Family<JobLabels, Gauge>,
    last_success: Family<JobLabels, Gauge>,
}

impl JobMetrics {
    /// Registers the metrics (`wellpulse_job_*`) in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wellpulse_job_runs",
            "Job runs by outcome (skipped: another instance led that run)",
            self.runs.clone(),
        );
        registry.register(
            "wellpulse_job_last_duration_ms",
            "Duration of the job's last run on this instance, in milliseconds",
            self.duration_ms.clone(),
        );
        registry.register(
            "wellpulse_job_last_success_timestamp_seconds",
            "Unix time of the job's last successful run on this instance",
            self.last_success.clone(),
        );
    }

    /// Runs of `job` that ended with `outcome`.
    pub fn runs(&self, job: &'static str, outcome: Outcome) -> u64 {
        self.runs.get_or_create(&RunLabels { job, outcome }).get()
    }
}

/// Runs jobs until dropped or aborted.
#[derive(Debug)]
pub struct Scheduler {
    db: Db,
    jobs: Vec<Job>,
    metrics: JobMetrics,
}

impl Scheduler {
    /// A scheduler over `db` reporting to `metrics`.
    pub fn new(db: Db, metrics: JobMetrics) -> Scheduler {
        Scheduler {
            db,
            jobs: Vec::new(),
            metrics,
        }
    }

    /// Adds a job.
    pub fn with_job(mut self, job: Job) -> Scheduler {
        self.jobs.push(job);
        self
    }

    /// Runs every job on its interval until the future is dropped; returns only if every
    /// job loop ended (a panicking job ends its loop, reported here).
    pub async fn run(self) {
        let mut loops = JoinSet::new();
        for job in self.jobs {
            loops.spawn(job_loop(self.db.clone(), job, self.metrics.clone()));
        }
        while let Some(done) = loops.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "a job loop ended");
            }
        }
    }
}

async fn job_loop(db: Db, job: Job, metrics: JobMetrics) {
    let mut tick = tokio::time::interval(job.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let outcome = run_once(&db, &job, &metrics).await;
        tracing::trace!(job = job.name, ?outcome, "job tick");
    }
}

/// One run of `job` if this instance takes its lock.
pub async fn run_once(db: &Db, job: &Job, metrics: &JobMetrics) -> Outcome {
    let lock = match db.try_job_lock(job.name).await {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            metrics
                .runs
                .get_or_create(&labels(job, Outcome::Skipped))
                .inc();
            tracing::debug!(job = job.name, "another instance leads this run");
            return Outcome::Skipped;
        }
        Err(error) => {
            metrics
                .runs
                .get_or_create(&labels(job, Outcome::Failed))
                .inc();
            tracing::warn!(job = job.name, %error, "cannot take the job lock; retrying next tick");
            return Outcome::Failed;
        }
    };
    let started = Instant::now();
    let result = (job.run)(db.clone()).await;
    let elapsed = started.elapsed();
    if let Err(error) = lock.release().await {
        tracing::warn!(job = job.name, %error, "releasing the job lock failed (the connection was closed)");
    }
    let job_labels = JobLabels { job: job.name };
    metrics
        .duration_ms
        .get_or_create(&job_labels)
        .set(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
    match result {
        Ok(summary) => {
            metrics.runs.get_or_create(&labels(job, Outcome::Ok)).inc();
            metrics
                .last_success
                .get_or_create(&job_labels)
                .set(chrono::Utc::now().timestamp());
            tracing::debug!(job = job.name, ?elapsed, %summary, "job done");
            Outcome::Ok
        }
        Err(error) => {
            metrics
                .runs
                .get_or_create(&labels(job, Outcome::Failed))
                .inc();
            tracing::warn!(job = job.name, %error, "job failed; retrying next tick");
            Outcome::Failed
        }
    }
}

fn labels(job: &Job, outcome: Outcome) -> RunLabels {
    RunLabels {
        job: job.name,
        outcome,
    }
}
