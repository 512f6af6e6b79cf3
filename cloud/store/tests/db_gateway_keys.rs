//! Gateway message keys: derived from the secret when a gateway is created, provisioned or
//! re-keyed, never the secret itself; a list (current first) for rotation with overlap.

use store::DbError;
use store::gateways::MAX_MESSAGE_KEYS;
use testkit::db::{TestDb, fixture};
use wire::MessageKey;

#[tokio::test]
async fn message_keys_follow_the_secret_and_rotate_with_an_overlap() {
    let test = TestDb::plain("gateway_keys").await;
    let db = &test.db;
    let f = fixture(db, "acme").await;
    let first = MessageKey::derive(f.secret.as_bytes());
    assert_eq!(
        db.gateway_message_keys(f.gateway).await.unwrap(),
        vec![first.clone()]
    );
    // Only the derived key is stored, never the secret.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT message_keys FROM gateways")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(stored, vec![first.as_bytes().to_vec()]);
    assert!(
        !stored[0]
            .windows(f.secret.len())
            .any(|w| w == f.secret.as_bytes())
    );

    // Overlap: the new key goes first, the old one stays valid; adding it twice is a no-op.
    let second = MessageKey::derive(b"second-secret-0123456789");
    db.add_gateway_message_key(f.gateway, &second)
        .await
        .unwrap();
    db.add_gateway_message_key(f.gateway, &second)
        .await
        .unwrap();
    assert_eq!(
        db.gateway_message_keys(f.gateway).await.unwrap(),
        vec![second.clone(), first.clone()]
    );
    // A third key pushes the oldest out.
    let third = MessageKey::derive(b"third-secret-0123456789");
    db.add_gateway_message_key(f.gateway, &third).await.unwrap();
    let keys = db.gateway_message_keys(f.gateway).await.unwrap();
    assert_eq!(keys.len(), MAX_MESSAGE_KEYS);
    assert_eq!(keys, vec![third.clone(), second]);
    db.retire_previous_message_keys(f.gateway).await.unwrap();
    assert_eq!(
        db.gateway_message_keys(f.gateway).await.unwrap(),
        vec![third]
    );

    // A rotation without overlap (new secret, re-provisioning) replaces every key.
    let rotated = store::registry::generate_gateway_secret();
    db.set_gateway_secret(f.gateway, &rotated).await.unwrap();
    assert_eq!(
        db.gateway_message_keys(f.gateway).await.unwrap(),
        vec![MessageKey::derive(rotated.as_bytes())]
    );
    let provisioned = store::registry::generate_gateway_secret();
    let p = db
        .provision_gateway("acme", "Pad 7", "gw-01", &provisioned)
        .await
        .unwrap();
    assert!(!p.created);
    assert_eq!(
        db.gateway_message_keys(f.gateway).await.unwrap(),
        vec![MessageKey::derive(provisioned.as_bytes())]
    );
    let fresh = db
        .provision_gateway("acme", "Pad 7", "gw-02", &provisioned)
        .await
        .unwrap();
    assert_eq!(
        db.gateway_message_keys(fresh.gateway).await.unwrap(),
        vec![MessageKey::derive(provisioned.as_bytes())]
    );

    // A gateway provisioned before keys existed has none; an unknown one is not found.
    sqlx::query("UPDATE gateways SET message_keys = '{}' WHERE id = $1")
        .bind(fresh.gateway)
        .execute(db.pool())
        .await
        .unwrap();
    assert!(
        db.gateway_message_keys(fresh.gateway)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        db.gateway_message_keys(store::GatewayId(999_999)).await,
        Err(DbError::NotFound(_))
    ));
    test.finish().await;
}
