//! Form PR and C-115 for a seeded month (CSV, printable HTML, JSON), and 422 with the
//! validation problems when the month's data is incomplete.

use serde_json::Value;
use testkit::analytics::*;

fn csv_lines(text: &str) -> Vec<String> {
    text.split("\r\n").map(str::to_owned).collect()
}

#[tokio::test]
async fn form_pr_and_c115_for_a_seeded_month() {
    let test = TestDb::new("an_reports").await;
    let db = &test.db;
    let mut texas = WellSite::create(db, "acme", "42-329-30001", "TX").await;
    let mut nm = WellSite::create_in(
        db,
        texas.tenant,
        "acme",
        "Pad NM",
        "gw-2",
        "30-015-45123",
        "NM",
    )
    .await;
    seed_march(db, &mut texas, &[]).await;
    seed_march(db, &mut nm, &[]).await;
    register_filings(db, texas.tenant, &texas, Some(&nm)).await;
    let api = Api::start(db).await;

    let csv = api
        .get("/api/v1/tenants/acme/reports/form-pr?month=2024-03&format=csv")
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"form-pr_123456_2024-03.csv\"")
    );
    let lines = csv_lines(&csv.text());
    let head = "123456,Permian Basin Energy,2024-03,08,12345,SMITH UNIT,SPRABERRY (TREND AREA),oil";
    // Hand-computed: stock 300 + 100/d since Feb 29 minus hauls of 500 + 800 + 900 bbl;
    // opening (Mar 1) 400, closing (Apr 1) 300 + 3200 − 2200 = 1300; production 31 × 100;
    // gas 31 × 500 = 15500 of which flared 31 × 12 = 372, fuel 31 × 3 = 93, sold the rest.
    for expected in [
        format!("{head},,well,,,,42-329-30001 #1H"),
        format!("{head},oil,opening_stock,,400,,"),
        format!("{head},oil,production,,3100,,"),
        format!("{head},oil,disposition,1,2200,,Acme Crude Hauling"),
        format!("{head},oil,closing_stock,,1300,,"),
        format!("{head},casinghead_gas,production,,15500,,"),
        format!("{head},casinghead_gas,disposition,1,15035,,Delaware Basin Gathering"),
        format!("{head},casinghead_gas,disposition,2,93,,lease fuel"),
        format!("{head},casinghead_gas,disposition,10,372,AR,"),
    ] {
        assert!(
            lines.contains(&expected),
            "missing line {expected}\n{}",
            csv.text()
        );
    }
    assert!(
        !csv.text().contains("30-015-45123"),
        "the NM well is not on the Form PR"
    );

    let html = api
        .get("/api/v1/tenants/acme/reports/form-pr?month=2024-03&format=html")
        .await;
    assert_eq!(html.status, 200);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let text = html.text();
    assert!(
        text.to_ascii_lowercase().starts_with("<!doctype html"),
        "{text}"
    );
    for needle in [
        "Form PR",
        "Permian Basin Energy",
        "SMITH UNIT",
        "12345",
        "@media print",
    ] {
        assert!(text.contains(needle), "HTML lacks {needle}");
    }

    let json = api
        .get("/api/v1/tenants/acme/reports/form-pr?month=2024-03")
        .await;
    assert_eq!(json.status, 200);
    assert!(
        json.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let json = json.json();
    assert!(json["title"].as_str().unwrap().contains("Form PR"));
    let columns: Vec<&str> = json["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let col = |name: &str| columns.iter().position(|c| *c == name).unwrap();
    let production = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[col("product")] == "oil" && r[col("line")] == "production")
        .unwrap();
    assert_eq!(production[col("volume")], "3100");

    let c115 = api
        .get("/api/v1/tenants/acme/reports/c115?month=2024-03&format=csv")
        .await;
    assert_eq!(c115.status, 200, "{}", c115.text());
    assert_eq!(
        c115.header("content-disposition"),
        Some("attachment; filename=\"c115_372098_2024-03.csv\"")
    );
    let text = c115.text();
    assert!(text.contains("30-015-45123"), "{text}");
    assert!(
        !text.contains("42-329-30001"),
        "the TX well is not on the C-115"
    );
    for needle in [
        ",3100,", ",15500,", ",1240,", "214984", "151618", ",372,", ",93,",
    ] {
        assert!(text.contains(needle), "C-115 lacks {needle}:\n{text}");
    }
    let html = api
        .get("/api/v1/tenants/acme/reports/c115?month=2024-03&format=html")
        .await;
    assert_eq!(html.status, 200);
    assert!(html.text().contains("C-115"));
    test.finish().await;
}

