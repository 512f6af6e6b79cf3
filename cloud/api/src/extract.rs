//! Request extractors and parameter parsing.
//!
//! axum's own `Path`/`Query` rejections are plain-text 400s with generic wording; here
//! every parameter goes through code that knows its name and its rules, so a bad one is
//! answered with [`ApiError::InvalidParameter`]: which parameter, what is wrong, what was
//! sent.
//!
//! - Path parameters: [`TenantScope`] (`{tenant}`, resolved to the tenant, 404 if
//!   unknown), [`WellParam`] (`{well}`), [`GatewayParam`] (`{gateway}`). They document
//!   themselves in the OpenAPI document (`IntoParams`), so a handler lists them in
//!   `params(...)` and cannot describe a parameter differently from how it parses it.
//! - Query strings: [`ApiQuery<T>`] over a struct whose fields are all `Option<String>`
//!   with `deny_unknown_fields`: deserializing can then only fail on an unknown or
//!   repeated parameter (reported by name), and each value is parsed by a helper below
//!   ([`required`], [`parse_time`], [`parse_limit`], [`parse_day_range`], [`parse_month`],
//!   …) that reports its own problems.
//! - What several areas share lives here too, never in one area's file for the others to
//!   import: the well lookup ([`require_well`], [`well_not_found`]), the gateway's 404
//!   ([`gateway_not_found`]), the broker kick after a change that refuses logins
//!   ([`kick_from_brokers`]), the [`SiteRef`] and [`Device`] DTOs, and the device name and
//!   profile checks ([`check_device`]).

use axum::extract::{FromRequestParts, Query, RawPathParams};
use axum::http::request::Parts;
use chrono::format::ParseErrorKind;
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Transaction};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Required, Schema};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiState};
use analytics::reports::ReportMonth;
use store::gateways::DeviceRow;
use store::identity::Role;
use store::production::{self as sql, WellSummary};
use store::{ApiKeyId, Db, DeviceId, SiteId, TenantId, UserId, WellId};

/// Longest parameter value echoed back in an error message.
const ECHO_MAX: usize = 64;

/// Earliest time accepted in a query.
pub(crate) const MIN_TIME: &str = "1970-01-01T00:00:00Z";
/// Time at and after which a query time is refused.
pub(crate) const MAX_TIME: &str = "2200-01-01T00:00:00Z";

/// A parameter value as shown in an error message (truncated if long).
pub(crate) fn shown(raw: &str) -> String {
    if raw.chars().count() <= ECHO_MAX {
        format!("`{raw}`")
    } else {
        let head: String = raw.chars().take(ECHO_MAX).collect();
        format!("`{head}…`")
    }
}

/// The value of a path parameter of the matched route.
async fn path_param(parts: &mut Parts, name: &'static str) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|rejection| {
            ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
        })?;
    params
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| {
            ApiError::Internal(format!("the matched route has no `{name}` path parameter").into())
        })
}

/// Checks a slug (tenant or gateway id): the MQTT topic id rules.
pub(crate) fn check_slug(name: &'static str, raw: &str) -> Result<(), ApiError> {
    wire::topic::validate_id(raw).map_err(|_| {
        ApiError::path(
            name,
            format!(
                "must be 1-63 characters of a-z, 0-9, '_' and '-' starting with a letter or digit, got {}",
                shown(raw)
            ),
        )
    })
}

fn path_parameter(name: &str, schema: Schema, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn slug_schema(example: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[a-z0-9][a-z0-9_-]{0,62}$"))
        .examples([serde_json::json!(example)])
        .into()
}

/// The tenant a request acts in, as authorized (put into the request by the access layer, read by [`TenantScope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TenantGrant {
    pub(crate) id: TenantId,
    pub(crate) slug: String,
    pub(crate) role: Role,
    pub(crate) plan: String,
}

/// The tenant a request is about, from the `{tenant}` path segment, as the access layer
/// authorized it ([`crate::access`]): the caller has at least the operation's declared
/// role there, the tenant exists and is not suspended. An unknown tenant, or one the
/// caller has no role in, was already answered 404 (ids do not leak).
///
/// Handlers then only ever query through [`TenantScope::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    /// Database id of the tenant.
    pub id: TenantId,
    /// Tenant id as in the path (and in MQTT topics).
    pub slug: String,
    /// The caller's role in the tenant (at least the operation's declared role).
    pub role: Role,
    /// The tenant's plan.
    pub plan: String,
}

