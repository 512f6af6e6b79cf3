//! Emissions and intensities through the API equal the `analytics` crate's results for the
//! same inputs; CO2e follows the GWP parameter while the stored masses do not move.

use analytics::emissions::factors::{Equipment, Region, Service};
use analytics::emissions::gwp::{GwpSet, co2e};
use analytics::emissions::intensity::{IntensityParams, ProductionVolumes, intensities};
use analytics::emissions::inventory::{SourceInput, source_emissions};
use analytics::emissions::methods::{
    BleedType, CombustionInput, CombustionUnit, EquipmentCount, FlareEfficiency, FlareInput,
    FuelBasis, LeakInput, PneumaticCount, PneumaticInput,
};
use analytics::emissions::{GasMasses, SourceKind};
use serde_json::Value;
use store::emissions::{EmissionSource, insert_source};
use testkit::analytics::*;

const DAYS: f64 = 3.0;

fn masses(v: &Value) -> GasMasses {
    GasMasses {
        co2_kg: v["co2_kg"].as_f64().unwrap(),
        ch4_kg: v["ch4_kg"].as_f64().unwrap(),
        n2o_kg: v["n2o_kg"].as_f64().unwrap(),
    }
}

fn close_masses(a: GasMasses, b: GasMasses, what: &str) {
    close(a.co2_kg, b.co2_kg, 1e-9, &format!("{what} CO2"));
    close(a.ch4_kg, b.ch4_kg, 1e-9, &format!("{what} CH4"));
    close(a.n2o_kg, b.n2o_kg, 1e-9, &format!("{what} N2O"));
}

fn group<'a>(body: &'a Value, key: &str, value: &Value) -> &'a Value {
    body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| &g[key] == value)
        .unwrap_or_else(|| panic!("no group {key}={value} in {body}"))
}

