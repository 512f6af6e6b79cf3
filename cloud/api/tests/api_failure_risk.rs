//! Failure risk through the HTTP API: training on the tenant's rollups and failure
//! records registers a model with its provenance and held-out metrics, promotes it when
//! there is none in use, caches every well's risk stamped with its version; training again
//! on the same data does not promote; reads are per tenant; too little data is a 422.

use serde_json::Value;
use store::identity::Role;
use testkit::api::{TestApi, seed};
use testkit::auth;
use testkit::failure_risk::seed_rod_pumps;

#[tokio::test]
async fn a_trained_model_is_registered_promoted_once_and_its_risks_served_ranked() {
    let api = TestApi::start("api_failure_risk").await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let viewer = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let other = auth::member_token(&api.db, fleet.other, Role::TenantAdmin).await;
    let models = "/api/v1/tenants/acme/failure-risk/models";

    // Nothing to learn from yet: a clear 422, nothing registered.
    let r = api.request_as(&admin, "POST", models, None).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.error_message().contains("at least 3"), "{}", r.text());
    let r = api
        .request_as(&viewer, "GET", "/api/v1/tenants/acme/failure-risk", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"], Value::Array(vec![]));

    let seeded = seed_rod_pumps(&api.db, fleet.acme, "Risk pad", 9, 150).await;
    assert!(seeded.failures >= 3, "{}", seeded.failures);
    let r = api.request_as(&admin, "POST", models, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let first = r.json();
    assert_eq!(first["version"], 1);
    assert_eq!(first["status"], "active");
    assert_eq!(first["algorithm"], "logistic_regression_l2");
    assert_eq!(first["data_hash"].as_str().unwrap().len(), 64);
    assert_eq!(first["wells"], 6, "a third of the 9 wells is held out");
    assert!(
        first["metrics"]["model"]["auc"]["30"].is_number(),
        "{first}"
    );
    assert!(
        first["features"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "fillage_drop")
    );

    // The fleet, ranked by 30-day risk, every prediction stamped with version 1.
    let r = api
        .request_as(
            &viewer,
            "GET",
            "/api/v1/tenants/acme/failure-risk?limit=20",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 9, "the pressure-only wells are not lift wells");
    let p30: Vec<f64> = items.iter().map(|i| i["p30"].as_f64().unwrap()).collect();
    assert!(p30.windows(2).all(|w| w[0] >= w[1]), "{p30:?}");
    for i in &items {
        assert_eq!(i["model_version"], 1);
        assert_eq!(i["lift"], "rod_pump");
        let (p7, p14, p30) = (
            i["p7"].as_f64().unwrap(),
            i["p14"].as_f64().unwrap(),
            i["p30"].as_f64().unwrap(),
        );
        assert!(p7 <= p14 && p14 <= p30, "{i}");
    }
    let top = &items[0];
    assert!(!top["factors"].as_array().unwrap().is_empty(), "{top}");
    assert!(top["factors"][0]["words"].as_str().unwrap().len() > 5);

    // One well; a well without a prediction answers without one; another tenant's is 404.
    let well = seeded.wells[0].0;
    let r = api
        .request_as(
            &viewer,
            "GET",
            &format!("/api/v1/tenants/acme/wells/{well}/failure-risk"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["risk"]["model_version"], 1);
    let r = api
        .request_as(
            &viewer,
            "GET",
            &format!("/api/v1/tenants/acme/wells/{}/failure-risk", fleet.jones.0),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["risk"].is_null());
    let r = api
        .request_as(
            &other,
            "GET",
            &format!("/api/v1/tenants/other/wells/{well}/failure-risk"),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .request_as(&other, "GET", "/api/v1/tenants/other/failure-risk", None)
        .await;
    assert_eq!(r.json()["items"], Value::Array(vec![]));

    // The periodic refresh recomputes the cache with the active model, nothing else.
    let computed = |items: &[Value]| items[0]["computed_at"].as_str().unwrap().to_owned();
    let before = computed(&items);
    let done =
        api::refresh_failure_risk(&api.db, chrono::Utc::now() + chrono::TimeDelta::seconds(5))
            .await
            .unwrap();
    assert_eq!(done, vec![(fleet.acme, 9)]);
    let r = api
        .request_as(
            &viewer,
            "GET",
            "/api/v1/tenants/acme/failure-risk?limit=20",
            None,
        )
        .await;
    let refreshed = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(refreshed.len(), 9);
    assert_ne!(computed(&refreshed), before);
    assert!(refreshed.iter().all(|i| i["model_version"] == 1));

    // The same data again: registered as a candidate, the active model and cache unchanged.
    let r = api.request_as(&admin, "POST", models, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["version"], 2);
    assert_eq!(r.json()["status"], "candidate");
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap()
            .contains("does not beat"),
        "{}",
        r.text()
    );
    let r = api.request_as(&viewer, "GET", models, None).await;
    let list = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0]["status"].as_str(), list[1]["status"].as_str()),
        (Some("candidate"), Some("active"))
    );
    let r = api
        .request_as(&viewer, "GET", "/api/v1/tenants/acme/failure-risk", None)
        .await;
    assert!(
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["model_version"] == 1)
    );

    // Rollback by hand: version 2 activated, then version 1 again; the cache follows.
    let activate = |v: i32| format!("{models}/{v}/activate");
    let r = api.request_as(&admin, "POST", &activate(2), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["status"].as_str(), r.json()["reason"].as_str()),
        (Some("active"), Some("activated by hand"))
    );
    let r = api
        .request_as(&viewer, "GET", "/api/v1/tenants/acme/failure-risk", None)
        .await;
    assert!(
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["model_version"] == 2)
    );
    let r = api.request_as(&admin, "POST", &activate(1), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api.request_as(&viewer, "GET", models, None).await;
    let statuses: Vec<Value> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].clone())
        .collect();
    assert_eq!(statuses, vec!["retired", "active"]);
    assert_eq!(
        api.request_as(&admin, "POST", &activate(7), None)
            .await
            .status,
        404
    );
    assert_eq!(
        api.request_as(&admin, "POST", &format!("{models}/x/activate"), None)
            .await
            .status,
        400
    );
    assert_eq!(
        api.request_as(&viewer, "POST", &activate(1), None)
            .await
            .status,
        403
    );

    // Viewers may not train; training and activations are audited.
    let r = api.request_as(&viewer, "POST", models, None).await;
    assert_eq!(r.status, 403);
    let log = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/audit", None)
        .await
        .json();
    let trained = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "failure_risk_model.train")
        .count();
    assert_eq!(trained, 2, "{log}");
    let activated = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "failure_risk_model.activate")
        .count();
    assert_eq!(activated, 2, "{log}");
    let r = api
        .request_as(
            &viewer,
            "GET",
            "/api/v1/tenants/acme/failure-risk?limit=0",
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    api.finish().await;
}

