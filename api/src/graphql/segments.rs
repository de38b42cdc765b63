//! GraphQL for segments (filter trees, members), their personas, and the
//! psych-score prediction models.

use async_graphql::{
    Context, ID, InputObject, InputValueError, InputValueResult, Json, Object, Result, Scalar,
    ScalarType, SimpleObject, Value,
};
use chrono::{DateTime, Utc};
use engine::{
    entity::{personas, prediction_models, prediction_status, segments},
    segments::{PersonaCount as EnginePersonaCount, SegmentInput},
};

use super::{
    connection::{Conn, connection, id_cursor, page_request},
    enums::{ComputeStatus, PredictionStatus, SegmentChangeKind},
    query::scope,
    types::Job,
};
use crate::errors::GqlResultExt;

#[derive(Default)]
pub struct SegmentQuery;

#[derive(Default)]
pub struct SegmentMutation;

/// How many personas a segment is clustered into: a number from 1 to 20, or
/// `"auto"` (2 to 8, chosen by silhouette).
#[derive(Clone, Copy)]
pub struct PersonaCount(EnginePersonaCount);

#[Scalar]
impl ScalarType for PersonaCount {
    fn parse(value: Value) -> InputValueResult<Self> {
        let json = value
            .into_json()
            .map_err(|e| InputValueError::custom(e.to_string()))?;
        EnginePersonaCount::parse(&json)
            .map(PersonaCount)
            .map_err(|e| InputValueError::custom(e.to_string()))
    }

    fn to_value(&self) -> Value {
        match self.0 {
            EnginePersonaCount::Fixed(k) => Value::from(k),
            EnginePersonaCount::Auto => Value::from("auto"),
        }
    }
}

/// A member of a segment or persona.
#[derive(SimpleObject, Clone)]
pub struct Member {
    pub user_id: String,
}

fn members(page: engine::pagination::Page<String>) -> Result<Conn<Member>> {
    connection(page, Clone::clone, |user_id| Ok(Member { user_id })).gql()
}

/// A filter tree over traits and psych facets; `default` is every player.
#[derive(Clone)]
pub struct Segment(segments::Model);

#[Object]
impl Segment {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// The filter tree (null for the built-in `default` segment).
    async fn filter(&self) -> Option<Json<serde_json::Value>> {
        self.0.filter.clone().map(Json)
    }
    /// The built-in segment of all players.
    async fn builtin(&self) -> bool {
        self.0.builtin
    }
    async fn persona_count(&self) -> PersonaCount {
        PersonaCount(match self.0.persona_k {
            Some(k) => EnginePersonaCount::Fixed(k),
            None => EnginePersonaCount::Auto,
        })
    }
    async fn members_status(&self) -> ComputeStatus {
        self.0.members_status.into()
    }
    async fn members_error(&self) -> Option<&str> {
        self.0.members_error.as_deref()
    }
    async fn member_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let (engine, _) = scope(ctx)?;
        engine.segment_member_count(&self.0).await.gql()
    }
    async fn members_computed_at(&self) -> Option<DateTime<Utc>> {
        self.0.members_computed_at
    }
    /// Members in user-id order.
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Member>> {
        let (engine, p) = scope(ctx)?;
        let id = self.0.id.to_string();
        let page = page_request(first, after).gql()?;
        members(engine.segment_members(p, &id, page).await.gql()?)
    }
    /// `insufficient`: too few scored members to cluster.
    async fn personas_status(&self) -> ComputeStatus {
        self.0.personas_status.into()
    }
    async fn personas_error(&self) -> Option<&str> {
        self.0.personas_error.as_deref()
    }
    /// Members with psych scores (survey or predicted), the ones clustered.
    async fn scored_members(&self) -> i64 {
        self.0.scored_members
    }
    /// Mean score per category and facet over the scored members.
    async fn profile(&self) -> Option<Json<serde_json::Value>> {
        self.0.profile.clone().map(Json)
    }
    async fn personas_computed_at(&self) -> Option<DateTime<Utc>> {
        self.0.personas_computed_at
    }
    /// Personas, largest first (index 1).
    async fn personas(&self, ctx: &Context<'_>) -> Result<Vec<Persona>> {
        let (engine, p) = scope(ctx)?;
        let id = self.0.id.to_string();
        Ok(engine
            .personas(p, &id)
            .await
            .gql()?
            .into_iter()
            .map(Persona)
            .collect())
    }
}

/// One k-means cluster of a segment's scored members. Its index, id, name
/// and description stay with it when the segment is clustered again.
pub struct Persona(pub personas::Model);

