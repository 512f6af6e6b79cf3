//! The model registry (`ml_models`) against PostgreSQL: a promotion stands only while the
//! model it was measured against is still the active one, so a training that raced
//! another (or a rollback) registers a candidate and says why; kinds keep their own
//! active model.

use chrono::NaiveDate;
use store::failure_risk::{ModelKind, NewModel, activate, active_model, insert_model};
use testkit::db::{TestDb, fixture};

fn model<'a>(promote: bool, compared_with: Option<i32>, reason: &'a str) -> NewModel<'a> {
    let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    NewModel {
        algorithm: "decline_peers_inverse_variance",
        features: vec!["oil"],
        window: (day, day),
        data_hash: "0000000000000000000000000000000000000000000000000000000000000000",
        wells: 6,
        training_rows: 2400,
        metrics: serde_json::json!({}),
        model: serde_json::json!({ "guard_days": 60, "peer_lag_days": 270, "age_factor": 1.5 }),
        promote,
        reason,
        compared_with,
    }
}

#[tokio::test]
async fn a_promotion_measured_against_a_replaced_model_is_registered_as_a_candidate() {
    let test = TestDb::plain("ml_models_race").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let gaps = ModelKind::ProductionGap;
    let mut tx = db.begin_tenant(f.tenant).await.unwrap();

    // The first model, against none: active.
    let first = insert_model(
        &mut tx,
        f.tenant,
        gaps,
        &model(true, None, "beats the defaults"),
    )
    .await
    .unwrap();
    assert_eq!(
        (first.status.as_str(), first.reason.as_str()),
        ("active", "beats the defaults")
    );
    // Two trainings measured against the first: the one registered first wins.
    let second = insert_model(
        &mut tx,
        f.tenant,
        gaps,
        &model(true, Some(first.version), "beats 1"),
    )
    .await
    .unwrap();
    assert_eq!(second.status, "active");
    let third = insert_model(
        &mut tx,
        f.tenant,
        gaps,
        &model(true, Some(first.version), "beats 1"),
    )
    .await
    .unwrap();
    assert_eq!(third.status, "candidate", "{third:?}");
    assert_eq!(
        third.reason,
        format!(
            "beats 1; not promoted: the model in use changed while it trained (active now: version {})",
            second.version
        )
    );
    assert_eq!(
        active_model(&mut tx, f.tenant, gaps)
            .await
            .unwrap()
            .map(|a| a.0),
        Some(second.version)
    );
    // Measured against a model in use when none is any longer (it was the defaults'
    // turn): not promoted either.
    let stale = insert_model(
        &mut tx,
        f.tenant,
        gaps,
        &model(true, None, "beats the defaults"),
    )
    .await
    .unwrap();
    assert_eq!(stale.status, "candidate");
    assert!(
        stale
            .reason
            .ends_with(&format!("(active now: version {})", second.version))
    );
    // A rollback to the first, then a model measured against it: promoted.
    activate(&mut tx, f.tenant, gaps, first.version)
        .await
        .unwrap()
        .unwrap();
    let fourth = insert_model(
        &mut tx,
        f.tenant,
        gaps,
        &model(true, Some(first.version), "beats 1"),
    )
    .await
    .unwrap();
    assert_eq!(fourth.status, "active");
    // Another kind has its own active model: the gap models do not count for it.
    let emissions = insert_model(
        &mut tx,
        f.tenant,
        ModelKind::Emissions,
        &model(true, None, "first"),
    )
    .await
    .unwrap();
    assert_eq!(emissions.status, "active");
    // A model not to be promoted stays a candidate with its own reason.
    let kept = insert_model(
        &mut tx,
        f.tenant,
        gaps,
        &model(false, Some(fourth.version), "does not beat"),
    )
    .await
    .unwrap();
    assert_eq!(
        (kept.status.as_str(), kept.reason.as_str()),
        ("candidate", "does not beat")
    );
    tx.commit().await.unwrap();
    test.finish().await;
}
