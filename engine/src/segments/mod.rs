//! Segments: named filter trees over traits and psych facets whose members
//! are computed in the database (one `INSERT … SELECT` per segment) and
//! materialized, then clustered into personas. Every workspace has a
//! built-in `default` segment of all players.

pub mod changes;
pub mod filter;
pub mod jobs;
mod members;
pub mod persona_identity;
pub mod personas;
pub mod preview;
pub mod route_cache;

pub use members::{Memberships, membership_statement};
pub(crate) use members::{lock_segment, members_query};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, sea_query::OnConflict,
};
use serde_json::Value;
use uuid::Uuid;

use entity::{segment_traits, segments, traits};

use crate::pagination::{Direction, Page, PageRequest, paginate};
use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    jobs::enqueue_once_in,
};
use filter::{Node, Vocabulary};
use jobs::{ComputePersonas, ComputeSegment};

pub const DEFAULT_SLUG: &str = "default";
pub const DEFAULT_PERSONA_COUNT: i32 = 4;
pub const MAX_PERSONA_COUNT: i32 = 20;
/// k-means seed of new segments; any fixed value makes personas reproducible.
const DEFAULT_SEED: i64 = 42;

pub use entity::states::ComputeStatus;

/// How many personas a segment is clustered into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersonaCount {
    Fixed(i32),
    /// 2..8, chosen by silhouette.
    Auto,
}

impl PersonaCount {
    /// A number, or `"auto"`.
    pub fn parse(value: &Value) -> Result<PersonaCount> {
        let range = format!("must be a number from 1 to {MAX_PERSONA_COUNT}, or \"auto\"");
        match value {
            Value::String(s) if s == "auto" => Ok(PersonaCount::Auto),
            Value::Number(n) => match n.as_i64() {
                Some(k) if (1..=MAX_PERSONA_COUNT as i64).contains(&k) => {
                    Ok(PersonaCount::Fixed(k as i32))
                }
                _ => Err(Error::invalid("personas", range)),
            },
            _ => Err(Error::invalid("personas", range)),
        }
    }

    fn stored(self) -> Option<i32> {
        match self {
            PersonaCount::Fixed(k) => Some(k),
            PersonaCount::Auto => None,
        }
    }
}

/// A new segment, or changes to one (absent fields stay as they are).
#[derive(Clone, Debug, Default)]
pub struct SegmentInput {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub filter: Option<Value>,
    pub personas: Option<PersonaCount>,
}

