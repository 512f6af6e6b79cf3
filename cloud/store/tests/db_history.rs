//! The history import against PostgreSQL: telemetry-derived figures take precedence over
//! imported ones, the derivation never erases an imported day with `missing`, a well known
//! by another spelling of its API number is reused, and hours on are idempotent.

use analytics::production::{Method, Quantity};
use chrono::{NaiveDate, Utc};
use store::history::{self, ImportDay, ImportWell};
use store::production::{self, DailyRow};
use testkit::db::{TestDb, fixture};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

fn derived(well: store::WellId, d: NaiveDate, volume: Option<f64>, method: Method) -> DailyRow {
    DailyRow {
        well_id: well,
        day: d,
        quantity: Quantity::Oil,
        volume,
        method,
        coverage: if volume.is_some() { 1.0 } else { 0.0 },
        gaps: vec![],
        derived: None,
        correction_id: None,
        correction_reference: None,
        closing_stock: None,
        notes: vec![],
        derived_at: Utc::now(),
    }
}

#[tokio::test]
async fn telemetry_takes_precedence_and_missing_never_erases_an_import() {
    let test = TestDb::plain("history_precedence").await;
    let f = fixture(&test.db, "acme").await;
    // The fixture's well is 42-329-12345-00-00: the file spells it without dashes.
    let wells = [ImportWell {
        api_number: "42329123450000",
        name: "other name",
        lease: "",
        field: "",
        county: "",
        state: "",
    }];
    let days: Vec<ImportDay<'_>> = (1..=3)
        .map(|d| ImportDay {
            api_number: "42329123450000",
            day: day(d),
            oil: Some(10.0 * f64::from(d)),
            gas: None,
            water: None,
            hours_on: Some(24.0),
            disposition: Some("sold"),
            note: None,
        })
        .collect();
    // Day 1 already derived from telemetry.
    let mut tx = test.db.begin_tenant(f.tenant).await.unwrap();
    production::upsert_daily(
        &mut tx,
        f.tenant,
        &[derived(f.well, day(1), Some(55.0), Method::TankGauge)],
    )
    .await
    .unwrap();
    let mut calls = Vec::new();
    let counts = history::import(&mut tx, f.tenant, "Imported", &wells, &days, &mut |d, t| {
        calls.push((d, t))
    })
    .await
    .unwrap();
    assert_eq!(calls, vec![(3, 3)]);
    assert_eq!(counts.wells_created, 0, "the registered well is reused");
    assert_eq!(counts.wells_existing, 1);
    assert_eq!((counts.figures_inserted, counts.figures_kept), (2, 1));
    assert_eq!(counts.runtime_written, 3);
    // The derivation finds nothing for day 2: the imported figure stays. Real data on
    // day 3 replaces the import.
    production::upsert_daily(
        &mut tx,
        f.tenant,
        &[
            derived(f.well, day(2), None, Method::Missing),
            derived(f.well, day(3), Some(31.0), Method::MeterTotal),
        ],
    )
    .await
    .unwrap();
    let rows = production::daily_rows(&mut tx, f.well, day(1), day(4))
        .await
        .unwrap();
    let got: Vec<(Option<f64>, Method)> = rows.iter().map(|r| (r.volume, r.method)).collect();
    assert_eq!(
        got,
        vec![
            (Some(55.0), Method::TankGauge),
            (Some(20.0), Method::Import),
            (Some(31.0), Method::MeterTotal),
        ]
    );
    let well_name: String = sqlx::query_scalar("SELECT name FROM wells WHERE id = $1")
        .bind(f.well)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        well_name, "Smith 1H",
        "an import never renames a registered well"
    );
    // Re-import: day 1 and 3 kept (telemetry), day 2 unchanged, hours unchanged.
    let again = history::import(&mut tx, f.tenant, "Imported", &wells, &days, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (
            again.figures_inserted,
            again.figures_updated,
            again.figures_unchanged,
            again.figures_kept
        ),
        (0, 0, 1, 2)
    );
    assert_eq!((again.runtime_written, again.runtime_unchanged), (0, 3));
    let hours = history::runtime(&mut tx, f.well, day(1), day(4))
        .await
        .unwrap();
    assert_eq!(hours.len(), 3);
    tx.commit().await.unwrap();
    test.finish().await;
}
