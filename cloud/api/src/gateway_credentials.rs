//! Provisioning gateways and managing their credentials:
//!
//! ```text
//! POST /api/v1/tenants/{tenant}/gateways                                   create, credentials once
//! POST /api/v1/tenants/{tenant}/gateways/{gateway}/credentials/rotate      new secret, overlap window
//! POST /api/v1/tenants/{tenant}/gateways/{gateway}/credentials/revoke      barred, disconnected
//! ```
//!
//! The secret is 256 random bits, generated here, stored hashed, and shown once: in the
//! response, and inside the ready-to-run `agent.toml` of the response (the agent derives
//! its message key from it, so the file holds no other secret). Nobody types a gateway
//! secret. A rotation keeps the previous secret valid for the overlap window, so the agent
//! can be reconfigured without losing data; a revocation refuses the gateway's next login
//! and asks every broker to disconnect it at once. Every change is audited (never with the
//! secret).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::SiteId;
use store::gateways as sql;

use crate::access::Caller;
use crate::extract::{GatewayParam, JsonBody, check_device, gateway_not_found, kick_from_brokers};
use crate::{ApiError, ApiState, ErrorResponse, TenantScope};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_gateway))
        .routes(routes!(rotate))
        .routes(routes!(revoke))
}

/// A Modbus TCP device the gateway will poll (written into its `agent.toml`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    /// Unique name on the gateway: letters, digits, `.`, `_`, `-`.
    #[schema(example = "well-17a-pump")]
    pub name: String,
    /// Built-in firmware profile id.
    #[schema(example = "rod-pump-controller")]
    pub profile: String,
    /// Modbus TCP endpoint `host:port`.
    #[schema(example = "10.17.0.11:502")]
    pub tcp: String,
    /// Modbus unit id (default: the profile's).
    pub unit_id: Option<u8>,
    /// API number (or name) of the well the device measures.
    #[schema(example = "42-329-12345")]
    pub well: Option<String>,
    /// Poll interval per poll group of the profile, e.g. `{"fast": "1s", "slow": "60s"}`
    /// (defaults as `wellpulse-agent generate-config`: fast 1s, slow 60s, others 10s).
    #[serde(default)]
    pub poll: std::collections::BTreeMap<String, String>,
}

/// Poll intervals of a device: every group its profile uses, from the request or the
/// defaults of `wellpulse-agent generate-config`.
fn poll_intervals(d: &DeviceBody) -> Vec<(String, String)> {
    let groups: Vec<String> = firmware_profiles::builtin_profile(&d.profile)
        .map(|p| p.poll_groups().into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    groups
        .into_iter()
        .map(|g| {
            let interval = d.poll.get(&g).cloned().unwrap_or_else(|| {
                match g.as_str() {
                    "fast" => "1s",
                    "slow" => "60s",
                    _ => "10s",
                }
                .to_owned()
            });
            (g, interval)
        })
        .collect()
}

/// A gateway to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGatewayBody {
    /// Gateway id (MQTT topic segment): 1-63 of a-z, 0-9, `_`, `-`.
    #[schema(example = "pad-17-gw1")]
    pub gateway: String,
    /// Site the gateway is installed at.
    #[schema(example = 1)]
    pub site_id: i64,
    /// Devices to put in its `agent.toml` (without any, the file has a commented example
    /// and the agent refuses to start until one is added).
    #[serde(default)]
    pub devices: Vec<DeviceBody>,
}

/// Credentials issued: shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedCredentials {
    /// Gateway id.
    pub gateway: String,
    /// MQTT user name (`tenant/gateway`).
    pub username: String,
    /// MQTT client id.
    pub client_id: String,
    /// The secret (MQTT password): shown this once, stored only hashed.
    pub password: String,
    /// Where the agent connects.
    pub mqtt_url: String,
    /// A ready-to-run `agent.toml` (holds the secret: store it with mode 600).
    pub agent_toml: String,
    /// Until when the previous secret still works (after a rotation with overlap).
    pub previous_valid_until: Option<DateTime<Utc>>,
}

