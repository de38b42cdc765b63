//! REST compatibility routes, declared with poem-openapi so that
//! `/openapi.json` and Swagger UI at `/docs` describe them.

pub mod enums;
pub mod ingest;
pub mod models;
pub mod player;
pub mod predictions;
pub mod segments;
pub mod sources;
pub mod text;
pub mod traits;

use engine::{Engine, Error, auth::Principal};
use poem::{FromRequest, Request, RequestBody};
use uuid::Uuid;

use crate::{
    auth::authenticate,
    errors::{EnvelopeError, RestError},
};

fn engine_of(req: &Request) -> poem::Result<&Engine> {
    req.data::<Engine>().ok_or_else(|| {
        RestError::from(Error::internal("the engine is not in the request's data")).into()
    })
}

/// The caller of a traits-API route (`/api/v1/workspaces/{id}/…`):
/// authenticated, and addressing its own workspace (see [`workspace_scope`]).
pub struct WorkspaceScope(pub Principal);

impl<'a> FromRequest<'a> for WorkspaceScope {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let engine = engine_of(req)?;
        // `/api/v1/workspaces/{id}/…`: read from the path itself (poem-openapi
        // renames path variables internally).
        let id = req.uri().path().split('/').nth(4).unwrap_or_default();
        match workspace_scope(engine, req, id).await {
            Ok(p) => Ok(WorkspaceScope(p)),
            Err(e) => Err(e.into()),
        }
    }
}

/// The caller of a player-API route (`/v1/…`), authenticated by its key;
/// refusals in the `/v1` envelope.
pub struct PlayerKey(pub Principal);

impl<'a> FromRequest<'a> for PlayerKey {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let engine = engine_of(req)?;
        match authenticate(engine, req).await {
            Ok(p) => Ok(PlayerKey(p)),
            Err(e) => Err(EnvelopeError::from(e).into()),
        }
    }
}

/// Authenticates and checks the workspace addressing of the traits API:
/// `X-Workspace-ID` must be sent and equal the `{id}` in the path, and both
/// must be the key's workspace (another workspace is "not found").
pub async fn workspace_scope(
    engine: &Engine,
    req: &Request,
    path_id: &str,
) -> Result<Principal, RestError> {
    let p = authenticate(engine, req).await?;
    let header = req
        .headers()
        .get("x-workspace-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::BadRequest("the X-Workspace-ID header is required".into()))?;
    let header_id = Uuid::parse_str(header.trim()).map_err(|_| {
        Error::BadRequest(format!("X-Workspace-ID '{header}' is not a workspace id"))
    })?;
    let path_id = Uuid::parse_str(path_id).map_err(|_| Error::NotFound { what: "workspace" })?;
    if header_id != path_id {
        return Err(Error::BadRequest(
            "X-Workspace-ID does not match the workspace id in the path".into(),
        )
        .into());
    }
    if path_id != p.workspace_id {
        return Err(Error::NotFound { what: "workspace" }.into());
    }
    Ok(p)
}

/// A path id that is not a UUID names nothing.
pub fn path_uuid(value: &str, what: &'static str) -> Result<Uuid, RestError> {
    Ok(Uuid::parse_str(value).map_err(|_| Error::NotFound { what })?)
}