impl TenantScope {
    /// A transaction that sees only this tenant's rows (row-level security).
    pub async fn begin(&self, db: &Db) -> Result<Transaction<'static, Postgres>, ApiError> {
        Ok(db.begin_tenant(self.id).await?)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TenantScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let grant = parts.extensions.get::<TenantGrant>().ok_or_else(|| {
            ApiError::Internal(
                "TenantScope on a route whose declared security is not a tenant role".into(),
            )
        })?;
        Ok(TenantScope {
            id: grant.id,
            slug: grant.slug.clone(),
            role: grant.role,
            plan: grant.plan.clone(),
        })
    }
}

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// A JSON request body of type `T`. A body that is not JSON, does not match `T` (unknown
/// fields included, where `T` denies them) or holds a NUL character is a 400 naming the
/// problem; a body over the size limit is a 413 — both with the JSON error body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = <axum::body::Bytes as axum::extract::FromRequest<S>>::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(rejection.body_text())
                } else {
                    ApiError::BadRequest(format!("cannot read the body: {}", rejection.body_text()))
                }
            })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
        // PostgreSQL text cannot hold NUL; refuse it here with a clear message.
        if holds_nul(&value) {
            return Err(ApiError::BadRequest(
                "invalid JSON body: text must not contain the NUL character (\\u0000)".to_owned(),
            ));
        }
        let value = T::deserialize(value)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
        Ok(JsonBody(value))
    }
}

impl IntoParams for TenantScope {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![path_parameter(
            "tenant",
            slug_schema("acme"),
            "Tenant id (as in the gateways' MQTT topics).",
        )]
    }
}

/// The `{well}` path segment: a positive well id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WellParam(pub WellId);

impl<S: Send + Sync> FromRequestParts<S> for WellParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = path_param(parts, "well").await?;
        match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(WellParam(WellId(id))),
            _ => Err(ApiError::path(
                "well",
                format!(
                    "must be a well id (a positive integer), got {}",
                    shown(&raw)
                ),
            )),
        }
    }
}

impl IntoParams for WellParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .examples([serde_json::json!(1)])
            .into();
        vec![path_parameter(
            "well",
            schema,
            "Well id (`id` in the well list).",
        )]
    }
}

/// Path parameters that are positive database ids: `{user}` ([`UserParam`]) and `{key}`
/// ([`KeyParam`]); each parses to its id type or answers a 400 naming the parameter.
macro_rules! id_param {
    ($(#[$doc:meta] $name:ident($id:ty), $param:literal, $description:literal;)*) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub $id);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
                let raw = path_param(parts, $param).await?;
                match raw.parse::<i64>() {
                    Ok(id) if id > 0 => Ok($name(<$id>::from(id))),
                    _ => Err(ApiError::path(
                        $param,
                        format!("must be a positive integer id, got {}", shown(&raw)),
                    )),
                }
            }
        }

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                let schema = ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(1))
                    .examples([serde_json::json!(1)])
                    .into();
                vec![path_parameter($param, schema, $description)]
            }
        }
    )*};
}

id_param! {
    /// The `{user}` path segment: a user id.
    UserParam(UserId), "user", "User id (`user_id` in the member list).";
    /// The `{key}` path segment: an API key id.
    KeyParam(ApiKeyId), "key", "API key id (`id` in the key list).";
    /// The `{site}` path segment: a site id.
    SiteParam(SiteId), "site", "Site id (`id` in the site list).";
    /// The `{source}` path segment: an emission source id.
    SourceParam(i64), "source", "Emission source id (`id` in the source list).";
    /// The `{intervention}` path segment: a maintenance or failure record id.
    InterventionParam(i64), "intervention", "Record id (`id` in the well's list).";
    /// The `{device}` path segment: a device id.
    DeviceParam(DeviceId), "device", "Device id (`id` in the gateway's device list).";
    /// The `{alert}` path segment: an alert id.
    AlertParam(i64), "alert", "Alert id (`id` in the alert list).";
    /// The `{job}` path segment: a training job id.
    TrainingJobParam(i64), "job", "Training job id (`id` in the job list).";
    /// The `{silence}` path segment: a silence id.
    SilenceParam(i64), "silence", "Silence id (`id` in the silence list).";
    /// The `{rule}` path segment: a detection rule id.
    RuleParam(i64), "rule", "Rule id (`id` in the rule list).";
    /// The `{destination}` path segment: an alert destination id.
    DestinationParam(i64), "destination", "Destination id (`id` in the destination list).";
    /// The `{version}` path segment: a failure-risk model version.
    ModelVersionParam(i64), "version", "Model version (`version` in the model list).";
}

