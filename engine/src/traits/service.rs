//! Trait definitions: create, read, update (with history) and delete
//! (refused while others depend on it). Their values are read in `values`.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde_json::{Value, json};
use uuid::Uuid;

use entity::{
    model_columns, models, relationships, trait_dependencies, trait_values, trait_versions, traits,
};

use super::definition::{
    self, Catalog, ModelInfo, Plan, RelationshipInfo, ResultType, TraitRef, TraitStatus, TraitType,
};
use crate::pagination::{Direction, Page, PageRequest, paginate};
use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    catalog::DataType,
    slug::slugify,
};

/// Fields of a create or a partial update; `None` means "not sent".
#[derive(Clone, Debug, Default)]
pub struct TraitInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub parent_model_id: Option<Uuid>,
    pub trait_type: Option<String>,
    pub config: Option<Value>,
    pub result_type: Option<String>,
    /// `draft` or `active`.
    pub status: Option<String>,
    /// `manual` or a cron expression.
    pub refresh: Option<String>,
}

pub(super) fn result_type_of(t: &traits::Model) -> Result<ResultType> {
    Ok(t.result_type)
}

/// The definition as stored in history (and compared to find changed fields).
fn definition_json(t: &traits::Model) -> Value {
    json!({
        "name": t.name,
        "description": t.description,
        "parent_model_id": t.parent_model_id,
        "trait_type": t.trait_type,
        "config": t.config,
        "result_type": t.result_type,
        "status": t.status,
        "refresh": t.refresh,
    })
}

fn parse_enum<T>(
    field: &str,
    value: &str,
    parse: fn(&str) -> Option<T>,
    expected: String,
) -> Result<T> {
    parse(value)
        .ok_or_else(|| Error::invalid(field, format!("'{value}' is not one of: {expected}")))
}

/// Recomputed only when asked (and when its definition changes).
pub const REFRESH_MANUAL: &str = "manual";
/// Also recomputed when loaded data changes a source it reads.
pub const REFRESH_ON_LOAD: &str = "on_load";

/// `manual`, `on_load`, or a 5- or 6-field cron expression (a seconds field
/// is added to 5-field ones); the schedule, for cron expressions.
pub fn parse_refresh(text: &str) -> Result<Option<cron::Schedule>> {
    let text = text.trim();
    if text == REFRESH_MANUAL || text == REFRESH_ON_LOAD {
        return Ok(None);
    }
    parse_cron(
        text,
        "refresh",
        "must be `manual`, `on_load` or a cron expression like `0 * * * *`",
    )
    .map(Some)
}

/// A 5- or 6-field cron expression (a seconds field is added to 5-field
/// ones); `shape` says what `field` accepts when it has neither.
pub fn parse_cron(text: &str, field: &str, shape: &str) -> Result<cron::Schedule> {
    let six = match text.split_whitespace().count() {
        5 => format!("0 {text}"),
        6 | 7 => text.to_owned(),
        _ => return Err(Error::invalid(field, shape)),
    };
    six.parse::<cron::Schedule>()
        .map_err(|e| Error::invalid(field, format!("invalid cron expression: {e}")))
}

