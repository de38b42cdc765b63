//! Segments over REST (`/api/v1/workspaces/{id}/segments…`), beside the
//! traits API and with its addressing rules. `{segment}` is an id or a slug.

use super::enums::ComputeStatus;
use super::text::{Text, text};
use engine::pagination::PageRequest;
use engine::{
    Engine, Error,
    entity::segments,
    segments::{PersonaCount, SegmentInput},
};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, param::Query, payload::Json};
use serde_json::Value;

use super::{
    WorkspaceScope,
    traits::{Deleted, iso},
};
use crate::errors::RestError;

pub struct SegmentsApi;

/// A persona of a segment: its index, id, name and description stay with it
/// when the segment is clustered again.
#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct PersonaObject {
    index: i32,
    /// Stable across re-clusterings (null until the persona is clustered again after an upgrade).
    id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    /// From the facets that set it apart, e.g. `High Competition · Low Social`.
    label: String,
    /// Share of its previous members kept at the last clustering (null: new).
    stability: Option<f64>,
    size: i64,
    /// `{category: {facet: mean score}}`.
    profile: Value,
    computed_at: String,
}

impl From<engine::entity::personas::Model> for PersonaObject {
    fn from(m: engine::entity::personas::Model) -> Self {
        PersonaObject {
            index: m.persona_index,
            id: m.id.map(|i| i.to_string()),
            name: m.name,
            description: m.description,
            label: m.label,
            stability: m.stability,
            size: m.size,
            profile: m.profile,
            computed_at: iso(m.computed_at),
        }
    }
}

/// Absent fields stay; null clears.
#[derive(Object)]
pub struct PersonaBody {
    name: poem_openapi::types::MaybeUndefined<String>,
    description: poem_openapi::types::MaybeUndefined<String>,
}