/// The server's sealing key for tenant secrets (`[tenancy] ca_key`); `unavailable` is the
/// error when it is not configured.
pub(crate) fn sealing_key(
    state: &ApiState,
    unavailable: impl FnOnce() -> ApiError,
) -> Result<store::certificates::CaKey, ApiError> {
    let secret = state.options().ca_key.as_ref().ok_or_else(unavailable)?;
    Ok(store::certificates::CaKey::from_secret(secret.expose())?)
}

/// The `{gateway}` path segment: a gateway id as in MQTT topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for GatewayParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = path_param(parts, "gateway").await?;
        check_slug("gateway", &raw)?;
        Ok(GatewayParam(raw))
    }
}

impl IntoParams for GatewayParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![path_parameter(
            "gateway",
            slug_schema("gw-001"),
            "Gateway id (as in its MQTT topics).",
        )]
    }
}

/// A query string deserialized into `T`; an unknown or repeated parameter is a 400
/// naming it. Use a `T` of `Option<String>` fields (see the module docs).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                // serde_path_to_error prefixes the field (`page: unknown field `page`…`);
                // drop the prefix when the message names the field anyway.
                let detail = match detail.split_once(": ") {
                    Some((field, rest)) if rest.contains(&format!("`{field}`")) => rest,
                    _ => detail,
                };
                ApiError::BadRequest(format!("invalid query string: {detail}"))
            })
    }
}

/// Paging parameters of the lists keyed by a numeric id (wells, rejections).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Most items to return: 1 to the server's `max_page_size` (default 100).
    #[param(value_type = Option<u32>, minimum = 1, example = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page; omit it for the first page.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
}

/// Paging parameters of the lists keyed by a slug (gateways).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SlugPageQuery {
    /// Most items to return: 1 to the server's `max_page_size` (default 100).
    #[param(value_type = Option<u32>, minimum = 1, example = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page; omit it for the first page.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub cursor: Option<String>,
}

/// Default page size of the list endpoints (capped by `max_page_size`).
pub(crate) const DEFAULT_PAGE: u32 = 100;

/// A required query parameter.
pub(crate) fn required(name: &'static str, raw: Option<String>) -> Result<String, ApiError> {
    match raw {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ApiError::query(name, "is required")),
    }
}

/// `limit`: an integer from 1 to `max`, `default` when absent.
pub(crate) fn parse_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    let Some(raw) = raw else {
        return Ok(default.min(max));
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::query(
            "limit",
            format!("must be an integer from 1 to {max}, got {}", shown(raw)),
        )),
    }
}

/// An RFC 3339 time between [`MIN_TIME`] and [`MAX_TIME`].
pub(crate) fn parse_time(name: &'static str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    let time = DateTime::parse_from_rfc3339(raw)
        .map_err(|e| {
            // `+` means space in a query string: `…T10:00:00+02:00` arrives as `… 02:00`.
            let hint = if raw.contains(' ') {
                " (a `+` in a query string must be sent as `%2B`)"
            } else if e.kind() == ParseErrorKind::OutOfRange {
                " (a date or time field is out of range)"
            } else {
                ""
            };
            ApiError::query(
                name,
                format!(
                    "must be an RFC 3339 timestamp such as 2026-11-03T10:00:00Z, got {}{hint}",
                    shown(raw)
                ),
            )
        })?
        .with_timezone(&Utc);
    let (min, max) = (bound(MIN_TIME), bound(MAX_TIME));
    if time < min || time >= max {
        return Err(ApiError::query(
            name,
            format!(
                "must be from {MIN_TIME} to before {MAX_TIME}, got {}",
                shown(raw)
            ),
        ));
    }
    Ok(time)
}

/// A time as the API writes it: RFC 3339, UTC, `Z`, fractional seconds only when present.
pub(crate) fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn bound(text: &str) -> DateTime<Utc> {
    text.parse().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The `cursor` of a list keyed by a positive integer id.
pub(crate) fn parse_id_cursor(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|raw| match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(bad_cursor(raw)),
    })
    .transpose()
}