/// Training as a job: queued on demand (once), run by the worker with its progress
/// recorded, the model registered by the usual rule; a week later the schedule queues
/// another, which registers a candidate on the same data; jobs are per tenant and audited.
#[tokio::test]
async fn training_jobs_run_with_progress_on_demand_and_on_schedule() {
    let api = TestApi::start("api_failure_risk_jobs").await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let viewer = auth::member_token(&api.db, fleet.acme, Role::Viewer).await;
    let other = auth::member_token(&api.db, fleet.other, Role::TenantAdmin).await;
    seed_rod_pumps(&api.db, fleet.acme, "Risk pad", 9, 150).await;
    let jobs = "/api/v1/tenants/acme/failure-risk/training-jobs";

    let r = api.request_as(&viewer, "POST", jobs, None).await;
    assert_eq!(r.status, 403);
    let r = api.request_as(&admin, "POST", jobs, None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let job = r.json();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["trigger"], "on_demand");
    assert_eq!(job["progress"], 0.0);
    // Asked again while queued: the same job.
    let r = api.request_as(&admin, "POST", jobs, None).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["id"], job["id"]);
    let one = format!("{jobs}/{}", job["id"]);
    let r = api
        .request_as(&other, "GET", &one.replace("acme", "other"), None)
        .await;
    assert_eq!(r.status, 404, "another tenant's job is not found");

    assert_eq!(api::run_training_jobs(&api.db).await.unwrap(), 1);
    assert_eq!(
        api::run_training_jobs(&api.db).await.unwrap(),
        0,
        "nothing left"
    );
    let r = api.request_as(&viewer, "GET", &one, None).await;
    let done = r.json();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["stage"], "succeeded");
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["model_version"], 1);
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());
    let models = api
        .request_as(
            &viewer,
            "GET",
            "/api/v1/tenants/acme/failure-risk/models",
            None,
        )
        .await
        .json();
    assert_eq!(models["items"][0]["status"], "active", "{models}");

    // Not due yet; a week later it is: a scheduled job, a candidate on the same data.
    let now = chrono::Utc::now();
    let week = std::time::Duration::from_secs(7 * 86_400);
    assert!(
        api::schedule_training(&api.db, now, week)
            .await
            .unwrap()
            .is_empty()
    );
    let later = now + chrono::TimeDelta::days(8);
    assert_eq!(
        api::schedule_training(&api.db, later, week).await.unwrap(),
        vec![fleet.acme]
    );
    assert!(
        api::schedule_training(&api.db, later, week)
            .await
            .unwrap()
            .is_empty(),
        "one open job per tenant"
    );
    assert_eq!(api::run_training_jobs(&api.db).await.unwrap(), 1);
    let list = api.request_as(&viewer, "GET", jobs, None).await.json();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["trigger"], "scheduled");
    assert_eq!(items[0]["requested_by"], "schedule");
    assert_eq!(items[0]["status"], "succeeded", "{list}");
    assert_eq!(items[0]["model_version"], 2);
    let models = api
        .request_as(
            &viewer,
            "GET",
            "/api/v1/tenants/acme/failure-risk/models",
            None,
        )
        .await
        .json();
    assert_eq!(models["items"][0]["version"], 2);
    assert_eq!(models["items"][0]["status"], "candidate", "{models}");

    // A tenant with too little data: the job fails and says why.
    let r = api
        .request_as(
            &other,
            "POST",
            "/api/v1/tenants/other/failure-risk/training-jobs",
            None,
        )
        .await;
    assert_eq!(r.status, 202);
    let failed_id = r.json()["id"].clone();
    assert_eq!(api::run_training_jobs(&api.db).await.unwrap(), 1);
    let r = api
        .request_as(
            &other,
            "GET",
            &format!("/api/v1/tenants/other/failure-risk/training-jobs/{failed_id}"),
            None,
        )
        .await;
    let failed = r.json();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("at least 3"),
        "{failed}"
    );
    let r = api
        .request_as(&viewer, "GET", &format!("{jobs}/999999"), None)
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .request_as(&viewer, "GET", &format!("{jobs}?limit=0"), None)
        .await;
    assert_eq!(r.status, 400);

    let log = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/audit?limit=100", None)
        .await
        .json();
    let count = |action: &str| {
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .count()
    };
    assert_eq!(count("failure_risk_training.request"), 2, "{log}");
    assert_eq!(count("failure_risk_model.train"), 2, "{log}");
}
