//! The models routes beside the traits API (`/api/v1/workspaces/{id}/models`),
//! with its addressing and error rules: the built-in models and the ones a
//! workspace defines itself.

use super::enums::{Cardinality, DataType, ModelKind};
use engine::{
    Engine,
    custom_models::{ColumnInput, ModelInput, RelationshipInput},
    models::{ModelRef, ModelView},
};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use super::{
    WorkspaceScope, path_uuid,
    text::{Text, text},
    traits::{ApiTags, Deleted, iso},
};
use crate::errors::RestError;

pub struct ModelsApi;

#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct ColumnObject {
    name: String,
    data_type: DataType,
    nullable: bool,
}

#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct RelationshipObject {
    id: String,
    from_model_id: String,
    to_model_id: String,
    from_column: String,
    to_column: String,
    cardinality: Cardinality,
}

#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct ModelObject {
    id: String,
    workspace_id: String,
    name: String,
    slug: String,
    kind: ModelKind,
    primary_key: String,
    user_id_column: Option<String>,
    timestamp_column: Option<String>,
    built_in: bool,
    columns: Vec<ColumnObject>,
    /// Relationships where this model is either end.
    relationships: Vec<RelationshipObject>,
    created_at: String,
}

impl From<ModelView> for ModelObject {
    fn from(v: ModelView) -> Self {
        let m = v.model;
        ModelObject {
            id: m.id.to_string(),
            workspace_id: m.workspace_id.to_string(),
            name: m.name,
            slug: m.slug,
            kind: m.kind.into(),
            primary_key: m.primary_key,
            user_id_column: m.user_column,
            timestamp_column: m.timestamp_column,
            built_in: m.built_in,
            columns: v
                .columns
                .into_iter()
                .map(|c| ColumnObject {
                    name: c.name,
                    data_type: c.data_type.into(),
                    nullable: c.nullable,
                })
                .collect(),
            relationships: v
                .relationships
                .into_iter()
                .map(|r| RelationshipObject {
                    id: r.id.to_string(),
                    from_model_id: r.from_model_id.to_string(),
                    to_model_id: r.to_model_id.to_string(),
                    from_column: r.from_column,
                    to_column: r.to_column,
                    cardinality: r.cardinality.into(),
                })
                .collect(),
            created_at: iso(m.created_at),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct ColumnBody {
    name: Text,
    data_type: Text,
    /// Default true; the primary key is never null.
    nullable: Option<bool>,
}

#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct RelationshipBody {
    column: Text,
    /// A model id or slug.
    to_model: Text,
    /// Default: the other model's primary key.
    to_column: Option<Text>,
}

/// Create: name, columns and primary_key are required. Update: name and
/// columns (the whole new list) may be sent.
#[derive(Object)]
#[oai(rename_all = "snake_case")]
pub struct ModelBody {
    name: Option<Text>,
    slug: Option<Text>,
    columns: Option<Vec<ColumnBody>>,
    primary_key: Option<Text>,
    user_id_column: Option<Text>,
    timestamp_column: Option<Text>,
    relationships: Option<Vec<RelationshipBody>>,
}

impl From<ModelBody> for ModelInput {
    fn from(b: ModelBody) -> Self {
        ModelInput {
            name: text(b.name),
            slug: text(b.slug),
            columns: b.columns.map(|cs| {
                cs.into_iter()
                    .map(|c| ColumnInput {
                        name: c.name.0,
                        data_type: c.data_type.0,
                        nullable: c.nullable.unwrap_or(true),
                    })
                    .collect()
            }),
            primary_key: text(b.primary_key),
            user_id_column: text(b.user_id_column),
            timestamp_column: text(b.timestamp_column),
            relationships: b.relationships.map(|rs| {
                rs.into_iter()
                    .map(|r| RelationshipInput {
                        column: r.column.0,
                        to_model: r.to_model.0,
                        to_column: text(r.to_column),
                    })
                    .collect()
            }),
        }
    }
}

#[derive(ApiResponse)]
pub enum CreatedModel {
    #[oai(status = 201)]
    Created(Json<ModelObject>),
}

#[OpenApi(tag = "ApiTags::Traits")]
impl ModelsApi {
    /// List the workspace's models: the built-in ones and its own.
    #[oai(path = "/api/v1/workspaces/:id/models", method = "get")]
    async fn list(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
    ) -> Result<Json<Vec<ModelObject>>, RestError> {
        let p = scope.0;
        let models = engine.all_models(&p).await?;
        Ok(Json(models.into_iter().map(Into::into).collect()))
    }

    /// Define a model with a table of its own.
    #[oai(path = "/api/v1/workspaces/:id/models", method = "post")]
    async fn create(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        body: Json<ModelBody>,
    ) -> Result<CreatedModel, RestError> {
        let p = scope.0;
        let m = engine.create_model(&p, body.0.into()).await?;
        Ok(CreatedModel::Created(Json(m.into())))
    }

    /// Get a model.
    #[oai(path = "/api/v1/workspaces/:id/models/:model_id", method = "get")]
    async fn get(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        model_id: Path<String>,
    ) -> Result<Json<ModelObject>, RestError> {
        let p = scope.0;
        let id = path_uuid(&model_id, "model")?;
        Ok(Json(engine.model(&p, ModelRef::Id(id)).await?.into()))
    }

    /// Rename a model or change its columns (409 when a removed column is read by traits).
    #[oai(path = "/api/v1/workspaces/:id/models/:model_id", method = "put")]
    async fn update(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        model_id: Path<String>,
        body: Json<ModelBody>,
    ) -> Result<Json<ModelObject>, RestError> {
        let p = scope.0;
        let id = path_uuid(&model_id, "model")?;
        Ok(Json(
            engine.update_model(&p, id, body.0.into()).await?.into(),
        ))
    }

    /// Delete a model and its rows (409 while traits or other models use it).
    #[oai(path = "/api/v1/workspaces/:id/models/:model_id", method = "delete")]
    async fn delete(
        &self,
        engine: Data<&Engine>,
        scope: WorkspaceScope,
        #[oai(name = "id")] _id: Path<String>,
        model_id: Path<String>,
    ) -> Result<Json<Deleted>, RestError> {
        let p = scope.0;
        engine
            .delete_model(&p, path_uuid(&model_id, "model")?)
            .await?;
        Ok(Json(Deleted::status_deleted()))
    }
}