/// The `cursor` of a list keyed by a slug.
pub(crate) fn parse_slug_cursor(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    raw.map(|raw| match wire::topic::validate_id(raw) {
        Ok(()) => Ok(raw),
        Err(_) => Err(bad_cursor(raw)),
    })
    .transpose()
}

fn bad_cursor(raw: &str) -> ApiError {
    ApiError::query(
        "cursor",
        format!(
            "must be the `next_cursor` of a previous page, got {}",
            shown(raw)
        ),
    )
}

/// Cuts the `limit + 1` rows of a keyset query to a page: the rows to return and, if a
/// further page exists, the cursor (key of the last row returned).
pub(crate) fn split_page<T>(
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(key);
    (rows, next)
}

// ---------------------------------------------------------------------------------------
// Dates and months (production, emissions, reports).

/// Longest range of a production read.
pub(crate) const MAX_READ_DAYS: i64 = 366;

/// A date parameter `YYYY-MM-DD`.
pub(crate) fn parse_day(name: &'static str, raw: &str) -> Result<NaiveDate, ApiError> {
    strict_date(raw)
        .filter(|d| (1970..2200).contains(&d.year()))
        .ok_or_else(|| {
            ApiError::query(
                name,
                format!(
                    "must be a date YYYY-MM-DD between 1970 and 2199, such as 2024-03-01, got {}",
                    shown(raw)
                ),
            )
        })
}

/// A date written exactly `YYYY-MM-DD` (chrono alone also accepts `2024-3-1`).
pub(crate) fn strict_date(raw: &str) -> Option<NaiveDate> {
    let b = raw.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    shape
        .then(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
        .flatten()
}

/// `from` (inclusive) and `to` (exclusive) dates, `from < to`, at most `max_days` apart.
pub(crate) fn parse_day_range(
    from: Option<String>,
    to: Option<String>,
    max_days: i64,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let from = parse_day("from", &required("from", from)?)?;
    let to = parse_day("to", &required("to", to)?)?;
    if from >= to {
        return Err(ApiError::query(
            "from",
            format!("must be before `to` (from {from}, to {to}; `to` is exclusive)"),
        ));
    }
    let days = (to - from).num_days();
    if days > max_days {
        return Err(ApiError::query(
            "to",
            format!("the range spans {days} days, more than the {max_days} allowed"),
        ));
    }
    Ok((from, to))
}

/// A month parameter `YYYY-MM`.
pub(crate) fn parse_month(raw: &str) -> Result<ReportMonth, ApiError> {
    let bad = || {
        ApiError::query(
            "month",
            format!(
                "must be a month YYYY-MM between 1970-01 and 2199-12, such as 2024-03, got {}",
                shown(raw)
            ),
        )
    };
    let (year, month) = raw.split_once('-').ok_or_else(bad)?;
    if year.len() != 4 || month.len() != 2 {
        return Err(bad());
    }
    let year: i32 = year.parse().map_err(|_| bad())?;
    let month: u32 = month.parse().map_err(|_| bad())?;
    let m = ReportMonth { year, month };
    if !(1970..2200).contains(&year) || m.first_day().is_none() {
        return Err(bad());
    }
    Ok(m)
}

/// First day of a month and first day of the next.
pub(crate) fn month_range(month: ReportMonth) -> (NaiveDate, NaiveDate) {
    let first = month.first_day().unwrap_or_default();
    let days = i64::from(month.days().unwrap_or(0));
    (first, first + TimeDelta::days(days))
}

// ---------------------------------------------------------------------------------------
// Shared by several areas.

/// The well, or 404 in this tenant.
pub(crate) async fn require_well(
    conn: &mut sqlx::PgConnection,
    scope: &TenantScope,
    well: WellId,
) -> Result<WellSummary, ApiError> {
    sql::tenant_well(conn, scope.id, well)
        .await?
        .ok_or_else(|| well_not_found(scope, well))
}

/// The 404 of a well that is not in the tenant.
pub(crate) fn well_not_found(scope: &TenantScope, well: WellId) -> ApiError {
    ApiError::NotFound(format!("well {well} of tenant `{}`", scope.slug))
}

/// Site reference.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteRef {
    /// Site id.
    pub id: i64,
    /// Site name.
    pub name: String,
}

/// A surface location in degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationDto {
    /// Latitude, -90 to 90.
    #[schema(example = 31.9)]
    pub latitude: f64,
    /// Longitude, -180 to 180.
    #[schema(example = -102.1)]
    pub longitude: f64,
}

