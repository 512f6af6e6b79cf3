//! The API's one error type and its mapping to HTTP.
//!
//! | variant              | status | `code`               | message                           |
//! |----------------------|--------|----------------------|-----------------------------------|
//! | `InvalidParameter`   | 400    | `invalid_parameter`  | names the parameter and the problem |
//! | `BadRequest`         | 400    | `bad_request`        | e.g. unknown query parameter      |
//! | `Unauthenticated`    | 401    | `unauthenticated`    | what is missing or wrong          |
//! | `Forbidden`          | 403    | `forbidden`          | the role the action needs         |
//! | `TenantSuspended`    | 403    | `tenant_suspended`   | the tenant is suspended           |
//! | `TenantDeleting`     | 403    | `tenant_deleting`    | scheduled for deletion            |
//! | `QuotaExceeded`      | 403    | `quota_exceeded`     | the quota, the plan, limit, usage |
//! | `NotFound`           | 404    | `not_found`          | names what was not found          |
//! | `NoRoute`            | 404    | `no_route`           | method and path                   |
//! | `MethodNotAllowed`   | 405    | `method_not_allowed` | method and path                   |
//! | `Conflict`           | 409    | `conflict`           | what conflicts                    |
//! | `PayloadTooLarge`    | 413    | `payload_too_large`  | the limit                         |
//! | `MailUnavailable`    | 503    | `mail_unavailable`   | mail not configured or refused    |
//! | `CertificatesUnavailable` | 503 | `certificates_unavailable` | no usable `[tenancy] ca_key` |
//! | `SecretsUnavailable` | 503 | `secrets_unavailable` | destination secrets cannot be sealed |
//! | `InvalidSignature`   | 400    | `invalid_signature`  | why a webhook signature is refused |
//! | `BillingUnavailable` | 503    | `billing_unavailable` | billing not configured, or Stripe unreachable |
//! | `Unprocessable`      | 422    | `unprocessable`      | summary, plus `problems`          |
//! | `TooManyRequests`    | 429    | `rate_limited`       | which limit; `Retry-After` header |
//! | `Unavailable`        | 503    | `unavailable`        | generic; details only in the log  |
//! | `Timeout`            | 503    | `timeout`            | the configured limit              |
//! | `Internal`           | 500    | `internal`           | generic; details only in the log  |
//!
//! The body is always `{"error": {"code", "message", "request_id"}}` ([`ErrorResponse`]);
//! a 422 adds `problems`, every reason the result cannot be produced from the stored data
//! ([`UnprocessableResponse`]: a report that would not be a valid filing, a decline fit
//! without enough history, intensities for a year no factor covers). The public message
//! is the variant's `Display`; for `Unavailable` and `Internal` it says nothing about the
//! cause, which is logged (with its source chain and the request id) at `error` level so
//! an operator can find it from the id a client quotes. 503s and 429s carry `Retry-After`;
//! 401s carry `WWW-Authenticate: Bearer`. A 401 never says whether an email or a key
//! exists; another tenant's resources answer 404, never 403, so ids do not leak.
//!
//! The request id comes from a task-local set by the request middleware
//! ([`super::middleware`]), so an error can be rendered anywhere inside a request —
//! handler, extractor, fallback, timeout — without threading the id through.

use std::fmt;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use analytics::reports::ValidationProblem;
use store::DbError;

tokio::task_local! {
    /// The id of the request being served.
    pub(crate) static REQUEST_ID: String;
}

/// The id of the current request (a fresh one outside a request, which does not happen
/// in the router but keeps the body well-formed).
pub(crate) fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| uuid::Uuid::new_v4().simple().to_string())
}

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLocation {
    /// A path segment.
    Path,
    /// The query string.
    Query,
}

impl fmt::Display for ParamLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamLocation::Path => "path",
            ParamLocation::Query => "query",
        })
    }
}