impl Engine {
    /// The traits (players model) and facets (survey) a filter may name.
    async fn vocabulary(&self, ws: Uuid) -> Result<Vocabulary> {
        let players = self.players_model_id(ws).await?;
        let traits = traits::Entity::find()
            .filter(traits::Column::WorkspaceId.eq(ws))
            .filter(traits::Column::ParentModelId.eq(players))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| (t.slug, (t.id, t.result_type)))
            .collect();
        let instrument = crate::survey::Instrument::stored(&self.survey_of(ws).await?.instrument)?;
        let facets = instrument
            .scored_facets()
            .map(|(c, f)| (c.to_owned(), f.to_owned()))
            .collect();
        Ok(Vocabulary { traits, facets })
    }

    pub(crate) async fn players_model_id(&self, ws: Uuid) -> Result<Uuid> {
        entity::models::Entity::find()
            .filter(entity::models::Column::WorkspaceId.eq(ws))
            .filter(entity::models::Column::Slug.eq("players"))
            .one(&self.db)
            .await?
            .map(|m| m.id)
            .ok_or(Error::NotFound {
                what: "players model",
            })
    }

    /// The built-in segment of all players, created on first use.
    pub(crate) async fn default_segment(&self, ws: Uuid) -> Result<segments::Model> {
        let find = || {
            segments::Entity::find()
                .filter(segments::Column::WorkspaceId.eq(ws))
                .filter(segments::Column::Slug.eq(DEFAULT_SLUG))
        };
        // Read first: the persona routes ask for it on every request.
        if let Some(found) = find().one(&self.db).await? {
            return Ok(found);
        }
        segments::Entity::insert(new_segment(
            ws,
            "All players".into(),
            DEFAULT_SLUG.into(),
            "Every player of the workspace.".into(),
            None,
            Some(DEFAULT_PERSONA_COUNT),
        ))
        .on_conflict(
            OnConflict::columns([segments::Column::WorkspaceId, segments::Column::Slug])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        find()
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::internal("default segment vanished"))
    }

    /// A segment by id or slug (`default` is the built-in one).
    pub async fn segment(&self, p: &Principal, reference: &str) -> Result<segments::Model> {
        p.require(Permission::Read)?;
        self.find_segment(p.workspace_id, reference).await
    }

    pub(crate) async fn find_segment(&self, ws: Uuid, reference: &str) -> Result<segments::Model> {
        if reference == DEFAULT_SLUG {
            return self.default_segment(ws).await;
        }
        let q = segments::Entity::find().filter(segments::Column::WorkspaceId.eq(ws));
        let found = match Uuid::parse_str(reference) {
            Ok(id) => q.filter(segments::Column::Id.eq(id)).one(&self.db).await?,
            Err(_) => {
                q.filter(segments::Column::Slug.eq(reference))
                    .one(&self.db)
                    .await?
            }
        };
        found.ok_or_else(|| Error::Missing(format!("segment `{reference}` not found")))
    }

    /// Every segment, the built-in `default` first.
    pub async fn list_segments(&self, p: &Principal) -> Result<Vec<segments::Model>> {
        p.require(Permission::Read)?;
        self.default_segment(p.workspace_id).await?;
        Ok(segments::Entity::find()
            .filter(segments::Column::WorkspaceId.eq(p.workspace_id))
            .order_by_desc(segments::Column::Builtin)
            .order_by_asc(segments::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// The workspace's segments, oldest first (`default` leads), a page at a time.
    pub async fn segments_page(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> Result<Page<segments::Model>> {
        p.require(Permission::Read)?;
        self.default_segment(p.workspace_id).await?;
        let q = segments::Entity::find().filter(segments::Column::WorkspaceId.eq(p.workspace_id));
        paginate(&self.db, q, segments::Column::Id, Direction::Forward, page).await
    }

    pub async fn create_segment(
        &self,
        p: &Principal,
        input: SegmentInput,
    ) -> Result<segments::Model> {
        p.require(Permission::Write)?;
        let ws = p.workspace_id;
        // `default` exists before any other segment, so it leads every id-ordered list.
        self.default_segment(ws).await?;
        let name = required_name(input.name.as_deref())?;
        let description =
            crate::limits::description(input.description.unwrap_or_default(), "description")?;
        let slug = match input.slug.as_deref() {
            Some(s) => crate::slug::validate(s, "slug")?.to_owned(),
            None => crate::slug::slugify(&name),
        };
        if slug == DEFAULT_SLUG {
            return Err(Error::invalid(
                "slug",
                "`default` is the built-in segment of all players",
            ));
        }
        let filter = input
            .filter
            .ok_or_else(|| Error::invalid("filter", "is required"))?;
        crate::limits::filter(&filter, "filter")?;
        let tree = Node::parse(&filter, &self.vocabulary(ws).await?)?;
        self.ensure_slug_free(ws, &slug, None).await?;
        let segment = new_segment(
            ws,
            name,
            slug,
            description,
            Some(filter),
            input
                .personas
                .unwrap_or(PersonaCount::Fixed(DEFAULT_PERSONA_COUNT))
                .stored(),
        );
        let trait_ids = tree.trait_ids();
        // The segment and its first computation commit together (outbox).
        let (saved, job) = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let saved = segment.insert(tx).await?;
                write_trait_refs(tx, &saved, &trait_ids).await?;
                let work = ComputeSegment {
                    segment_id: saved.id,
                };
                let job = enqueue_once_in(tx, ws, &work).await?;
                Ok((saved, job))
            })
        })
        .await?;
        self.dispatch(&job).await;
        Ok(saved)
    }

    pub async fn update_segment(
        &self,
        p: &Principal,
        reference: &str,
        input: SegmentInput,
    ) -> Result<segments::Model> {
        p.require(Permission::Write)?;
        let ws = p.workspace_id;
        let current = self.find_segment(ws, reference).await?;
        let mut active: segments::ActiveModel = current.clone().into();
        if let Some(name) = input.name.as_deref() {
            active.name = Set(required_name(Some(name))?);
        }
        if let Some(description) = input.description {
            active.description = Set(crate::limits::description(description, "description")?);
        }
        if let Some(slug) = input.slug.as_deref() {
            let slug = crate::slug::validate(slug, "slug")?;
            if current.builtin && slug != DEFAULT_SLUG {
                return Err(Error::invalid("slug", "the default segment keeps its slug"));
            }
            if !current.builtin && slug == DEFAULT_SLUG {
                return Err(Error::invalid(
                    "slug",
                    "`default` is the built-in segment of all players",
                ));
            }
            self.ensure_slug_free(ws, slug, Some(current.id)).await?;
            active.slug = Set(slug.to_owned());
        }
        let mut recompute_members = false;
        let mut trait_ids = None;
        if let Some(filter) = input.filter {
            if current.builtin {
                return Err(Error::invalid(
                    "filter",
                    "the default segment has every player; it has no filter",
                ));
            }
            crate::limits::filter(&filter, "filter")?;
            let tree = Node::parse(&filter, &self.vocabulary(ws).await?)?;
            trait_ids = Some(tree.trait_ids());
            recompute_members = current.filter.as_ref() != Some(&filter);
            active.filter = Set(Some(filter));
        }
        let mut recluster = false;
        if let Some(k) = input.personas {
            recluster = current.persona_k != k.stored();
            active.persona_k = Set(k.stored());
        }
        active.updated_at = Set(Utc::now());
        // The change and the recomputation it needs commit together (outbox).
        let (saved, job) = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let saved = active.update(tx).await?;
                if let Some(ids) = trait_ids {
                    write_trait_refs(tx, &saved, &ids).await?;
                }
                let segment_id = saved.id;
                let job = if recompute_members {
                    Some(enqueue_once_in(tx, ws, &ComputeSegment { segment_id }).await?)
                } else if recluster {
                    Some(enqueue_once_in(tx, ws, &ComputePersonas { segment_id }).await?)
                } else {
                    None
                };
                Ok((saved, job))
            })
        })
        .await?;
        if let Some(job) = job {
            self.dispatch(&job).await;
        }
        Ok(saved)
    }

    /// Queues a recomputation of the members (then the personas) now.
    pub async fn refresh_segment(
        &self,
        p: &Principal,
        reference: &str,
    ) -> Result<entity::job_records::Model> {
        p.require(Permission::Write)?;
        let segment = self.find_segment(p.workspace_id, reference).await?;
        self.enqueue_once(
            p.workspace_id,
            ComputeSegment {
                segment_id: segment.id,
            },
        )
        .await
    }

    /// Deletes a segment with its members and personas; the default one stays.
    pub async fn delete_segment(&self, p: &Principal, reference: &str) -> Result<()> {
        p.require(Permission::Write)?;
        let segment = self.find_segment(p.workspace_id, reference).await?;
        if segment.builtin {
            return Err(Error::Conflict(
                "the default segment cannot be deleted".into(),
            ));
        }
        // Members, personas and trait references go with it (ON DELETE CASCADE).
        segments::Entity::delete_by_id(segment.id)
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn ensure_slug_free(&self, ws: Uuid, slug: &str, except: Option<Uuid>) -> Result<()> {
        let mut q = segments::Entity::find()
            .filter(segments::Column::WorkspaceId.eq(ws))
            .filter(segments::Column::Slug.eq(slug));
        if let Some(id) = except {
            q = q.filter(segments::Column::Id.ne(id));
        }
        if q.one(&self.db).await?.is_some() {
            return Err(Error::Conflict(format!(
                "a segment with slug `{slug}` exists"
            )));
        }
        Ok(())
    }

    /// Slugs of the segments whose filters read a trait (refuses its deletion).
    pub(crate) async fn segments_reading_trait(
        &self,
        ws: Uuid,
        trait_id: Uuid,
    ) -> Result<Vec<String>> {
        let ids: Vec<Uuid> = segment_traits::Entity::find()
            .filter(segment_traits::Column::WorkspaceId.eq(ws))
            .filter(segment_traits::Column::TraitId.eq(trait_id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| r.segment_id)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut slugs: Vec<String> = segments::Entity::find()
            .filter(segments::Column::Id.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| s.slug)
            .collect();
        slugs.sort();
        Ok(slugs)
    }
}

/// A new segment with nothing computed yet; without a filter it is the
/// built-in one, whose members (all players) need no computing.
fn new_segment(
    ws: Uuid,
    name: String,
    slug: String,
    description: String,
    filter: Option<Value>,
    persona_k: Option<i32>,
) -> segments::ActiveModel {
    let now = Utc::now();
    let builtin = filter.is_none();
    let members = if builtin {
        ComputeStatus::Ready
    } else {
        ComputeStatus::Pending
    };
    segments::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(ws),
        name: Set(name),
        slug: Set(slug),
        description: Set(description),
        filter: Set(filter),
        builtin: Set(builtin),
        persona_k: Set(persona_k),
        seed: Set(DEFAULT_SEED),
        members_status: Set(members),
        members_error: Set(None),
        member_count: Set(0),
        members_computed_at: Set(None),
        personas_status: Set(ComputeStatus::Pending),
        personas_error: Set(None),
        scored_members: Set(0),
        profile: Set(None),
        personas_computed_at: Set(None),
        persona_space: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

fn required_name(name: Option<&str>) -> Result<String> {
    match name.map(str::trim) {
        Some(n) if !n.is_empty() => crate::limits::name(n, "name"),
        _ => Err(Error::invalid("name", "is required")),
    }
}

async fn write_trait_refs(
    tx: &DatabaseTransaction,
    segment: &segments::Model,
    trait_ids: &[Uuid],
) -> Result<()> {
    segment_traits::Entity::delete_many()
        .filter(segment_traits::Column::SegmentId.eq(segment.id))
        .exec(tx)
        .await?;
    if !trait_ids.is_empty() {
        segment_traits::Entity::insert_many(trait_ids.iter().map(|id| {
            segment_traits::ActiveModel {
                workspace_id: Set(segment.workspace_id),
                segment_id: Set(segment.id),
                trait_id: Set(*id),
            }
        }))
        .exec(tx)
        .await?;
    }
    Ok(())
}