impl From<(f64, f64)> for LocationDto {
    fn from((latitude, longitude): (f64, f64)) -> LocationDto {
        LocationDto {
            latitude,
            longitude,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_with_the_bound_in_the_message() {
        assert_eq!(parse_limit(None, 100, 50).unwrap(), 50);
        assert_eq!(parse_limit(Some("7"), 100, 50).unwrap(), 7);
        for bad in ["0", "51", "-1", "ten", "", "1.5"] {
            let e = parse_limit(Some(bad), 100, 50).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid query parameter `limit`: must be an integer from 1 to 50"),
                "{e}"
            );
        }
    }

    #[test]
    fn times_are_rfc3339_within_bounds() {
        let t = parse_time("from", "2026-11-03T10:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-03T08:00:00+00:00");
        let e = parse_time("from", "2026-11-03T10:00:00 02:00")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`%2B`") && e.contains("`from`"), "{e}");
        let e = parse_time("to", "yesterday").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid query parameter `to`: must be an RFC 3339"),
            "{e}"
        );
        let e = parse_time("to", "2300-01-01T00:00:00Z")
            .unwrap_err()
            .to_string();
        assert!(e.contains("before 2200-01-01T00:00:00Z"), "{e}");
    }

    #[test]
    fn long_values_are_truncated_in_messages() {
        let long = "x".repeat(500);
        let e = parse_limit(Some(&long), 1, 1).unwrap_err().to_string();
        assert!(e.len() < 200 && e.ends_with("…`"), "{e}");
    }

