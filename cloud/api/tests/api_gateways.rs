//! Gateways provisioned through the API: credentials shown once (never stored or audited in
//! clear), an agent.toml the real agent accepts, rotation with an overlap window, revocation
//! that refuses the next login and asks every broker to disconnect, the gateways quota.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use store::identity::Role;
use store::tenants::PlanLimits;
use testkit::api::{Setup, TestApi, seed};
use testkit::auth;

#[tokio::test]
async fn a_gateway_is_provisioned_rotated_and_revoked() {
    let api = TestApi::with(
        "api_gateways",
        Setup {
            options: api::ApiOptions {
                gateway_mqtt_url: "mqtts://mqtt.wellpulse.test:8883".to_owned(),
                plans: BTreeMap::from([(
                    "standard".to_owned(),
                    PlanLimits {
                        max_gateways: Some(4),
                        ..PlanLimits::default()
                    },
                )]),
                ..api::ApiOptions::default()
            },
            ..Setup::default()
        },
    )
    .await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin = auth::member_token(&api.db, fleet.acme, Role::TenantAdmin).await;
    let site: i64 = sqlx::query_scalar("SELECT site_id FROM wells WHERE id = $1")
        .bind(fleet.smith)
        .fetch_one(api.db.pool())
        .await
        .unwrap();
    let body = json!({
        "gateway": "pad-7-gw3", "site_id": site,
        "devices": [{ "name": "smith-pump", "profile": "rod-pump-controller",
                      "tcp": "10.7.0.11:502", "unit_id": 1, "well": "42-329-12345-00-00" }]
    });
    let r = api
        .request_as(&admin, "POST", "/api/v1/tenants/acme/gateways", Some(&body))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let issued = r.json();
    let password = issued["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 40, "high-entropy secret");
    assert_eq!(issued["username"], "acme/pad-7-gw3");
    assert_eq!(issued["client_id"], "wp-acme-pad-7-gw3");
    // The agent's own parser accepts the issued file as it is.
    let toml = issued["agent_toml"].as_str().unwrap();
    let config = agent::config::Config::from_bytes(
        Path::new("agent.toml"),
        Path::new("/tmp"),
        toml.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(config.gateway.tenant, "acme");
    assert_eq!(config.gateway.id, "pad-7-gw3");
    assert_eq!(config.devices.len(), 1);
    assert!(toml.contains("mqtts://mqtt.wellpulse.test:8883"));
    // The broker's one login question accepts it; the secret is stored only hashed and
    // appears in no audit entry.
    assert!(
        api.db
            .gateway_may_log_in("acme", "pad-7-gw3", &password)
            .await
            .unwrap()
    );
    let stored: String =
        sqlx::query_scalar("SELECT credential_hash FROM gateways WHERE slug = 'pad-7-gw3'")
            .fetch_one(api.db.pool())
            .await
            .unwrap();
    assert!(!stored.contains(&password));
    let log = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/audit", None)
        .await;
    assert_eq!(log.json()["items"][0]["action"], "gateway.create");
    assert!(!log.text().contains(&password));
    // Taken ids, unknown sites, bad devices.
    let again = api
        .request_as(&admin, "POST", "/api/v1/tenants/acme/gateways", Some(&body))
        .await;
    assert_eq!(again.status, 409);
    for (bad, problem) in [
        (json!({ "gateway": "Bad Id", "site_id": site }), "gateway"),
        (json!({ "gateway": "gw-x", "site_id": 999999 }), "site"),
        (
            json!({ "gateway": "gw-x", "site_id": site,
                 "devices": [{ "name": "d", "profile": "toaster", "tcp": "10.0.0.1:502" }] }),
            "profile",
        ),
        (
            json!({ "gateway": "gw-x", "site_id": site,
                 "devices": [{ "name": "d", "profile": "rod-pump-controller", "tcp": "10.0.0.1" }] }),
            "host:port",
        ),
    ] {
        let r = api
            .request_as(&admin, "POST", "/api/v1/tenants/acme/gateways", Some(&bad))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(
            r.error_message().contains(problem),
            "{bad}: {}",
            r.error_message()
        );
    }

    // Rotation with an overlap: both secrets work until the window ends.
    let rotate = "/api/v1/tenants/acme/gateways/pad-7-gw3/credentials/rotate";
    let r = api
        .request_as(
            &admin,
            "POST",
            rotate,
            Some(&json!({ "overlap_minutes": 30 })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let second = r.json()["password"].as_str().unwrap().to_owned();
    assert!(r.json()["previous_valid_until"].is_string());
    assert!(
        api.db
            .gateway_may_log_in("acme", "pad-7-gw3", &password)
            .await
            .unwrap()
    );
    assert!(
        api.db
            .gateway_may_log_in("acme", "pad-7-gw3", &second)
            .await
            .unwrap()
    );
    let gw: store::GatewayId =
        sqlx::query_scalar("SELECT id FROM gateways WHERE slug = 'pad-7-gw3'")
            .fetch_one(api.db.pool())
            .await
            .unwrap();
    let keys = api.db.gateway_message_keys(gw).await.unwrap();
    assert_eq!(keys.len(), 2, "both message keys during the overlap");
    assert_eq!(keys[0], wire::MessageKey::derive(second.as_bytes()));
    // Rotation without overlap: the old secret stops at once.
    let r = api
        .request_as(
            &admin,
            "POST",
            rotate,
            Some(&json!({ "overlap_minutes": 0 })),
        )
        .await;
    let third = r.json()["password"].as_str().unwrap().to_owned();
    assert!(
        !api.db
            .gateway_may_log_in("acme", "pad-7-gw3", &second)
            .await
            .unwrap()
    );
    assert!(
        api.db
            .gateway_may_log_in("acme", "pad-7-gw3", &third)
            .await
            .unwrap()
    );
    assert_eq!(api.db.gateway_message_keys(gw).await.unwrap().len(), 1);

    // Revocation: nothing works, every broker is asked to disconnect it.
    let mut kicks = api.db.broker_kicks().await.unwrap();
    let r = api
        .request_as(
            &admin,
            "POST",
            "/api/v1/tenants/acme/gateways/pad-7-gw3/credentials/revoke",
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let kicked = tokio::time::timeout(std::time::Duration::from_secs(30), kicks.recv())
        .await
        .expect("a kick request")
        .unwrap();
    assert_eq!(kicked, "acme/pad-7-gw3");
    assert!(
        !api.db
            .gateway_may_log_in("acme", "pad-7-gw3", &third)
            .await
            .unwrap()
    );
    assert!(api.db.gateway_message_keys(gw).await.unwrap().is_empty());
    // Another tenant's gateway: 404.
    let r = api
        .request_as(
            &admin,
            "POST",
            "/api/v1/tenants/acme/gateways/no-such/credentials/revoke",
            None,
        )
        .await;
    assert_eq!(r.status, 404);

    // The quota: acme has gw-01, gw-02 and pad-7-gw3; the plan allows 4.
    let create = |gateway: &'static str| {
        let body = json!({ "gateway": gateway, "site_id": site });
        let (api, admin) = (&api, admin.clone());
        async move {
            api.request_as(&admin, "POST", "/api/v1/tenants/acme/gateways", Some(&body))
                .await
        }
    };
    let r = create("gw-4").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let toml = r.json()["agent_toml"].as_str().unwrap().to_owned();
    assert!(toml.contains("# Add one [[device]]"), "{toml}");
    let r = create("gw-5").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.error_code(), "quota_exceeded");
    drop(kicks);
    api.finish().await;
}
