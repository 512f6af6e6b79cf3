//! The device-silence sweep: a device whose detector state says it reported regularly
//! and then nothing for longer than its learned interval allows gets a `device_silent`
//! alert, once; its next sample clears the condition (the ingester's `observe`).

use alerts::lifecycle::sweep_silent;
use alerts::signals::decode_state;
use chrono::Utc;
use detect::{DetectOptions, Detector, DeviceContext, Sample};
use store::alerts::AlertPolicy;
use store::detection::StateUpdate;
use store::{DeviceId, TenantId};
use testkit::db::{TestDb, birth, fixture};

const POLICY: AlertPolicy = AlertPolicy {
    hold: chrono::Duration::seconds(60),
    flap_window: chrono::Duration::hours(1),
    flap_threshold: 3,
};

#[tokio::test]
async fn a_device_that_stops_reporting_is_found_silent_once() {
    let test = TestDb::plain("silence_sweep").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let now = Utc::now();
    db.apply_birth(
        f.gateway,
        &birth(1, now.timestamp_millis(), &["tubing_pressure_psi"]),
        now,
    )
    .await
    .unwrap();
    let device: DeviceId = sqlx::query_scalar("SELECT id FROM devices")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let tenant: TenantId = f.tenant;

    // Ten minutes of samples every 10 s, ending 5 minutes ago: its interval is learned.
    let detector = Detector::new(DetectOptions::default());
    let mut state = decode_state(device, None);
    let end = now.timestamp_millis() - 5 * 60_000;
    let samples: Vec<Sample<'_>> = (0..60)
        .map(|i| Sample {
            ts_ms: end - (59 - i) * 10_000,
            metric: "tubing_pressure_psi",
            value: Some(120.0 + (i % 3) as f64),
            quality: wire::Quality::Good,
        })
        .collect();
    let ctx = DeviceContext {
        profile: "rod-pump-controller",
        ..DeviceContext::default()
    };
    assert!(
        detector
            .observe(&mut state, &ctx, &samples, true)
            .is_empty()
    );
    let mut tx = db.pool().begin().await.unwrap();
    store::detection::lock_states(&mut tx, &[(device, tenant)])
        .await
        .unwrap();
    store::detection::save_states(
        &mut tx,
        &[StateUpdate {
            device,
            state: state.to_bytes(),
            last_sample_at: chrono::DateTime::from_timestamp_millis(end),
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(sweep_silent(db, &detector, &POLICY).await.unwrap(), 1);
    assert_eq!(
        sweep_silent(db, &detector, &POLICY).await.unwrap(),
        0,
        "once per silence"
    );
    let (kind, state): (String, String) = sqlx::query_as("SELECT kind, state FROM alerts")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!((kind.as_str(), state.as_str()), ("device_silent", "firing"));

    // The next sample clears it.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT state FROM detector_states")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let mut state = decode_state(device, Some(&stored));
    let back = [Sample {
        ts_ms: now.timestamp_millis(),
        metric: "tubing_pressure_psi",
        value: Some(121.0),
        quality: wire::Quality::Good,
    }];
    let signals = detector.observe(&mut state, &ctx, &back, true);
    assert!(
        signals
            .iter()
            .any(|s| s.kind == detect::FindingKind::DeviceSilent && !s.active),
        "{signals:?}"
    );
    test.finish().await;
}