/// The `agent.toml` of a gateway.
pub(crate) fn agent_toml(
    tenant: &str,
    gateway: &str,
    mqtt_url: &str,
    password: &str,
    devices: &[DeviceBody],
) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut out = format!(
        "# WellPulse agent configuration of gateway {gateway} (tenant {tenant}), issued by the cloud.\n\
         # It holds the gateway's secret: keep it readable by the agent only (chmod 600).\n\
         # Check it with `wellpulse-agent check-config agent.toml`; run it with\n\
         # `wellpulse-agent run --config agent.toml`.\n\n\
         [gateway]\ntenant = {}\nid = {}\n# Where the durable buffer lives.\ndata_dir = \"/var/lib/wellpulse\"\n\n\
         [mqtt]\nurl = {}\nusername = {}\nclient_id = {}\npassword = {}\n\n\
         [metrics]\nlisten = \"127.0.0.1:9102\"\n{}",
        q(tenant),
        q(gateway),
        q(mqtt_url),
        q(&format!("{tenant}/{gateway}")),
        q(&format!("wp-{tenant}-{gateway}")),
        q(password),
        if mqtt_url.starts_with("mqtts://") {
            "\n[mqtt.tls]\n# The CA certificate(s) (PEM) that sign the broker's certificate.\n\
             ca_file = \"/etc/wellpulse/ca.pem\"\n"
        } else {
            ""
        },
    );
    if devices.is_empty() {
        out.push_str(
            "\n# Add one [[device]] per Modbus device before starting the agent, e.g.:\n\
             # [[device]]\n# name = \"well-17a-pump\"\n# profile = \"rod-pump-controller\"\n\
             # tcp = \"10.17.0.11:502\"\n# well = \"42-329-12345\"\n# poll = { fast = \"1s\", slow = \"60s\" }\n",
        );
    }
    for d in devices {
        out.push_str(&format!(
            "\n[[device]]\nname = {}\nprofile = {}\ntcp = {}\n",
            q(&d.name),
            q(&d.profile),
            q(&d.tcp)
        ));
        if let Some(unit) = d.unit_id {
            out.push_str(&format!("unit_id = {unit}\n"));
        }
        if let Some(well) = &d.well {
            out.push_str(&format!("well = {}\n", q(well)));
        }
        let poll: Vec<String> = poll_intervals(d)
            .into_iter()
            .map(|(g, i)| format!("{} = {}", q(&g), q(&i)))
            .collect();
        out.push_str(&format!("poll = {{ {} }}\n", poll.join(", ")));
    }
    out
}

fn issued(
    state: &ApiState,
    scope: &TenantScope,
    gateway: &str,
    password: String,
    devices: &[DeviceBody],
    previous_valid_until: Option<DateTime<Utc>>,
) -> IssuedCredentials {
    let mqtt_url = state.options().gateway_mqtt_url.clone();
    IssuedCredentials {
        gateway: gateway.to_owned(),
        username: format!("{}/{gateway}", scope.slug),
        client_id: format!("wp-{}-{gateway}", scope.slug),
        agent_toml: agent_toml(&scope.slug, gateway, &mqtt_url, &password, devices),
        password,
        mqtt_url,
        previous_valid_until,
    }
}

fn check_devices(devices: &[DeviceBody]) -> Result<(), ApiError> {
    for (i, d) in devices.iter().enumerate() {
        check_device(&format!("devices[{i}]."), &d.name, &d.profile)?;
        if devices[..i].iter().any(|o| o.name == d.name) {
            return Err(ApiError::BadRequest(format!(
                "invalid JSON body: devices[{i}].name {:?} is used twice",
                d.name
            )));
        }
        let tcp_ok = d.tcp.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        for (group, interval) in &d.poll {
            if humantime::parse_duration(interval).is_err() {
                return Err(ApiError::BadRequest(format!(
                    "invalid JSON body: devices[{i}].poll.{group} {interval:?} must be a duration such as \"1s\""
                )));
            }
        }
        if !tcp_ok {
            return Err(ApiError::BadRequest(format!(
                "invalid JSON body: devices[{i}].tcp {:?} must be host:port",
                d.tcp
            )));
        }
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/gateways",
    security(("bearer" = ["tenant_admin"])),
    tag = "gateways",
    operation_id = "create_gateway",
    params(TenantScope),
    request_body(content = NewGatewayBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the secret and the agent.toml holding it are shown this once", body = IssuedCredentials),
        (status = 400, description = "Invalid gateway id, site or device (the message names it)", body = ErrorResponse),
        (status = 403, description = "`quota_exceeded`: the plan's `gateways` quota is used up", body = ErrorResponse),
        (status = 409, description = "The gateway id is taken in this tenant", body = ErrorResponse),
    )
)]
async fn create_gateway(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    JsonBody(body): JsonBody<NewGatewayBody>,
) -> Result<(StatusCode, Json<IssuedCredentials>), ApiError> {
    crate::extract::check_slug("gateway", &body.gateway).map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid JSON body: gateway {:?} must be 1-63 of a-z, 0-9, '_' and '-'",
            body.gateway
        ))
    })?;
    check_devices(&body.devices)?;
    let mut tx = scope.begin(state.db()).await?;
    let limits = state.options().plan(&scope.plan);
    store::tenants::check_quota(&mut tx, scope.id, "gateways", limits.max_gateways)
        .await?
        .map_err(|q| ApiError::QuotaExceeded {
            quota: q.quota,
            plan: scope.plan.clone(),
            limit: q.limit,
            used: q.used,
        })?;
    let password = store::registry::generate_gateway_secret();
    let id = sql::create_gateway(
        &mut tx,
        scope.id,
        SiteId(body.site_id),
        &body.gateway,
        &password,
    )
    .await?;
    let target = format!("gateway:{}", body.gateway);
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "gateway.create",
            &target,
            None,
            Some(serde_json::json!({ "id": id.0, "site_id": body.site_id,
                                     "devices": body.devices.len() })),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(issued(
            &state,
            &scope,
            &body.gateway,
            password,
            &body.devices,
            None,
        )),
    ))
}

