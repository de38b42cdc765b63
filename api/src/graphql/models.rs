//! Mutations over the model catalog: a workspace's own models beside the built-in ones.

use async_graphql::{Context, ID, InputObject, Object, Result};
use engine::custom_models::{ColumnInput, ModelInput, RelationshipInput};

use super::{
    connection::parse_id,
    query::scope,
    types::{DataType, Model},
};
use crate::errors::GqlResultExt;

#[derive(InputObject)]
pub struct ModelColumnInput {
    /// Lower-case letters, digits and `_`.
    pub name: String,
    pub data_type: DataType,
    #[graphql(default = true)]
    pub nullable: bool,
}

impl From<ModelColumnInput> for ColumnInput {
    fn from(c: ModelColumnInput) -> Self {
        ColumnInput {
            name: c.name,
            data_type: engine::catalog::DataType::from(c.data_type)
                .as_str()
                .to_owned(),
            nullable: c.nullable,
        }
    }
}

/// `column` refers to `toColumn` (default: its primary key) of `toModel` (an id or a slug).
#[derive(InputObject)]
pub struct ModelRelationshipInput {
    pub column: String,
    pub to_model: String,
    pub to_column: Option<String>,
}

#[derive(InputObject)]
pub struct CreateModelInput {
    pub name: String,
    /// Default: derived from the name. Also the `{type}` of `POST /v1/events/{type}`
    /// and the bucket folder the model's files are read from.
    pub slug: Option<String>,
    pub columns: Vec<ModelColumnInput>,
    pub primary_key: String,
    /// The column holding the player's user id (relates the model to `players`).
    pub user_id_column: Option<String>,
    /// Makes the model an event stream: windows and first/last read it.
    pub timestamp_column: Option<String>,
    #[graphql(default)]
    pub relationships: Vec<ModelRelationshipInput>,
}

/// Only the fields given change; `columns` is the whole new list.
#[derive(InputObject)]
pub struct UpdateModelInput {
    pub name: Option<String>,
    pub columns: Option<Vec<ModelColumnInput>>,
}

#[derive(Default)]
pub struct ModelMutation;

#[Object]
impl ModelMutation {
    /// Defines a model with a table of its own (write role).
    async fn create_model(&self, ctx: &Context<'_>, input: CreateModelInput) -> Result<Model> {
        let (engine, p) = scope(ctx)?;
        let input = ModelInput {
            name: Some(input.name),
            slug: input.slug,
            columns: Some(input.columns.into_iter().map(Into::into).collect()),
            primary_key: Some(input.primary_key),
            user_id_column: input.user_id_column,
            timestamp_column: input.timestamp_column,
            relationships: Some(
                input
                    .relationships
                    .into_iter()
                    .map(|r| RelationshipInput {
                        column: r.column,
                        to_model: r.to_model,
                        to_column: r.to_column,
                    })
                    .collect(),
            ),
        };
        Model::try_from(engine.create_model(p, input).await.gql()?).gql()
    }

    /// Renames a model or changes its columns: new columns must be nullable;
    /// removing a column a trait reads is refused naming the traits.
    async fn update_model(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateModelInput,
    ) -> Result<Model> {
        let (engine, p) = scope(ctx)?;
        let input = ModelInput {
            name: input.name,
            columns: input
                .columns
                .map(|cs| cs.into_iter().map(Into::into).collect()),
            ..ModelInput::default()
        };
        let id = parse_id("id", &id).gql()?;
        Model::try_from(engine.update_model(p, id, input).await.gql()?).gql()
    }

    /// Drops a model and its rows; refused while traits or other models use it.
    async fn delete_model(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (engine, p) = scope(ctx)?;
        engine
            .delete_model(p, parse_id("id", &id).gql()?)
            .await
            .gql()?;
        Ok(true)
    }
}