#[tokio::test]
async fn emissions_equal_the_analytics_crate_and_co2e_follows_the_gwp_set() {
    let test = TestDb::new("an_emis").await;
    let db = &test.db;
    let mut site = WellSite::create(db, "acme", "42-329-20001", "TX").await;
    let profile = Profile::march_2024();
    let rows = profile.rows(
        &site,
        t("2024-03-04T23:00:00Z"),
        t("2024-03-08T01:00:00Z"),
        &[],
    );
    site.ingest(db, &rows).await;
    maintain(db).await;

    let mut conn = db.pool().acquire().await.unwrap();
    let flare = insert_source(
        &mut conn,
        site.tenant,
        &source(&site, "flare", SourceKind::Flare),
    )
    .await
    .unwrap();
    let heater = insert_source(
        &mut conn,
        site.tenant,
        &EmissionSource {
            meter_series_id: Some(site.series["fuel_gas_mcf"]),
            combustion_unit: Some(CombustionUnit::Heater),
            ..source(&site, "heater-treater", SourceKind::Combustion)
        },
    )
    .await
    .unwrap();
    let pneumatics = insert_source(
        &mut conn,
        site.tenant,
        &EmissionSource {
            well_id: None,
            pneumatics: vec![(BleedType::Intermittent, 3), (BleedType::Pump, 1)],
            ..source(&site, "pad pneumatics", SourceKind::Pneumatics)
        },
    )
    .await
    .unwrap();
    let leaks = insert_source(
        &mut conn,
        site.tenant,
        &EmissionSource {
            components: vec![
                (Equipment::Valve, Service::Gas, 20),
                (Equipment::Connector, Service::Gas, 50),
                (Equipment::Valve, Service::LightCrude, 10),
            ],
            ..source(&site, "components", SourceKind::EquipmentLeaks)
        },
    )
    .await
    .unwrap();
    let vent = insert_source(
        &mut conn,
        site.tenant,
        &source(&site, "tank vent", SourceKind::Vent),
    )
    .await
    .unwrap();
    drop(conn);

    let api = Api::start(db).await;
    let derived = api
        .post(
            &format!(
                "/api/v1/tenants/acme/wells/{}/production/derive?from=2024-03-05&to=2024-03-08",
                site.well
            ),
            None,
        )
        .await;
    assert_eq!(derived.status, 200, "{}", derived.text());

    let hours = 24.0 * DAYS;
    let expected = |input: SourceInput| source_emissions(2024, &input).unwrap().masses;
    let expected_flare = expected(SourceInput::Flare(FlareInput {
        volume_scf: FLARED_PER_DAY * 1000.0 * DAYS,
        gas: GAS,
        efficiency: FlareEfficiency::Default,
        hhv_mmbtu_per_scf: None,
    }));
    let expected_heater = expected(SourceInput::Combustion(CombustionInput {
        fuel_scf: FUEL_PER_DAY * 1000.0 * DAYS,
        basis: FuelBasis::Tier1,
        unit: CombustionUnit::Heater,
        ch4_kg_per_mmbtu: None,
        subpart_w_facility: true,
    }));
    let expected_pneumatics = expected(SourceInput::Pneumatics(PneumaticInput {
        devices: vec![
            PneumaticCount {
                bleed: BleedType::Intermittent,
                count: 3,
                hours,
            },
            PneumaticCount {
                bleed: BleedType::Pump,
                count: 1,
                hours,
            },
        ],
        gas: GAS,
    }));
    let expected_leaks = expected(SourceInput::EquipmentLeaks(LeakInput {
        region: Region::Western,
        equipment: vec![
            EquipmentCount {
                equipment: Equipment::Valve,
                service: Service::Gas,
                count: 20,
                hours,
            },
            EquipmentCount {
                equipment: Equipment::Connector,
                service: Service::Gas,
                count: 50,
                hours,
            },
            EquipmentCount {
                equipment: Equipment::Valve,
                service: Service::LightCrude,
                count: 10,
                hours,
            },
        ],
        gas: GAS,
    }));
    let stored_total = || async {
        let row: (f64, f64, f64) =
            sqlx::query_as("SELECT sum(co2_kg), sum(ch4_kg), sum(n2o_kg) FROM daily_emissions")
                .fetch_one(db.pool())
                .await
                .unwrap();
        row
    };
    let stored_before = stored_total().await;

    let path = "/api/v1/tenants/acme/emissions?from=2024-03-05&to=2024-03-08";
    let ar5 = api.get(&format!("{path}&gwp=AR5&by=source")).await;
    assert_eq!(ar5.status, 200, "{}", ar5.text());
    let ar5 = ar5.json();
    assert_eq!(ar5["gwp"]["set"], "AR5");
    assert_eq!(ar5["gwp"]["ch4"], 28.0);
    assert_eq!(ar5["gwp"]["n2o"], 265.0);
    let mut total = GasMasses::default();
    for (id, want, kind) in [
        (flare, expected_flare, "flare"),
        (heater, expected_heater, "combustion"),
        (pneumatics, expected_pneumatics, "pneumatics"),
        (leaks, expected_leaks, "equipment_leaks"),
    ] {
        let g = group(&ar5, "source_id", &Value::from(id));
        assert_eq!(g["kind"], kind);
        assert_eq!(g["days_computed"], 3, "{g}");
        assert_eq!(g["incomplete_days"], Value::Array(vec![]), "{g}");
        close_masses(masses(&g["masses"]), want, kind);
        close(
            g["co2e_kg"].as_f64().unwrap(),
            co2e(&want, GwpSet::Ar5).kg,
            1e-9,
            &format!("{kind} CO2e"),
        );
        assert!(want.ch4_kg > 0.0, "{kind} emits methane");
        total += want;
    }
    // The vent has no meter and its well no vented figure: unknown, listed, not zero.
    let v = group(&ar5, "source_id", &Value::from(vent));
    assert_eq!(v["days_computed"], 0);
    assert_eq!(v["incomplete_days"].as_array().unwrap().len(), 3);
    assert_eq!(ar5["total"]["complete"], false);
    close_masses(masses(&ar5["total"]["masses"]), total, "total");

    let ar4 = api.get(&format!("{path}&gwp=AR4")).await.json();
    assert_eq!(ar4["gwp"]["set"], "AR4");
    assert_eq!(ar4["gwp"]["ch4"], 25.0);
    assert_eq!(
        ar4["total"]["masses"], ar5["total"]["masses"],
        "masses do not depend on the GWP set"
    );
    let m = masses(&ar4["total"]["masses"]);
    close(
        ar4["total"]["co2e_kg"].as_f64().unwrap(),
        co2e(&m, GwpSet::Ar4).kg,
        1e-12,
        "AR4 CO2e",
    );
    close(
        ar5["total"]["co2e_kg"].as_f64().unwrap(),
        co2e(&m, GwpSet::Ar5).kg,
        1e-12,
        "AR5 CO2e",
    );
    let (co2e_ar4, co2e_ar5) = (
        ar4["total"]["co2e_kg"].as_f64().unwrap(),
        ar5["total"]["co2e_kg"].as_f64().unwrap(),
    );
    close(
        co2e_ar5 - co2e_ar4,
        3.0 * m.ch4_kg - 33.0 * m.n2o_kg,
        1e-9,
        "AR5 − AR4",
    );
    assert_eq!(
        stored_total().await,
        stored_before,
        "stored masses unchanged"
    );

    let by_well = api.get(&format!("{path}&by=well")).await.json();
    assert_eq!(by_well["by"], "well");
    let well_group = group(&by_well, "well_id", &Value::from(site.well.0));
    close_masses(
        masses(&well_group["masses"]),
        expected_flare + expected_heater + expected_leaks,
        "well group",
    );
    let site_group = group(&by_well, "well_id", &Value::Null);
    assert_eq!(site_group["site_id"], site.site.0);
    close_masses(
        masses(&site_group["masses"]),
        expected_pneumatics,
        "site group",
    );

    // Intensities over the year: the three derived days are the year's production.
    let r = api
        .get("/api/v1/tenants/acme/emissions/intensity?year=2024&boe_mcf_per_bbl=6&sales_gas_ch4_fraction=0.8")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = r.json();
    let volumes = ProductionVolumes {
        oil_bbl: OIL_PER_DAY * DAYS,
        gas_produced_mcf: GAS_PER_DAY * DAYS,
        gas_sold_mcf: (GAS_PER_DAY - FLARED_PER_DAY - FUEL_PER_DAY) * DAYS,
        gas_vented_mcf: 0.0,
        gas_flared_mcf: FLARED_PER_DAY * DAYS,
    };
    let want = intensities(
        2024,
        &total,
        &volumes,
        &IntensityParams {
            mcf_per_boe: 6.0,
            gwp: GwpSet::Ar5,
            sales_gas_ch4_fraction: 0.8,
        },
    )
    .unwrap();
    close(got["boe"].as_f64().unwrap(), want.boe, 1e-9, "BOE");
    close(
        got["boe"].as_f64().unwrap(),
        300.0 + 1500.0 / 6.0,
        1e-9,
        "BOE by hand",
    );
    close(
        got["volumes"]["gas_sold_mcf"].as_f64().unwrap(),
        volumes.gas_sold_mcf,
        1e-9,
        "sold",
    );
    for (field, value) in [
        ("kg_ch4_per_boe", want.kg_ch4_per_boe),
        ("kg_co2e_per_boe", want.kg_co2e_per_boe),
        ("methane_intensity_pct", want.methane_intensity_pct),
        ("nm_gas_capture_pct", want.nm_gas_capture_pct),
    ] {
        close(got[field].as_f64().unwrap(), value.unwrap(), 1e-9, field);
    }
    assert_eq!(got["gwp"]["set"], "AR5");
    let ar6 = api
        .get("/api/v1/tenants/acme/emissions/intensity?year=2024&gwp=AR6")
        .await
        .json();
    assert_eq!(ar6["gwp"]["set"], "AR6");
    assert_eq!(
        ar6["methane_intensity_pct"],
        Value::Null,
        "no sales-gas fraction known"
    );
    assert!(ar6["kg_co2e_per_boe"].as_f64().unwrap() > got["kg_co2e_per_boe"].as_f64().unwrap());

    for (path, message) in [
        (
            format!("{path}&gwp=SAR"),
            "invalid query parameter `gwp`: must be one of AR4, AR5, AR6",
        ),
        (
            format!("{path}&by=county"),
            "invalid query parameter `by`: must be one of source, well",
        ),
        (
            "/api/v1/tenants/acme/emissions/intensity".to_string(),
            "invalid query parameter `year`: is required",
        ),
        (
            "/api/v1/tenants/acme/emissions/intensity?year=2024&boe_mcf_per_bbl=0".to_string(),
            "invalid query parameter `boe_mcf_per_bbl`",
        ),
        (
            "/api/v1/tenants/acme/emissions/intensity?year=2024&sales_gas_ch4_fraction=80"
                .to_string(),
            "invalid query parameter `sales_gas_ch4_fraction`: must be a mole fraction",
        ),
    ] {
        let r = api.get(&path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.starts_with(message), "{path}: {m}");
    }
    test.finish().await;
}

