//! The queue of training jobs (`training_jobs`), run for every kind of per-tenant model:
//! the server's `failure_risk_training` worker ([`run_training_jobs`]) claims the oldest
//! queued job of any tenant and runs the training of its kind (`failure_risk::run_job`,
//! `forecasts::run_job` for emissions and production gaps), recording its stage and progress;
//! `failure_risk_training_schedule` ([`schedule_training`]) queues a scheduled job for
//! every tenant whose newest model of a kind is older than the period. Above the areas it
//! dispatches to (they depend on `training`'s types, never on this module).

use chrono::{DateTime, Utc};

use store::failure_risk::{self as sql, ModelKind};

use crate::ApiError;

/// Runs every queued training job of any kind, oldest first, with its stage and progress
/// visible (`GET …/failure-risk/training-jobs/{job}`): the server's
/// `failure_risk_training` worker. A job that fails records why; the next job goes on.
/// Returns the jobs run.
pub async fn run_training_jobs(db: &store::Db) -> Result<usize, ApiError> {
    let mut done = 0;
    loop {
        let mut conn = db.pool().acquire().await.map_err(store::DbError::from)?;
        let Some(job) = sql::claim_training(&mut conn).await? else {
            return Ok(done);
        };
        let outcome = match job.model.as_str() {
            "emissions" => {
                crate::forecasts::run_job(db, &mut conn, &job, ModelKind::Emissions).await
            }
            "production_gap" => {
                crate::forecasts::run_job(db, &mut conn, &job, ModelKind::ProductionGap).await
            }
            _ => crate::failure_risk::run_job(db, &mut conn, &job).await,
        };
        let error = outcome.as_ref().err().map(ToString::to_string);
        if let Some(e) = &error {
            tracing::warn!(tenant = job.tenant.0, job = job.id, model = %job.model, error = %e, "training job failed");
        }
        sql::finish_training(
            &mut conn,
            job.id,
            match (&outcome, &error) {
                (Ok(version), _) => Ok(*version),
                (Err(_), Some(e)) => Err(e.as_str()),
                (Err(_), None) => Err("failed"),
            },
        )
        .await?;
        done += 1;
    }
}

/// Queues a scheduled training job for every tenant and kind whose newest model is older
/// than `every` (and that has no open job for it): the server's
/// `failure_risk_training_schedule` job. Tenants without any model of a kind are left
/// alone (their first model is asked for). Returns the tenants queued (once per kind).
pub async fn schedule_training(
    db: &store::Db,
    now: DateTime<Utc>,
    every: std::time::Duration,
) -> Result<Vec<store::TenantId>, ApiError> {
    let before =
        now - chrono::TimeDelta::from_std(every).map_err(|e| ApiError::Internal(e.into()))?;
    let mut queued = Vec::new();
    for kind in ModelKind::ALL {
        let mut conn = db.pool().acquire().await.map_err(store::DbError::from)?;
        let due = sql::tenants_due_for_training(&mut conn, kind, before).await?;
        drop(conn);
        for tenant in due {
            let mut tx = db.begin_tenant(tenant).await?;
            let (job, new) =
                sql::enqueue_training(&mut tx, tenant, kind, "scheduled", "schedule").await?;
            if new {
                let target = format!("training_job:{}", job.id);
                let action = format!("{}_training.request", kind.name());
                store::audit::record(
                    &mut tx,
                    &store::audit::AuditEntry {
                        tenant: Some(tenant),
                        actor: "schedule",
                        action: &action,
                        target: &target,
                        before: None,
                        after: Some(serde_json::json!({ "trigger": "scheduled" })),
                        client_addr: None,
                        request_id: None,
                    },
                )
                .await?;
                queued.push(tenant);
            }
            tx.commit().await?;
        }
    }
    Ok(queued)
}
