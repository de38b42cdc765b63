//! Reading trait values: one trait's values page by page, and every trait
//! value of one player, as JSON of each trait's result type.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use entity::{trait_values, traits};

use super::{definition::ResultType, service::result_type_of};
use crate::{
    Engine, Result,
    auth::{Permission, Principal},
    pagination::{Direction, Page, PageRequest, keyset},
};

/// One entity's value, as JSON of the trait's result type.
#[derive(Clone, Debug)]
pub struct TraitValue {
    pub entity_id: String,
    pub value: Value,
    pub updated_at: chrono::DateTime<Utc>,
}

pub(crate) fn value_json(result_type: ResultType, v: &trait_values::Model) -> Value {
    match result_type {
        ResultType::Number => v.value_number.map_or(Value::Null, |n| json!(n)),
        ResultType::Text => v.value_text.clone().map_or(Value::Null, Value::String),
        ResultType::Boolean => v.value_boolean.map_or(Value::Null, Value::Bool),
        ResultType::Timestamp => v
            .value_timestamp
            .map_or(Value::Null, |t| json!(t.to_rfc3339())),
        ResultType::Array => v.value_json.clone().unwrap_or(Value::Null),
    }
}

impl Engine {
    /// One trait's values, paged by entity id.
    pub async fn trait_values(
        &self,
        p: &Principal,
        id: Uuid,
        page: PageRequest,
    ) -> Result<Page<TraitValue>> {
        p.require(Permission::Read)?;
        let t = self.find_trait(&self.db, p, id).await?;
        let rt = result_type_of(&t)?;
        let q = trait_values::Entity::find()
            .filter(trait_values::Column::WorkspaceId.eq(p.workspace_id))
            .filter(trait_values::Column::TraitId.eq(id));
        let (limit, after) = (page.limit()?, page.after);
        let column = trait_values::Column::EntityId;
        let rows = keyset(&self.db, q, column, Direction::Forward, after, limit).await?;
        Ok(rows.map(|v| TraitValue {
            value: value_json(rt, &v),
            entity_id: v.entity_id,
            updated_at: v.updated_at,
        }))
    }

    /// Every trait value of one entity of the players model.
    pub async fn player_traits(
        &self,
        p: &Principal,
        user_id: &str,
    ) -> Result<Vec<(traits::Model, TraitValue)>> {
        p.require(Permission::Read)?;
        let players = self
            .model(p, crate::models::ModelRef::Slug("players"))
            .await?
            .model
            .id;
        let defs: HashMap<Uuid, traits::Model> = traits::Entity::find()
            .filter(traits::Column::WorkspaceId.eq(p.workspace_id))
            .filter(traits::Column::ParentModelId.eq(players))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        // Primary-key lookups: (workspace, trait, entity) for each trait of the model.
        let values = trait_values::Entity::find()
            .filter(trait_values::Column::WorkspaceId.eq(p.workspace_id))
            .filter(trait_values::Column::TraitId.is_in(defs.keys().copied()))
            .filter(trait_values::Column::EntityId.eq(user_id))
            .all(&self.db)
            .await?;
        let mut out = Vec::new();
        for v in values {
            if let Some(t) = defs.get(&v.trait_id) {
                let rt = result_type_of(t)?;
                out.push((
                    t.clone(),
                    TraitValue {
                        entity_id: v.entity_id.clone(),
                        value: value_json(rt, &v),
                        updated_at: v.updated_at,
                    },
                ));
            }
        }
        out.sort_by(|a, b| a.0.slug.cmp(&b.0.slug));
        Ok(out)
    }
}
