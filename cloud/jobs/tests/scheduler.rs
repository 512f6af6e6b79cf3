//! The scheduler against a real database: jobs run on their interval, one instance leads
//! each run (advisory lock), failures are counted and retried, jobs starting together
//! never starve their own work (or requests) of connections, and the storage maintenance
//! job keeps the rollups current.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use jobs::{Job, JobMetrics, Outcome, Scheduler, run_once};
use store::maintenance;
use testkit::db::{
    TestDb, Values, Writer, assert_rollups_match_raw, fixture, samples, three_series,
};
use tokio::sync::Notify;

#[tokio::test]
async fn one_instance_leads_each_run_and_the_lock_is_released_after() {
    let test = TestDb::plain("jobs_leader").await;
    let db = test.db.clone();
    let metrics = JobMetrics::default();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let slow = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        Job::new("slow", Duration::from_secs(3600), move |_db| {
            let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
            async move {
                entered.notify_one();
                release.notified().await;
                Ok("done".to_owned())
            }
        })
    };
    // Instance A takes the lock and holds it while its run is in progress.
    let a = tokio::spawn({
        let (db, job, metrics) = (db.clone(), slow.clone(), metrics.clone());
        async move { run_once(&db, &job, &metrics).await }
    });
    entered.notified().await;
    // Instance B (another pool, as another process would have) skips that run.
    let other = TestDb::connect_same(&test).await;
    assert_eq!(run_once(&other, &slow, &metrics).await, Outcome::Skipped);
    release.notify_one();
    assert_eq!(a.await.unwrap(), Outcome::Ok);
    // Released: B leads the next run.
    let quick = Job::new("slow", Duration::from_secs(3600), |_db| async {
        Ok("quick".to_owned())
    });
    assert_eq!(run_once(&other, &quick, &metrics).await, Outcome::Ok);
    assert_eq!(metrics.runs("slow", Outcome::Ok), 2);
    assert_eq!(metrics.runs("slow", Outcome::Skipped), 1);
    other.pool().close().await;
    test.finish().await;
}

#[tokio::test]
async fn a_failing_job_is_counted_and_runs_again_at_the_next_tick() {
    let test = TestDb::plain("jobs_retry").await;
    let metrics = JobMetrics::default();
    let calls = Arc::new(AtomicU32::new(0));
    let third = Arc::new(Notify::new());
    let job = {
        let (calls, third) = (Arc::clone(&calls), Arc::clone(&third));
        Job::new("flaky", Duration::from_millis(20), move |_db| {
            let (calls, third) = (Arc::clone(&calls), Arc::clone(&third));
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                // Runs are sequential: when the fourth starts, the first three are counted.
                if n == 4 {
                    third.notify_one();
                }
                if n % 2 == 1 {
                    Err("boom".into())
                } else {
                    Ok(String::new())
                }
            }
        })
    };
    let scheduler = Scheduler::new(test.db.clone(), metrics.clone()).with_job(job);
    let running = tokio::spawn(scheduler.run());
    tokio::time::timeout(Duration::from_secs(60), third.notified())
        .await
        .expect("the job ran a fourth time");
    running.abort();
    assert!(metrics.runs("flaky", Outcome::Failed) >= 2);
    assert!(metrics.runs("flaky", Outcome::Ok) >= 1);
    test.finish().await;
}

#[tokio::test]
async fn the_maintenance_job_keeps_rollups_current() {
    let test = TestDb::plain("jobs_maint").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let series = three_series(db, f.gateway).await;
    let mut writer = Writer {
        gateway: f.gateway,
        seq: 0,
    };
    let rows = samples(
        &series,
        Utc::now() - TimeDelta::minutes(5),
        120,
        5,
        &mut Values(7),
    );
    writer.write(db, &rows, Utc::now()).await;
    let job = Job::new("maintenance", Duration::from_millis(50), |db| async move {
        maintenance::run_once(&db)
            .await
            .map(|r| format!("{r:?}"))
            .map_err(Into::into)
    });
    let metrics = JobMetrics::default();
    let running = tokio::spawn(
        Scheduler::new(db.clone(), metrics.clone())
            .with_job(job)
            .run(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Waits on the database's own state: the dirty ranges the job consumes.
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM rollup_dirty")
            .fetch_one(db.pool())
            .await
            .unwrap();
        if pending == 0 && metrics.runs("maintenance", Outcome::Ok) > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never refreshed the rollups"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.abort();
    assert_rollups_match_raw(db).await;
    test.finish().await;
}

#[tokio::test]
async fn jobs_starting_together_leave_the_pool_to_their_work() {
    let test = TestDb::plain("jobs_pool").await;
    // A pool of two connections; twelve jobs start at once (as every job does at start-up),
    // each needing one connection for its work. Their locks must not take the pool.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(test.db.pool().connect_options().as_ref().clone())
        .await
        .unwrap();
    let db = store::Db::from_pool(pool, store::StorageOptions::default());
    let metrics = JobMetrics::default();
    let mut runs = tokio::task::JoinSet::new();
    const NAMES: [&str; 12] = [
        "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11",
    ];
    for name in NAMES {
        let job = Job::new(name, Duration::from_secs(3600), |db| async move {
            let mut conn = db.pool().acquire().await?;
            sqlx::query("SELECT pg_sleep(0.05)")
                .execute(&mut *conn)
                .await?;
            Ok("worked".to_owned())
        });
        let (db, metrics) = (db.clone(), metrics.clone());
        runs.spawn(async move { run_once(&db, &job, &metrics).await });
    }
    let outcomes: Vec<Outcome> = runs.join_all().await;
    assert_eq!(outcomes, vec![Outcome::Ok; 12]);
    // The pool is free again for requests.
    sqlx::query("SELECT 1").execute(db.pool()).await.unwrap();
    db.close().await;
    test.finish().await;
}