impl Engine {
    pub(crate) async fn load_catalog(
        &self,
        db: &impl ConnectionTrait,
        workspace_id: Uuid,
    ) -> Result<Catalog> {
        let mut columns: HashMap<Uuid, HashMap<String, DataType>> = HashMap::new();
        for c in model_columns::Entity::find()
            .filter(model_columns::Column::WorkspaceId.eq(workspace_id))
            .all(db)
            .await?
        {
            let dt = c.data_type;
            columns.entry(c.model_id).or_default().insert(c.name, dt);
        }
        let mut models_by_id = HashMap::new();
        for m in models::Entity::find()
            .filter(models::Column::WorkspaceId.eq(workspace_id))
            .all(db)
            .await?
        {
            let kind = m.kind;
            models_by_id.insert(
                m.id,
                ModelInfo {
                    id: m.id,
                    slug: m.slug,
                    kind,
                    table: m.table_name,
                    primary_key: m.primary_key,
                    timestamp_column: m.timestamp_column,
                    columns: columns.remove(&m.id).unwrap_or_default(),
                },
            );
        }
        let relationships = relationships::Entity::find()
            .filter(relationships::Column::WorkspaceId.eq(workspace_id))
            .all(db)
            .await?
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    RelationshipInfo {
                        from_model_id: r.from_model_id,
                        to_model_id: r.to_model_id,
                        from_column: r.from_column,
                        to_column: r.to_column,
                    },
                )
            })
            .collect();
        Ok(Catalog {
            models: models_by_id,
            relationships,
        })
    }

    /// Traits of one parent model as expressions see them.
    async fn siblings(
        &self,
        db: &impl ConnectionTrait,
        workspace_id: Uuid,
        parent: Uuid,
    ) -> Result<Vec<(traits::Model, TraitRef)>> {
        traits::Entity::find()
            .filter(traits::Column::WorkspaceId.eq(workspace_id))
            .filter(traits::Column::ParentModelId.eq(parent))
            .all(db)
            .await?
            .into_iter()
            .map(|t| {
                let r = TraitRef {
                    id: t.id,
                    slug: t.slug.clone(),
                    result_type: result_type_of(&t)?,
                };
                Ok((t, r))
            })
            .collect()
    }

    /// Validates a stored (or about-to-be-stored) trait into a plan.
    pub(crate) async fn plan_trait(
        &self,
        db: &impl ConnectionTrait,
        t: &traits::Model,
    ) -> Result<Plan> {
        let catalog = self.load_catalog(db, t.workspace_id).await?;
        let siblings: Vec<TraitRef> = self
            .siblings(db, t.workspace_id, t.parent_model_id)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        let trait_type = t.trait_type;
        definition::plan(
            &catalog,
            t.parent_model_id,
            trait_type,
            &t.config,
            result_type_of(t)?,
            &siblings,
        )
    }

    pub(super) async fn find_trait(
        &self,
        db: &impl ConnectionTrait,
        p: &Principal,
        id: Uuid,
    ) -> Result<traits::Model> {
        traits::Entity::find_by_id(id)
            .filter(traits::Column::WorkspaceId.eq(p.workspace_id))
            .one(db)
            .await?
            .ok_or(Error::NotFound { what: "trait" })
    }

    pub async fn get_trait(&self, p: &Principal, id: Uuid) -> Result<traits::Model> {
        p.require(Permission::Read)?;
        self.find_trait(&self.db, p, id).await
    }

    /// Traits of the workspace (or of one parent model), oldest first.
    pub async fn list_traits(
        &self,
        p: &Principal,
        parent_model_id: Option<Uuid>,
    ) -> Result<Vec<traits::Model>> {
        let q = self.traits_query(p, parent_model_id).await?;
        Ok(q.order_by_asc(traits::Column::Id).all(&self.db).await?)
    }

    /// The workspace's traits (of one parent model), oldest first, a page at a time.
    pub async fn traits_page(
        &self,
        p: &Principal,
        parent_model_id: Option<Uuid>,
        page: PageRequest,
    ) -> Result<Page<traits::Model>> {
        let q = self.traits_query(p, parent_model_id).await?;
        paginate(&self.db, q, traits::Column::Id, Direction::Forward, page).await
    }

    async fn traits_query(
        &self,
        p: &Principal,
        parent_model_id: Option<Uuid>,
    ) -> Result<sea_orm::Select<traits::Entity>> {
        p.require(Permission::Read)?;
        let mut q = traits::Entity::find().filter(traits::Column::WorkspaceId.eq(p.workspace_id));
        if let Some(m) = parent_model_id {
            self.model(p, crate::models::ModelRef::Id(m)).await?;
            q = q.filter(traits::Column::ParentModelId.eq(m));
        }
        Ok(q)
    }

    pub async fn create_trait(&self, p: &Principal, input: TraitInput) -> Result<traits::Model> {
        p.require(Permission::Write)?;
        let model = new_trait(p, input)?;
        let created = crate::db::write_tx(&self.db, |tx| {
            let engine = self.clone();
            Box::pin(async move {
                let plan = engine.plan_trait(tx, &model).await?;
                ensure_unique_slug(tx, &model).await?;
                let created = traits::ActiveModel::from(model).insert(tx).await?;
                write_dependencies(tx, &created, &plan).await?;
                Ok(created)
            })
        })
        .await?;
        if created.status == TraitStatus::Active {
            self.queue_run(&created, super::runs::Trigger::Definition, Some(p))
                .await?;
        }
        Ok(created)
    }

    pub async fn update_trait(
        &self,
        p: &Principal,
        id: Uuid,
        input: TraitInput,
    ) -> Result<traits::Model> {
        p.require(Permission::Write)?;
        let principal = p.clone();
        let updated = crate::db::write_tx(&self.db, |tx| {
            let engine = self.clone();
            Box::pin(async move {
                let before = engine.find_trait(tx, &principal, id).await?;
                refuse_prediction_trait(&before)?;
                let mut after = before.clone();
                if let Some(name) = input.name {
                    // The slug stays: formulas and segments refer to it.
                    after.name = crate::limits::sluggable_name(&name, "name")?;
                }
                if let Some(d) = input.description {
                    after.description = crate::limits::description(d, "description")?;
                }
                if let Some(m) = input.parent_model_id {
                    after.parent_model_id = m;
                }
                if let Some(t) = input.trait_type {
                    after.trait_type =
                        parse_enum("trait_type", &t, TraitType::parse, TraitType::expected())?;
                }
                if let Some(c) = input.config {
                    after.config = c;
                }
                if let Some(r) = input.result_type {
                    after.result_type =
                        parse_enum("result_type", &r, ResultType::parse, ResultType::expected())?;
                }
                if let Some(s) = input.status {
                    after.status = creatable_status(Some(&s))?;
                }
                if let Some(r) = input.refresh {
                    parse_refresh(&r)?;
                    after.refresh = r;
                }
                let old = definition_json(&before);
                let new = definition_json(&after);
                let changed: Vec<&String> = new
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, v)| old.get(k.as_str()) != Some(v))
                    .map(|(k, _)| k)
                    .collect();
                if changed.is_empty() {
                    return Ok((before, false));
                }
                let plan = engine.plan_trait(tx, &after).await?;
                if after.parent_model_id != before.parent_model_id {
                    ensure_unique_slug(tx, &after).await?;
                }
                ensure_acyclic(tx, &after, &plan).await?;
                let computation_changed = changed.iter().any(|f| {
                    ["parent_model_id", "trait_type", "config", "result_type"].contains(&f.as_str())
                });
                trait_versions::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    workspace_id: Set(before.workspace_id),
                    trait_id: Set(before.id),
                    version: Set(before.version),
                    definition: Set(old),
                    changed_fields: Set(json!(changed)),
                    changed_by: Set(Some(principal.account_id.unwrap_or(principal.key_id))),
                    changed_at: Set(Utc::now()),
                }
                .insert(tx)
                .await?;
                if computation_changed {
                    // Values of the old definition would be wrong under the new one.
                    trait_values::Entity::delete_many()
                        .filter(trait_values::Column::WorkspaceId.eq(before.workspace_id))
                        .filter(trait_values::Column::TraitId.eq(before.id))
                        .exec(tx)
                        .await?;
                    after.last_computed_at = None;
                }
                after.version = before.version + 1;
                after.updated_at = Utc::now();
                let mut active = traits::ActiveModel::from(after);
                for c in [
                    traits::Column::Name,
                    traits::Column::Description,
                    traits::Column::ParentModelId,
                    traits::Column::TraitType,
                    traits::Column::Config,
                    traits::Column::ResultType,
                    traits::Column::Status,
                    traits::Column::Refresh,
                    traits::Column::Version,
                    traits::Column::UpdatedAt,
                    traits::Column::LastComputedAt,
                ] {
                    active.reset(c);
                }
                let saved = active.update(tx).await?;
                write_dependencies(tx, &saved, &plan).await?;
                Ok((saved, computation_changed))
            })
        })
        .await?;
        let (saved, recompute) = updated;
        if recompute && saved.status == TraitStatus::Active {
            self.queue_run(&saved, super::runs::Trigger::Definition, Some(p))
                .await?;
        }
        Ok(saved)
    }

    /// Deletes a trait with its values, runs and history; refused while
    /// another trait reads it.
    pub async fn delete_trait(&self, p: &Principal, id: Uuid) -> Result<()> {
        p.require(Permission::Write)?;
        let t = self.find_trait(&self.db, p, id).await?;
        refuse_prediction_trait(&t)?;
        self.ensure_unused(&t).await?;
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                delete_trait_in(tx, &t).await?;
                Ok(())
            })
        })
        .await
    }

    /// Refuses (409) when a segment or another trait reads `t`.
    pub(crate) async fn ensure_unused(&self, t: &traits::Model) -> Result<()> {
        let id = t.id;
        let dependents: Vec<Uuid> = trait_dependencies::Entity::find()
            .filter(trait_dependencies::Column::WorkspaceId.eq(t.workspace_id))
            .filter(trait_dependencies::Column::DependsOnId.eq(id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|d| d.trait_id)
            .collect();
        let segments = self.segments_reading_trait(t.workspace_id, id).await?;
        if !segments.is_empty() {
            return Err(Error::Conflict(format!(
                "trait `{}` is used by {}: {}",
                t.slug,
                if segments.len() == 1 {
                    "segment"
                } else {
                    "segments"
                },
                segments.join(", ")
            )));
        }
        if !dependents.is_empty() {
            let mut slugs: Vec<String> = traits::Entity::find()
                .filter(traits::Column::Id.is_in(dependents))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|t| t.slug)
                .collect();
            slugs.sort();
            return Err(Error::Conflict(format!(
                "trait `{}` is used by {}: {}",
                t.slug,
                if slugs.len() == 1 { "trait" } else { "traits" },
                slugs.join(", ")
            )));
        }
        Ok(())
    }

    /// The trait's definitions, newest first (versions are rows with UUIDv7 ids).
    pub async fn trait_versions(
        &self,
        p: &Principal,
        id: Uuid,
        page: PageRequest,
    ) -> Result<Page<trait_versions::Model>> {
        p.require(Permission::Read)?;
        self.find_trait(&self.db, p, id).await?;
        let q = trait_versions::Entity::find()
            .filter(trait_versions::Column::WorkspaceId.eq(p.workspace_id))
            .filter(trait_versions::Column::TraitId.eq(id));
        paginate(
            &self.db,
            q,
            trait_versions::Column::Id,
            Direction::Backward,
            page,
        )
        .await
    }
}

