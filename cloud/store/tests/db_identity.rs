//! Identity and audit storage against PostgreSQL: refresh-token rotation and reuse,
//! sign-in throttling, one-time tokens, API keys, tenant status, and what tenant-scoped
//! transactions may and may not touch (row-level security, grants, the append-only log).

use chrono::{SubsecRound, TimeDelta, Utc};
use serde_json::json;
use store::audit::{self, AuditEntry, AuditScope};
use store::identity::{
    self, NewApiKey, NewSession, NewUser, Refresh, Role, ThrottlePolicy, TokenPurpose, digest,
};
use store::tenants::{self, TenantStatus};
use testkit::db::{TestDb, fixture};

fn session<'a>(user: store::UserId, access: &'a [u8], refresh: &'a [u8]) -> NewSession<'a> {
    let now = Utc::now();
    NewSession {
        user,
        access_hash: access,
        access_expires_at: now + TimeDelta::minutes(15),
        refresh_hash: refresh,
        refresh_expires_at: now + TimeDelta::days(30),
        client_addr: Some("127.0.0.1"),
    }
}

async fn user(conn: &mut sqlx::PgConnection, email: &str) -> store::UserId {
    identity::ensure_user(
        conn,
        &NewUser {
            email,
            display_name: "",
            password_hash: Some("$argon2id$placeholder"),
            platform_admin: false,
        },
    )
    .await
    .unwrap()
    .0
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let test = TestDb::plain("id_refresh").await;
    let mut conn = test.db.pool().acquire().await.unwrap();
    let ana = user(&mut conn, "Ana@Example.com ").await;
    // Same email in another case is the same user.
    assert_eq!(user(&mut conn, "ana@example.com").await, ana);

    let (a1, r1) = (digest("access-1"), digest("refresh-1"));
    let family = identity::start_session(&mut conn, &session(ana, &a1, &r1))
        .await
        .unwrap();
    let now = Utc::now();
    let live = identity::live_session(&mut conn, &a1, now).await.unwrap();
    assert_eq!(live.map(|s| s.family), Some(family));

    let (a2, r2) = (digest("access-2"), digest("refresh-2"));
    let rotated = identity::rotate_refresh(&mut conn, &r1, &session(ana, &a2, &r2), now)
        .await
        .unwrap();
    assert_eq!(rotated, Refresh::Rotated { user: ana, family });
    // The old access token ended with the rotation; the new one works.
    assert!(
        identity::live_session(&mut conn, &a1, now + TimeDelta::seconds(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        identity::live_session(&mut conn, &a2, now)
            .await
            .unwrap()
            .is_some()
    );

    // Presenting the first refresh token again: reuse, the whole family is revoked.
    let (a3, r3) = (digest("access-3"), digest("refresh-3"));
    let reused = identity::rotate_refresh(&mut conn, &r1, &session(ana, &a3, &r3), now)
        .await
        .unwrap();
    assert_eq!(reused, Refresh::Reused { user: ana, family });
    assert!(
        identity::live_session(&mut conn, &a2, now)
            .await
            .unwrap()
            .is_none()
    );
    // …and the newest refresh token is dead too.
    let (a4, r4) = (digest("access-4"), digest("refresh-4"));
    let after = identity::rotate_refresh(&mut conn, &r2, &session(ana, &a4, &r4), now)
        .await
        .unwrap();
    assert!(matches!(after, Refresh::Reused { .. }), "{after:?}");
    let unknown =
        identity::rotate_refresh(&mut conn, &digest("nope"), &session(ana, &a4, &r4), now)
            .await
            .unwrap();
    assert_eq!(unknown, Refresh::Invalid);
    drop(conn);
    test.finish().await;
}

#[tokio::test]
async fn failed_sign_ins_lock_with_growing_locks_for_known_and_unknown_emails() {
    let test = TestDb::plain("id_throttle").await;
    let mut conn = test.db.pool().acquire().await.unwrap();
    let policy = ThrottlePolicy {
        free_failures: 3,
        window: TimeDelta::minutes(15),
        base_lock: TimeDelta::seconds(30),
        max_lock: TimeDelta::minutes(10),
    };
    // PostgreSQL keeps microseconds.
    let now = Utc::now().trunc_subsecs(6);
    for email in ["known@example.com", "nobody@example.com"] {
        for _ in 0..3 {
            let lock = identity::record_sign_in_failure(&mut conn, email, now, &policy)
                .await
                .unwrap();
            assert_eq!(lock, None);
        }
        let first = identity::record_sign_in_failure(&mut conn, email, now, &policy)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first - now, TimeDelta::seconds(30));
        let second = identity::record_sign_in_failure(&mut conn, email, now, &policy)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second - now, TimeDelta::seconds(60));
        assert_eq!(
            identity::sign_in_locked_until(&mut conn, &email.to_uppercase(), now)
                .await
                .unwrap(),
            Some(second)
        );
        // After the lock: free again; a success forgets the failures.
        assert_eq!(
            identity::sign_in_locked_until(&mut conn, email, second)
                .await
                .unwrap(),
            None
        );
        identity::clear_sign_in_failures(&mut conn, email)
            .await
            .unwrap();
        assert_eq!(
            identity::record_sign_in_failure(&mut conn, email, now, &policy)
                .await
                .unwrap(),
            None
        );
    }
    // Old failures fall out of the window.
    let later = now + TimeDelta::hours(1);
    for _ in 0..3 {
        identity::record_sign_in_failure(&mut conn, "known@example.com", later, &policy)
            .await
            .unwrap();
    }
    assert_eq!(
        identity::sign_in_locked_until(&mut conn, "known@example.com", later)
            .await
            .unwrap(),
        None
    );
    drop(conn);
    test.finish().await;
}

