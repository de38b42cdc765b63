use async_graphql::{Context, ID, Object, Result};

use super::{
    connection::parse_id,
    query::scope,
    types::{ApiKey, CreatedApiKey, Job, Role},
};
use crate::errors::GqlResultExt;

#[derive(Default)]
pub struct CoreMutation;

#[Object]
impl CoreMutation {
    /// Creates a key (admin only). The secret is in the answer and nowhere else, ever.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        role: Role,
    ) -> Result<CreatedApiKey> {
        let (engine, p) = scope(ctx)?;
        let created = engine.create_api_key(p, &name, role.into()).await.gql()?;
        Ok(CreatedApiKey {
            api_key: ApiKey::try_from(created.key).gql()?,
            secret: created.secret,
        })
    }

    /// Revokes a key at once (admin only); later requests with it get 401.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey> {
        let (engine, p) = scope(ctx)?;
        let key = engine
            .revoke_api_key(p, parse_id("id", &id).gql()?)
            .await
            .gql()?;
        ApiKey::try_from(key).gql()
    }

    /// Queues a no-op job to check that workers are consuming the queue
    /// (admin only). Poll `job(id)`: `worker` names the process that ran it.
    async fn run_diagnostic_job(&self, ctx: &Context<'_>, message: Option<String>) -> Result<Job> {
        let (engine, p) = scope(ctx)?;
        let record = engine
            .enqueue_diagnostic(p, message.as_deref().unwrap_or("ping"))
            .await
            .gql()?;
        Job::try_from(record).gql()
    }
}
