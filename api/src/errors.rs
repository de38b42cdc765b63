//! The one place where engine error codes become HTTP statuses and GraphQL errors.

use async_graphql::ErrorExtensions;
use engine::Error;
use poem::{Response, http::StatusCode};
use serde_json::json;

pub fn http_status(e: &Error) -> StatusCode {
    match e {
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) | Error::HttpsRequired => StatusCode::FORBIDDEN,
        Error::NotFound { .. } | Error::Missing(_) => StatusCode::NOT_FOUND,
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::InvalidInput { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Conflict(_) | Error::Duplicate(_) => StatusCode::CONFLICT,
        Error::Expired(_) => StatusCode::GONE,
        Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The `Retry-After` header's value (seconds) for errors that have one.
pub fn retry_after(e: &Error) -> Option<String> {
    match e {
        Error::RateLimited { retry_after_secs } => Some(retry_after_secs.to_string()),
        _ => None,
    }
}

/// Internal errors are logged with their cause; the client sees only the code.
fn log(e: &Error) {
    match e {
        Error::Internal(cause) => tracing::error!(error = %cause, "internal error"),
        Error::Unavailable(msg) => tracing::warn!(%msg, "dependency unavailable"),
        _ => {}
    }
}

pub fn graphql_error(e: Error) -> async_graphql::Error {
    log(&e);
    let code = e.code();
    let field = e.field().map(str::to_owned);
    async_graphql::Error::new(e.to_string()).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some(field) = &field {
            ext.set("field", field.as_str());
        }
    })
}

/// `?` for engine results inside resolvers, keeping the stable code.
pub trait GqlResultExt<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResultExt<T> for Result<T, Error> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(graphql_error)
    }
}

/// A GraphQL-shaped error response for failures before execution (auth, TLS).
pub fn graphql_http_error(e: Error) -> Response {
    log(&e);
    let mut error = json!({ "message": e.to_string(), "extensions": { "code": e.code() } });
    if let Some(field) = e.field() {
        error["extensions"]["field"] = json!(field);
    }
    Response::builder()
        .status(http_status(&e))
        .content_type("application/json")
        .body(json!({ "data": null, "errors": [error] }).to_string())
}

/// The variant of a REST family's error enum for an HTTP status (both
/// families answer the same statuses, each in its own body).
macro_rules! by_status {
    ($family:ident, $status:expr, $body:expr) => {
        match $status {
            400 => $family::BadRequest($body),
            401 => $family::Unauthenticated($body),
            403 => $family::Forbidden($body),
            404 => $family::NotFound($body),
            405 => $family::MethodNotAllowed($body),
            409 => $family::Conflict($body),
            410 => $family::Gone($body),
            413 => $family::PayloadTooLarge($body),
            415 => $family::UnsupportedMediaType($body),
            422 => $family::Invalid($body),
            503 => $family::Unavailable($body),
            _ => $family::Internal($body),
        }
    };
}

/// The player API's envelope on errors: `{"code": <HTTP status>, "message", "data": null}`.
#[derive(poem_openapi::Object)]
pub struct EnvelopeBody {
    /// The HTTP status.
    pub code: u16,
    pub message: String,
    /// Always null on errors.
    pub data: Option<serde_json::Value>,
}