#[tokio::test]
async fn one_time_tokens_work_once_before_they_expire() {
    let test = TestDb::plain("id_tokens").await;
    let acme = fixture(&test.db, "acme").await;
    let mut conn = test.db.pool().acquire().await.unwrap();
    let bo = user(&mut conn, "bo@example.com").await;
    let now = Utc::now();
    let invite = TokenPurpose::Invitation {
        tenant: acme.tenant,
        role: Role::Operator,
    };
    identity::insert_one_time_token(
        &mut conn,
        &digest("inv"),
        bo,
        invite,
        now + TimeDelta::days(7),
    )
    .await
    .unwrap();
    identity::insert_one_time_token(
        &mut conn,
        &digest("old"),
        bo,
        TokenPurpose::PasswordReset,
        now - TimeDelta::seconds(1),
    )
    .await
    .unwrap();
    // The wrong purpose does not consume it.
    assert!(
        identity::consume_one_time_token(&mut conn, &digest("inv"), false, now)
            .await
            .unwrap()
            .is_none()
    );
    let used = identity::consume_one_time_token(&mut conn, &digest("inv"), true, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((used.user, used.purpose), (bo, invite));
    assert!(
        identity::consume_one_time_token(&mut conn, &digest("inv"), true, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        identity::consume_one_time_token(&mut conn, &digest("old"), false, now)
            .await
            .unwrap()
            .is_none()
    );
    drop(conn);
    test.finish().await;
}

#[tokio::test]
async fn tenant_transactions_see_only_their_members_keys_and_audit_entries() {
    let test = TestDb::plain("id_rls").await;
    let db = &test.db;
    let a = fixture(db, "acme").await;
    let b = fixture(db, "bravo").await;
    let mut conn = db.pool().acquire().await.unwrap();
    let ana = user(&mut conn, "ana@example.com").await;
    let bo = user(&mut conn, "bo@example.com").await;
    identity::set_membership(&mut conn, a.tenant, ana, Role::TenantAdmin)
        .await
        .unwrap();
    identity::set_membership(&mut conn, b.tenant, bo, Role::Viewer)
        .await
        .unwrap();
    drop(conn);

    for (tenant, prefix) in [(a.tenant, "aaaaaaaaaaaa"), (b.tenant, "bbbbbbbbbbbb")] {
        let mut tx = db.begin_tenant(tenant).await.unwrap();
        identity::create_api_key(
            &mut tx,
            tenant,
            &NewApiKey {
                prefix,
                secret_hash: &digest(prefix),
                name: "ci",
                role: Role::Viewer,
                created_by: "test",
                expires_at: None,
            },
        )
        .await
        .unwrap();
        audit::record(
            &mut tx,
            &AuditEntry {
                tenant: Some(tenant),
                actor: "test",
                action: "api_key.create",
                target: prefix,
                before: None,
                after: Some(json!({ "prefix": prefix })),
                client_addr: None,
                request_id: None,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    // Tenant A's transaction, with queries that "forget" the tenant filter.
    let mut tx = db.begin_tenant(a.tenant).await.unwrap();
    for (sql, expected) in [
        ("SELECT count(*) FROM memberships", 1i64),
        ("SELECT count(*) FROM users", 1),
        ("SELECT count(*) FROM api_keys", 1),
        ("SELECT count(*) FROM audit_log", 1),
    ] {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap();
        assert_eq!(n, expected, "{sql}");
    }
    let visible: String = sqlx::query_scalar("SELECT email FROM users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(visible, "ana@example.com");
    // Writes to B's rows change nothing.
    let changed = sqlx::query("UPDATE api_keys SET revoked_at = now()")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1, "only A's own key");
    // Inserting a row for B is refused by the policy.
    let err =
        sqlx::query("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')")
            .bind(b.tenant)
            .bind(ana)
            .execute(&mut *tx)
            .await
            .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();

    // Secrets and sessions are out of reach of tenant transactions altogether.
    for sql in [
        "SELECT count(*) FROM auth_sessions",
        "SELECT count(*) FROM one_time_tokens",
        "SELECT count(*) FROM sign_in_failures",
        "SELECT password_hash FROM users",
        "UPDATE tenants SET status = 'active'",
        "UPDATE audit_log SET actor = 'x'",
        "DELETE FROM audit_log",
    ] {
        let mut tx = db.begin_tenant(a.tenant).await.unwrap();
        let err = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{sql}: {err}"
        );
    }
    // The tenant role cannot switch row-level security off or leave its role.
    let mut tx = db.begin_tenant(a.tenant).await.unwrap();
    let bypass: bool =
        sqlx::query_scalar("SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert!(!bypass);
    let err = sqlx::query("SET row_security = off; SELECT count(*) FROM api_keys")
        .execute(&mut *tx)
        .await;
    // With row_security off a query that RLS would filter is an error, never a bypass.
    if let Ok(done) = err {
        panic!("row_security=off query ran: {done:?}");
    }
    tx.rollback().await.unwrap();

    // The owner cannot change or remove the trail either.
    for sql in [
        "UPDATE audit_log SET actor = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = sqlx::query(sql).execute(db.pool()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let mut conn = db.pool().acquire().await.unwrap();
    let all = audit::entries(&mut conn, AuditScope::All, None, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let only_b = audit::entries(&mut conn, AuditScope::Tenant(b.tenant), None, 10)
        .await
        .unwrap();
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0].target, "bbbbbbbbbbbb");
    drop(conn);
    test.finish().await;
}

#[tokio::test]
async fn tenants_suspend_and_reactivate_and_keys_are_found_by_prefix() {
    let test = TestDb::plain("id_tenants").await;
    let mut conn = test.db.pool().acquire().await.unwrap();
    let created = tenants::create_tenant(&mut conn, "delta", " Delta Energy ", "standard")
        .await
        .unwrap();
    assert_eq!(
        (created.name.as_str(), created.status),
        ("Delta Energy", TenantStatus::Active)
    );
    assert!(
        tenants::create_tenant(&mut conn, "Bad Slug", "x", "standard")
            .await
            .is_err()
    );
    let (before, after) = tenants::set_tenant_status(&mut conn, "delta", TenantStatus::Suspended)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (before.status, after.status),
        (TenantStatus::Active, TenantStatus::Suspended)
    );
    let access = tenants::tenant_access(&mut conn, "delta")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(access.status, TenantStatus::Suspended);
    assert!(
        tenants::set_tenant_status(&mut conn, "nope", TenantStatus::Active)
            .await
            .unwrap()
            .is_none()
    );
    let page = tenants::tenants(&mut conn, None, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    drop(conn);

    let mut tx = test.db.begin_tenant(created.id).await.unwrap();
    let key = identity::create_api_key(
        &mut tx,
        created.id,
        &NewApiKey {
            prefix: "0123456789ab",
            secret_hash: &digest("s"),
            name: "  exporter ",
            role: Role::Operator,
            created_by: "user:1",
            expires_at: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(key.name, "exporter");
    let (_, revoked) = identity::revoke_api_key(&mut tx, created.id, key.id)
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    tx.commit().await.unwrap();
    let mut conn = test.db.pool().acquire().await.unwrap();
    let found = identity::api_key_by_prefix(&mut conn, "0123456789ab")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.tenant_slug.as_str(), found.role, found.revoked),
        ("delta", Role::Operator, true)
    );
    assert_eq!(found.secret_hash, digest("s"));
    drop(conn);
    test.finish().await;
}
