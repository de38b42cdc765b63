//! GraphQL for traits: definitions, history, runs, values and player profiles.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use engine::{
    entity::{trait_runs, trait_versions, traits},
    traits::{
        TraitInput,
        definition::{
            ResultType as EngineResultType, TraitStatus as EngineTraitStatus,
            TraitType as EngineTraitType,
        },
    },
};

use super::{
    connection::{Conn, connection, id_cursor, page_request, parse_id},
    enums::{ResultType, RunStatus, RunTrigger, TraitStatus, TraitType},
    query::scope,
};
use crate::errors::GqlResultExt;

#[derive(Default)]
pub struct TraitQuery;

#[derive(Default)]
pub struct TraitMutation;

/// A trait definition. `config` is type-specific, as in the REST API.
#[derive(Clone)]
pub struct Trait(pub(super) traits::Model);

#[Object]
impl Trait {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn parent_model_id(&self) -> ID {
        self.0.parent_model_id.into()
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
    async fn trait_type(&self) -> TraitType {
        self.0.trait_type.into()
    }
    async fn config(&self) -> Json<serde_json::Value> {
        Json(self.0.config.clone())
    }
    async fn result_type(&self) -> ResultType {
        self.0.result_type.into()
    }
    async fn status(&self) -> TraitStatus {
        self.0.status.into()
    }
    async fn status_error(&self) -> &str {
        &self.0.status_error
    }
    /// `manual`, `on_load` (recomputed after loads that change its sources) or a cron expression.
    async fn refresh(&self) -> &str {
        &self.0.refresh
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn last_computed_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_computed_at
    }
    /// Since when data it reads was loaded without it being recomputed (null: up to date).
    async fn stale_since(&self) -> Option<DateTime<Utc>> {
        self.0.stale_since
    }

    /// Computed values, one per entity of the parent model, ordered by entity id.
    async fn values(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<TraitValue>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let page = engine.trait_values(p, self.0.id, page).await.gql()?;
        connection(
            page,
            |v| v.entity_id.clone(),
            |v| {
                Ok(TraitValue {
                    entity_id: v.entity_id,
                    value: Json(v.value),
                    updated_at: v.updated_at,
                })
            },
        )
        .gql()
    }

    /// Evaluation history, newest first.
    async fn runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<TraitRun>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let page = engine.trait_runs_page(p, self.0.id, page).await.gql()?;
        connection(page, |r| id_cursor(r.id), TraitRun::try_from).gql()
    }

    /// The last incremental pass over the players new data touched (see the
    /// README's "Incremental evaluation"); null before the first.
    async fn last_pass(&self, ctx: &Context<'_>) -> Result<Option<TraitPass>> {
        let (engine, _) = scope(ctx)?;
        let pass = engine.last_trait_pass(&self.0).await.gql()?;
        Ok(pass.map(|p| TraitPass {
            entities: p.entities,
            rows_read: p.rows_read,
            rows_changed: p.rows_changed,
            duration_ms: p.duration_ms,
            finished_at: p.finished_at,
        }))
    }

    /// Earlier definitions, newest first: who changed what, and when.
    async fn versions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<TraitVersion>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let page = engine.trait_versions(p, self.0.id, page).await.gql()?;
        connection(page, |v| id_cursor(v.id), |v| Ok(TraitVersion::from(v))).gql()
    }
}

#[derive(SimpleObject, Clone)]
pub struct TraitValue {
    pub entity_id: String,
    pub value: Json<serde_json::Value>,
    /// When this entity's value last changed.
    pub updated_at: DateTime<Utc>,
}

/// One incremental pass of a trait.
#[derive(SimpleObject, Clone)]
pub struct TraitPass {
    /// Players whose value was recomputed (those the new rows belong to).
    pub entities: i64,
    /// Rows of the trait's source model read: those players' only.
    pub rows_read: i64,
    pub rows_changed: i64,
    pub duration_ms: i64,
    pub finished_at: DateTime<Utc>,
}

