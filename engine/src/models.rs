//! Read access to the model catalog: models with their columns and relationships.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use entity::{model_columns, models, relationships};

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    pagination::{Direction, Page, PageRequest, paginate},
};

/// A model with what callers almost always want beside it, loaded in batches.
#[derive(Clone, Debug)]
pub struct ModelView {
    pub model: models::Model,
    pub columns: Vec<model_columns::Model>,
    /// Relationships where this model is either end.
    pub relationships: Vec<relationships::Model>,
}

pub enum ModelRef<'a> {
    Id(Uuid),
    Slug(&'a str),
}

impl Engine {
    pub async fn list_models(&self, p: &Principal, page: PageRequest) -> Result<Page<ModelView>> {
        p.require(Permission::Read)?;
        let q = models::Entity::find().filter(models::Column::WorkspaceId.eq(p.workspace_id));
        let page = paginate(&self.db, q, models::Column::Id, Direction::Forward, page).await?;
        let views = self.attach(p.workspace_id, page.items.clone()).await?;
        Ok(Page {
            items: views,
            has_next_page: page.has_next_page,
            has_previous_page: page.has_previous_page,
        })
    }

    /// Every model of the workspace, oldest first (a workspace has tens, not thousands).
    pub async fn all_models(&self, p: &Principal) -> Result<Vec<ModelView>> {
        p.require(Permission::Read)?;
        let models = models::Entity::find()
            .filter(models::Column::WorkspaceId.eq(p.workspace_id))
            .order_by_asc(models::Column::Id)
            .all(&self.db)
            .await?;
        self.attach(p.workspace_id, models).await
    }

    pub async fn model(&self, p: &Principal, r: ModelRef<'_>) -> Result<ModelView> {
        p.require(Permission::Read)?;
        let q = models::Entity::find().filter(models::Column::WorkspaceId.eq(p.workspace_id));
        let q = match r {
            ModelRef::Id(id) => q.filter(models::Column::Id.eq(id)),
            ModelRef::Slug(slug) => q.filter(models::Column::Slug.eq(slug)),
        };
        let model = q
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound { what: "model" })?;
        let mut views = self.attach(p.workspace_id, vec![model]).await?;
        Ok(views.remove(0))
    }

    pub async fn list_relationships(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> Result<Page<relationships::Model>> {
        p.require(Permission::Read)?;
        let q = relationships::Entity::find()
            .filter(relationships::Column::WorkspaceId.eq(p.workspace_id));
        paginate(
            &self.db,
            q,
            relationships::Column::Id,
            Direction::Forward,
            page,
        )
        .await
    }

    /// Two queries for any number of models: their columns, then their relationships.
    async fn attach(
        &self,
        workspace_id: Uuid,
        models: Vec<models::Model>,
    ) -> Result<Vec<ModelView>> {
        let ids: Vec<Uuid> = models.iter().map(|m| m.id).collect();
        let mut columns: HashMap<Uuid, Vec<model_columns::Model>> = HashMap::new();
        for c in model_columns::Entity::find()
            .filter(model_columns::Column::WorkspaceId.eq(workspace_id))
            .filter(model_columns::Column::ModelId.is_in(ids.clone()))
            .order_by_asc(model_columns::Column::Position)
            .all(&self.db)
            .await?
        {
            columns.entry(c.model_id).or_default().push(c);
        }
        let rels = relationships::Entity::find()
            .filter(relationships::Column::WorkspaceId.eq(workspace_id))
            .filter(
                Condition::any()
                    .add(relationships::Column::FromModelId.is_in(ids.clone()))
                    .add(relationships::Column::ToModelId.is_in(ids)),
            )
            .order_by_asc(relationships::Column::Id)
            .all(&self.db)
            .await?;
        Ok(models
            .into_iter()
            .map(|model| ModelView {
                columns: columns.remove(&model.id).unwrap_or_default(),
                relationships: rels
                    .iter()
                    .filter(|r| r.from_model_id == model.id || r.to_model_id == model.id)
                    .cloned()
                    .collect(),
                model,
            })
            .collect())
    }
}