#[Object]
impl Persona {
    /// From 1; numbered by size at the first clustering, then kept (a new
    /// cluster takes the next free index, a vanished one's is not reused for 90 days).
    async fn index(&self) -> i32 {
        self.0.persona_index
    }
    /// Stable across re-clusterings (null for personas not clustered since it existed).
    async fn id(&self) -> Option<ID> {
        self.0.id.map(Into::into)
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// From the facets that set it apart from the segment, e.g. `High Competition · Low Social`.
    async fn label(&self) -> &str {
        &self.0.label
    }
    /// Share of its previous members it kept at the last clustering (null: new).
    async fn stability(&self) -> Option<f64> {
        self.0.stability
    }
    async fn size(&self) -> i64 {
        self.0.size
    }
    /// `{category: {facet: mean score}}`.
    async fn profile(&self) -> Json<serde_json::Value> {
        Json(self.0.profile.clone())
    }
    async fn computed_at(&self) -> DateTime<Utc> {
        self.0.computed_at
    }
    /// Members in user-id order.
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Member>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let (segment, index) = (self.0.segment_id, self.0.persona_index);
        members(
            engine
                .persona_members(p, segment, index, page)
                .await
                .gql()?,
        )
    }
}

/// Absent fields stay; null clears.
#[derive(InputObject)]
pub struct UpdatePersonaInput {
    pub name: async_graphql::MaybeUndefined<String>,
    pub description: async_graphql::MaybeUndefined<String>,
}

/// The latest training of psych-score predictions.
#[derive(SimpleObject)]
pub struct Prediction {
    pub status: PredictionStatus,
    pub message: String,
    /// Players who completed the survey (the training set).
    pub completes: i64,
    /// Completes needed before anything is predicted (`PREDICTION_MIN_COMPLETES`).
    pub required: i64,
    pub predicted_players: i64,
    pub finished_at: DateTime<Utc>,
    pub facets: Vec<FacetModel>,
}

/// One facet's ridge model.
#[derive(SimpleObject)]
pub struct FacetModel {
    pub category: String,
    pub facet: String,
    /// k-fold cross-validated R² on the survey completes.
    pub r2: f64,
    /// The ridge penalty (λ on standardized traits) cross-validation chose.
    pub penalty: f64,
    pub train_size: i64,
    pub trained_at: DateTime<Utc>,
}

impl From<prediction_models::Model> for FacetModel {
    fn from(m: prediction_models::Model) -> Self {
        FacetModel {
            category: m.category,
            facet: m.facet,
            r2: m.r2,
            penalty: m.penalty,
            train_size: m.train_size,
            trained_at: m.trained_at,
        }
    }
}

fn prediction(
    status: prediction_status::Model,
    facets: Vec<prediction_models::Model>,
) -> Result<Prediction, engine::Error> {
    Ok(Prediction {
        status: status.status.into(),
        message: status.message,
        completes: status.completes,
        required: status.required,
        predicted_players: status.predicted_players,
        finished_at: status.finished_at,
        facets: facets.into_iter().map(Into::into).collect(),
    })
}

#[derive(InputObject)]
pub struct CreateSegmentInput {
    pub name: String,
    /// Derived from the name when absent.
    pub slug: Option<String>,
    pub description: Option<String>,
    /// `{"and"|"or": [...]}`, `{"not": {...}}` or a condition
    /// `{"trait"|"facet": ..., "op": ..., "value": ...}`.
    pub filter: Json<serde_json::Value>,
    /// Default 4.
    pub persona_count: Option<PersonaCount>,
}

#[derive(InputObject)]
pub struct UpdateSegmentInput {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub filter: Option<Json<serde_json::Value>>,
    pub persona_count: Option<PersonaCount>,
}

/// A player entering or leaving a segment at a recomputation.
#[derive(SimpleObject, Clone)]
pub struct SegmentChange {
    pub user_id: String,
    pub change: SegmentChangeKind,
    pub at: DateTime<Utc>,
}

/// How many players a filter admits before it is saved, and what each condition adds.
#[derive(SimpleObject)]
pub struct SegmentPreview {
    pub count: i64,
    /// The first user ids in order (`sample`, default 10, at most 100).
    pub sample_user_ids: Vec<String>,
    pub conditions: Vec<ConditionCount>,
}

/// Players one condition admits on its own; `path` as in filter errors (`filter.and[1]`).
#[derive(SimpleObject)]
pub struct ConditionCount {
    pub path: String,
    pub count: i64,
}

#[Object]
impl SegmentQuery {
    /// Who entered and who left the segment at its recomputations, newest first.
    async fn segment_changes(
        &self,
        ctx: &Context<'_>,
        segment: String,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<SegmentChange>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let page = engine.segment_changes(p, &segment, page).await.gql()?;
        connection(
            page,
            |c| c.seq.to_string(),
            |c| {
                Ok(SegmentChange {
                    change: c.change.into(),
                    user_id: c.user_id,
                    at: c.at,
                })
            },
        )
        .gql()
    }