/// Every error of the player API (`/v1`), one variant per status, in its
/// envelope. Handlers answer `Result<_, EnvelopeError>` and use `?`.
#[derive(poem_openapi::ApiResponse)]
pub enum EnvelopeError {
    #[oai(status = 400)]
    BadRequest(poem_openapi::payload::Json<EnvelopeBody>),
    #[oai(status = 401)]
    Unauthenticated(poem_openapi::payload::Json<EnvelopeBody>),
    #[oai(status = 403)]
    Forbidden(poem_openapi::payload::Json<EnvelopeBody>),
    #[oai(status = 404)]
    NotFound(poem_openapi::payload::Json<EnvelopeBody>),
    #[oai(status = 405)]
    MethodNotAllowed(poem_openapi::payload::Json<EnvelopeBody>),
    #[oai(status = 409)]
    Conflict(poem_openapi::payload::Json<EnvelopeBody>),
    #[oai(status = 410)]
    Gone(poem_openapi::payload::Json<EnvelopeBody>),
    #[oai(status = 413)]
    PayloadTooLarge(poem_openapi::payload::Json<EnvelopeBody>),
    #[oai(status = 415)]
    UnsupportedMediaType(poem_openapi::payload::Json<EnvelopeBody>),
    #[oai(status = 422)]
    Invalid(poem_openapi::payload::Json<EnvelopeBody>),
    /// Too many requests; `Retry-After` says when to try again (seconds).
    #[oai(status = 429)]
    TooManyRequests(
        poem_openapi::payload::Json<EnvelopeBody>,
        #[oai(header = "Retry-After")] String,
    ),
    #[oai(status = 500)]
    Internal(poem_openapi::payload::Json<EnvelopeBody>),
    #[oai(status = 503)]
    Unavailable(poem_openapi::payload::Json<EnvelopeBody>),
}

impl From<Error> for EnvelopeError {
    fn from(e: Error) -> Self {
        log(&e);
        let status = http_status(&e);
        let body = poem_openapi::payload::Json(EnvelopeBody {
            code: status.as_u16(),
            message: e.to_string(),
            data: None,
        });
        if let Some(wait) = retry_after(&e) {
            return EnvelopeError::TooManyRequests(body, wait);
        }
        by_status!(EnvelopeError, status.as_u16(), body)
    }
}

/// The envelope error as a poem error (answers made outside a handler).
pub fn envelope_error(e: Error) -> poem::Error {
    EnvelopeError::from(e).into()
}

/// An error in the shape of the route family `path` belongs to: the player
/// API's envelope under `/v1/`, GraphQL's under `/graphql`, else the plain
/// JSON error body. For failures answered before a handler runs.
pub fn error_for_path(path: &str, e: Error) -> Response {
    if path.starts_with("/v1/") {
        envelope_error(e).into_response()
    } else if path.starts_with("/graphql") {
        graphql_http_error(e)
    } else {
        json_http_error(e)
    }
}

/// What a request body that does not fit its route's schema is: 422 when
/// the JSON was read but a value has the wrong type (a number where the
/// document says string), 400 when the body is not JSON at all.
/// poem-openapi names the type, not the field, so the field is `body`.
fn payload_error(reason: &str) -> Error {
    const AT: &str = " (occurred while parsing \"";
    match reason.find(AT) {
        Some(at) => {
            let within = reason.rsplit('"').nth(1).unwrap_or("body");
            Error::invalid(
                "body",
                format!("{} (in {within})", reason[..at].trim_end_matches('.')),
            )
        }
        None => Error::BadRequest(format!("request body: {reason}")),
    }
}

/// Errors raised before a handler runs (an unreadable body, a bad path
/// parameter, an unsupported content type, an unknown route or method) in
/// the error shape of the route family they were meant for, with
/// `Content-Type: application/json` like every other error.
pub async fn family_errors<E: poem::Endpoint>(
    next: E,
    req: poem::Request,
) -> poem::Result<Response> {
    use poem::IntoResponse;
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let e = match next.call(req).await {
        Ok(r) => return Ok(r.into_response()),
        Err(e) => e,
    };
    let mapped = if let Some(p) = e.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>()
    {
        payload_error(&p.reason)
    } else if let Some(p) = e.downcast_ref::<poem_openapi::error::ParseParamError>() {
        Error::invalid(p.name, &p.reason)
    } else if let Some(p) = e.downcast_ref::<poem_openapi::error::ParsePathError>() {
        Error::BadRequest(format!("path: {p}"))
    } else if let Some(c) = e.downcast_ref::<poem_openapi::error::ContentTypeError>() {
        Error::UnsupportedMediaType(format!("{c}: send application/json"))
    } else if e.is::<poem::error::NotFoundError>() {
        Error::Missing(format!("no route {method} {path}"))
    } else if e.is::<poem::error::MethodNotAllowedError>() {
        Error::MethodNotAllowed(format!("{path} does not take {method}"))
    } else {
        return Err(e);
    };
    Ok(error_for_path(&path, mapped))
}

