//! Gateway client certificates (optional mutual TLS):
//!
//! ```text
//! POST /api/v1/tenants/{tenant}/gateways/{gateway}/certificates                  issue, key once
//! GET  /api/v1/tenants/{tenant}/gateways/{gateway}/certificates                  list
//! POST /api/v1/tenants/{tenant}/gateways/{gateway}/certificates/{serial}/revoke  revoke, kick
//! ```
//!
//! The tenant's CA is made on the first issue (`store::certificates`); its key is sealed
//! under `[tenancy] ca_key`, and without that key nothing is issued (503
//! `certificates_unavailable`). The gateway's private key is generated here and shown once,
//! with its certificate, the tenant CA certificate and the `[mqtt.tls]` lines of its
//! `agent.toml`; it is never stored or logged. The certificate is a second factor: the
//! gateway keeps logging in with its password (its message key comes from it). A
//! revocation refuses the certificate at the next login and asks every broker to
//! disconnect the gateway at once. Every change is audited (never with a key).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::certificates::{self as sql, CaKey, CertificateRow};

use crate::access::Caller;
use crate::extract::{GatewayParam, gateway_not_found, kick_from_brokers, sealing_key};
use crate::{ApiError, ApiState, ErrorResponse, TenantScope};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(issue, list))
        .routes(routes!(revoke))
}

/// The `{serial}` path segment: a certificate serial, 32 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialParam(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for SerialParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, &())
            .await
            .map_err(|rejection| {
                ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
            })?;
        let raw = params
            .iter()
            .find(|(key, _)| *key == "serial")
            .map(|(_, value)| value.to_owned())
            .ok_or_else(|| {
                ApiError::Internal("the matched route has no `serial` path parameter".into())
            })?;
        let ok = raw.len() == 32 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(ApiError::path(
                "serial",
                format!("{raw:?} must be 32 lower-case hex digits"),
            ));
        }
        Ok(SerialParam(raw))
    }
}

impl IntoParams for SerialParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("serial")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("Certificate serial number (lower-case hex)."))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some("^[0-9a-f]{32}$"))
                        .examples([serde_json::json!("4f1c0de2a9b34c5d8e7f60718293a4b5")]),
                ))
                .build(),
        ]
    }
}

/// A client certificate just issued: its private key is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedCertificateBody {
    /// Gateway id.
    pub gateway: String,
    /// Serial number (lower-case hex): what the list shows and revocation names.
    pub serial: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// The certificate (PEM): subject `CN={tenant}/{gateway}`, client authentication.
    pub certificate_pem: String,
    /// Its private key (PKCS#8 PEM): shown this once, never stored. Keep it readable by
    /// the agent only (chmod 600).
    pub private_key_pem: String,
    /// The tenant's CA certificate (PEM), which issued it.
    pub ca_pem: String,
    /// The `[mqtt.tls]` table of the gateway's `agent.toml` with the certificate: it
    /// replaces the table of an `agent.toml` issued for an `mqtts://` URL (the password
    /// stays in `[mqtt]`: the certificate is an additional factor).
    pub agent_toml_tls: String,
}

/// A certificate of a gateway (never its key).
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateBody {
    /// Serial number (lower-case hex).
    pub serial: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Who issued it.
    pub issued_by: String,
    /// When it was revoked (`null`: not revoked).
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether it logs the gateway in now (not revoked, within its validity).
    pub valid: bool,
}

impl From<CertificateRow> for CertificateBody {
    fn from(c: CertificateRow) -> CertificateBody {
        let now = Utc::now();
        CertificateBody {
            valid: c.revoked_at.is_none() && c.not_before <= now && now <= c.not_after,
            serial: c.serial,
            not_before: c.not_before,
            not_after: c.not_after,
            issued_at: c.issued_at,
            issued_by: c.issued_by,
            revoked_at: c.revoked_at,
        }
    }
}

/// A gateway's certificates, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateList {
    /// Gateway id.
    pub gateway: String,
    /// Its certificates.
    pub certificates: Vec<CertificateBody>,
}

/// The `[mqtt.tls]` lines of a gateway's `agent.toml` (files next to `ca.pem`).
fn agent_toml_tls(tenant: &str, gateway: &str) -> String {
    format!(
        "# Mutual TLS of gateway {gateway} (tenant {tenant}): save the certificate, its key\n\
         # (chmod 600) and the broker's CA next to agent.toml.\n\
         [mqtt.tls]\n\
         # The CA certificate(s) (PEM) that sign the broker's certificate.\n\
         ca_file = \"/etc/wellpulse/ca.pem\"\n\
         client_cert = \"/etc/wellpulse/{gateway}.crt\"\n\
         client_key = \"/etc/wellpulse/{gateway}.key\"\n"
    )
}

