//! Seeds a tenant with a declining field for the emissions forecasts and their models:
//! [`WELLS`] wells of daily production imported for [`DAYS`] days ending yesterday (3 % of
//! the gas flared; the last well down every other day for its last 20 days), a flare and a
//! wellhead per well and a site's own separators.

use analytics::emissions::SourceKind;
use analytics::emissions::factors::{Equipment, Region, Service};
use chrono::{NaiveDate, TimeDelta, Utc};
use store::emissions::{EmissionSource, insert_source};
use store::history::{ImportDay, ImportWell, import};
use store::{SiteId, TenantId, WellId};

/// Days of production seeded.
pub const DAYS: i64 = 400;
/// Wells seeded.
pub const WELLS: usize = 8;

/// The seeded gas.
pub fn gas() -> analytics::emissions::GasComposition {
    analytics::emissions::GasComposition {
        ch4: 0.78,
        c2h6: 0.11,
        c3h8: 0.05,
        c4h10: 0.02,
        c5_plus: 0.01,
        co2: 0.015,
        other: 0.015,
    }
}

/// An emission source of `kind` with the seeded gas and measured flare parameters.
pub fn source(site: SiteId, well: Option<WellId>, name: &str, kind: SourceKind) -> EmissionSource {
    EmissionSource {
        id: 0,
        site_id: site,
        well_id: well,
        name: name.to_string(),
        kind,
        meter_series_id: None,
        gas: gas(),
        // Measured values: the regulatory defaults of these end with RY2024.
        hhv_mmbtu_per_scf: Some(1.2e-3),
        flare_efficiency: Some(0.98),
        flare_unlit: false,
        combustion_unit: None,
        ch4_kg_per_mmbtu: None,
        region: Region::Western,
        subpart_w_facility: false,
        in_service_from: None,
        in_service_to: None,
        components: Vec::new(),
        pneumatics: Vec::new(),
    }
}

/// What [`seed_production`] made.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The site of the wells.
    pub site: SiteId,
    /// Wells, in order.
    pub wells: Vec<WellId>,
    /// First day of production.
    pub first_day: NaiveDate,
}

/// `WELLS` wells declining in one field, 400 days ending yesterday; the last one down every
/// other day for the last 20 days. 3 % of gas flared. A flare and a wellhead per well, a
/// separator for the site.
pub async fn seed_production(db: &store::Db, tenant: TenantId) -> Seeded {
    seed_production_wells(db, tenant, WELLS).await
}

/// [`seed_production`] with `n` wells (the last one down every other day).
pub async fn seed_production_wells(db: &store::Db, tenant: TenantId, n: usize) -> Seeded {
    let today = Utc::now().date_naive();
    let first_day = today - TimeDelta::days(DAYS);
    let apis: Vec<String> = (0..n).map(|i| format!("42-329-7{i:04}")).collect();
    let names: Vec<String> = (0..n).map(|i| format!("Forecast {i}")).collect();
    let wells: Vec<ImportWell<'_>> = (0..n)
        .map(|i| ImportWell {
            api_number: &apis[i],
            name: &names[i],
            lease: "Forecast lease",
            field: "Spraberry",
            county: "Midland",
            state: "TX",
        })
        .collect();
    let mut days = Vec::new();
    let mut flared = Vec::new();
    for (i, api) in apis.iter().enumerate() {
        let qi = 80.0 + 10.0 * i as f64;
        for t in 0..DAYS {
            let day = first_day + TimeDelta::days(t);
            let down = i == n - 1 && t >= DAYS - 20 && t % 2 == 0;
            let wiggle = 1.0 + 0.03 * (((t * 7919 + i as i64) % 17) as f64 / 17.0 - 0.5);
            let oil = if down {
                0.0
            } else {
                qi * (-0.0012 * t as f64).exp() * wiggle
            };
            days.push(ImportDay {
                api_number: api,
                day,
                oil: Some(oil),
                gas: Some(oil * 3.0),
                water: None,
                hours_on: Some(if down { 0.0 } else { 24.0 }),
                disposition: None,
                note: None,
            });
            flared.push((i, day, oil * 3.0 * 0.03));
        }
    }
    let mut tx = db.begin_tenant(tenant).await.unwrap();
    import(
        &mut tx,
        tenant,
        "Forecast pad",
        &wells,
        &days,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    let mut ids = Vec::new();
    for api in &apis {
        let id: WellId = sqlx::query_scalar("SELECT id FROM wells WHERE api_number = $1")
            .bind(api)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        ids.push(id);
    }
    let site: SiteId = sqlx::query_scalar("SELECT site_id FROM wells WHERE id = $1")
        .bind(ids[0])
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    for (i, day, v) in flared {
        sqlx::query(
            "INSERT INTO daily_production (tenant_id, well_id, day, quantity, volume, unit,
                                           method, coverage)
             VALUES ($1, $2, $3, 'flared', $4, 'Mcf', 'import', 1)",
        )
        .bind(tenant)
        .bind(ids[i])
        .bind(day)
        .bind(v)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    for (i, well) in ids.iter().enumerate() {
        insert_source(
            &mut conn,
            tenant,
            &source(site, Some(*well), &format!("flare {i}"), SourceKind::Flare),
        )
        .await
        .unwrap();
        insert_source(
            &mut conn,
            tenant,
            &EmissionSource {
                components: vec![(Equipment::Wellhead, Service::Crude, 1)],
                ..source(
                    site,
                    Some(*well),
                    &format!("wellhead {i}"),
                    SourceKind::EquipmentLeaks,
                )
            },
        )
        .await
        .unwrap();
    }
    insert_source(
        &mut conn,
        tenant,
        &EmissionSource {
            components: vec![(Equipment::Separator, Service::Crude, 2)],
            ..source(site, None, "separators", SourceKind::EquipmentLeaks)
        },
    )
    .await
    .unwrap();
    Seeded {
        site,
        wells: ids,
        first_day,
    }
}