/// The error body of the traits, sources and segments API.
#[derive(poem_openapi::Object)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(poem_openapi::Object)]
pub struct ErrorDetail {
    /// Stable machine code, e.g. `invalid_input`.
    pub code: String,
    pub message: String,
    /// The input at fault (`invalid_input`).
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
}

/// Every error of the traits, sources and segments API, one variant per
/// status, so the OpenAPI document lists them with their body. Handlers
/// answer `Result<_, RestError>` and use `?` on engine results.
#[derive(poem_openapi::ApiResponse)]
pub enum RestError {
    /// Malformed request: a missing header, an unreadable body.
    #[oai(status = 400)]
    BadRequest(poem_openapi::payload::Json<ErrorBody>),
    /// No API key, or an unknown or revoked one.
    #[oai(status = 401)]
    Unauthenticated(poem_openapi::payload::Json<ErrorBody>),
    /// The key's role does not allow this, or HTTPS is required.
    #[oai(status = 403)]
    Forbidden(poem_openapi::payload::Json<ErrorBody>),
    /// Not found (also for another workspace's objects).
    #[oai(status = 404)]
    NotFound(poem_openapi::payload::Json<ErrorBody>),
    #[oai(status = 405)]
    MethodNotAllowed(poem_openapi::payload::Json<ErrorBody>),
    /// Conflicts with the current state (a slug taken, a trait in use).
    #[oai(status = 409)]
    Conflict(poem_openapi::payload::Json<ErrorBody>),
    #[oai(status = 410)]
    Gone(poem_openapi::payload::Json<ErrorBody>),
    /// The body is larger than MAX_BODY_BYTES.
    #[oai(status = 413)]
    PayloadTooLarge(poem_openapi::payload::Json<ErrorBody>),
    #[oai(status = 415)]
    UnsupportedMediaType(poem_openapi::payload::Json<ErrorBody>),
    /// A field is invalid; `field` names it.
    #[oai(status = 422)]
    Invalid(poem_openapi::payload::Json<ErrorBody>),
    /// Too many requests; `Retry-After` says when to try again (seconds).
    #[oai(status = 429)]
    TooManyRequests(
        poem_openapi::payload::Json<ErrorBody>,
        #[oai(header = "Retry-After")] String,
    ),
    /// An internal error; details are in the server log.
    #[oai(status = 500)]
    Internal(poem_openapi::payload::Json<ErrorBody>),
    /// A dependency (database, queue, storage) is unavailable.
    #[oai(status = 503)]
    Unavailable(poem_openapi::payload::Json<ErrorBody>),
}

impl From<Error> for RestError {
    fn from(e: Error) -> Self {
        log(&e);
        let status = http_status(&e);
        let body = poem_openapi::payload::Json(ErrorBody {
            error: ErrorDetail {
                code: e.code().to_owned(),
                message: e.to_string(),
                field: e.field().map(str::to_owned),
            },
        });
        if let Some(wait) = retry_after(&e) {
            return RestError::TooManyRequests(body, wait);
        }
        by_status!(RestError, status.as_u16(), body)
    }
}

/// The plain JSON error body of non-GraphQL routes: `{"error":{"code","message"}}`.
pub fn json_http_error(e: Error) -> Response {
    log(&e);
    let mut body = json!({ "error": { "code": e.code(), "message": e.to_string() } });
    if let Some(field) = e.field() {
        body["error"]["field"] = json!(field);
    }
    Response::builder()
        .status(http_status(&e))
        .content_type("application/json")
        .body(body.to_string())
}
