//! Models a workspace defines itself beside the built-in ones: a catalog
//! entry (model, columns, relationships) and a real table of its own, created,
//! changed and dropped in the same transaction as the catalog. Trait
//! evaluation reads the table like a built-in one (one set-based statement);
//! ingestion fills it through `ingest::target`.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    sea_query::{Alias, Table},
};
use uuid::Uuid;

use entity::{model_columns, models, relationships, traits};

mod columns;

use columns::{Column, column_change, column_def, columns, create_table_sql, declared};

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    catalog::{Cardinality, DataType, ModelKind},
    limits,
    models::{ModelRef, ModelView},
    slug::{slugify, validate},
};

#[derive(Clone, Debug)]
pub struct ColumnInput {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

/// `column` of the new model refers to `to_column` (default: its primary key)
/// of the model `to_model` (an id or a slug).
#[derive(Clone, Debug)]
pub struct RelationshipInput {
    pub column: String,
    pub to_model: String,
    pub to_column: Option<String>,
}

/// Create: name, columns and primary key are required. Update: name and
/// columns (the whole new list) may change.
#[derive(Clone, Debug, Default)]
pub struct ModelInput {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub columns: Option<Vec<ColumnInput>>,
    pub primary_key: Option<String>,
    pub user_id_column: Option<String>,
    pub timestamp_column: Option<String>,
    pub relationships: Option<Vec<RelationshipInput>>,
}

impl Engine {
    /// Defines a model with its own table (`createModel`, `POST …/models`).
    pub async fn create_model(&self, p: &Principal, input: ModelInput) -> Result<ModelView> {
        p.require(Permission::Write)?;
        let name = limits::sluggable_name(
            input
                .name
                .as_deref()
                .ok_or_else(|| Error::invalid("name", "is required"))?,
            "name",
        )?;
        let slug = match input.slug.as_deref() {
            Some(s) => validate(s, "slug")?.to_owned(),
            None => slugify(&name),
        };
        let cols = columns(
            input
                .columns
                .ok_or_else(|| Error::invalid("columns", "is required"))?,
        )?;
        let pk = input
            .primary_key
            .ok_or_else(|| Error::invalid("primary_key", "is required"))?;
        declared(
            &cols,
            &pk,
            "primary_key",
            &[DataType::Text, DataType::Number],
        )?;
        let cols: Vec<Column> = cols
            .into_iter()
            .map(|c| Column {
                nullable: c.nullable && c.name != pk,
                ..c
            })
            .collect();
        if let Some(u) = &input.user_id_column {
            declared(&cols, u, "user_id_column", &[DataType::Text])?;
        }
        if let Some(ts) = &input.timestamp_column {
            declared(&cols, ts, "timestamp_column", &[DataType::Timestamp])?;
        }
        let rels_in = input.relationships.unwrap_or_default();
        for (i, r) in rels_in.iter().enumerate() {
            declared(&cols, &r.column, &format!("relationships[{i}].column"), &[])?;
        }
        let ws = p.workspace_id;
        let id = Uuid::now_v7();
        let table = format!("custom_{}", id.simple());
        let (user, ts) = (input.user_id_column, input.timestamp_column);
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let now = Utc::now();
                models::Entity::insert(models::ActiveModel {
                    id: Set(id),
                    workspace_id: Set(ws),
                    name: Set(name),
                    slug: Set(slug),
                    kind: Set(if ts.is_some() {
                        ModelKind::Event
                    } else {
                        ModelKind::Entity
                    }),
                    table_name: Set(table.clone()),
                    primary_key: Set(pk.clone()),
                    timestamp_column: Set(ts.clone()),
                    user_column: Set(user.clone()),
                    built_in: Set(false),
                    created_at: Set(now),
                })
                .exec_without_returning(tx)
                .await?;
                insert_columns(tx, ws, id, &cols, 0).await?;
                insert_relationships(tx, ws, id, &cols, &pk, user.as_deref(), &rels_in, now)
                    .await?;
                let (create, index) =
                    create_table_sql(&table, &cols, &pk, user.as_deref(), ts.as_deref());
                tx.execute(&create).await?;
                if let Some(index) = index {
                    tx.execute(&index).await?;
                }
                Ok(())
            })
        })
        .await?;
        self.model(p, ModelRef::Id(id)).await
    }

    /// Renames a model or changes its columns: new columns must be nullable
    /// (rows already loaded have no value); a removed column may not be the
    /// primary key, user or timestamp column, nor read by a trait (409 naming them).
    pub async fn update_model(
        &self,
        p: &Principal,
        id: Uuid,
        input: ModelInput,
    ) -> Result<ModelView> {
        p.require(Permission::Write)?;
        let view = self.model(p, ModelRef::Id(id)).await?;
        let model = view.model.clone();
        if model.built_in {
            return Err(Error::Conflict(format!(
                "`{}` is a built-in model and cannot be changed",
                model.slug
            )));
        }
        for (field, sent) in [
            ("slug", input.slug.is_some()),
            ("primary_key", input.primary_key.is_some()),
            ("user_id_column", input.user_id_column.is_some()),
            ("timestamp_column", input.timestamp_column.is_some()),
            ("relationships", input.relationships.is_some()),
        ] {
            if sent {
                return Err(Error::invalid(
                    field,
                    "cannot change after creation (define a new model)",
                ));
            }
        }
        let name = input
            .name
            .as_deref()
            .map(|n| limits::sluggable_name(n, "name"))
            .transpose()?;
        let change = match input.columns {
            Some(new) => Some(column_change(&model, &view.columns, columns(new)?)?),
            None => None,
        };
        let ws = p.workspace_id;
        let engine = self.clone();
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                if let Some(name) = name {
                    let mut m: models::ActiveModel = model.clone().into();
                    m.name = Set(name);
                    sea_orm::ActiveModelTrait::update(m, tx).await?;
                }
                let Some(change) = change else {
                    return Ok(());
                };
                let table = Alias::new(&model.table_name);
                if !change.removed.is_empty() {
                    model_columns::Entity::delete_many()
                        .filter(model_columns::Column::WorkspaceId.eq(ws))
                        .filter(model_columns::Column::ModelId.eq(id))
                        .filter(model_columns::Column::Name.is_in(change.removed.clone()))
                        .exec(tx)
                        .await?;
                    let broken = engine.traits_broken_by(tx, ws, id).await?;
                    if !broken.is_empty() {
                        return Err(Error::Conflict(format!(
                            "{} read by {}: {}",
                            change
                                .removed
                                .iter()
                                .map(|c| format!("`{c}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            if broken.len() == 1 { "trait" } else { "traits" },
                            broken.join(", ")
                        )));
                    }
                    for c in &change.removed {
                        let drop = Table::alter()
                            .table(table.clone())
                            .drop_column(Alias::new(c))
                            .to_owned();
                        tx.execute(&drop).await?;
                    }
                }
                insert_columns(tx, ws, id, &change.added, change.next_position).await?;
                for c in &change.added {
                    let add = Table::alter()
                        .table(table.clone())
                        .add_column(column_def(c))
                        .to_owned();
                    tx.execute(&add).await?;
                }
                Ok(())
            })
        })
        .await?;
        self.model(p, ModelRef::Id(id)).await
    }

    /// Drops a model, its table and its relationships; refused (409) while
    /// a trait reads it or another model refers to it.
    pub async fn delete_model(&self, p: &Principal, id: Uuid) -> Result<()> {
        p.require(Permission::Write)?;
        let view = self.model(p, ModelRef::Id(id)).await?;
        let model = view.model;
        if model.built_in {
            return Err(Error::Conflict(format!(
                "`{}` is a built-in model and cannot be deleted",
                model.slug
            )));
        }
        let ws = p.workspace_id;
        let readers = self.traits_reading_model(&self.db, ws, id).await?;
        if !readers.is_empty() {
            let slugs: Vec<String> = readers.into_iter().map(|t| t.slug).collect();
            return Err(Error::Conflict(format!(
                "model `{}` is used by {}: {}",
                model.slug,
                if slugs.len() == 1 { "trait" } else { "traits" },
                slugs.join(", ")
            )));
        }
        if let Some(r) = view.relationships.iter().find(|r| r.to_model_id == id) {
            let from = models::Entity::find_by_id(r.from_model_id)
                .one(&self.db)
                .await?
                .map(|m| m.slug)
                .unwrap_or_default();
            return Err(Error::Conflict(format!(
                "model `{}` is referred to by model `{from}`",
                model.slug
            )));
        }
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                relationships::Entity::delete_many()
                    .filter(relationships::Column::WorkspaceId.eq(ws))
                    .filter(relationships::Column::FromModelId.eq(id))
                    .exec(tx)
                    .await?;
                model_columns::Entity::delete_many()
                    .filter(model_columns::Column::WorkspaceId.eq(ws))
                    .filter(model_columns::Column::ModelId.eq(id))
                    .exec(tx)
                    .await?;
                models::Entity::delete_by_id(id).exec(tx).await?;
                let drop = Table::drop()
                    .table(Alias::new(&model.table_name))
                    .to_owned();
                tx.execute(&drop).await?;
                Ok(())
            })
        })
        .await
    }

    /// Traits whose parent or source is the model.
    async fn traits_reading_model(
        &self,
        db: &impl ConnectionTrait,
        ws: Uuid,
        model_id: Uuid,
    ) -> Result<Vec<traits::Model>> {
        let source = model_id.to_string();
        let mut out: Vec<traits::Model> = traits::Entity::find()
            .filter(traits::Column::WorkspaceId.eq(ws))
            .all(db)
            .await?
            .into_iter()
            .filter(|t| {
                t.parent_model_id == model_id
                    || t.config.get("source_model_id").and_then(|v| v.as_str())
                        == Some(source.as_str())
            })
            .collect();
        out.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(out)
    }

    /// Slugs of the traits of the model that no longer validate against the
    /// catalog as it stands in `tx` (after columns were removed).
    async fn traits_broken_by(
        &self,
        tx: &DatabaseTransaction,
        ws: Uuid,
        model_id: Uuid,
    ) -> Result<Vec<String>> {
        let mut broken = Vec::new();
        for t in self.traits_reading_model(tx, ws, model_id).await? {
            match self.plan_trait(tx, &t).await {
                Ok(_) => {}
                Err(Error::InvalidInput { .. }) => broken.push(t.slug),
                Err(e) => return Err(e),
            }
        }
        Ok(broken)
    }
}

