//! Error responses: every 400 with its exact message, 404s, 405, tenant isolation, and
//! the error body shape (code, message, request id echoing the header).

use testkit::api::{TestApi, seed};

/// One seeded database for the whole table: each case is a request and its answer.
#[tokio::test]
async fn bad_parameters_get_a_400_naming_the_parameter_and_the_problem() {
    let api = TestApi::start("api_bad_params").await;
    let fleet = seed(&api.db, 10, 30).await;
    let well = fleet.smith.0;
    let tele = format!("/api/v1/tenants/acme/wells/{well}/telemetry");
    let tomorrow = testkit::api::ts(chrono::Utc::now() + chrono::Duration::days(1));
    let ok = "metric=tubing_pressure_psi&from=2026-11-03T00:00:00Z&to=2026-11-03T06:00:00Z";
    let cases: Vec<(String, &str, String)> = vec![
        // Path parameters.
        (
            "/api/v1/tenants/ACME/wells".into(),
            "invalid_parameter",
            "invalid path parameter `tenant`: must be 1-63 characters of a-z, 0-9, '_' and '-' starting with a letter or digit, got `ACME`".into(),
        ),
        (
            "/api/v1/tenants/acme/wells/abc".into(),
            "invalid_parameter",
            "invalid path parameter `well`: must be a well id (a positive integer), got `abc`".into(),
        ),
        (
            "/api/v1/tenants/acme/wells/0/metrics".into(),
            "invalid_parameter",
            "invalid path parameter `well`: must be a well id (a positive integer), got `0`".into(),
        ),
        (
            "/api/v1/tenants/acme/wells/99999999999999999999/metrics".into(),
            "invalid_parameter",
            "invalid path parameter `well`: must be a well id (a positive integer), got `99999999999999999999`".into(),
        ),
        (
            "/api/v1/tenants/acme/gateways/GW%2001".into(),
            "invalid_parameter",
            "invalid path parameter `gateway`: must be 1-63 characters of a-z, 0-9, '_' and '-' starting with a letter or digit, got `GW 01`".into(),
        ),
        // Query strings as a whole.
        (
            "/api/v1/tenants/acme/wells?page=2".into(),
            "bad_request",
            "invalid query string: unknown field `page`, expected `limit` or `cursor`".into(),
        ),
        (
            "/api/v1/tenants/acme/wells?limit=1&limit=2".into(),
            "bad_request",
            "invalid query string: duplicate field `limit`".into(),
        ),
        // Paging.
        (
            "/api/v1/tenants/acme/wells?limit=0".into(),
            "invalid_parameter",
            "invalid query parameter `limit`: must be an integer from 1 to 10000, got `0`".into(),
        ),
        (
            "/api/v1/tenants/acme/gateways?limit=10001".into(),
            "invalid_parameter",
            "invalid query parameter `limit`: must be an integer from 1 to 10000, got `10001`".into(),
        ),
        (
            "/api/v1/tenants/acme/wells?cursor=abc".into(),
            "invalid_parameter",
            "invalid query parameter `cursor`: must be the `next_cursor` of a previous page, got `abc`".into(),
        ),
        (
            "/api/v1/tenants/acme/gateways?cursor=Not%20A%20Slug".into(),
            "invalid_parameter",
            "invalid query parameter `cursor`: must be the `next_cursor` of a previous page, got `Not A Slug`".into(),
        ),
        (
            "/api/v1/tenants/acme/ingest/rejections?limit=-5".into(),
            "invalid_parameter",
            "invalid query parameter `limit`: must be an integer from 1 to 10000, got `-5`".into(),
        ),
        // Telemetry.
        (
            format!("{tele}?from=2026-11-03T00:00:00Z&to=2026-11-03T06:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `metric`: is required".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&to=2026-11-03T06:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `from`: is required".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&from=2026-11-03T00:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `to`: is required".into(),
        ),
        (
            format!("{tele}?metric=tubing_presure_psi&from=2026-11-03T00:00:00Z&to=2026-11-03T06:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `metric`: `tubing_presure_psi` is not a canonical metric name; did you mean `tubing_pressure_psi`?".into(),
        ),
        (
            format!("{tele}?metric=vendor:fw_rev&from=2026-11-03T00:00:00Z&to=2026-11-03T06:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `metric`: `vendor:fw_rev` is not a canonical metric name; see the well's /metrics for the metrics it reports".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&from=yesterday&to=2026-11-03T06:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `from`: must be an RFC 3339 timestamp such as 2026-11-03T10:00:00Z, got `yesterday`".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&from=2026-11-03T00:00:00+02:00&to=2026-11-03T06:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `from`: must be an RFC 3339 timestamp such as 2026-11-03T10:00:00Z, got `2026-11-03T00:00:00 02:00` (a `+` in a query string must be sent as `%2B`)".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&from=2026-11-03T00:00:00Z&to=2026-13-03T06:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `to`: must be an RFC 3339 timestamp such as 2026-11-03T10:00:00Z, got `2026-13-03T06:00:00Z` (a date or time field is out of range)".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&from=1969-12-31T23:00:00Z&to=2026-11-03T06:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `from`: must be from 1970-01-01T00:00:00Z to before 2200-01-01T00:00:00Z, got `1969-12-31T23:00:00Z`".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&from=2026-11-03T06:00:00Z&to=2026-11-03T00:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `from`: must be before `to` (from 2026-11-03T06:00:00Z, to 2026-11-03T00:00:00Z)".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&from=2026-11-03T06:00:00Z&to=2026-11-03T06:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `from`: must be before `to` (from 2026-11-03T06:00:00Z, to 2026-11-03T06:00:00Z)".into(),
        ),
        (
            format!("{tele}?{ok}&bucket=2m"),
            "invalid_parameter",
            "invalid query parameter `bucket`: must be one of raw, 1m, 5m, 1h, 1d, got `2m`".into(),
        ),
        (
            format!("{tele}?{ok}&limit=100000"),
            "invalid_parameter",
            "invalid query parameter `limit`: must be an integer from 1 to 10000, got `100000`".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z"),
            "invalid_parameter",
            "invalid query parameter `to`: the range `from`..`to` spans 2 days, more than the 1 day allowed with bucket=raw (use a coarser bucket or a shorter range)".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&from=2026-11-01T00:00:00Z&to=2026-11-08T00:00:01Z&bucket=1m"),
            "invalid_parameter",
            "invalid query parameter `to`: the range `from`..`to` spans 7 days 1s, more than the 7 days allowed with bucket=1m (use a coarser bucket or a shorter range)".into(),
        ),
        (
            format!("{tele}?metric=tubing_pressure_psi&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&bucket=5m"),
            "invalid_parameter",
            "invalid query parameter `to`: the range `from`..`to` spans 59 days, more than the 31 days allowed with bucket=5m (use a coarser bucket or a shorter range)".into(),
        ),
        (
            format!("{tele}?{ok}&window=1h"),
            "bad_request",
            "invalid query string: unknown field `window`, expected one of `metric`, `from`, `to`, `bucket`, `limit`".into(),
        ),
        // Ingest counters.
        (
            format!("/api/v1/tenants/acme/ingest/counters?since={tomorrow}"),
            "invalid_parameter",
            "invalid query parameter `since`: must not be in the future".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (target, code, message) in &cases {
        let response = api.get(target).await;
        let body = response.json();
        let got = (
            response.status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        );
        let text = body["error"]["message"].as_str().unwrap_or("").to_owned();
        let message_ok = if code == &"invalid_parameter" && target.contains("since=") {
            text.starts_with(message.as_str())
        } else {
            &text == message
        };
        if got != (400, (*code).to_owned()) || !message_ok {
            failures.push(format!(
                "{target}\n  expected 400 {code} {message:?}\n  got {} {} {text:?}",
                got.0, got.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    api.finish().await;
}

#[tokio::test]
async fn unknown_tenant_well_gateway_and_route_are_404() {
    let api = TestApi::start("api_not_found").await;
    let fleet = seed(&api.db, 10, 30).await;
    let cases = [
        ("/api/v1/tenants/nobody/wells".to_owned(), "not_found", "tenant `nobody` not found".to_owned()),
        ("/api/v1/tenants/nobody/gateways/gw-01".to_owned(), "not_found", "tenant `nobody` not found".to_owned()),
        ("/api/v1/tenants/acme/wells/424242".to_owned(), "not_found", "well 424242 of tenant `acme` not found".to_owned()),
        ("/api/v1/tenants/acme/wells/424242/metrics".to_owned(), "not_found", "well 424242 of tenant `acme` not found".to_owned()),
        (
            "/api/v1/tenants/acme/wells/424242/telemetry?metric=gas_rate_mcfd&from=2026-11-03T00:00:00Z&to=2026-11-03T01:00:00Z".to_owned(),
            "not_found",
            "well 424242 of tenant `acme` not found".to_owned(),
        ),
        ("/api/v1/tenants/acme/gateways/gw-77".to_owned(), "not_found", "gateway `gw-77` of tenant `acme` not found".to_owned()),
        ("/api/v2/anything".to_owned(), "no_route", "no route for GET /api/v2/anything".to_owned()),
        (format!("/api/v1/tenants/acme/wells/{}/nothing", fleet.smith.0), "no_route", format!("no route for GET /api/v1/tenants/acme/wells/{}/nothing", fleet.smith.0)),
    ];
    for (target, code, message) in cases {
        let response = api.get(&target).await;
        assert_eq!(response.status, 404, "{target}: {}", response.text());
        assert_eq!(response.error_code(), code, "{target}");
        assert_eq!(response.error_message(), message, "{target}");
    }
    let post =
        testkit::http::request(api.addr, "POST", "/health", &[("content-length", "0")]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.error_code(), "method_not_allowed");
    assert_eq!(
        post.error_message(),
        "method POST is not allowed for /health"
    );
    api.finish().await;
}

#[tokio::test]
async fn a_tenant_cannot_read_another_tenants_data_even_by_id() {
    let api = TestApi::start("api_isolation").await;
    let fleet = seed(&api.db, 60, 30).await;
    let theirs = fleet.other_well.0;
    let range = format!(
        "metric=tubing_pressure_psi&from={}&to={}",
        testkit::api::ts(fleet.start),
        testkit::api::ts(fleet.end())
    );
    // acme asking for the other tenant's well by its id: not found, as if it did not exist.
    for path in [
        format!("/api/v1/tenants/acme/wells/{theirs}"),
        format!("/api/v1/tenants/acme/wells/{theirs}/metrics"),
        format!("/api/v1/tenants/acme/wells/{theirs}/telemetry?{range}"),
    ] {
        let response = api.get(&path).await;
        assert_eq!(response.status, 404, "{path}: {}", response.text());
        assert_eq!(
            response.error_message(),
            format!("well {theirs} of tenant `acme` not found")
        );
    }
    // The owner reads it.
    let own = api
        .get(&format!(
            "/api/v1/tenants/other/wells/{theirs}/telemetry?{range}"
        ))
        .await;
    assert_eq!(own.status, 200, "{}", own.text());
    let series = own.json()["series"].clone();
    assert_eq!(series[0]["series_id"], fleet.other_tubing.0);
    assert_eq!(series[0]["samples"].as_array().unwrap().len(), 60);
    // Same gateway slug in both tenants: each sees its own.
    let mine = api.get("/api/v1/tenants/acme/gateways/gw-01").await.json();
    let other = api.get("/api/v1/tenants/other/gateways/gw-01").await.json();
    assert_eq!(
        mine["last_birth"]["boot_id"],
        wire::HexId(fleet.boot_id).to_string()
    );
    assert_eq!(other["last_birth"]["boot_id"], "0000000000000007");
    assert_eq!(other["devices"][0]["name"], "rpc-9");
    // Lists never mix tenants.
    let wells = api.get("/api/v1/tenants/other/wells").await.json();
    let ids: Vec<_> = wells["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].clone())
        .collect();
    assert_eq!(ids, [theirs]);
    let gateways = api.get("/api/v1/tenants/other/gateways").await.json();
    assert_eq!(gateways["items"].as_array().unwrap().len(), 1);
    let rejections = api
        .get("/api/v1/tenants/other/ingest/rejections")
        .await
        .json();
    let reasons: Vec<_> = rejections["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].clone())
        .collect();
    assert_eq!(reasons, ["unknown_boot"]);
    api.finish().await;
}

#[tokio::test]
async fn error_bodies_carry_the_request_id_of_the_header() {
    let api = TestApi::start("api_request_id").await;
    let fresh = api.get("/api/v1/tenants/nobody/wells").await;
    let header = fresh.header("x-request-id").unwrap().to_owned();
    assert_eq!(fresh.json()["error"]["request_id"], header.as_str());
    assert_eq!(fresh.header("content-type"), Some("application/json"));
    // A caller's (proxy's) id is kept.
    let echoed = testkit::http::request(
        api.addr,
        "GET",
        "/api/v1/tenants/nobody/wells",
        &[("x-request-id", "edge-42.a_b")],
    )
    .await;
    assert_eq!(echoed.header("x-request-id"), Some("edge-42.a_b"));
    assert_eq!(echoed.json()["error"]["request_id"], "edge-42.a_b");
    api.finish().await;
}