#[tokio::test]
async fn equipment_counts_are_listed_and_replaced_with_an_audit_trail() {
    let test = TestDb::new("an_counts").await;
    let db = &test.db;
    let site = WellSite::create(db, "acme", "42-329-20009", "TX").await;
    let mut conn = db.pool().acquire().await.unwrap();
    let leaks = insert_source(
        &mut conn,
        site.tenant,
        &EmissionSource {
            components: vec![(Equipment::Valve, Service::Gas, 20)],
            ..source(&site, "components", SourceKind::EquipmentLeaks)
        },
    )
    .await
    .unwrap();
    drop(conn);
    let api = Api::start(db).await;
    let list = api.get("/api/v1/tenants/acme/emission-sources").await;
    assert_eq!(list.status, 200, "{}", list.text());
    let item = &list.json()["items"][0];
    assert_eq!(item["components"][0]["equipment"], "valve");
    assert_eq!(item["components"][0]["count"], 20);

    let path = format!("/api/v1/tenants/acme/emission-sources/{leaks}/counts");
    let body = serde_json::json!({
        "components": [
            { "equipment": "valve", "service": "gas", "count": 24 },
            { "equipment": "connector", "service": "light_crude", "count": 80 }
        ],
        "pneumatics": [{ "bleed": "intermittent", "count": 2 }]
    });
    let r = api.send("PUT", &path, Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["components"].as_array().unwrap().len(), 2);
    assert_eq!(r.json()["pneumatics"][0]["count"], 2);
    for (bad, problem) in [
        (
            serde_json::json!({ "components": [{ "equipment": "gizmo", "service": "gas", "count": 1 }] }),
            "unknown equipment",
        ),
        (
            serde_json::json!({ "components": [
            { "equipment": "valve", "service": "gas", "count": 1 },
            { "equipment": "valve", "service": "gas", "count": 2 }] }),
            "listed twice",
        ),
        (
            serde_json::json!({ "pneumatics": [{ "bleed": "whistle", "count": 1 }] }),
            "bleed type",
        ),
        (
            serde_json::json!({ "components": [{ "equipment": "valve", "service": "gas", "count": -1 }] }),
            "invalid JSON body",
        ),
    ] {
        let r = api.send("PUT", &path, Some(&bad)).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(problem),
            "{bad}: {}",
            r.text()
        );
    }
    let missing = api
        .send(
            "PUT",
            "/api/v1/tenants/acme/emission-sources/999999/counts",
            Some(&body),
        )
        .await;
    assert_eq!(missing.status, 404);
    let log = api.get("/api/v1/tenants/acme/audit?limit=1").await.json();
    assert_eq!(log["items"][0]["action"], "emission_source.set_counts");
    assert_eq!(log["items"][0]["before"]["components"][0]["count"], 20);
    assert_eq!(
        log["items"][0]["after"]["pneumatics"][0]["bleed"],
        "intermittent"
    );
    test.finish().await;
}
