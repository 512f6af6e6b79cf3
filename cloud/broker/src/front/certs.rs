//! Client certificates at the front listener (optional mutual TLS).
//!
//! Tenant CAs are made at run time (the first certificate a tenant issues), so the TLS
//! handshake cannot know them all in advance. The work is split in two:
//!
//! - **Handshake** ([`PresentedCertificates`], a rustls `ClientCertVerifier`): asks for a
//!   client certificate (never insists: `required` is enforced at CONNECT, where the
//!   refusal carries an MQTT reason code), accepts one that parses as X.509, and checks the
//!   client's signature over the handshake with the certificate's key, so whoever presents
//!   a certificate holds its private key.
//! - **CONNECT** ([`crate::BrokerAuth::check_certificate`], after the password): the
//!   certificate must name the CONNECT username (`CN={tenant}/{gateway}` and its URI SAN),
//!   its serial must be one the store issued to that gateway, unrevoked and within its
//!   validity ([`store::Db::gateway_certificate_status`], asked at every login), the bytes
//!   must be that issued certificate, and it must chain to the tenant's CA
//!   (rustls' WebPKI verifier with that CA as the only root: signature, validity, key
//!   usage for client authentication). Any failure: MQTT 5 0x87, 3.1.1 0x05.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The handshake half (see the module docs).
#[derive(Debug)]
pub(crate) struct PresentedCertificates {
    provider: Arc<CryptoProvider>,
}

impl PresentedCertificates {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> PresentedCertificates {
        PresentedCertificates { provider }
    }
}

impl ClientCertVerifier for PresentedCertificates {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match store::certificates::PresentedIdentity::read(end_entity) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::BadEncoding,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether `der` chains to the CA `ca_der` for client authentication now.
pub(crate) fn chains_to(der: &[u8], ca_der: &[u8], provider: &Arc<CryptoProvider>) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(CertificateDer::from(ca_der.to_vec())).is_err() {
        return false;
    }
    let Ok(verifier) = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(provider),
    )
    .build() else {
        return false;
    };
    verifier
        .verify_client_cert(&CertificateDer::from(der), &[], UnixTime::now())
        .is_ok()
}
