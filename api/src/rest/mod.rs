//! REST compatibility routes, declared with poem-openapi so that
//! `/openapi.json` and Swagger UI at `/docs` describe them.

pub mod ingest;
pub mod models;
pub mod player;
pub mod segments;
pub mod sources;
pub mod text;
pub mod traits;

use engine::{Engine, Error, auth::Principal};
use poem::Request;
use uuid::Uuid;

use crate::{auth::authenticate, errors::RestError};

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
