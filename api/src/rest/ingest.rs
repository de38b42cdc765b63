//! Behavioural data over HTTP: `POST /v1/events/{type}` (NDJSON, for small
//! clients) and the PlayFab webhook, answered in the player API's envelope.

use engine::{Engine, Error};
use poem::{Body, Request, error::ReadBodyError, web::Data};
use poem_openapi::{
    OpenApi,
    param::{Path, Query},
    payload::{Binary, Json},
};
use serde_json::{Value, json};

use super::PlayerKey;
use crate::errors::EnvelopeError;

/// The default limit of `MAX_BODY_BYTES`: larger bodies get 413 (bulk loads go through sources).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The configured body limit, shared with the handlers.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

pub(crate) async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, EnvelopeError> {
    body.into_bytes_limit(limit).await.map_err(|e| match e {
        ReadBodyError::PayloadTooLarge => EnvelopeError::from(Error::PayloadTooLarge { limit }),
        other => EnvelopeError::from(Error::BadRequest(format!("cannot read the body: {other}"))),
    })
}

/// Every request body, whatever the route, is read up to `MAX_BODY_BYTES`
/// (bodies are parsed whole anyway); a larger one gets 413 in its route
/// family's error shape before any handler sees it.
pub async fn limit_body<E: poem::Endpoint>(
    next: E,
    mut req: Request,
    limit: usize,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse;
    let declared = req
        .header(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    let path = req.uri().path().to_owned();
    let refuse = |e: Error| Ok(crate::errors::error_for_path(&path, e));
    if declared.is_some_and(|n| n > limit as u64) {
        return refuse(Error::PayloadTooLarge { limit });
    }
    match req.take_body().into_bytes_limit(limit).await {
        Ok(bytes) => req.set_body(bytes),
        Err(ReadBodyError::PayloadTooLarge) => return refuse(Error::PayloadTooLarge { limit }),
        Err(other) => {
            return refuse(Error::BadRequest(format!("cannot read the body: {other}")));
        }
    }
    next.call(req).await.map(IntoResponse::into_response)
}

pub struct IngestApi;

#[OpenApi(tag = "super::traits::ApiTags::Ingestion")]
impl IngestApi {
    /// Load records of one type (`purchases`, `logins`, `actions`, `kpis`,
    /// `virtual_purchases`, `level_ups`, `items`, `social_dynamics`), one JSON
    /// object per line. Bad lines are quarantined; the answer counts both and
    /// lists the first errors with their line numbers.
    #[oai(path = "/v1/events/:record_type", method = "post")]
    async fn events(
        &self,
        engine: Data<&Engine>,
        limit: Data<&BodyLimit>,
        key: PlayerKey,
        record_type: Path<String>,
        body: Binary<Body>,
    ) -> Result<Json<Value>, EnvelopeError> {
        let p = key.0;
        let bytes = read_body(body.0, limit.0.0).await?;
        let summary = engine.ingest_ndjson(&p, &record_type, &bytes).await?;
        let errors: Vec<Value> = summary
            .errors
            .iter()
            .map(|r| json!({ "line": r.line_number, "byte_offset": r.byte_offset, "field": r.field, "message": r.message }))
            .collect();
        Ok(Json(json!({
            "code": 200,
            "message": "",
            "data": { "accepted": summary.accepted, "rejected": summary.rejected, "errors": errors },
        })))
    }

    /// PlayFab webhook: one PlayStream event or an array of them. Authenticated
    /// by `?api_key=` (an ingest or admin key), as PlayFab webhooks cannot send
    /// headers. Redelivered events (same `EventId`) are counted as duplicates.
    #[oai(path = "/v1/playfab", method = "post")]
    async fn playfab(
        &self,
        engine: Data<&Engine>,
        limit: Data<&BodyLimit>,
        api_key: Query<Option<String>>,
        body: Binary<Body>,
    ) -> Result<Json<Value>, EnvelopeError> {
        let key = api_key.0.filter(|k| !k.is_empty()).ok_or_else(|| {
            EnvelopeError::from(Error::Unauthenticated(
                "missing API key: add ?api_key=<key> to the webhook URL".into(),
            ))
        })?;
        let p = engine.authenticate(&key).await?;
        let bytes = read_body(body.0, limit.0.0).await?;
        let summary = engine.ingest_playfab(&p, &bytes).await?;
        let errors: Vec<Value> = summary
            .errors
            .iter()
            .map(|r| json!({ "event": r.line_number, "field": r.field, "message": r.message }))
            .collect();
        Ok(Json(json!({
            "code": 200,
            "message": "",
            "data": {
                "accepted": summary.accepted,
                "duplicate": summary.duplicate,
                "ignored": summary.ignored,
                "rejected": summary.rejected,
                "errors": errors,
            },
        })))
    }
}
