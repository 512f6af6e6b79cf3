//! The periodic side of detection and alerting, as `jobs` (one leader per run across
//! instances):
//!
//! - `alert_lifecycle` (every `lifecycle_interval`): resolves alerts whose condition stayed
//!   clear for the hold time, tells flapping alerts that held and silenced ones whose
//!   silence ended, escalates unacknowledged ones, and re-sends open alerts to Alertmanager
//!   destinations every `resend_interval`;
//! - `device_silence` (every `silence_interval`): devices that sent nothing for longer than
//!   their learned interval allows get a `device_silent` signal
//!   (`detect::Detector::check_silence`), recorded like the ingester's;
//! - `model_training` (every `training.interval`): each well-linked device's multivariate
//!   model is trained again on its recent one-minute rollups ([`crate::training`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use detect::Detector;
use jobs::Job;
use store::alerts::AlertPolicy;
use store::detection::StateUpdate;
use store::{Db, DbError};

use crate::signals::{decode_state, signal_records};
use crate::training::{self, TrainingOptions};

/// Timing of the lifecycle jobs (from `[alerts]` and `[detection]`).
#[derive(Debug, Clone)]
pub struct LifecycleOptions {
    /// Hold time, flap damping.
    pub policy: AlertPolicy,
    /// Escalate unacknowledged firing alerts after this long.
    pub escalate_after: Duration,
    /// Re-send open alerts to Alertmanager this often.
    pub resend_interval: Duration,
    /// How often the lifecycle job runs.
    pub lifecycle_interval: Duration,
    /// How often silent devices are looked for.
    pub silence_interval: Duration,
    /// The detectors (for `check_silence`).
    pub detect: detect::DetectOptions,
    /// Model training.
    pub training: TrainingOptions,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The jobs, to register with the server's scheduler.
pub fn jobs(options: &LifecycleOptions) -> Vec<Job> {
    let o = Arc::new(options.clone());
    let lifecycle = Arc::clone(&o);
    let silence = Arc::clone(&o);
    let train = Arc::clone(&o);
    vec![
        Job::new("alert_lifecycle", o.lifecycle_interval, move |db| {
            let o = Arc::clone(&lifecycle);
            async move {
                let report = run_lifecycle(&db, &o).await?;
                Ok(report)
            }
        }),
        Job::new("device_silence", o.silence_interval, move |db| {
            let o = Arc::clone(&silence);
            async move {
                let n = sweep_silent(&db, &Detector::new(o.detect.clone()), &o.policy).await?;
                Ok(format!("{n} devices found silent"))
            }
        }),
        Job::new("model_training", o.training.interval, move |db| {
            let o = Arc::clone(&train);
            async move {
                let report = training::train_all(&db, &o.training, Utc::now()).await?;
                Ok(format!("{report:?}"))
            }
        }),
    ]
}

/// One run of the lifecycle job; a one-line report.
pub async fn run_lifecycle(db: &Db, o: &LifecycleOptions) -> Result<String, DbError> {
    let now = Utc::now();
    let resolved = store::alerts::resolve_cleared(db, now, o.policy.hold).await?;
    let told = store::alerts::notify_pending(db, now, o.policy.hold).await?;
    let escalated = store::alerts::escalate(db, now, chrono(o.escalate_after)).await?;
    let resent = store::alerts::resend_open(db, now, chrono(o.resend_interval)).await?;
    Ok(format!(
        "{resolved} resolved, {told} told after silence or flapping, {escalated} escalated, \
         {resent} re-sent to Alertmanager"
    ))
}

/// Looks for silent devices once; returns how many were found silent.
pub async fn sweep_silent(
    db: &Db,
    detector: &Detector,
    policy: &AlertPolicy,
) -> Result<u64, DbError> {
    let now = Utc::now();
    let before = now - chrono::Duration::milliseconds(detector.options().silent_min_ms);
    let mut tx = db.pool().begin().await?;
    let quiet = store::detection::quiet_devices(&mut tx, before, 1_000).await?;
    let mut found = 0;
    let mut updates = Vec::with_capacity(quiet.len());
    for q in quiet {
        let mut state = decode_state(q.device, Some(&q.state));
        if let Some(signal) = detector.check_silence(&mut state, now.timestamp_millis()) {
            let name = store::devices::device_name(&mut tx, q.device).await?;
            let signals = [signal];
            let records = signal_records(q.tenant, q.device, &name, &signals);
            store::alerts::record_signals(&mut tx, &records, policy).await?;
            found += 1;
        }
        updates.push(StateUpdate {
            device: q.device,
            state: state.to_bytes(),
            last_sample_at: None,
        });
    }
    store::detection::save_states(&mut tx, &updates).await?;
    tx.commit().await?;
    Ok(found)
}