fn problems(body: &Value) -> Vec<(String, String, String)> {
    body["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["subject"].as_str().unwrap().to_owned(),
                p["field"].as_str().unwrap().to_owned(),
                p["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_month_with_missing_data_is_refused_with_every_problem() {
    let test = TestDb::new("an_reports_422").await;
    let db = &test.db;
    let mut texas = WellSite::create(db, "acme", "42-329-30002", "TX").await;
    // The gas meter is silent across midnight 03-15 → 03-16: both days are incomplete.
    let hole = (
        "gas_volume_total_mcf",
        t("2024-03-15T23:00:00Z"),
        t("2024-03-16T01:00:00Z"),
    );
    seed_march(db, &mut texas, &[hole]).await;
    register_filings(db, texas.tenant, &texas, None).await;
    let api = Api::start(db).await;

    for format in ["csv", "html", "json"] {
        let r = api
            .get(&format!(
                "/api/v1/tenants/acme/reports/form-pr?month=2024-03&format={format}"
            ))
            .await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let body = r.json();
        assert_eq!(body["error"]["code"], "unprocessable");
        let found = problems(&body);
        assert_eq!(found.len(), 1, "{found:?}");
        let (subject, field, message) = &found[0];
        assert_eq!(subject, "lease #1 (08 12345 SMITH UNIT)");
        assert_eq!(field, "casinghead_gas.production");
        assert!(
            message.starts_with("2 day(s) with missing or incomplete data (first: 2024-03-15)"),
            "{message}"
        );
    }

    // A month never derived: every production total and both stocks are problems.
    let r = api
        .get("/api/v1/tenants/acme/reports/form-pr?month=2024-05&format=csv")
        .await;
    assert_eq!(r.status, 422);
    let found = problems(&r.json());
    let fields: Vec<&str> = found.iter().map(|p| p.1.as_str()).collect();
    for field in [
        "oil.opening_stock",
        "oil.closing_stock",
        "oil.production",
        "casinghead_gas.production",
    ] {
        assert!(fields.contains(&field), "{field} not in {found:?}");
    }
    let stock = found.iter().find(|p| p.1 == "oil.opening_stock").unwrap();
    assert!(
        stock
            .2
            .starts_with("tank stock at 2024-05-01T00:00:00Z is unknown"),
        "{stock:?}"
    );

    // A New Mexico filing without any New Mexico well.
    let r = api
        .get("/api/v1/tenants/acme/reports/c115?month=2024-03")
        .await;
    assert_eq!(r.status, 422);
    let found = problems(&r.json());
    assert!(
        found
            .iter()
            .any(|p| p.1 == "completions" && p.2 == "no completion to report"),
        "{found:?}"
    );

    for (path, message) in [
        (
            "/api/v1/tenants/acme/reports/form-pr",
            "invalid query parameter `month`: is required",
        ),
        (
            "/api/v1/tenants/acme/reports/form-pr?month=2024-03&format=pdf",
            "invalid query parameter `format`: must be one of csv, html, json",
        ),
        (
            "/api/v1/tenants/acme/reports/c115?month=March",
            "invalid query parameter `month`",
        ),
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.starts_with(message), "{path}: {m}");
    }
    test.finish().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_analytics_endpoints() {
    let test = TestDb::new("an_openapi").await;
    let api = Api::start(&test.db).await;
    let spec = api.get("/api/openapi.json").await.json();
    for (method, path, tag, statuses) in [
        (
            "get",
            "/api/v1/tenants/{tenant}/wells/{well}/production",
            "production",
            &["200", "400", "404"][..],
        ),
        (
            "post",
            "/api/v1/tenants/{tenant}/wells/{well}/production/corrections",
            "production",
            &["200", "400", "404"],
        ),
        (
            "post",
            "/api/v1/tenants/{tenant}/wells/{well}/production/derive",
            "production",
            &["200", "400"],
        ),
        (
            "get",
            "/api/v1/tenants/{tenant}/production/monthly",
            "production",
            &["200", "400"],
        ),
        (
            "get",
            "/api/v1/tenants/{tenant}/emissions",
            "emissions",
            &["200", "400"],
        ),
        (
            "get",
            "/api/v1/tenants/{tenant}/emissions/intensity",
            "emissions",
            &["200", "400", "422"],
        ),
        (
            "get",
            "/api/v1/tenants/{tenant}/reports/form-pr",
            "reports",
            &["200", "400", "422"],
        ),
        (
            "get",
            "/api/v1/tenants/{tenant}/reports/c115",
            "reports",
            &["200", "400", "422"],
        ),
        (
            "get",
            "/api/v1/tenants/{tenant}/wells/{well}/decline",
            "decline",
            &["200", "400", "404", "422"],
        ),
    ] {
        let op = &spec["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert_eq!(op["tags"][0], tag, "{path}");
        for status in statuses {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path}: no {status}"
            );
        }
    }
    let report = &spec["paths"]["/api/v1/tenants/{tenant}/reports/form-pr"]["get"]["responses"];
    let content = report["200"]["content"].as_object().unwrap();
    for media in ["application/json", "text/csv", "text/html"] {
        assert!(content.contains_key(media), "form-pr 200 lacks {media}");
    }
    assert_eq!(
        report["422"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/UnprocessableResponse"
    );
    let decline = &spec["components"]["schemas"]["DeclineDto"]["properties"];
    for field in [
        "forecast",
        "cumulative",
        "eur",
        "parameters",
        "chosen_model",
        "selection_score",
    ] {
        assert!(decline[field].is_object(), "DeclineDto.{field}");
    }
    test.finish().await;
}
