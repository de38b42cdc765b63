//! The player API (`/v1/...`): survey registration and status, survey
//! details and erasing a player, in the `{"code","message","data"}` envelope.

use engine::{
    Engine, Error, auth::Principal, segments::personas::PersonaRoute, survey::unix_or_zero,
};
use poem::{Body, Request, web::Data};
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Path, Query},
    payload::{Binary, Json},
};
use serde_json::{Value, json};

use super::{
    PlayerKey,
    ingest::{BodyLimit, read_body},
};
use crate::errors::EnvelopeError;

fn envelope(message: &str, data: Value) -> Json<Value> {
    Json(json!({ "code": 200, "message": message, "data": data }))
}

/// The `id` of a `{"id": "..."}` body.
async fn id_from_body(body: Body, limit: usize) -> Result<String, EnvelopeError> {
    let bytes = read_body(body, limit).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        EnvelopeError::from(Error::BadRequest(format!(
            "the body is not JSON ({e}): send {{\"id\": \"<user id>\"}}"
        )))
    })?;
    match value.get("id") {
        Some(Value::String(s)) => Ok(s.clone()),
        // Numeric ids are common in game backends; they name the same player as their text.
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(EnvelopeError::from(Error::invalid(
            "id",
            "is required: send {\"id\": \"<user id>\"}",
        ))),
    }
}

/// A persona route's response, rendered (and cached) by the engine.
async fn persona_route(
    engine: &Engine,
    p: &Principal,
    req: &Request,
    segment: &str,
    persona: &str,
    route: PersonaRoute,
) -> Result<JsonBytes, EnvelopeError> {
    let rendered = engine.persona_route(p, segment, persona, route).await?;
    let vary = "Accept-Encoding".to_owned();
    Ok(
        if rendered.plain().len() >= GZIP_MIN_BYTES && accepts_gzip(req) {
            JsonBytes::Ok(Binary(rendered.gzip()), Some("gzip".into()), vary)
        } else {
            JsonBytes::Ok(Binary(rendered.plain()), None, vary)
        },
    )
}

/// Smaller bodies (the 404 envelopes, tiny profiles) are sent as they are:
/// gzip would hardly shrink them.
const GZIP_MIN_BYTES: usize = 256;

