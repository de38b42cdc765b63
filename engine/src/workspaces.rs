//! Workspaces: creation (with the built-in catalog and a first admin key) and lookup.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use uuid::Uuid;

use entity::{accounts, workspaces};

use crate::{
    Engine, Error, Result,
    auth::Role,
    catalog,
    keys::{CreatedKey, insert_key},
    slug::slugify,
};

pub struct CreatedWorkspace {
    pub workspace: workspaces::Model,
    pub admin_key: CreatedKey,
}

impl Engine {
    /// Creates a workspace, seeds its built-in models and returns its first
    /// admin key, all in one transaction.
    pub async fn create_workspace(
        &self,
        name: &str,
        owner_email: Option<&str>,
    ) -> Result<CreatedWorkspace> {
        let name = name.trim().to_owned();
        let slug = slugify(&name);
        if slug.is_empty() || name.len() > 200 {
            return Err(Error::invalid(
                "name",
                "must be 1 to 200 characters with at least one letter or digit",
            ));
        }
        let owner_email = owner_email.map(str::trim).map(str::to_lowercase);
        if let Some(email) = &owner_email
            && (!email.contains('@') || email.len() > 320)
        {
            return Err(Error::invalid(
                "owner_email",
                format!("'{email}' is not an email address"),
            ));
        }
        if workspaces::Entity::find()
            .filter(workspaces::Column::Slug.eq(&slug))
            .count(&self.db)
            .await?
            > 0
        {
            return Err(Error::Conflict(format!(
                "a workspace with slug '{slug}' already exists"
            )));
        }
        let created = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let now = Utc::now();
                let workspace = workspaces::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    name: Set(name),
                    slug: Set(slug),
                    created_at: Set(now),
                    notification_webhook_url: Set(None),
                }
                .insert(tx)
                .await?;
                let account_id = match owner_email {
                    Some(email) => Some(find_or_create_account(tx, &email).await?),
                    None => None,
                };
                catalog::seed(tx, workspace.id).await?;
                let admin_key =
                    insert_key(tx, workspace.id, account_id, "admin", Role::Admin).await?;
                Ok(CreatedWorkspace {
                    workspace,
                    admin_key,
                })
            })
        })
        .await?;
        Ok(created)
    }

    /// On the very first start (no workspace at all) creates `default`.
    pub async fn bootstrap(&self) -> Result<Option<CreatedWorkspace>> {
        if workspaces::Entity::find().count(&self.db).await? > 0 {
            return Ok(None);
        }
        self.create_workspace("default", None).await.map(Some)
    }

    /// The workspace `bootstrap` made, if it is still there.
    pub async fn default_workspace(&self) -> Result<Option<workspaces::Model>> {
        Ok(workspaces::Entity::find()
            .filter(workspaces::Column::Slug.eq("default"))
            .one(&self.db)
            .await?)
    }

    pub async fn workspace(&self, id: Uuid) -> Result<workspaces::Model> {
        workspaces::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound { what: "workspace" })
    }
}

async fn find_or_create_account(tx: &sea_orm::DatabaseTransaction, email: &str) -> Result<Uuid> {
    if let Some(a) = accounts::Entity::find()
        .filter(accounts::Column::Email.eq(email))
        .one(tx)
        .await?
    {
        return Ok(a.id);
    }
    let account = accounts::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.to_owned()),
        display_name: Set(email.split('@').next().unwrap_or(email).to_owned()),
        created_at: Set(Utc::now()),
    }
    .insert(tx)
    .await?;
    Ok(account.id)
}
