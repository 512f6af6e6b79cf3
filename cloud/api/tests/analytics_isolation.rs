//! Tenant isolation of every analytics endpoint, and row-level security under the queries:
//! another tenant's wells are 404, its figures never appear in tenant-wide results, and a
//! tenant-scoped transaction sees none of its rows even when a query forgets the tenant.

use analytics::emissions::factors::Region;
use analytics::emissions::{GasComposition, SourceKind};
use serde_json::{Value, json};
use store::emissions::{EmissionSource, insert_source, tenant_daily_emissions, tenant_sources};
use store::production::{daily_rows, latest_corrections, tenant_daily_rows};
use testkit::analytics::*;

#[tokio::test]
async fn every_analytics_endpoint_is_isolated_by_tenant() {
    let test = TestDb::new("an_isolation").await;
    let db = &test.db;
    let mut acme = WellSite::create(db, "acme", "42-329-50001", "TX").await;
    let bravo = WellSite::create(db, "bravo", "42-329-50002", "TX").await;
    let profile = Profile::march_2024();
    let rows = profile.rows(
        &acme,
        t("2024-03-04T23:00:00Z"),
        t("2024-03-08T01:00:00Z"),
        &[],
    );
    acme.ingest(db, &rows).await;
    maintain(db).await;
    let mut conn = db.pool().acquire().await.unwrap();
    insert_source(
        &mut conn,
        acme.tenant,
        &EmissionSource {
            id: 0,
            site_id: acme.site,
            well_id: Some(acme.well),
            name: "flare".into(),
            kind: SourceKind::Flare,
            meter_series_id: None,
            gas: GasComposition {
                ch4: 0.9,
                c2h6: 0.05,
                c3h8: 0.02,
                c4h10: 0.01,
                c5_plus: 0.0,
                co2: 0.01,
                other: 0.01,
            },
            hhv_mmbtu_per_scf: None,
            flare_efficiency: Some(0.95),
            flare_unlit: false,
            combustion_unit: None,
            ch4_kg_per_mmbtu: None,
            region: Region::Western,
            subpart_w_facility: true,
            in_service_from: None,
            in_service_to: None,
            components: Vec::new(),
            pneumatics: Vec::new(),
        },
    )
    .await
    .unwrap();
    drop(conn);
    let api = Api::start(db).await;
    let own = format!("/api/v1/tenants/acme/wells/{}", acme.well);
    let r = api
        .post(
            &format!("{own}/production/derive?from=2024-03-05&to=2024-03-08"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api
        .post(
            &format!("{own}/production/corrections"),
            Some(&json!({"day": "2024-03-06", "quantity": "gas", "volume": 480, "author": "acme ops"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api
        .get(&format!("{own}/production?from=2024-03-05&to=2024-03-08"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["days"].as_array().unwrap().len(), 3);

    // Bravo addressing Acme's well: 404 everywhere, nothing written.
    let foreign = format!("/api/v1/tenants/bravo/wells/{}", acme.well);
    let correction =
        json!({"day": "2024-03-06", "quantity": "gas", "volume": 1, "author": "intruder"});
    for (method, path, body) in [
        (
            "GET",
            format!("{foreign}/production?from=2024-03-05&to=2024-03-08"),
            None,
        ),
        (
            "POST",
            format!("{foreign}/production/corrections"),
            Some(&correction),
        ),
        (
            "POST",
            format!("{foreign}/production/derive?from=2024-03-05&to=2024-03-08"),
            None,
        ),
        ("GET", format!("{foreign}/decline?metric=oil"), None),
    ] {
        let r = match method {
            "GET" => api.get(&path).await,
            _ => api.post(&path, body).await,
        };
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "not_found");
    }
    let mut conn = db.pool().acquire().await.unwrap();
    let corrections =
        latest_corrections(&mut conn, acme.well, day("2024-03-01"), day("2024-04-01"))
            .await
            .unwrap();
    assert_eq!(corrections.len(), 1);
    assert_eq!(corrections[0].author, "acme ops");
    drop(conn);

    // Tenant-wide endpoints of Bravo show none of Acme's rows.
    let monthly = api
        .get("/api/v1/tenants/bravo/production/monthly?month=2024-03")
        .await
        .json();
    let wells: Vec<&Value> = monthly["wells"].as_array().unwrap().iter().collect();
    assert_eq!(wells.len(), 1);
    assert_eq!(wells[0]["well_id"], bravo.well.0);
    assert!(
        wells[0]["totals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["total"] == 0.0)
    );
    let emissions = api
        .get("/api/v1/tenants/bravo/emissions?from=2024-03-01&to=2024-04-01&by=well")
        .await
        .json();
    assert_eq!(emissions["groups"], json!([]));
    assert_eq!(emissions["total"]["masses"]["ch4_kg"], 0.0);
    let intensity = api
        .get("/api/v1/tenants/bravo/emissions/intensity?year=2024")
        .await
        .json();
    assert_eq!(intensity["volumes"]["gas_produced_mcf"], 0.0);
    assert_eq!(intensity["masses"]["co2_kg"], 0.0);
    for path in [
        "/api/v1/tenants/bravo/reports/form-pr?month=2024-03",
        "/api/v1/tenants/bravo/reports/c115?month=2024-03",
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status, 422, "{path}");
        let text = r.text();
        assert!(!text.contains("42-329-50001"), "{text}");
    }
    // …while Acme's own tenant-wide results do have them.
    let emissions = api
        .get("/api/v1/tenants/acme/emissions?from=2024-03-05&to=2024-03-08")
        .await
        .json();
    assert_eq!(emissions["groups"].as_array().unwrap().len(), 1);
    assert!(emissions["total"]["masses"]["ch4_kg"].as_f64().unwrap() > 0.0);

    // Row-level security: inside Bravo's transaction, queries that do not filter by tenant
    // (or filter by Acme's) still see nothing of Acme.
    let mut tx = db.begin_tenant(bravo.tenant).await.unwrap();
    assert!(
        daily_rows(&mut tx, acme.well, day("2024-03-01"), day("2024-04-01"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tenant_daily_rows(&mut tx, acme.tenant, day("2024-03-01"), day("2024-04-01"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tenant_sources(&mut tx, acme.tenant)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tenant_daily_emissions(&mut tx, acme.tenant, day("2024-03-01"), day("2024-04-01"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        latest_corrections(&mut tx, acme.well, day("2024-03-01"), day("2024-04-01"))
            .await
            .unwrap()
            .is_empty()
    );
    for table in [
        "daily_production",
        "production_corrections",
        "haul_tickets",
        "tank_strapping_points",
        "emission_sources",
        "emission_source_components",
        "emission_source_pneumatics",
        "daily_emissions",
        "tenant_regulatory",
        "well_regulatory",
        "production_watermarks",
    ] {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = {}",
            acme.tenant
        ))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} leaks to another tenant");
    }
    tx.rollback().await.unwrap();
    test.finish().await;
}
