//! Mutual TLS fixtures: an embedded broker whose TLS listeners ask gateways for client
//! certificates, certificates issued through the store as the API issues them, and
//! rustls client configurations presenting them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base::Secret;
use broker::{BrokerAuth, ClientCertificates, EmbeddedBroker, FrontOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use store::Db;
use store::certificates::{CaKey, IssuedCertificate};

use crate::mqtt::{INGESTER_PASSWORD, INGESTER_USER, generate_certificate};

/// The `[tenancy] ca_key` of the tests.
pub const CA_KEY: &str = "test-tenancy-ca-key-0123456789abcdef0123";

/// [`CA_KEY`] as the store takes it.
pub fn ca_key() -> CaKey {
    CaKey::from_secret(CA_KEY).expect("a valid test CA key")
}

/// Issues a client certificate to `tenant/gateway` as the API does (in a tenant-scoped
/// transaction), valid for 30 days.
pub async fn issue_certificate(db: &Db, tenant: &str, gateway: &str) -> IssuedCertificate {
    let id: i64 = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(tenant)
        .fetch_one(db.pool())
        .await
        .expect("tenant exists");
    let id = store::TenantId(id);
    let mut tx = db.begin_tenant(id).await.unwrap();
    let issued = store::certificates::issue_gateway_certificate(
        &mut tx,
        id,
        tenant,
        gateway,
        std::time::Duration::from_secs(30 * 86_400),
        &ca_key(),
        "test",
    )
    .await
    .unwrap()
    .expect("gateway exists");
    tx.commit().await.unwrap();
    issued
}

/// An embedded broker with two TLS listeners asking for client certificates in `mode`:
/// `tls4` (MQTT 3.1.1) and `tls5` (MQTT 5), plus the plain MQTT 5 `plain5` for the
/// ingester. The broker's own certificate is signed by `ca` (a file in `dir`).
pub struct MtlsBroker {
    pub broker: EmbeddedBroker,
    pub tls4: SocketAddr,
    pub tls5: SocketAddr,
    pub plain5: SocketAddr,
    /// The CA of the broker's certificate (what clients trust).
    pub ca: PathBuf,
}

impl MtlsBroker {
    pub async fn start(db: &Db, dir: &Path, mode: ClientCertificates) -> MtlsBroker {
        generate_certificate(dir);
        let (crt, key) = (dir.join("broker.crt"), dir.join("broker.key"));
        let listener = |table: &str, name: &str, tls: bool| {
            let tls = if tls {
                format!(
                    "    [{table}.{name}.tls]\n    certpath = \"{}\"\n    keypath = \"{}\"\n",
                    crt.display(),
                    key.display()
                )
            } else {
                String::new()
            };
            format!(
                "[{table}.{name}]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nnext_connection_delay_ms = 0\n{tls}\
                 [{table}.{name}.connections]\nconnection_timeout_ms = 5000\nmax_payload_size = 1048576\n\
                 max_inflight_count = 100\ndynamic_filters = true\n"
            )
        };
        let text = format!(
            "id = 0\n[router]\nmax_connections = 100\nmax_outgoing_packet_count = 200\n\
             max_segment_size = 1048576\nmax_segment_count = 4\n{}{}{}",
            listener("v4", "tls4", true),
            listener("v5", "tls5", true),
            listener("v5", "plain5", false)
        );
        let path = dir.join("rumqttd.toml");
        std::fs::write(&path, text).unwrap();
        let config = broker::load_config(&path).unwrap();
        let auth = BrokerAuth::new(
            db.clone(),
            INGESTER_USER.to_owned(),
            Secret::new(INGESTER_PASSWORD),
        );
        // Tests check the code of every refusal: no throttling in the way.
        let options = FrontOptions {
            login_free_failures: 1_000,
            client_certificates: [("tls4".to_owned(), mode), ("tls5".to_owned(), mode)].into(),
            ..FrontOptions::default()
        };
        let broker =
            tokio::task::spawn_blocking(move || EmbeddedBroker::start_with(config, auth, options))
                .await
                .unwrap()
                .expect("embedded broker starts");
        let addr = |name: &str| broker.listener(name).unwrap().connect_addr();
        MtlsBroker {
            tls4: addr("tls4"),
            tls5: addr("tls5"),
            plain5: addr("plain5"),
            ca: dir.join("ca.crt"),
            broker,
        }
    }
}

/// A rustls client configuration trusting `ca` and presenting `client` (certificate
/// PEM, private key PEM) when given.
pub fn client_tls(ca: &Path, client: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    })
}