/// Removes a trait and its values, on `tx`.
pub(crate) async fn delete_trait_in(tx: &impl ConnectionTrait, t: &traits::Model) -> Result<()> {
    trait_values::Entity::delete_many()
        .filter(trait_values::Column::WorkspaceId.eq(t.workspace_id))
        .filter(trait_values::Column::TraitId.eq(t.id))
        .exec(tx)
        .await?;
    traits::Entity::delete_by_id(t.id).exec(tx).await?;
    Ok(())
}

/// A prediction's traits change with their prediction, never on their own.
pub(crate) fn refuse_prediction_trait(t: &traits::Model) -> Result<()> {
    if t.trait_type == TraitType::Prediction {
        return Err(Error::Conflict(format!(
            "trait `{}` holds a prediction's scores: change or delete the prediction instead",
            t.slug
        )));
    }
    Ok(())
}

fn creatable_status(s: Option<&str>) -> Result<TraitStatus> {
    match s {
        None | Some("active") => Ok(TraitStatus::Active),
        Some("draft") => Ok(TraitStatus::Draft),
        Some(other) => Err(Error::invalid(
            "status",
            format!("'{other}' cannot be set: use draft or active"),
        )),
    }
}

pub(crate) async fn ensure_unique_slug(db: &impl ConnectionTrait, t: &traits::Model) -> Result<()> {
    let clash = traits::Entity::find()
        .filter(traits::Column::WorkspaceId.eq(t.workspace_id))
        .filter(traits::Column::ParentModelId.eq(t.parent_model_id))
        .filter(traits::Column::Slug.eq(&t.slug))
        .filter(traits::Column::Id.ne(t.id))
        .one(db)
        .await?;
    match clash {
        Some(_) => Err(Error::Conflict(format!(
            "a trait with slug `{}` already exists on this model",
            t.slug
        ))),
        None => Ok(()),
    }
}