/// Everything a request can fail with (see the module docs for the HTTP mapping).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is missing, malformed or out of range.
    #[error("invalid {location} parameter `{name}`: {problem}")]
    InvalidParameter {
        /// Path or query.
        location: ParamLocation,
        /// Parameter name.
        name: &'static str,
        /// What is wrong, with the offending value.
        problem: String,
    },
    /// The request is malformed as a whole (e.g. an unknown query parameter).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials: missing, malformed, expired or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but its role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The tenant is suspended: its data is kept, but nobody may use it.
    #[error("tenant `{0}` is suspended; its data is kept, contact your provider to reactivate it")]
    TenantSuspended(String),
    /// The tenant is scheduled for deletion: access refused, data kept until then.
    #[error(
        "tenant `{0}` is scheduled for deletion; until then a platform administrator can reactivate it"
    )]
    TenantDeleting(String),
    /// The tenant's plan does not allow one more of something.
    #[error("quota `{quota}` exceeded: plan `{plan}` allows {limit}, the tenant has {used}")]
    QuotaExceeded {
        /// Which quota (`wells`, `gateways`).
        quota: &'static str,
        /// The plan.
        plan: String,
        /// Its limit.
        limit: u32,
        /// What the tenant has.
        used: i64,
    },
    /// A rate limit was exceeded; retry after the given time.
    #[error("{message}")]
    TooManyRequests {
        /// Which limit.
        message: String,
        /// When a retry can succeed.
        retry_after: Duration,
    },
    /// A resource does not exist (in this tenant).
    #[error("{0} not found")]
    NotFound(String),
    /// The request body is larger than the server accepts.
    #[error("the request body is too large: {0}")]
    PayloadTooLarge(String),
    /// Outgoing mail is not configured or the relay refused the message.
    #[error("{0}")]
    MailUnavailable(String),
    /// Gateway client certificates cannot be issued: `[tenancy] ca_key` is not set, or
    /// does not open the tenant CA's key.
    #[error("{0}")]
    CertificatesUnavailable(String),
    /// An alert destination's secret cannot be sealed or opened: `[tenancy] ca_key` is not
    /// set, or does not open it.
    #[error("{0}")]
    SecretsUnavailable(String),
    /// A webhook whose signature does not verify (missing, garbled, stale, wrong).
    #[error("{0}")]
    InvalidSignature(String),
    /// Billing is not configured on this server (`[billing]`), or Stripe cannot be
    /// reached or refused the call.
    #[error("{0}")]
    BillingUnavailable(String),
    /// No route has this path.
    #[error("no route for {method} {path}")]
    NoRoute {
        /// Request method.
        method: Method,
        /// Request path.
        path: String,
    },
    /// The path exists but not with this method.
    #[error("method {method} is not allowed for {path}")]
    MethodNotAllowed {
        /// Request method.
        method: Method,
        /// Request path.
        path: String,
    },
    /// The request conflicts with existing data.
    #[error("{0}")]
    Conflict(String),
    /// A well-formed request whose result cannot be produced from the stored data.
    #[error("{message}")]
    Unprocessable {
        /// Summary.
        message: String,
        /// Every problem found (empty when the message says it all).
        problems: Vec<ProblemDto>,
    },
    /// The database cannot be reached or is not set up.
    #[error("the database is unavailable; retry later")]
    Unavailable(#[source] DbError),
    /// The request took longer than the configured timeout.
    #[error("the request did not complete within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// A bug or an unexpected failure.
    #[error("internal error; the details are logged under this request id")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A bad query parameter.
    pub fn query(name: &'static str, problem: impl Into<String>) -> ApiError {
        ApiError::InvalidParameter {
            location: ParamLocation::Query,
            name,
            problem: problem.into(),
        }
    }

    /// A bad path parameter.
    pub fn path(name: &'static str, problem: impl Into<String>) -> ApiError {
        ApiError::InvalidParameter {
            location: ParamLocation::Path,
            name,
            problem: problem.into(),
        }
    }

    /// A 422 with only a message.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            message: message.into(),
            problems: Vec::new(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidParameter { .. }
            | ApiError::BadRequest(_)
            | ApiError::InvalidSignature(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_)
            | ApiError::TenantSuspended(_)
            | ApiError::TenantDeleting(_)
            | ApiError::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) | ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MailUnavailable(_)
            | ApiError::CertificatesUnavailable(_)
            | ApiError::SecretsUnavailable(_)
            | ApiError::BillingUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidParameter { .. } => "invalid_parameter",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::TenantSuspended(_) => "tenant_suspended",
            ApiError::TenantDeleting(_) => "tenant_deleting",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::NotFound(_) => "not_found",
            ApiError::NoRoute { .. } => "no_route",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::MailUnavailable(_) => "mail_unavailable",
            ApiError::CertificatesUnavailable(_) => "certificates_unavailable",
            ApiError::SecretsUnavailable(_) => "secrets_unavailable",
            ApiError::InvalidSignature(_) => "invalid_signature",
            ApiError::BillingUnavailable(_) => "billing_unavailable",
            ApiError::Unprocessable { .. } => "unprocessable",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> ApiError {
        match error {
            DbError::NotFound(what) => ApiError::NotFound(what),
            DbError::CaKey(why) => ApiError::CertificatesUnavailable(format!(
                "gateway client certificates cannot be issued: {why}"
            )),
            DbError::Invalid { what, reason } => {
                ApiError::BadRequest(format!("invalid {what}: {reason}"))
            }
            // The database cannot be reached or used right now: 503, try again later.
            ref e if e.transience().is_temporary() => ApiError::Unavailable(error),
            DbError::Sqlx(sqlx::Error::Database(ref db)) if db.is_unique_violation() => {
                ApiError::Conflict("the request conflicts with an existing record".to_owned())
            }
            DbError::Sqlx(sqlx::Error::Database(ref db)) if db.is_foreign_key_violation() => {
                ApiError::Conflict(
                    "the record is still referenced by others (or refers to one that does not exist)"
                        .to_owned(),
                )
            }
            // Text PostgreSQL cannot store (a NUL character, invalid encoding): the
            // request's fault, never a server error.
            DbError::Sqlx(sqlx::Error::Database(ref db))
                if matches!(db.code().as_deref(), Some("22021" | "22P05")) =>
            {
                ApiError::BadRequest(
                    "a text value contains a character that cannot be stored (e.g. \\u0000)"
                        .to_owned(),
                )
            }
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> ApiError {
        ApiError::from(DbError::from(error))
    }
}

/// The error object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code: `invalid_parameter`, `bad_request`, `not_found`,
    /// `no_route`, `method_not_allowed`, `conflict`, `unavailable`, `timeout`, `internal`.
    #[schema(example = "invalid_parameter")]
    pub code: String,
    /// Human-readable explanation; for 400s it names the parameter and the problem.
    #[schema(
        example = "invalid query parameter `from`: must be before `to` (from 2026-11-03T12:00:00Z, to 2026-11-03T10:00:00Z)"
    )]
    pub message: String,
    /// Id of the request (also in the `x-request-id` response header); quote it when
    /// reporting a problem.
    #[schema(example = "5f0c7d3e9b2a4c61a8e4d2f1b3c5a7e9")]
    pub request_id: String,
}