async fn insert_columns(
    tx: &DatabaseTransaction,
    ws: Uuid,
    model_id: Uuid,
    cols: &[Column],
    first_position: i32,
) -> Result<()> {
    if cols.is_empty() {
        return Ok(());
    }
    model_columns::Entity::insert_many(cols.iter().enumerate().map(|(i, c)| {
        model_columns::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(ws),
            model_id: Set(model_id),
            name: Set(c.name.clone()),
            data_type: Set(c.data_type),
            nullable: Set(c.nullable),
            position: Set(first_position + i as i32),
        }
    }))
    .exec_without_returning(tx)
    .await?;
    Ok(())
}

/// A model of the workspace by id or slug.
async fn model_by(tx: &DatabaseTransaction, ws: Uuid, reference: &str) -> Result<models::Model> {
    let q = models::Entity::find().filter(models::Column::WorkspaceId.eq(ws));
    let q = match Uuid::parse_str(reference) {
        Ok(id) => q.filter(models::Column::Id.eq(id)),
        Err(_) => q.filter(models::Column::Slug.eq(reference)),
    };
    q.one(tx).await?.ok_or(Error::NotFound { what: "model" })
}

async fn column_type(
    tx: &DatabaseTransaction,
    ws: Uuid,
    model_id: Uuid,
    name: &str,
) -> Result<Option<DataType>> {
    Ok(model_columns::Entity::find()
        .filter(model_columns::Column::WorkspaceId.eq(ws))
        .filter(model_columns::Column::ModelId.eq(model_id))
        .filter(model_columns::Column::Name.eq(name))
        .one(tx)
        .await?
        .map(|c| c.data_type))
}

