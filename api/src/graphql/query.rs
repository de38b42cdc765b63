use async_graphql::{Context, ID, Object, Result};
use engine::{Engine, Error, auth::Principal, models::ModelRef};

use super::{
    connection::{Conn, connection, id_cursor, page_request, parse_id},
    types::{ApiKey, Job, Model, Relationship, Viewer},
};
use crate::errors::GqlResultExt;

#[derive(Default)]
pub struct CoreQuery;

/// The engine and the caller, present on every executed request.
pub(super) fn scope<'a>(ctx: &'a Context<'_>) -> Result<(&'a Engine, &'a Principal)> {
    Ok((ctx.data::<Engine>()?, ctx.data::<Principal>()?))
}

#[Object]
impl CoreQuery {
    /// The calling key, its workspace and role.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let (engine, p) = scope(ctx)?;
        let workspace = engine.workspace(p.workspace_id).await.gql()?;
        Ok(Viewer {
            workspace: workspace.into(),
            role: p.role.into(),
            key_id: p.key_id.into(),
        })
    }

    /// The workspace's models (built-in players, items and event streams first).
    async fn models(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Model>> {
        let (engine, p) = scope(ctx)?;
        let page = engine
            .list_models(p, page_request(first, after).gql()?)
            .await
            .gql()?;
        connection(page, |m| id_cursor(m.model.id), Model::try_from).gql()
    }

    /// One model, by `id` or by `slug` (exactly one of them).
    async fn model(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> Result<Model> {
        let (engine, p) = scope(ctx)?;
        let r = match (&id, &slug) {
            (Some(id), None) => ModelRef::Id(parse_id("id", id).gql()?),
            (None, Some(slug)) => ModelRef::Slug(slug),
            _ => return Err(Error::invalid("id", "give exactly one of `id` and `slug`")).gql(),
        };
        Model::try_from(engine.model(p, r).await.gql()?).gql()
    }

    async fn relationships(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Relationship>> {
        let (engine, p) = scope(ctx)?;
        let page = engine
            .list_relationships(p, page_request(first, after).gql()?)
            .await
            .gql()?;
        connection(page, |r| id_cursor(r.id), Relationship::try_from).gql()
    }

    /// Keys of this workspace (admin only). Secrets are never returned.
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<ApiKey>> {
        let (engine, p) = scope(ctx)?;
        let page = engine
            .list_api_keys(p, page_request(first, after).gql()?)
            .await
            .gql()?;
        connection(page, |k| id_cursor(k.id), ApiKey::try_from).gql()
    }

    async fn job(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        let (engine, p) = scope(ctx)?;
        Job::try_from(engine.job(p, parse_id("id", &id).gql()?).await.gql()?).gql()
    }

    async fn jobs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Job>> {
        let (engine, p) = scope(ctx)?;
        let page = engine
            .list_jobs(p, page_request(first, after).gql()?)
            .await
            .gql()?;
        connection(page, |j| id_cursor(j.id), Job::try_from).gql()
    }
}