/// Body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// One reason a result cannot be produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProblemDto {
    /// What the problem is about, e.g. `lease #1 (08 12345 SMITH UNIT)`.
    #[schema(example = "lease #1 (08 12345 SMITH UNIT)")]
    pub subject: String,
    /// Field concerned, e.g. `oil.production`.
    #[schema(example = "oil.production")]
    pub field: String,
    /// What is wrong.
    #[schema(
        example = "2 day(s) with missing or incomplete data (first: 2024-03-05); fill the gaps or enter manual corrections before filing"
    )]
    pub message: String,
}

impl From<ValidationProblem> for ProblemDto {
    fn from(p: ValidationProblem) -> ProblemDto {
        ProblemDto {
            subject: p.subject,
            field: p.field,
            message: p.message,
        }
    }
}

/// The error object of a 422.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnprocessableBody {
    /// Always `unprocessable`.
    #[schema(example = "unprocessable")]
    pub code: String,
    /// Summary.
    pub message: String,
    /// Id of the request.
    pub request_id: String,
    /// Every problem found (empty when the message says it all).
    pub problems: Vec<ProblemDto>,
}

/// Body of a 422 response.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnprocessableResponse {
    /// The error.
    pub error: UnprocessableBody,
}

/// Displays an error with its source chain, for logs.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let request_id = current_request_id();
        let code = self.code();
        if status.is_server_error() {
            tracing::error!(%request_id, code, error = %Chain(&self), "request failed");
        } else {
            tracing::debug!(%request_id, code, error = %self, "request refused");
        }
        if let ApiError::Unprocessable { message, problems } = self {
            let body = UnprocessableResponse {
                error: UnprocessableBody {
                    code: code.to_owned(),
                    message,
                    request_id,
                    problems,
                },
            };
            return (status, Json(body)).into_response();
        }
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(5),
            _ => None,
        };
        let body = ErrorResponse {
            error: ErrorBody {
                code: code.to_owned(),
                message: self.to_string(),
                request_id,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wellpulse\""),
            );
        }
        response
    }
}