/// The model's relationships: to `players` by its user column, and the ones asked for.
#[allow(clippy::too_many_arguments)]
async fn insert_relationships(
    tx: &DatabaseTransaction,
    ws: Uuid,
    id: Uuid,
    cols: &[Column],
    pk: &str,
    user: Option<&str>,
    rels_in: &[RelationshipInput],
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    let mut rels: Vec<(String, Uuid, String, bool)> = Vec::new();
    if let Some(u) = user {
        let players = model_by(tx, ws, "players").await?;
        rels.push((u.to_owned(), players.id, "user_id".to_owned(), u == pk));
    }
    for (i, r) in rels_in.iter().enumerate() {
        let field = format!("relationships[{i}]");
        let to = model_by(tx, ws, &r.to_model).await.map_err(|_| {
            Error::invalid(
                format!("{field}.to_model"),
                format!("no model `{}` in this workspace", r.to_model),
            )
        })?;
        let to_column = r.to_column.clone().unwrap_or(to.primary_key.clone());
        let from_type = cols
            .iter()
            .find(|c| c.name == r.column)
            .map(|c| c.data_type);
        let to_type = column_type(tx, ws, to.id, &to_column).await?;
        if to_type.is_none() {
            return Err(Error::invalid(
                format!("{field}.to_column"),
                format!("`{to_column}` is not a column of `{}`", to.slug),
            ));
        }
        if to_type != from_type {
            return Err(Error::invalid(
                format!("{field}.column"),
                format!(
                    "`{}` and `{}.{to_column}` have different types",
                    r.column, to.slug
                ),
            ));
        }
        let one = r.column == pk && to_column == to.primary_key;
        rels.push((r.column.clone(), to.id, to_column, one));
    }
    for (column, to_model, to_column, one) in rels {
        relationships::Entity::insert(relationships::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(ws),
            from_model_id: Set(id),
            to_model_id: Set(to_model),
            from_column: Set(column),
            to_column: Set(to_column),
            cardinality: Set(if one {
                Cardinality::OneToOne
            } else {
                Cardinality::ManyToOne
            }),
            created_at: Set(now),
        })
        .exec_without_returning(tx)
        .await?;
    }
    Ok(())
}