/// How to rotate.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// Minutes the previous secret keeps working (0 to 10,080; default 60). 0 ends it at
    /// once.
    pub overlap_minutes: Option<u32>,
    /// Devices to put in the new `agent.toml`.
    #[serde(default)]
    pub devices: Vec<DeviceBody>,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/gateways/{gateway}/credentials/rotate",
    security(("bearer" = ["tenant_admin"])),
    tag = "gateways",
    operation_id = "rotate_gateway_credentials",
    params(TenantScope, GatewayParam),
    request_body(content = RotateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "New secret (shown this once); the previous one works until `previous_valid_until`", body = IssuedCredentials),
        (status = 400, description = "Invalid overlap or device", body = ErrorResponse),
        (status = 404, description = "Unknown gateway", body = ErrorResponse),
    )
)]
async fn rotate(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    GatewayParam(gateway): GatewayParam,
    JsonBody(body): JsonBody<RotateBody>,
) -> Result<Json<IssuedCredentials>, ApiError> {
    let minutes = body.overlap_minutes.unwrap_or(60);
    if minutes > 10_080 {
        return Err(ApiError::BadRequest(format!(
            "invalid JSON body: overlap_minutes must be 0 to 10080 (a week), got {minutes}"
        )));
    }
    check_devices(&body.devices)?;
    let overlap_until = (minutes > 0).then(|| Utc::now() + TimeDelta::minutes(i64::from(minutes)));
    let password = store::registry::generate_gateway_secret();
    let mut tx = scope.begin(state.db()).await?;
    let done = sql::rotate_credentials(&mut tx, scope.id, &gateway, &password, overlap_until)
        .await?
        .ok_or_else(|| gateway_not_found(&scope, &gateway))?;
    let target = format!("gateway:{gateway}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "gateway.rotate_credentials",
            &target,
            None,
            Some(serde_json::json!({ "previous_valid_until": done.previous_valid_until })),
        ),
    )
    .await?;
    tx.commit().await?;
    if done.previous_valid_until.is_none() {
        kick_from_brokers(&state, &format!("{}/{gateway}", scope.slug)).await;
    }
    Ok(Json(issued(
        &state,
        &scope,
        &gateway,
        password,
        &body.devices,
        done.previous_valid_until,
    )))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/gateways/{gateway}/credentials/revoke",
    security(("bearer" = ["tenant_admin"])),
    tag = "gateways",
    operation_id = "revoke_gateway_credentials",
    params(TenantScope, GatewayParam),
    responses(
        (status = 204, description = "Revoked: its next login is refused and every broker disconnects it now"),
        (status = 400, description = "Invalid gateway id", body = ErrorResponse),
        (status = 404, description = "Unknown gateway", body = ErrorResponse),
    )
)]
async fn revoke(
    State(state): State<ApiState>,
    scope: TenantScope,
    caller: Caller,
    GatewayParam(gateway): GatewayParam,
) -> Result<StatusCode, ApiError> {
    let mut tx = scope.begin(state.db()).await?;
    let done = sql::revoke_credentials(&mut tx, scope.id, &gateway)
        .await?
        .ok_or_else(|| gateway_not_found(&scope, &gateway))?;
    let target = format!("gateway:{gateway}");
    store::audit::record(
        &mut tx,
        &caller.audit(
            Some(scope.id),
            "gateway.revoke_credentials",
            &target,
            None,
            Some(serde_json::json!({ "revoked_at": done.revoked_at })),
        ),
    )
    .await?;
    tx.commit().await?;
    kick_from_brokers(&state, &format!("{}/{gateway}", scope.slug)).await;
    Ok(StatusCode::NO_CONTENT)
}
