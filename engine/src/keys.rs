//! API keys: `tf_` + 40 random alphanumerics, shown once, stored as SHA-256.

use chrono::Utc;
use rand::{Rng, distr::Alphanumeric};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use entity::api_keys;

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal, Role},
    pagination::{Direction, Page, PageRequest, paginate},
};

const SECRET_PREFIX: &str = "tf_";
const SECRET_RANDOM_LEN: usize = 40;
/// Characters of the secret kept in clear so people can tell keys apart.
const DISPLAY_PREFIX_LEN: usize = SECRET_PREFIX.len() + 8;

/// A freshly created key with its secret: the only time the secret exists outside the caller.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    pub key: api_keys::Model,
    pub secret: String,
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> String {
    let random: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(SECRET_RANDOM_LEN)
        .map(char::from)
        .collect();
    format!("{SECRET_PREFIX}{random}")
}

/// Inserts a key; used by workspace creation (inside its transaction) and by the services below.
pub(crate) async fn insert_key(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    account_id: Option<Uuid>,
    name: &str,
    role: Role,
) -> Result<CreatedKey> {
    let name = crate::limits::name(name, "name")?;
    let secret = new_secret();
    let key = api_keys::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        account_id: Set(account_id),
        name: Set(name.to_owned()),
        prefix: Set(secret[..DISPLAY_PREFIX_LEN].to_owned()),
        secret_hash: Set(hash_secret(&secret)),
        role: Set(role),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(CreatedKey { key, secret })
}

impl Engine {
    pub async fn create_api_key(
        &self,
        p: &Principal,
        name: &str,
        role: Role,
    ) -> Result<CreatedKey> {
        p.require(Permission::Admin)?;
        insert_key(&self.db, p.workspace_id, p.account_id, name, role).await
    }

    /// Creates a key without a caller (the CLI, run by the operator on the host).
    pub async fn create_api_key_as_operator(
        &self,
        workspace_id: Uuid,
        name: &str,
        role: Role,
    ) -> Result<CreatedKey> {
        self.workspace(workspace_id).await?;
        insert_key(&self.db, workspace_id, None, name, role).await
    }

    pub async fn list_api_keys(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> Result<Page<api_keys::Model>> {
        p.require(Permission::Admin)?;
        let q = api_keys::Entity::find().filter(api_keys::Column::WorkspaceId.eq(p.workspace_id));
        paginate(&self.db, q, api_keys::Column::Id, Direction::Forward, page).await
    }

    /// Revokes a key; revoking twice is harmless and keeps the first revocation time.
    pub async fn revoke_api_key(&self, p: &Principal, id: Uuid) -> Result<api_keys::Model> {
        p.require(Permission::Admin)?;
        let key = api_keys::Entity::find_by_id(id)
            .filter(api_keys::Column::WorkspaceId.eq(p.workspace_id))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound { what: "api key" })?;
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        let mut active: api_keys::ActiveModel = key.into();
        active.revoked_at = Set(Some(Utc::now()));
        let revoked = active.update(&self.db).await?;
        self.key_cache.forget(revoked.id);
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_documented_shape_and_differ() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(a.len(), 43);
        assert!(a.starts_with("tf_"));
        assert!(a[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
