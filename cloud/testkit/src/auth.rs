//! Credentials for API tests: users with roles and live sessions written straight into
//! the database (no argon2 work, no sign-in round trip), so a test can call the API as a
//! platform administrator or as any role of any tenant.

use chrono::{TimeDelta, Utc};
use store::identity::{self, NewSession, NewUser, Role, digest};
use store::{Db, TenantId, UserId};

/// A new access token (`wpat_…`) with a live session for `user`.
pub async fn session_token(db: &Db, user: UserId) -> String {
    let bytes: [u8; 32] = rand::random();
    let token = format!("wpat_{}", hex(&bytes));
    let refresh: [u8; 32] = rand::random();
    let refresh = format!("wprt_{}", hex(&refresh));
    let now = Utc::now();
    let mut conn = db.pool().acquire().await.expect("database connection");
    identity::start_session(
        &mut conn,
        &NewSession {
            user,
            access_hash: &digest(&token),
            access_expires_at: now + TimeDelta::hours(4),
            refresh_hash: &digest(&refresh),
            refresh_expires_at: now + TimeDelta::days(1),
            client_addr: None,
        },
    )
    .await
    .expect("session stored");
    token
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A user with this email (created without a password if new).
pub async fn user(db: &Db, email: &str, platform_admin: bool) -> UserId {
    let mut conn = db.pool().acquire().await.expect("database connection");
    let (id, _) = identity::ensure_user(
        &mut conn,
        &NewUser {
            email,
            display_name: "",
            password_hash: None,
            platform_admin,
        },
    )
    .await
    .expect("user stored");
    if platform_admin {
        identity::set_platform_admin(&mut conn, id, true)
            .await
            .expect("platform admin flag");
    }
    id
}

/// An access token of a platform administrator (`admin@wellpulse.test`).
pub async fn platform_admin_token(db: &Db) -> String {
    let admin = user(db, "admin@wellpulse.test", true).await;
    session_token(db, admin).await
}

/// An access token of a user who has `role` in `tenant` (and nothing else).
pub async fn member_token(db: &Db, tenant: TenantId, role: Role) -> String {
    let email = format!(
        "{}-{}@tenant{}.test",
        role.as_str(),
        rand::random::<u32>(),
        tenant.0
    );
    let id = user(db, &email, false).await;
    let mut conn = db.pool().acquire().await.expect("database connection");
    identity::set_membership(&mut conn, tenant, id, role)
        .await
        .expect("membership stored");
    drop(conn);
    session_token(db, id).await
}
