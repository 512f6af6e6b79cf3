//! People and machines signing in, through the HTTP API, with mail delivered to a real
//! SMTP server (the tests' aiosmtpd sink): tenant creation with its first administrator's
//! invitation, sign-in and lock-out, refresh rotation and reuse, sign-out, password reset,
//! API keys, roles, the audit trail and rate limits.

use std::time::Duration;

use api::{ApiOptions, AuthOptions};
use mail::{MailOptions, Mailer, SmtpSecurity};
use serde_json::{Value, json};
use testkit::api::{Setup, TestApi, seed};
use testkit::smtp::SmtpSink;

const MAIL_WAIT: Duration = Duration::from_secs(60);

fn mailer(port: u16) -> Mailer {
    Mailer::new(MailOptions {
        host: "127.0.0.1".to_owned(),
        port,
        security: SmtpSecurity::None,
        credentials: None,
        from: "WellPulse <no-reply@wellpulse.test>".to_owned(),
        public_url: "https://wellpulse.test".to_owned(),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

async fn start(prefix: &str, sink: &SmtpSink, auth: AuthOptions) -> TestApi {
    TestApi::with(
        prefix,
        Setup {
            options: ApiOptions {
                auth,
                ..ApiOptions::default()
            },
            mailer: Some(mailer(sink.port())),
            ..Setup::default()
        },
    )
    .await
}

async fn public(api: &TestApi, path: &str, body: Value) -> testkit::http::Response {
    testkit::http::post_json(api.addr, path, Some(&body)).await
}

async fn sign_in(api: &TestApi, email: &str, password: &str) -> testkit::http::Response {
    public(
        api,
        "/api/v1/auth/sign-in",
        json!({ "email": email, "password": password }),
    )
    .await
}

fn access(r: &testkit::http::Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_tenant_is_created_its_admin_invited_and_people_sign_in_and_out() {
    let mut sink = SmtpSink::start().await;
    let api = start("api_auth_flow", &sink, AuthOptions::default()).await;

    // The platform administrator creates a tenant; its first admin gets an invitation.
    let created = api
        .post(
            "/api/v1/admin/tenants",
            Some(&json!({ "slug": "delta", "name": "Delta Energy", "admin_email": "Dana@Delta.example" })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["invitation"]["role"], "tenant_admin");
    let mail = sink.next(MAIL_WAIT).await.expect("invitation mailed");
    assert_eq!(mail.to, vec!["Dana@Delta.example".to_owned()]);
    assert!(
        mail.body
            .contains("https://wellpulse.test/accept-invitation?token="),
        "{}",
        mail.body
    );
    assert_eq!(mail.subject, "You are invited to delta on WellPulse");
    let token = mail.token_after("token=").unwrap();

    // A rule-breaking password is refused and does not use the link up.
    let weak = public(
        &api,
        "/api/v1/auth/invitations/accept",
        json!({ "token": token, "password": "short" }),
    )
    .await;
    assert_eq!(weak.status, 400);
    let accepted = public(
        &api,
        "/api/v1/auth/invitations/accept",
        json!({ "token": token, "password": "delta rig 42 pump jack" }),
    )
    .await;
    assert_eq!(accepted.status, 204, "{}", accepted.text());
    let again = public(
        &api,
        "/api/v1/auth/invitations/accept",
        json!({ "token": token, "password": "delta rig 42 pump jack" }),
    )
    .await;
    assert_eq!(again.status, 400, "one-time link used twice");

    // Sign in (email in any case), see the role.
    let signed = sign_in(&api, "dana@delta.example", "delta rig 42 pump jack").await;
    let dana = access(&signed);
    let refresh = signed.json()["refresh_token"].as_str().unwrap().to_owned();
    assert!(dana.starts_with("wpat_") && refresh.starts_with("wprt_"));
    assert_eq!(signed.json()["expires_in"], 900);
    let me = api
        .request_as(&dana, "GET", "/api/v1/auth/me", None)
        .await
        .json();
    assert_eq!(
        me["tenants"],
        json!([{ "tenant": "delta", "role": "tenant_admin" }])
    );
    assert_eq!(me["platform_admin"], false);

    // A wrong password and an unknown email get the same answer.
    let wrong = sign_in(&api, "dana@delta.example", "not her password").await;
    let nobody = sign_in(&api, "nobody@delta.example", "not her password").await;
    assert_eq!((wrong.status, nobody.status), (401, 401));
    assert_eq!(wrong.error_message(), nobody.error_message());

    // Refresh rotates: the new pair works, the old access token does not.
    let rotated = public(
        &api,
        "/api/v1/auth/refresh",
        json!({ "refresh_token": refresh }),
    )
    .await;
    let dana2 = access(&rotated);
    let refresh2 = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.request_as(&dana, "GET", "/api/v1/auth/me", None)
            .await
            .status,
        401
    );
    assert_eq!(
        api.request_as(&dana2, "GET", "/api/v1/auth/me", None)
            .await
            .status,
        200
    );
    // Presenting the used refresh token again revokes the whole session, at once.
    let reused = public(
        &api,
        "/api/v1/auth/refresh",
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(reused.status, 401);
    assert!(
        reused.error_message().contains("already used"),
        "{}",
        reused.text()
    );
    assert_eq!(
        api.request_as(&dana2, "GET", "/api/v1/auth/me", None)
            .await
            .status,
        401
    );
    let dead = public(
        &api,
        "/api/v1/auth/refresh",
        json!({ "refresh_token": refresh2 }),
    )
    .await;
    assert_eq!(dead.status, 401);

    // Invite an operator; operators cannot manage people.
    let dana = access(&sign_in(&api, "dana@delta.example", "delta rig 42 pump jack").await);
    let invited = api
        .request_as(
            &dana,
            "POST",
            "/api/v1/tenants/delta/invitations",
            Some(&json!({ "email": "omar@delta.example", "role": "operator" })),
        )
        .await;
    assert_eq!(invited.status, 202, "{}", invited.text());
    let token = sink
        .next(MAIL_WAIT)
        .await
        .unwrap()
        .token_after("token=")
        .unwrap();
    let accepted = public(
        &api,
        "/api/v1/auth/invitations/accept",
        json!({ "token": token, "password": "omar's long password" }),
    )
    .await;
    assert_eq!(accepted.status, 204);
    let omar = access(&sign_in(&api, "omar@delta.example", "omar's long password").await);
    let denied = api
        .request_as(&omar, "GET", "/api/v1/tenants/delta/members", None)
        .await;
    assert_eq!(denied.status, 403);
    let members = api
        .request_as(&dana, "GET", "/api/v1/tenants/delta/members", None)
        .await
        .json();
    assert_eq!(members["items"].as_array().unwrap().len(), 2);

    // Sign-out ends the session at once (the token was cached by the requests above).
    assert_eq!(
        api.request_as(&omar, "GET", "/api/v1/auth/me", None)
            .await
            .status,
        200
    );
    let out = api
        .request_as(&omar, "POST", "/api/v1/auth/sign-out", None)
        .await;
    assert_eq!(out.status, 204);
    assert_eq!(
        api.request_as(&omar, "GET", "/api/v1/auth/me", None)
            .await
            .status,
        401
    );

    // The last administrator cannot be demoted or removed.
    let dana_id = members["items"][0]["user_id"].as_i64().unwrap();
    let demote = api
        .request_as(
            &dana,
            "PUT",
            &format!("/api/v1/tenants/delta/members/{dana_id}"),
            Some(&json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(demote.status, 409, "{}", demote.text());

    // The tenant's audit log: its own entries only, with who and what.
    let log = api
        .request_as(&dana, "GET", "/api/v1/tenants/delta/audit", None)
        .await;
    assert_eq!(log.status, 200, "{}", log.text());
    let actions: Vec<String> = log.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for expected in ["tenant.create", "member.invite", "member.accept_invitation"] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from {actions:?}"
        );
    }
    api.finish().await;
}

#[tokio::test]
async fn failed_sign_ins_lock_an_email_whether_or_not_it_exists() {
    let mut sink = SmtpSink::start().await;
    let auth = AuthOptions {
        sign_in_free_failures: 3,
        public_requests_per_minute: 1000,
        ..AuthOptions::default()
    };
    let api = start("api_auth_lock", &sink, auth).await;
    let created = api
        .post(
            "/api/v1/admin/tenants",
            Some(&json!({ "slug": "echo", "name": "Echo", "admin_email": "eve@echo.example" })),
        )
        .await;
    assert_eq!(created.status, 201);
    let token = sink
        .next(MAIL_WAIT)
        .await
        .unwrap()
        .token_after("token=")
        .unwrap();
    public(
        &api,
        "/api/v1/auth/invitations/accept",
        json!({ "token": token, "password": "eve's good password" }),
    )
    .await;
    for email in ["eve@echo.example", "ghost@echo.example"] {
        for _ in 0..4 {
            let r = sign_in(&api, email, "guess guess guess").await;
            assert_eq!(r.status, 401, "{email}");
        }
        let locked = sign_in(&api, email, "guess guess guess").await;
        assert_eq!(locked.status, 429, "{email}: {}", locked.text());
        assert_eq!(locked.error_code(), "rate_limited");
        let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=30).contains(&wait), "{wait}");
    }
    // Locked even with the right password, until the lock ends.
    let right = sign_in(&api, "eve@echo.example", "eve's good password").await;
    assert_eq!(right.status, 429);

    // A password reset works regardless, and ends every session.
    let reset = public(
        &api,
        "/api/v1/auth/password-reset",
        json!({ "email": "eve@echo.example" }),
    )
    .await;
    assert_eq!(reset.status, 202);
    let unknown = public(
        &api,
        "/api/v1/auth/password-reset",
        json!({ "email": "ghost@echo.example" }),
    )
    .await;
    assert_eq!(unknown.status, 202, "the same answer for an unknown email");
    let mail = sink.next(MAIL_WAIT).await.unwrap();
    assert_eq!(mail.to, vec!["eve@echo.example".to_owned()]);
    let token = mail.token_after("token=").unwrap();
    let confirmed = public(
        &api,
        "/api/v1/auth/password-reset/confirm",
        json!({ "token": token, "password": "eve's brand new password" }),
    )
    .await;
    assert_eq!(confirmed.status, 204, "{}", confirmed.text());
    let reused = public(
        &api,
        "/api/v1/auth/password-reset/confirm",
        json!({ "token": token, "password": "another new password" }),
    )
    .await;
    assert_eq!(reused.status, 400);
    // No second mail went out for the unknown email.
    assert!(sink.next(Duration::from_millis(500)).await.is_none());
    let signed = sign_in(&api, "eve@echo.example", "eve's brand new password").await;
    assert_eq!(
        signed.status,
        200,
        "the reset clears the lock: {}",
        signed.text()
    );
    api.finish().await;
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_to_their_tenant_and_revoked_at_once() {
    let sink = SmtpSink::start().await;
    let api = start("api_auth_keys", &sink, AuthOptions::default()).await;
    let fleet = seed(&api.db, 5, 30).await;
    let admin =
        testkit::auth::member_token(&api.db, fleet.acme, store::identity::Role::TenantAdmin).await;
    let created = api
        .request_as(
            &admin,
            "POST",
            "/api/v1/tenants/acme/api-keys",
            Some(&json!({ "name": "SCADA export", "role": "viewer", "expires_in_days": 30 })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let body = created.json();
    let key = body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("wpk_{}_", body["prefix"].as_str().unwrap())));
    // Listed without its secret.
    let listed = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/api-keys", None)
        .await;
    assert!(!listed.text().contains(&key));
    assert_eq!(listed.json()["items"][0]["name"], "SCADA export");

    // It reads its tenant, cannot write (viewer), and cannot see another tenant.
    assert_eq!(
        api.request_as(&key, "GET", "/api/v1/tenants/acme/wells", None)
            .await
            .status,
        200
    );
    let write = api
        .request_as(
            &key,
            "POST",
            &format!(
                "/api/v1/tenants/acme/wells/{}/production/derive",
                fleet.smith.0
            ),
            None,
        )
        .await;
    assert_eq!(write.status, 403);
    assert_eq!(
        api.request_as(&key, "GET", "/api/v1/tenants/other/wells", None)
            .await
            .status,
        404
    );
    // Another tenant's well id through acme's path: 404, nothing leaks.
    let foreign = api
        .request_as(
            &key,
            "GET",
            &format!("/api/v1/tenants/acme/wells/{}", fleet.other_well.0),
            None,
        )
        .await;
    assert_eq!(foreign.status, 404);

    // An unknown role is refused with the list of roles.
    let escalate = api
        .request_as(
            &admin,
            "POST",
            "/api/v1/tenants/acme/api-keys",
            Some(&json!({ "name": "x", "role": "owner" })),
        )
        .await;
    assert_eq!(escalate.status, 400);

    // Revoked: refused at once, though the key was just used (and cached).
    let id = body["id"].as_i64().unwrap();
    let revoked = api
        .request_as(
            &admin,
            "DELETE",
            &format!("/api/v1/tenants/acme/api-keys/{id}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    let after = api
        .request_as(&key, "GET", "/api/v1/tenants/acme/wells", None)
        .await;
    assert_eq!(after.status, 401);
    let log = api
        .request_as(&admin, "GET", "/api/v1/tenants/acme/audit", None)
        .await
        .json();
    assert_eq!(log["items"][0]["action"], "api_key.revoke");
    assert!(log["items"][0]["after"]["revoked_at"].is_string());
    api.finish().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_bodies_get_json_errors() {
    let sink = SmtpSink::start().await;
    let auth = AuthOptions {
        principal_requests_per_minute: 5,
        ..AuthOptions::default()
    };
    let api = start("api_auth_limits", &sink, auth).await;
    let fleet = seed(&api.db, 5, 30).await;
    let viewer =
        testkit::auth::member_token(&api.db, fleet.acme, store::identity::Role::Viewer).await;
    for _ in 0..5 {
        let r = api
            .request_as(&viewer, "GET", "/api/v1/tenants/acme/wells", None)
            .await;
        assert_eq!(r.status, 200);
    }
    let limited = api
        .request_as(&viewer, "GET", "/api/v1/tenants/acme/wells", None)
        .await;
    assert_eq!(limited.status, 429);
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Another principal of the same tenant is not affected.
    let other =
        testkit::auth::member_token(&api.db, fleet.acme, store::identity::Role::Viewer).await;
    assert_eq!(
        api.request_as(&other, "GET", "/api/v1/tenants/acme/wells", None)
            .await
            .status,
        200
    );

    // A NUL in a JSON string: 400 with the JSON error body, not a 500 from PostgreSQL.
    let nul = public(
        &api,
        "/api/v1/auth/sign-in",
        json!({ "email": "a\u{0}@b.example", "password": "x" }),
    )
    .await;
    assert_eq!(nul.status, 400, "{}", nul.text());
    assert!(nul.error_message().contains("NUL"));
    // An oversized body: 413 with the JSON error body.
    let huge = format!(
        "{{\"email\": \"{}\", \"password\": \"x\"}}",
        "a".repeat(3 * 1024 * 1024)
    );
    let r = testkit::http::send(
        api.addr,
        "POST",
        "/api/v1/auth/sign-in",
        &[("content-type", "application/json")],
        Some(huge.as_bytes()),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error_code(), "payload_too_large");
    api.finish().await;
}
