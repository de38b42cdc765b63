//! Behavioural data over HTTP for small clients: `POST /v1/events/{type}`
//! with an NDJSON body, answered in the player API's envelope.

use engine::{Engine, Error};
use poem::{Body, Request, error::ReadBodyError, web::Data};
use poem_openapi::{
    OpenApi,
    param::Path,
    payload::{Binary, Json},
};
use serde_json::{Value, json};

use crate::{auth::authenticate, errors::envelope_error};

/// Larger bodies get 413; use a bucket source for bulk loads.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

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
        req: &Request,
        record_type: Path<String>,
        body: Binary<Body>,
    ) -> poem::Result<Json<Value>> {
        let p = authenticate(&engine, req).await.map_err(envelope_error)?;
        let bytes = body.0.into_bytes_limit(MAX_BODY_BYTES).await.map_err(|e| match e {
            ReadBodyError::PayloadTooLarge => poem::Error::from_response(
                poem::Response::builder()
                    .status(poem::http::StatusCode::PAYLOAD_TOO_LARGE)
                    .content_type("application/json")
                    .body(
                        json!({ "code": 413, "message": format!("the body is larger than {MAX_BODY_BYTES} bytes"), "data": null })
                            .to_string(),
                    ),
            ),
            other => envelope_error(Error::BadRequest(format!("cannot read the body: {other}"))),
        })?;
        let summary = engine
            .ingest_ndjson(&p, &record_type, &bytes)
            .await
            .map_err(envelope_error)?;
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
}