/// Fallback for paths no route matches.
pub(crate) async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method,
        path: uri.path().to_owned(),
    }
}

/// Fallback for a known path with an unsupported method.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method,
        path: uri.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_follow_the_table() {
        let db_down = || DbError::Sqlx(sqlx::Error::PoolTimedOut);
        let cases: [(ApiError, u16, &str); 10] = [
            (ApiError::query("from", "x"), 400, "invalid_parameter"),
            (ApiError::BadRequest("x".into()), 400, "bad_request"),
            (ApiError::NotFound("well 1".into()), 404, "not_found"),
            (
                ApiError::NoRoute {
                    method: Method::GET,
                    path: "/x".into(),
                },
                404,
                "no_route",
            ),
            (
                ApiError::MethodNotAllowed {
                    method: Method::POST,
                    path: "/health".into(),
                },
                405,
                "method_not_allowed",
            ),
            (ApiError::Conflict("x".into()), 409, "conflict"),
            (ApiError::unprocessable("x"), 422, "unprocessable"),
            (ApiError::from(db_down()), 503, "unavailable"),
            (ApiError::Timeout(Duration::from_secs(1)), 503, "timeout"),
            (
                ApiError::from(DbError::Sqlx(sqlx::Error::RowNotFound)),
                500,
                "internal",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.code(), code, "{error}");
        }
    }

    #[test]
    fn messages_name_the_parameter_and_hide_internal_causes() {
        assert_eq!(
            ApiError::query("limit", "must be at most 100, got `500`").to_string(),
            "invalid query parameter `limit`: must be at most 100, got `500`"
        );
        let internal = ApiError::from(DbError::Corrupt {
            what: "stored quality",
            reason: "secret detail 42".into(),
        });
        assert!(!internal.to_string().contains("secret detail"));
        let down = ApiError::from(DbError::Sqlx(sqlx::Error::Protocol(
            "password=hunter2".into(),
        )));
        assert!(!down.to_string().contains("hunter2"));
        assert_eq!(
            ApiError::Timeout(Duration::from_millis(2500)).to_string(),
            "the request did not complete within 2s 500ms"
        );
    }

    #[test]
    fn not_found_and_not_migrated_map_to_404_and_503() {
        assert_eq!(
            ApiError::from(DbError::NotFound("gateway 7".into())).to_string(),
            "gateway 7 not found"
        );
        assert_eq!(
            ApiError::from(DbError::NotMigrated).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