#[derive(SimpleObject, Clone)]
pub struct TraitRun {
    pub id: ID,
    pub trait_id: ID,
    pub status: RunStatus,
    pub trigger: RunTrigger,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub rows_computed: Option<i64>,
    pub rows_changed: Option<i64>,
    pub error: Option<String>,
}

impl TryFrom<trait_runs::Model> for TraitRun {
    type Error = engine::Error;
    fn try_from(r: trait_runs::Model) -> std::result::Result<Self, engine::Error> {
        Ok(TraitRun {
            id: r.id.into(),
            trait_id: r.trait_id.into(),
            status: r.status.into(),
            trigger: r.trigger.into(),
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
            rows_computed: r.rows_computed,
            rows_changed: r.rows_changed,
            error: r.error,
        })
    }
}

#[derive(SimpleObject, Clone)]
pub struct TraitVersion {
    /// The version this definition had before the change.
    pub version: i32,
    pub definition: Json<serde_json::Value>,
    pub changed_fields: Json<serde_json::Value>,
    /// Account (or key) that made the change.
    pub changed_by: Option<ID>,
    pub changed_at: DateTime<Utc>,
}

impl From<trait_versions::Model> for TraitVersion {
    fn from(v: trait_versions::Model) -> Self {
        TraitVersion {
            version: v.version,
            definition: Json(v.definition),
            changed_fields: Json(v.changed_fields),
            changed_by: v.changed_by.map(Into::into),
            changed_at: v.changed_at,
        }
    }
}

#[derive(InputObject)]
pub struct CreateTraitInput {
    pub name: String,
    pub description: Option<String>,
    pub parent_model_id: ID,
    pub trait_type: TraitType,
    pub config: Json<serde_json::Value>,
    pub result_type: ResultType,
    /// draft or active (default).
    pub status: Option<TraitStatus>,
    pub refresh: Option<String>,
}

impl CreateTraitInput {
    fn into_engine(self) -> Result<TraitInput> {
        Ok(TraitInput {
            name: Some(self.name),
            description: self.description,
            parent_model_id: Some(parse_id("parentModelId", &self.parent_model_id).gql()?),
            trait_type: Some(EngineTraitType::from(self.trait_type).as_str().into()),
            config: Some(self.config.0),
            result_type: Some(EngineResultType::from(self.result_type).as_str().into()),
            status: self
                .status
                .map(|s| EngineTraitStatus::from(s).as_str().into()),
            refresh: self.refresh,
        })
    }
}

/// What a trait would compute, before it is saved.
#[derive(SimpleObject)]
pub struct TraitPreview {
    /// The first entities in order (`sample`, default 10, at most 100).
    pub values: Vec<PreviewValue>,
    /// Entities with a value, and without one.
    pub count: i64,
    pub nulls: i64,
    /// Number traits: the smallest, largest and mean value.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Other traits: the most frequent values (as text).
    pub top: Vec<TopValue>,
}

#[derive(SimpleObject)]
pub struct PreviewValue {
    pub entity_id: String,
    pub value: Json<serde_json::Value>,
}

#[derive(SimpleObject)]
pub struct TopValue {
    pub value: String,
    pub count: i64,
}

/// Only the fields given change.
#[derive(InputObject)]
pub struct UpdateTraitInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub parent_model_id: Option<ID>,
    pub trait_type: Option<TraitType>,
    pub config: Option<Json<serde_json::Value>>,
    pub result_type: Option<ResultType>,
    pub status: Option<TraitStatus>,
    pub refresh: Option<String>,
}