fn ca_key(state: &ApiState) -> Result<CaKey, ApiError> {
    sealing_key(state, || {
        ApiError::CertificatesUnavailable(
            "gateway client certificates are not enabled on this server ([tenancy] ca_key is not set)"
                .to_owned(),
        )
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/gateways/{gateway}/certificates",
    security(("bearer" = ["tenant_admin"])),
    tag = "gateways",
    operation_id = "issue_gateway_certificate",
    params(TenantScope, GatewayParam),
    responses(
        (status = 201, description = "Issued; the private key is shown this once", body = IssuedCertificateBody),
        (status = 400, description = "Invalid gateway id", body = ErrorResponse),
        (status = 404, description = "Unknown gateway", body = ErrorResponse),
        (status = 503, description = "`certificates_unavailable`: `[tenancy] ca_key` is not set, or does not open the tenant's CA key", body = ErrorResponse),
    )
)]
async fn issue(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    GatewayParam(gateway): GatewayParam,
) -> Result<(StatusCode, Json<IssuedCertificateBody>), ApiError> {
    let key = ca_key(&state)?;
    let validity = state.options().gateway_certificate_validity;
    let mut tx = scope.begin(state.db()).await?;
    let issued = sql::issue_gateway_certificate(
        &mut tx,
        scope.id,
        &scope.slug,
        &gateway,
        validity,
        &key,
        &caller.principal.actor,
    )
    .await?
    .ok_or_else(|| gateway_not_found(&scope, &gateway))?;
    let target = format!("gateway:{gateway}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "gateway.issue_certificate",
            &target,
            None,
            Some(serde_json::json!({ "serial": issued.serial,
                                     "not_before": issued.not_before,
                                     "not_after": issued.not_after })),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedCertificateBody {
            agent_toml_tls: agent_toml_tls(&scope.slug, &gateway),
            gateway,
            serial: issued.serial,
            not_before: issued.not_before,
            not_after: issued.not_after,
            certificate_pem: issued.certificate_pem,
            private_key_pem: issued.private_key_pem,
            ca_pem: issued.ca_pem,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/gateways/{gateway}/certificates",
    security(("bearer" = ["tenant_admin"])),
    tag = "gateways",
    operation_id = "list_gateway_certificates",
    params(TenantScope, GatewayParam),
    responses(
        (status = 200, description = "The gateway's certificates, newest first", body = CertificateList),
        (status = 400, description = "Invalid gateway id", body = ErrorResponse),
        (status = 404, description = "Unknown gateway", body = ErrorResponse),
    )
)]
async fn list(
    State(state): State<ApiState>,
    scope: TenantScope,
    GatewayParam(gateway): GatewayParam,
) -> Result<Json<CertificateList>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let rows = sql::list_gateway_certificates(&mut tx, scope.id, &gateway)
        .await?
        .ok_or_else(|| gateway_not_found(&scope, &gateway))?;
    tx.commit().await?;
    Ok(Json(CertificateList {
        gateway,
        certificates: rows.into_iter().map(CertificateBody::from).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/gateways/{gateway}/certificates/{serial}/revoke",
    security(("bearer" = ["tenant_admin"])),
    tag = "gateways",
    operation_id = "revoke_gateway_certificate",
    params(TenantScope, GatewayParam, SerialParam),
    responses(
        (status = 200, description = "Revoked (again: unchanged): its next login is refused and every broker disconnects the gateway now", body = CertificateBody),
        (status = 400, description = "Invalid gateway id or serial", body = ErrorResponse),
        (status = 404, description = "Unknown gateway, or no such certificate of it", body = ErrorResponse),
    )
)]
async fn revoke(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    GatewayParam(gateway): GatewayParam,
    SerialParam(serial): SerialParam,
) -> Result<Json<CertificateBody>, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let (before, after) = sql::revoke_gateway_certificate(&mut tx, scope.id, &gateway, &serial)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "certificate {serial} of gateway `{gateway}` of tenant `{}`",
                scope.slug
            ))
        })?;
    let target = format!("gateway:{gateway}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "gateway.revoke_certificate",
            &target,
            Some(serde_json::json!({ "serial": serial, "revoked_at": before.revoked_at })),
            Some(serde_json::json!({ "serial": serial, "revoked_at": after.revoked_at })),
        ),
    )
    .await?;
    tx.commit().await?;
    // Revoked first, then kicked: the next login asks the store again and is refused.
    kick_from_brokers(&state, &format!("{}/{gateway}", scope.slug)).await;
    Ok(Json(CertificateBody::from(after)))
}