fn change(v: poem_openapi::types::MaybeUndefined<String>) -> Option<Option<String>> {
    match v {
        poem_openapi::types::MaybeUndefined::Undefined => None,
        poem_openapi::types::MaybeUndefined::Null => Some(None),
        poem_openapi::types::MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct SegmentObject {
    id: String,
    workspace_id: String,
    name: String,
    slug: String,
    description: String,
    /// The filter tree; null for the built-in `default` segment.
    filter: Option<Value>,
    builtin: bool,
    /// A number, or `"auto"`.
    personas: Value,
    members_status: ComputeStatus,
    members_error: Option<String>,
    member_count: i64,
    personas_status: ComputeStatus,
    personas_error: Option<String>,
    scored_members: i64,
    created_at: String,
    updated_at: String,
}

impl SegmentObject {
    fn new(s: segments::Model, member_count: i64) -> Self {
        SegmentObject {
            id: s.id.to_string(),
            workspace_id: s.workspace_id.to_string(),
            name: s.name,
            slug: s.slug,
            description: s.description,
            filter: s.filter,
            builtin: s.builtin,
            personas: s.persona_k.map_or(Value::from("auto"), Value::from),
            members_status: s.members_status.into(),
            members_error: s.members_error,
            member_count,
            personas_status: s.personas_status.into(),
            personas_error: s.personas_error,
            scored_members: s.scored_members,
            created_at: iso(s.created_at),
            updated_at: iso(s.updated_at),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct SegmentBody {
    name: Option<Text>,
    slug: Option<Text>,
    description: Option<Text>,
    /// `{"and"|"or": [...]}`, `{"not": {...}}` or `{"trait"|"facet", "op", "value"}`.
    filter: Option<Value>,
    /// Persona count: 1..20 or `"auto"` (default 4).
    personas: Option<Value>,
}

impl TryFrom<SegmentBody> for SegmentInput {
    type Error = Error;
    fn try_from(b: SegmentBody) -> Result<Self, Error> {
        Ok(SegmentInput {
            name: text(b.name),
            slug: text(b.slug),
            description: text(b.description),
            filter: b.filter,
            personas: b.personas.as_ref().map(PersonaCount::parse).transpose()?,
        })
    }
}

#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct MembersObject {
    user_ids: Vec<String>,
    has_next_page: bool,
    /// Pass as `after` for the next page.
    next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum CreatedSegment {
    #[oai(status = 201)]
    Created(Json<SegmentObject>),
}

async fn render(engine: &Engine, s: segments::Model) -> Result<SegmentObject, RestError> {
    let count = engine.segment_member_count(&s).await?;
    Ok(SegmentObject::new(s, count))
}

#[OpenApi(tag = "super::traits::ApiTags::Segments")]
impl SegmentsApi {
    /// List the workspace's segments, `default` first.
    #[oai(path = "/api/v1/workspaces/:id/segments", method = "get")]
    async fn list(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
    ) -> Result<Json<Vec<SegmentObject>>, RestError> {
        let p = scope.0;
        let counted = engine.list_segments_counted(&p).await?;
        Ok(Json(
            counted
                .into_iter()
                .map(|(s, count)| SegmentObject::new(s, count))
                .collect(),
        ))
    }

    /// Create a segment; members and personas are computed by jobs.
    #[oai(path = "/api/v1/workspaces/:id/segments", method = "post")]
    async fn create(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        body: Json<SegmentBody>,
    ) -> Result<CreatedSegment, RestError> {
        let p = scope.0;
        let input = SegmentInput::try_from(body.0)?;
        let s = engine.create_segment(&p, input).await?;
        Ok(CreatedSegment::Created(Json(render(&engine, s).await?)))
    }

    /// Get a segment by id or slug.
    #[oai(path = "/api/v1/workspaces/:id/segments/:segment", method = "get")]
    async fn get(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        segment: Path<String>,
    ) -> Result<Json<SegmentObject>, RestError> {
        let p = scope.0;
        let s = engine.segment(&p, &segment).await?;
        Ok(Json(render(&engine, s).await?))
    }

    /// Change a segment: only the fields sent.
    #[oai(path = "/api/v1/workspaces/:id/segments/:segment", method = "put")]
    async fn update(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        segment: Path<String>,
        body: Json<SegmentBody>,
    ) -> Result<Json<SegmentObject>, RestError> {
        let p = scope.0;
        let input = SegmentInput::try_from(body.0)?;
        let s = engine.update_segment(&p, &segment, input).await?;
        Ok(Json(render(&engine, s).await?))
    }

    /// A segment's personas by index.
    #[oai(
        path = "/api/v1/workspaces/:id/segments/:segment/personas",
        method = "get"
    )]
    async fn personas(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        segment: Path<String>,
    ) -> Result<Json<Vec<PersonaObject>>, RestError> {
        let p = scope.0;
        let found = engine.personas(&p, &segment).await?;
        Ok(Json(found.into_iter().map(Into::into).collect()))
    }

    /// Name or describe a persona (null clears); kept across re-clusterings.
    #[oai(
        path = "/api/v1/workspaces/:id/segments/:segment/personas/:index",
        method = "patch"
    )]
    async fn update_persona(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        segment: Path<String>,
        index: Path<i32>,
        body: Json<PersonaBody>,
    ) -> Result<Json<PersonaObject>, RestError> {
        let p = scope.0;
        let body = body.0;
        let updated = engine
            .update_persona(
                &p,
                &segment,
                index.0,
                change(body.name),
                change(body.description),
            )
            .await?;
        Ok(Json(updated.into()))
    }

    /// Delete a segment with its members and personas (not `default`).
    #[oai(path = "/api/v1/workspaces/:id/segments/:segment", method = "delete")]
    async fn delete(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        segment: Path<String>,
    ) -> Result<Json<Deleted>, RestError> {
        let p = scope.0;
        engine.delete_segment(&p, &segment).await?;
        Ok(Json(Deleted::status_deleted()))
    }

    /// Members in user-id order, a page at a time.
    #[oai(
        path = "/api/v1/workspaces/:id/segments/:segment/members",
        method = "get"
    )]
    async fn members(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        segment: Path<String>,
        limit: Query<Option<u64>>,
        after: Query<Option<String>>,
    ) -> Result<Json<MembersObject>, RestError> {
        let p = scope.0;
        let page = engine
            .segment_members(&p, &segment, PageRequest::new(limit.0, after.0))
            .await?;
        Ok(Json(MembersObject {
            next_cursor: page
                .has_next_page
                .then(|| page.items.last().cloned())
                .flatten(),
            user_ids: page.items,
            has_next_page: page.has_next_page,
        }))
    }
}