    /// Sizes a filter tree as `createSegment` would take it; writes nothing.
    async fn preview_segment(
        &self,
        ctx: &Context<'_>,
        filter: Json<serde_json::Value>,
        sample: Option<i32>,
    ) -> Result<SegmentPreview> {
        let (engine, p) = scope(ctx)?;
        let sample = sample.map(|n| u64::try_from(n).unwrap_or(0));
        let preview = engine.preview_segment(p, &filter.0, sample).await.gql()?;
        Ok(SegmentPreview {
            count: preview.count,
            sample_user_ids: preview.sample_user_ids,
            conditions: preview
                .conditions
                .into_iter()
                .map(|(path, count)| ConditionCount { path, count })
                .collect(),
        })
    }
    /// The workspace's segments, oldest first.
    async fn segments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Segment>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let page = engine.segments_page(p, page).await.gql()?;
        connection(page, |s| id_cursor(s.id), |s| Ok(Segment(s))).gql()
    }

    /// A segment by id or slug (`default`: all players).
    async fn segment(&self, ctx: &Context<'_>, segment: String) -> Result<Segment> {
        let (engine, p) = scope(ctx)?;
        Ok(Segment(engine.segment(p, &segment).await.gql()?))
    }

    /// A persona by its stable id.
    async fn persona(&self, ctx: &Context<'_>, id: ID) -> Result<Persona> {
        let (engine, p) = scope(ctx)?;
        let id = uuid::Uuid::parse_str(&id)
            .map_err(|_| engine::Error::invalid("id", "is not a persona id"))
            .gql()?;
        Ok(Persona(engine.persona_by_id(p, id).await.gql()?))
    }

    /// Psych-score prediction: status and per-facet R² (null before the first training).
    async fn prediction(&self, ctx: &Context<'_>) -> Result<Option<Prediction>> {
        let (engine, p) = scope(ctx)?;
        let Some(status) = engine.prediction_status(p).await.gql()? else {
            return Ok(None);
        };
        let facets = engine.prediction_models(p).await.gql()?;
        Ok(Some(prediction(status, facets).gql()?))
    }
}

#[Object]
impl SegmentMutation {
    /// Creates a segment; its members and personas are computed by jobs.
    async fn create_segment(
        &self,
        ctx: &Context<'_>,
        input: CreateSegmentInput,
    ) -> Result<Segment> {
        let (engine, p) = scope(ctx)?;
        let input = SegmentInput {
            name: Some(input.name),
            slug: input.slug,
            description: input.description,
            filter: Some(input.filter.0),
            personas: input.persona_count.map(|k| k.0),
        };
        Ok(Segment(engine.create_segment(p, input).await.gql()?))
    }

    /// Changes a segment (only the fields given); a new filter recomputes its members.
    async fn update_segment(
        &self,
        ctx: &Context<'_>,
        segment: String,
        input: UpdateSegmentInput,
    ) -> Result<Segment> {
        let (engine, p) = scope(ctx)?;
        let input = SegmentInput {
            name: input.name,
            slug: input.slug,
            description: input.description,
            filter: input.filter.map(|f| f.0),
            personas: input.persona_count.map(|k| k.0),
        };
        Ok(Segment(
            engine.update_segment(p, &segment, input).await.gql()?,
        ))
    }

    async fn delete_segment(&self, ctx: &Context<'_>, segment: String) -> Result<bool> {
        let (engine, p) = scope(ctx)?;
        engine.delete_segment(p, &segment).await.gql()?;
        Ok(true)
    }

    /// Recomputes a segment's members and then its personas.
    async fn refresh_segment(&self, ctx: &Context<'_>, segment: String) -> Result<Job> {
        let (engine, p) = scope(ctx)?;
        Job::try_from(engine.refresh_segment(p, &segment).await.gql()?).gql()
    }

    /// Names or describes a persona (null clears); kept across re-clusterings.
    async fn update_persona(
        &self,
        ctx: &Context<'_>,
        segment: String,
        index: i32,
        input: UpdatePersonaInput,
    ) -> Result<Persona> {
        let (engine, p) = scope(ctx)?;
        let change = |v: async_graphql::MaybeUndefined<String>| match v {
            async_graphql::MaybeUndefined::Undefined => None,
            async_graphql::MaybeUndefined::Null => Some(None),
            async_graphql::MaybeUndefined::Value(v) => Some(Some(v)),
        };
        let (name, description) = (change(input.name), change(input.description));
        Ok(Persona(
            engine
                .update_persona(p, &segment, index, name, description)
                .await
                .gql()?,
        ))
    }

    /// Trains the psych-score models and predicts every player without survey scores.
    async fn train_prediction(&self, ctx: &Context<'_>) -> Result<Job> {
        let (engine, p) = scope(ctx)?;
        Job::try_from(engine.train_prediction(p).await.gql()?).gql()
    }
}
