//! The registry through the API: sites and wells created, read, updated and deleted by a
//! tenant admin, API well numbers checked, keyset pages, conflicts as 409, every change in
//! the audit log.

use serde_json::json;
use store::identity::Role;
use testkit::api::{TestApi, seed};
use testkit::auth;

/// The `action` of every entry of an audit log page, newest first.
fn audit_actions(log: &serde_json::Value) -> Vec<&str> {
    log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn sites_and_wells_round_trip_with_validation_and_audit() {
    let api = TestApi::start("api_registry").await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let call = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let admin = admin.clone();
        let api = &api;
        async move { api.request_as(&admin, method, &path, body.as_ref()).await }
    };
    let base = "/api/v1/tenants/acme";

    // Sites.
    let site = call(
        "POST",
        format!("{base}/sites"),
        Some(
            json!({ "name": "Pad 9", "state": "NM", "operator_number": "OGRID-1234",
                     "location": { "latitude": 32.4, "longitude": -103.9 } }),
        ),
    )
    .await;
    assert_eq!(site.status, 201, "{}", site.text());
    let site_id = site.json()["id"].as_i64().unwrap();
    assert_eq!(site.json()["location"]["latitude"], 32.4);
    let dup = call(
        "POST",
        format!("{base}/sites"),
        Some(json!({ "name": "Pad 9" })),
    )
    .await;
    assert_eq!(dup.status, 409);
    for (body, problem) in [
        (json!({ "name": "" }), "site name"),
        (
            json!({ "name": "x", "state": "Texas" }),
            "two-letter postal code",
        ),
        (
            json!({ "name": "x", "location": { "latitude": 91.0, "longitude": 0.0 } }),
            "latitude",
        ),
        (
            json!({ "name": "x", "color": "red" }),
            "unknown field `color`",
        ),
    ] {
        let r = call("POST", format!("{base}/sites"), Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.error_message().contains(problem),
            "{body}: {}",
            r.error_message()
        );
    }
    let page = call("GET", format!("{base}/sites?limit=1"), None)
        .await
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let next = call("GET", format!("{base}/sites?limit=1&cursor={cursor}"), None)
        .await
        .json();
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);

    // Wells: the API number is checked and stored in its canonical form.
    let well = |api_number: &str| {
        json!({ "site_id": site_id, "api_number": api_number, "name": "Rio 2H",
                "lease": "Rio", "field": "Wolfcamp", "county": "Lea", "state": "NM" })
    };
    for (number, problem) in [
        ("52-025-12345", "state code 52"),
        ("30-000-12345", "county code 000"),
        ("30-025-1234", "10, 12 or 14 digits"),
    ] {
        let r = call("POST", format!("{base}/wells"), Some(well(number))).await;
        assert_eq!(r.status, 400, "{number}");
        assert!(
            r.error_message().contains(problem),
            "{number}: {}",
            r.error_message()
        );
    }
    let created = call("POST", format!("{base}/wells"), Some(well("300251234500"))).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let w = created.json();
    assert_eq!(w["api_number"], "30-025-12345-00");
    assert_eq!(w["status"], "producing");
    let well_id = w["id"].as_i64().unwrap();
    let again = call(
        "POST",
        format!("{base}/wells"),
        Some(well("30-025-12345-00")),
    )
    .await;
    assert_eq!(again.status, 409, "same API number twice");
    // Another tenant's site cannot be used.
    let mut foreign = well("30-025-54321");
    foreign["site_id"] = json!(fleet.other_well.0 + 1000);
    let r = call("POST", format!("{base}/wells"), Some(foreign)).await;
    assert_eq!(r.status, 400);

    let mut changed = well("30-025-12345-00");
    changed["status"] = json!("shut_in");
    let updated = call("PUT", format!("{base}/wells/{well_id}"), Some(changed)).await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(updated.json()["status"], "shut_in");
    let mut bad = well("30-025-12345-00");
    bad["status"] = json!("sleeping");
    assert_eq!(
        call("PUT", format!("{base}/wells/{well_id}"), Some(bad))
            .await
            .status,
        400
    );
    // Another tenant's well id through acme's path: 404.
    let r = call(
        "PUT",
        format!("{base}/wells/{}", fleet.other_well.0),
        Some(well("30-025-99999")),
    )
    .await;
    assert_eq!(r.status, 404);

    // A site with a well cannot go; a well with history cannot go.
    assert_eq!(
        call("DELETE", format!("{base}/sites/{site_id}"), None)
            .await
            .status,
        409
    );
    let r = call("DELETE", format!("{base}/wells/{}", fleet.smith.0), None).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        call("DELETE", format!("{base}/wells/{well_id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        call("DELETE", format!("{base}/sites/{site_id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        call("GET", format!("{base}/sites/{site_id}"), None)
            .await
            .status,
        404
    );

    let log = call("GET", format!("{base}/audit?limit=20"), None)
        .await
        .json();
    let actions = audit_actions(&log);
    assert_eq!(
        actions,
        [
            "site.delete",
            "well.delete",
            "well.update",
            "well.create",
            "site.create"
        ]
    );
    assert_eq!(log["items"][2]["before"]["status"], "producing");
    assert_eq!(log["items"][2]["after"]["status"], "shut_in");
    api.finish().await;
}

#[tokio::test]
async fn maintenance_and_failure_records_are_kept_per_well_by_operators() {
    let api = TestApi::start("api_interventions").await;
    let fleet = seed(&api.db, 5, 30).await;
    let operator = auth::member_token(&api.db, fleet.acme, Role::Operator).await;
    let viewer = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let base = format!("/api/v1/tenants/acme/wells/{}/interventions", fleet.smith.0);
    let failure = json!({ "kind": "failure", "equipment": "rods", "failure_mode": "rod_part",
                          "started_at": "2026-11-02T06:30:00Z", "ended_at": "2026-11-04T18:00:00Z",
                          "cost_usd": 18500.0, "notes": "parted at 4,210 ft" });
    let r = api
        .request_as(&operator, "POST", &base, Some(&failure))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();
    assert!(
        r.json()["created_by"]
            .as_str()
            .unwrap()
            .starts_with("user:")
    );
    let workover = json!({ "kind": "workover", "equipment": "rod_pump",
                           "started_at": "2026-11-20T08:00:00Z" });
    assert_eq!(
        api.request_as(&operator, "POST", &base, Some(&workover))
            .await
            .status,
        201
    );
    for (body, problem) in [
        (
            json!({ "kind": "repair", "equipment": "rods", "started_at": "2026-11-02T00:00:00Z" }),
            "kind",
        ),
        (
            json!({ "kind": "failure", "equipment": "rope", "started_at": "2026-11-02T00:00:00Z" }),
            "equipment",
        ),
        (
            json!({ "kind": "workover", "equipment": "rods", "failure_mode": "rod_part",
                 "started_at": "2026-11-02T00:00:00Z" }),
            "only failures",
        ),
        (
            json!({ "kind": "failure", "equipment": "rods", "started_at": "2026-11-02T00:00:00Z",
                 "ended_at": "2026-11-01T00:00:00Z" }),
            "ended_at",
        ),
    ] {
        let r = api.request_as(&operator, "POST", &base, Some(&body)).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.error_message().contains(problem),
            "{body}: {}",
            r.error_message()
        );
    }
    // Viewers read, newest first, and cannot write.
    let list = api.request_as(&viewer, "GET", &base, None).await.json();
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["workover", "failure"]);
    assert_eq!(
        api.request_as(&viewer, "POST", &base, Some(&failure))
            .await
            .status,
        403
    );
    // Another tenant's well: 404.
    let foreign = format!(
        "/api/v1/tenants/acme/wells/{}/interventions",
        fleet.other_well.0
    );
    assert_eq!(
        api.request_as(&operator, "POST", &foreign, Some(&failure))
            .await
            .status,
        404
    );
    let mut fixed = failure.clone();
    fixed["cost_usd"] = json!(21000.0);
    let r = api
        .request_as(&operator, "PUT", &format!("{base}/{id}"), Some(&fixed))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["cost_usd"], 21000.0);
    assert_eq!(
        api.request_as(&operator, "DELETE", &format!("{base}/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.request_as(&operator, "DELETE", &format!("{base}/{id}"), None)
            .await
            .status,
        404
    );
    let log = api.get("/api/v1/tenants/acme/audit?limit=3").await.json();
    assert_eq!(log["items"][0]["action"], "intervention.delete");
    assert_eq!(log["items"][1]["before"]["cost_usd"], 18500.0);
    api.finish().await;
}

#[tokio::test]
async fn devices_are_registered_linked_and_deleted_and_births_adopt_them() {
    let api = TestApi::start("api_devices").await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let operator = auth::member_token(&api.db, fleet.acme, Role::Operator).await;
    let viewer = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let base = "/api/v1/tenants/acme";
    let as_ = |token: &str, method: &'static str, path: String, body: Option<serde_json::Value>| {
        let token = token.to_owned();
        let api = &api;
        async move { api.request_as(&token, method, &path, body.as_ref()).await }
    };

    // Registered on the gateway that has never connected, linked to Jones.
    let created = as_(
        &admin,
        "POST",
        format!("{base}/gateways/gw-02/devices"),
        Some(json!({ "name": "tank-1", "profile": "tank-gauge", "well_id": fleet.jones.0 })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let device = created.json();
    let id = device["id"].as_i64().unwrap();
    assert_eq!(device["gateway"], "gw-02");
    assert_eq!(device["well_id"], fleet.jones.0);
    assert_eq!(device["current"], false);
    assert_eq!(device["series"], json!([]));
    for (gateway, body, status, problem) in [
        (
            "gw-02",
            json!({ "name": "tank-1", "profile": "tank-gauge" }),
            409,
            "conflicts",
        ),
        (
            "gw-02",
            json!({ "name": "tank 2", "profile": "tank-gauge" }),
            400,
            "name",
        ),
        (
            "gw-02",
            json!({ "name": "tank-2", "profile": "nope" }),
            400,
            "built-in",
        ),
        (
            "gw-02",
            json!({ "name": "tank-2", "profile": "tank-gauge", "well_id": fleet.other_well.0 }),
            400,
            "no well",
        ),
        (
            "gw-77",
            json!({ "name": "tank-2", "profile": "tank-gauge" }),
            404,
            "gw-77",
        ),
    ] {
        let r = as_(
            &admin,
            "POST",
            format!("{base}/gateways/{gateway}/devices"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.error_message().contains(problem), "{body}: {}", r.text());
    }
    let r = as_(
        &operator,
        "POST",
        format!("{base}/gateways/gw-02/devices"),
        Some(json!({ "name": "tank-3", "profile": "tank-gauge" })),
    )
    .await;
    assert_eq!(r.status, 403, "operators do not register devices");

    // The birth that names it adopts it: same id, the API's well link kept, series added.
    let mut birth = testkit::mqtt::birth(0x51);
    birth.devices[0].name = "tank-1".into();
    birth.devices[0].info = vec![("well".into(), "Smith 1H".into())];
    api.db
        .apply_birth(fleet.gw2, &birth, chrono::Utc::now())
        .await
        .unwrap();
    let read = as_(&viewer, "GET", format!("{base}/devices/{id}"), None).await;
    assert_eq!(read.status, 200, "{}", read.text());
    let read = read.json();
    assert_eq!(read["id"], id);
    assert_eq!(
        read["well_id"], fleet.jones.0,
        "an explicit link outlives births"
    );
    assert_eq!(read["current"], true);
    let series = read["series"].as_array().unwrap();
    assert_eq!(series.len(), birth.devices[0].metrics.len(), "{read}");

    // Operators link and unlink; viewers may not.
    let unlink = json!({ "well_id": null });
    assert_eq!(
        as_(
            &viewer,
            "PUT",
            format!("{base}/devices/{id}"),
            Some(unlink.clone())
        )
        .await
        .status,
        403
    );
    let r = as_(
        &operator,
        "PUT",
        format!("{base}/devices/{id}"),
        Some(unlink),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["well_id"], serde_json::Value::Null);
    let r = as_(
        &operator,
        "PUT",
        format!("{base}/devices/{id}"),
        Some(json!({ "well_id": 0 })),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());

    // A device with history stays; one without is deleted.
    let r = as_(&admin, "DELETE", format!("{base}/devices/{id}"), None).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.error_message().contains("series with history"),
        "{}",
        r.text()
    );
    let spare = as_(
        &admin,
        "POST",
        format!("{base}/gateways/gw-01/devices"),
        Some(json!({ "name": "spare-meter", "profile": "gas-flow-computer" })),
    )
    .await
    .json()["id"]
        .as_i64()
        .unwrap();
    let gateway = as_(&viewer, "GET", format!("{base}/gateways/gw-01"), None)
        .await
        .json();
    assert!(
        gateway["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == spare),
        "{gateway}"
    );
    assert_eq!(
        as_(&admin, "DELETE", format!("{base}/devices/{spare}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        as_(&viewer, "GET", format!("{base}/devices/{spare}"), None)
            .await
            .status,
        404
    );

    let log = as_(&admin, "GET", format!("{base}/audit?limit=10"), None)
        .await
        .json();
    let actions = audit_actions(&log);
    assert_eq!(
        actions,
        [
            "device.delete",
            "device.create",
            "device.update",
            "device.create"
        ]
    );
    assert_eq!(log["items"][2]["before"]["well_id"], fleet.jones.0);
    api.finish().await;
}