/// Whether `Accept-Encoding` allows gzip: named (or `x-gzip`) with a
/// non-zero quality, or else covered by `*`.
fn accepts_gzip(req: &Request) -> bool {
    let mut star = false;
    let items = req
        .headers()
        .get_all(poem::http::header::ACCEPT_ENCODING)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for item in items {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let allowed = !parts.any(|param| {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            name.trim().eq_ignore_ascii_case("q") && value.trim().parse::<f32>() == Ok(0.0)
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return allowed;
        }
        star |= coding == "*" && allowed;
    }
    star
}

/// JSON rendered ahead of time (the persona routes' cached bodies), gzipped
/// for clients that accept it.
#[derive(ApiResponse)]
pub enum JsonBytes {
    #[oai(status = 200, content_type = "application/json")]
    Ok(
        Binary<bytes::Bytes>,
        #[oai(header = "Content-Encoding")] Option<String>,
        #[oai(header = "Vary")] String,
    ),
}

pub struct PlayerApi;

#[OpenApi(tag = "super::traits::ApiTags::Players")]
impl PlayerApi {
    /// Register a player for the survey: the token goes into the survey link
    /// as `?playerid=`. While it is valid, registering again returns it.
    #[oai(path = "/v1/assessment/user/register", method = "post")]
    async fn register(
        &self,
        engine: Data<&Engine>,
        limit: Data<&BodyLimit>,
        key: PlayerKey,
        body: Binary<Body>,
    ) -> Result<Json<Value>, EnvelopeError> {
        let p = key.0;
        let id = id_from_body(body.0, limit.0.0).await?;
        let reg = engine.register_for_survey(&p, &id).await?;
        Ok(envelope(
            "",
            json!({ "expires_at": reg.expires_at.timestamp(), "token": reg.token, "status": reg.status }),
        ))
    }

    /// Whether a registered player has completed the survey.
    #[oai(path = "/v1/assessment/user/status", method = "get")]
    async fn status(
        &self,
        engine: Data<&Engine>,
        key: PlayerKey,
        id: Query<Option<String>>,
    ) -> Result<Json<Value>, EnvelopeError> {
        let p = key.0;
        let id = id.0.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            EnvelopeError::from(Error::BadRequest(
                "the id query parameter is required: ?id=<user id>".into(),
            ))
        })?;
        let reg = engine.survey_response(&p, &id).await?;
        Ok(envelope(
            "",
            json!({ "completed": reg.completed_at.is_some(), "completed_at": unix_or_zero(reg.completed_at) }),
        ))
    }

    /// The survey's status, titles and response statistics.
    #[oai(path = "/v1/assessment", method = "get")]
    async fn details(
        &self,
        engine: Data<&Engine>,
        key: PlayerKey,
    ) -> Result<Json<Value>, EnvelopeError> {
        let p = key.0;
        let survey = engine.survey(&p).await?;
        let stats = engine.survey_statistics(&p).await?;
        let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
        Ok(envelope(
            "survey details",
            json!({
                "result_ok": true,
                "data": {
                    "status": survey.status,
                    "created_on": time(survey.created_at),
                    "modified_on": time(survey.modified_at),
                    "completed_at": unix_or_zero(survey.closed_at),
                    "type": survey.survey_type,
                    "title": survey.title,
                    "internal_title": survey.internal_title,
                    "statistics": {
                        "Partial": stats.partial,
                        "Disqualified": stats.disqualified,
                        "Complete": stats.complete,
                    },
                },
            }),
        ))
    }

    /// User ids of a persona of a segment (`default`: all players; persona
    /// `all`: every member of the segment).
    #[oai(
        path = "/v1/segments/:segment_id/personas/:persona/user-ids",
        method = "get"
    )]
    async fn persona_user_ids(
        &self,
        engine: Data<&Engine>,
        key: PlayerKey,
        req: &Request,
        segment_id: Path<String>,
        persona: Path<String>,
    ) -> Result<JsonBytes, EnvelopeError> {
        persona_route(
            &engine,
            &key.0,
            req,
            &segment_id,
            &persona,
            PersonaRoute::UserIds,
        )
        .await
    }

    /// Mean psych scores of a persona (or of all scored members), by category and facet.
    #[oai(
        path = "/v1/segments/:segment_id/personas/:persona/traits",
        method = "get"
    )]
    async fn persona_traits(
        &self,
        engine: Data<&Engine>,
        key: PlayerKey,
        req: &Request,
        segment_id: Path<String>,
        persona: Path<String>,
    ) -> Result<JsonBytes, EnvelopeError> {
        persona_route(
            &engine,
            &key.0,
            req,
            &segment_id,
            &persona,
            PersonaRoute::Traits,
        )
        .await
    }

    /// Erase a player everywhere (events, player, trait values, survey data,
    /// quarantined lines). Idempotent; audited with the rows removed per table.
    #[oai(path = "/v1/userData", method = "delete")]
    async fn erase(
        &self,
        engine: Data<&Engine>,
        limit: Data<&BodyLimit>,
        key: PlayerKey,
        body: Binary<Body>,
    ) -> Result<Json<Value>, EnvelopeError> {
        let p = key.0;
        let id = id_from_body(body.0, limit.0.0).await?;
        let report = engine.erase_player(&p, &id).await?;
        Ok(envelope(
            "user data removed",
            json!({ "removed": report.rows_removed, "total": report.audit.total_rows, "audit_id": report.audit.id }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_read_with_its_qualities() {
        let accepts = |value: Option<&str>| {
            let mut req = Request::builder();
            if let Some(v) = value {
                req = req.header("Accept-Encoding", v);
            }
            accepts_gzip(&req.finish())
        };
        assert!(accepts(Some("gzip")));
        assert!(accepts(Some("deflate, GZIP;q=0.5, br")));
        assert!(accepts(Some("x-gzip")));
        assert!(accepts(Some("*")));
        assert!(!accepts(None));
        assert!(!accepts(Some("identity")));
        assert!(!accepts(Some("br, deflate")));
        assert!(!accepts(Some("gzip;q=0")));
        assert!(
            !accepts(Some("gzip; q=0.0, *")),
            "refused by name, not taken by *"
        );
        assert!(!accepts(Some("*;q=0")));
    }
}