#[Object]
impl TraitQuery {
    /// The values a trait would compute (a sample and a summary), validated
    /// like `createTrait` and computed by the same statement; writes nothing.
    async fn preview_trait(
        &self,
        ctx: &Context<'_>,
        input: CreateTraitInput,
        sample: Option<i32>,
    ) -> Result<TraitPreview> {
        let (engine, p) = scope(ctx)?;
        let sample = sample.map(|n| u64::try_from(n).unwrap_or(0));
        let preview = engine
            .preview_trait(p, input.into_engine()?, sample)
            .await
            .gql()?;
        Ok(TraitPreview {
            values: preview
                .values
                .into_iter()
                .map(|(entity_id, value)| PreviewValue {
                    entity_id,
                    value: Json(value),
                })
                .collect(),
            count: preview.count,
            nulls: preview.nulls,
            min: preview.min,
            max: preview.max,
            mean: preview.mean,
            top: preview
                .top
                .into_iter()
                .map(|(value, count)| TopValue { value, count })
                .collect(),
        })
    }

    /// Traits of the workspace, optionally of one parent model.
    async fn traits(
        &self,
        ctx: &Context<'_>,
        parent_model_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Trait>> {
        let (engine, p) = scope(ctx)?;
        let parent = parent_model_id
            .map(|id| parse_id("parentModelId", &id))
            .transpose()
            .gql()?;
        let page = page_request(first, after).gql()?;
        let page = engine.traits_page(p, parent, page).await.gql()?;
        connection(page, |t| id_cursor(t.id), |t| Ok(Trait(t))).gql()
    }

    #[graphql(name = "trait")]
    async fn trait_(&self, ctx: &Context<'_>, id: ID) -> Result<Trait> {
        let (engine, p) = scope(ctx)?;
        Ok(Trait(
            engine
                .get_trait(p, parse_id("id", &id).gql()?)
                .await
                .gql()?,
        ))
    }
}

#[Object]
impl TraitMutation {
    async fn create_trait(&self, ctx: &Context<'_>, input: CreateTraitInput) -> Result<Trait> {
        let (engine, p) = scope(ctx)?;
        let input = input.into_engine()?;
        Ok(Trait(engine.create_trait(p, input).await.gql()?))
    }

    async fn update_trait(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateTraitInput,
    ) -> Result<Trait> {
        let (engine, p) = scope(ctx)?;
        let input = TraitInput {
            name: input.name,
            description: input.description,
            parent_model_id: input
                .parent_model_id
                .map(|m| parse_id("parentModelId", &m))
                .transpose()
                .gql()?,
            trait_type: input
                .trait_type
                .map(|t| EngineTraitType::from(t).as_str().into()),
            config: input.config.map(|c| c.0),
            result_type: input
                .result_type
                .map(|t| EngineResultType::from(t).as_str().into()),
            status: input
                .status
                .map(|s| EngineTraitStatus::from(s).as_str().into()),
            refresh: input.refresh,
        };
        Ok(Trait(
            engine
                .update_trait(p, parse_id("id", &id).gql()?, input)
                .await
                .gql()?,
        ))
    }

    /// Deletes a trait; refused (conflict) while other traits read it.
    async fn delete_trait(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (engine, p) = scope(ctx)?;
        engine
            .delete_trait(p, parse_id("id", &id).gql()?)
            .await
            .gql()?;
        Ok(true)
    }

    /// Re-evaluates every active trait of a parent model: traits reading the
    /// same source are computed from one scan of it; dependents follow.
    async fn refresh_traits(
        &self,
        ctx: &Context<'_>,
        parent_model_id: ID,
    ) -> Result<Vec<TraitRun>> {
        let (engine, p) = scope(ctx)?;
        let parent = parse_id("parentModelId", &parent_model_id).gql()?;
        engine
            .refresh_traits(p, parent)
            .await
            .gql()?
            .into_iter()
            .map(TraitRun::try_from)
            .collect::<std::result::Result<Vec<_>, engine::Error>>()
            .gql()
    }

    /// Queues an evaluation; poll the returned run.
    async fn trigger_trait(&self, ctx: &Context<'_>, id: ID) -> Result<TraitRun> {
        let (engine, p) = scope(ctx)?;
        TraitRun::try_from(
            engine
                .trigger_trait(p, parse_id("id", &id).gql()?)
                .await
                .gql()?,
        )
        .gql()
    }
}