async fn write_dependencies(
    db: &impl ConnectionTrait,
    t: &traits::Model,
    plan: &Plan,
) -> Result<()> {
    trait_dependencies::Entity::delete_many()
        .filter(trait_dependencies::Column::WorkspaceId.eq(t.workspace_id))
        .filter(trait_dependencies::Column::TraitId.eq(t.id))
        .exec(db)
        .await?;
    let deps: HashSet<Uuid> = plan.dependencies().into_iter().collect();
    if !deps.is_empty() {
        trait_dependencies::Entity::insert_many(deps.into_iter().map(|d| {
            trait_dependencies::ActiveModel {
                workspace_id: Set(t.workspace_id),
                trait_id: Set(t.id),
                depends_on_id: Set(d),
            }
        }))
        .exec(db)
        .await?;
    }
    Ok(())
}

/// Refuses a definition whose references lead back to itself, spelling out the cycle.
async fn ensure_acyclic(db: &impl ConnectionTrait, t: &traits::Model, plan: &Plan) -> Result<()> {
    let mut edges: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for e in trait_dependencies::Entity::find()
        .filter(trait_dependencies::Column::WorkspaceId.eq(t.workspace_id))
        .all(db)
        .await?
    {
        if e.trait_id != t.id {
            edges.entry(e.trait_id).or_default().push(e.depends_on_id);
        }
    }
    edges.insert(t.id, plan.dependencies());
    // Depth-first search from the trait for a path back to it.
    fn find(
        edges: &HashMap<Uuid, Vec<Uuid>>,
        start: Uuid,
        node: Uuid,
        path: &mut Vec<Uuid>,
        seen: &mut HashSet<Uuid>,
    ) -> bool {
        for &next in edges.get(&node).map(Vec::as_slice).unwrap_or_default() {
            path.push(next);
            if next == start || (seen.insert(next) && find(edges, start, next, path, seen)) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![t.id];
    if !find(&edges, t.id, t.id, &mut path, &mut HashSet::new()) {
        return Ok(());
    }
    let slugs: HashMap<Uuid, String> = traits::Entity::find()
        .filter(traits::Column::WorkspaceId.eq(t.workspace_id))
        .all(db)
        .await?
        .into_iter()
        .map(|x| (x.id, x.slug))
        .collect();
    let names: Vec<String> = path
        .iter()
        .map(|id| {
            if *id == t.id {
                t.slug.clone()
            } else {
                slugs.get(id).cloned().unwrap_or_default()
            }
        })
        .collect();
    let field = if t.trait_type == TraitType::Sql {
        "config.sql_expression"
    } else {
        "config.expression"
    };
    Err(Error::invalid(
        field,
        format!("reference cycle: {}", names.join(" → ")),
    ))
}

/// A trait as `input` defines it, checked field by field (not yet against the catalog).
pub(super) fn new_trait(p: &Principal, input: TraitInput) -> Result<traits::Model> {
    let required =
        |v: Option<String>, field: &str| v.ok_or_else(|| Error::invalid(field, "is required"));
    let name = crate::limits::sluggable_name(&required(input.name.clone(), "name")?, "name")?;
    let slug = slugify(&name);
    let parent_model_id = input
        .parent_model_id
        .ok_or_else(|| Error::invalid("parent_model_id", "is required"))?;
    let trait_type = required(input.trait_type.clone(), "trait_type")?;
    let trait_type = parse_enum(
        "trait_type",
        &trait_type,
        TraitType::parse,
        TraitType::expected(),
    )?;
    let config = input
        .config
        .clone()
        .ok_or_else(|| Error::invalid("config", "is required"))?;
    let result_type = required(input.result_type.clone(), "result_type")?;
    let result_type = parse_enum(
        "result_type",
        &result_type,
        ResultType::parse,
        ResultType::expected(),
    )?;
    let status = creatable_status(input.status.as_deref())?;
    let refresh = input
        .refresh
        .clone()
        .unwrap_or_else(|| REFRESH_MANUAL.into());
    parse_refresh(&refresh)?;
    let now = Utc::now();
    let model = traits::Model {
        id: Uuid::now_v7(),
        workspace_id: p.workspace_id,
        parent_model_id,
        name,
        slug,
        description: crate::limits::description(
            input.description.clone().unwrap_or_default(),
            "description",
        )?,
        trait_type,
        config,
        result_type,
        status,
        status_error: String::new(),
        refresh,
        version: 1,
        created_by: Some(p.account_id.unwrap_or(p.key_id)),
        created_at: now,
        updated_at: now,
        last_computed_at: None,
        stale_since: None,
    };
    Ok(model)
}
