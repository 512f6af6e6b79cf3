//! TLS: a CA, a server certificate (localhost, 127.0.0.1) and a client certificate are
//! generated at test time with rcgen; a private Mosquitto serves a mutual-TLS listener for
//! the gateway and a plain loopback listener for the test cloud. The uplink delivers over
//! TLS with its client certificate, and refuses a broker signed by another CA.

mod uplink_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agent::uplink::{ClientAuth, TlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use uplink_support::{
    Agent, Broker, Cloud, eventually, free_port, open_buffer, uplink_config, write_pem,
};

struct Pki {
    dir: tempfile::TempDir,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key")).expect("ca cert")
}

fn leaf(names: &[&str], cn: &str, issuer: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("leaf cert");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    /// CA, server and client certificates, plus an unrelated CA, as PEM files.
    fn generate() -> Pki {
        let dir = tempfile::tempdir().expect("pki dir");
        // Mosquitto may drop root privileges: keep the files readable.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let ca = new_ca("WellPulse test CA");
        let (server, server_key) = leaf(&["localhost", "127.0.0.1"], "broker", &ca);
        let (client, client_key) = leaf(&["gw-tls"], "gw-tls", &ca);
        let other = new_ca("Some other CA");
        let p = dir.path();
        write_pem(p, "ca.pem", &ca.pem());
        write_pem(p, "server.pem", &server);
        write_pem(p, "server.key", &server_key);
        write_pem(p, "client.pem", &client);
        write_pem(p, "client.key", &client_key);
        write_pem(p, "other-ca.pem", &other.pem());
        Pki { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

fn mosquitto_tls(pki: &Pki, plain: u16, tls: u16) -> Broker {
    let file = |name: &str| pki.path(name).display().to_string();
    let conf = format!(
        "user root\nallow_anonymous true\npersistence false\n\
         listener {plain} 127.0.0.1\n\
         listener {tls} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        file("ca.pem"),
        file("server.pem"),
        file("server.key"),
    );
    Broker::mosquitto_with_conf(tls, conf)
}

fn tls_options(pki: &Pki, ca: &str, with_client_cert: bool) -> TlsOptions {
    TlsOptions {
        ca_file: pki.path(ca),
        client_auth: with_client_cert.then(|| ClientAuth {
            cert_file: pki.path("client.pem"),
            key_file: pki.path("client.key"),
        }),
    }
}

async fn never_connects(agent: &Agent, cloud: &Cloud, boot_id: u64) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!agent.stats.connected.load(Ordering::Relaxed));
    assert!(cloud.with(|s| s.births.iter().all(|b| b.boot_id != boot_id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_mutual_tls_and_refuses_an_untrusted_or_anonymous_link() {
    let pki = Pki::generate();
    let (plain, tls) = (free_port(), free_port());
    let _broker = mosquitto_tls(&pki, plain, tls);
    let cloud = Cloud::start(plain).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = uplink_config(tls, "gw-tls");
    cfg.host = "localhost".into();
    cfg.tls = Some(tls_options(&pki, "ca.pem", true));
    let agent = Agent::start(cfg, open_buffer(dir.path()), 70);
    eventually(Duration::from_secs(30), "birth over TLS", || {
        cloud.with(|s| s.births.iter().any(|b| b.boot_id == 70))
    })
    .await;
    let seq = agent.append(40, 0);
    eventually(
        Duration::from_secs(30),
        "batch delivered and acked over TLS",
        || cloud.has_all(&[seq]) && agent.buffer.stats().pending_batches == 0,
    )
    .await;
    agent.stop().await;

    // The broker's certificate is not signed by the CA we trust.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = uplink_config(tls, "gw-tls-wrong-ca");
    cfg.tls = Some(tls_options(&pki, "other-ca.pem", true));
    let untrusted = Agent::start(cfg, open_buffer(dir.path()), 71);
    // No client certificate: the broker requires one.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let mut cfg = uplink_config(tls, "gw-tls-anon");
    cfg.tls = Some(tls_options(&pki, "ca.pem", false));
    let anonymous = Agent::start(cfg, open_buffer(dir2.path()), 72);
    never_connects(&untrusted, &cloud, 71).await;
    never_connects(&anonymous, &cloud, 72).await;
}