    #[test]
    fn pages_are_cut_with_the_last_key_as_cursor() {
        let (page, next) = split_page(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((page, next), (vec![1, 2], Some("2".to_owned())));
        let (page, next) = split_page(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((page, next), (vec![1, 2], None));
    }

    #[test]
    fn cursors_must_come_from_a_previous_page() {
        assert_eq!(parse_id_cursor(Some("42")).unwrap(), Some(42));
        assert_eq!(parse_id_cursor(None).unwrap(), None);
        assert!(parse_id_cursor(Some("0")).is_err());
        assert_eq!(parse_slug_cursor(Some("gw-1")).unwrap(), Some("gw-1"));
        let e = parse_slug_cursor(Some("GW 1")).unwrap_err().to_string();
        assert!(e.starts_with("invalid query parameter `cursor`"), "{e}");
    }

    #[test]
    fn dates_months_and_ranges_are_checked() {
        assert_eq!(
            parse_day("from", "2024-03-01").unwrap(),
            "2024-03-01".parse::<NaiveDate>().unwrap()
        );
        for bad in [
            "2024-3-1",
            "2024-02-30",
            "yesterday",
            "1969-12-31",
            "2024-03-01T00:00:00Z",
        ] {
            let e = parse_day("from", bad).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid query parameter `from`: must be a date"),
                "{e}"
            );
        }
        assert_eq!(parse_month("2024-03").unwrap().to_string(), "2024-03");
        for bad in ["2024-13", "2024-3", "24-03", "2024/03", "march"] {
            let e = parse_month(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid query parameter `month`"), "{e}");
        }
        let e = parse_day_range(Some("2024-03-02".into()), Some("2024-03-01".into()), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be before `to`"), "{e}");
        let e = parse_day_range(Some("2024-01-01".into()), Some("2024-03-01".into()), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("60 days, more than the 10 allowed"), "{e}");
        let e = parse_day_range(None, Some("2024-03-01".into()), 10)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid query parameter `from`: is required");
    }
}

// ---------------------------------------------------------------------------------------
// Invitations (people, tenant creation).

/// An invitation sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationDto {
    /// The invited user's id (existing or new account).
    pub user_id: i64,
    /// Email it was sent to.
    pub email: String,
    /// Role granted on acceptance.
    pub role: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// Sends an invitation (shared with tenant creation): a one-time link by email.
pub(crate) async fn send_invitation(
    state: &ApiState,
    conn: &mut sqlx::PgConnection,
    tenant: (store::TenantId, &str),
    email: &str,
    display_name: &str,
    role: Role,
) -> Result<InvitationDto, ApiError> {
    let mailer = state.mailer()?;
    let (user, _) = store::identity::ensure_user(
        conn,
        &store::identity::NewUser {
            email,
            display_name,
            password_hash: None,
            platform_admin: false,
        },
    )
    .await?;
    let (token, hash) = crate::credentials::new_token(crate::credentials::ONE_TIME_PREFIX);
    let ttl = state.access().options.invitation_ttl;
    let expires_at = Utc::now() + TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX);
    store::identity::insert_one_time_token(
        conn,
        &hash,
        user,
        store::identity::TokenPurpose::Invitation {
            tenant: tenant.0,
            role,
        },
        expires_at,
    )
    .await?;
    let mail = mail::Mail {
        to: email.trim().to_owned(),
        subject: format!("You are invited to {} on WellPulse", tenant.1),
        body: format!(
            "You are invited to join tenant `{}` on WellPulse as {}.\n\n\
             To accept, open:\n{}/accept-invitation?token={token}\n\n\
             The link works once, for {}.\n",
            tenant.1,
            role.as_str(),
            mailer.public_url(),
            humantime::format_duration(ttl)
        ),
    };
    mailer
        .send(&mail)
        .await
        .map_err(|e| ApiError::MailUnavailable(e.to_string()))?;
    Ok(InvitationDto {
        user_id: user.0,
        email: email.trim().to_owned(),
        role: role.as_str().to_owned(),
        expires_at,
    })
}

/// A device behind a gateway.
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    /// Device id.
    pub id: i64,
    /// Device name from the agent configuration.
    #[schema(example = "rpc-1")]
    pub name: String,
    /// Firmware profile id.
    #[schema(example = "rod-pump-controller")]
    pub profile: String,
    /// Well the device measures, if linked.
    pub well_id: Option<i64>,
    /// Whether the current birth lists the device (devices of earlier sessions are kept).
    pub current: bool,
    /// Number of series (metrics) of the device.
    pub series_count: i64,
}

impl From<DeviceRow> for Device {
    fn from(d: DeviceRow) -> Device {
        Device {
            id: d.id.0,
            name: d.name,
            profile: d.profile,
            well_id: d.well_id.map(|w| w.0),
            current: d.current,
            series_count: d.series_count,
        }
    }
}

/// Refuses a device name the agent's config would refuse, or a profile that is not built
/// in; `field` names the JSON field in the message (e.g. `devices[2]`).
pub(crate) fn check_device(field: &str, name: &str, profile: &str) -> Result<(), ApiError> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !name_ok {
        return Err(ApiError::BadRequest(format!(
            "invalid JSON body: {field}name {name:?} must be 1-64 of letters, digits, '.', '_' and '-'"
        )));
    }
    if !firmware_profiles::builtin()
        .iter()
        .any(|(id, _)| *id == profile)
    {
        return Err(ApiError::BadRequest(format!(
            "invalid JSON body: {field}profile {profile:?} is not a built-in firmware profile"
        )));
    }
    Ok(())
}

/// The 404 of a gateway id the tenant does not have.
pub(crate) fn gateway_not_found(scope: &TenantScope, gateway: &str) -> ApiError {
    ApiError::NotFound(format!("gateway `{gateway}` of tenant `{}`", scope.slug))
}

/// Asks every broker to disconnect `target` (`tenant/gateway`, or a tenant slug for all its
/// gateways), after the change that refuses its next login has committed. A failure is
/// logged, not returned: the refusal at the next login holds anyway.
pub(crate) async fn kick_from_brokers(state: &ApiState, target: &str) {
    if let Err(error) = state.db().notify_broker_kick(target).await {
        tracing::warn!(%error, %target, "cannot ask the brokers to disconnect");
    }
}

/// An optional positive id in the query string (`well=17`).
pub(crate) fn parse_query_id(
    name: &'static str,
    raw: Option<&str>,
) -> Result<Option<i64>, ApiError> {
    match raw {
        None => Ok(None),
        Some(raw) => match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Some(id)),
            _ => Err(ApiError::query(
                name,
                format!("must be a positive integer id, got {}", shown(raw)),
            )),
        },
    }
}

/// An optional value of the query string that must be one of `allowed`.
pub(crate) fn parse_choice<'a>(
    name: &'static str,
    raw: Option<&'a str>,
    allowed: &[&str],
) -> Result<Option<&'a str>, ApiError> {
    match raw {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v)),
        Some(v) => Err(ApiError::query(
            name,
            format!("must be one of {}, got {}", allowed.join(", "), shown(v)),
        )),
    }
}
