//! Who is calling and what their key's role allows. Every service takes a
//! [`Principal`] and checks a [`Permission`] itself, so no transport can skip it.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use entity::api_keys;

use crate::{Engine, Error, Result, keys::hash_secret};

pub use entity::states::Role;

/// A role named by a client or an operator.
pub fn role_from_input(s: &str) -> Result<Role> {
    Role::parse(s)
        .ok_or_else(|| Error::invalid("role", format!("unknown role '{s}' ({})", Role::expected())))
}

/// Whether `role` may do what `p` needs.
fn allows(role: Role, p: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Admin => true,
        Role::Editor => matches!(p, Read | Write | Ingest),
        Role::Viewer => matches!(p, Read),
        Role::Ingest => matches!(p, Ingest),
    }
}

/// What an action needs. Admin keys may do everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read definitions and computed data.
    Read,
    /// Create and change definitions (traits, segments, sources).
    Write,
    /// Send behavioural data.
    Ingest,
    /// Manage keys and operate the instance (diagnostic jobs).
    Admin,
}

impl Permission {
    fn describe(self) -> &'static str {
        match self {
            Permission::Read => "read this workspace",
            Permission::Write => "change definitions",
            Permission::Ingest => "send data",
            Permission::Admin => "administer the workspace",
        }
    }
}

/// The authenticated caller: one API key of one workspace.
#[derive(Clone, Debug)]
pub struct Principal {
    pub key_id: Uuid,
    pub workspace_id: Uuid,
    pub account_id: Option<Uuid>,
    pub role: Role,
}

impl Principal {
    /// Passes when the role allows any of `ps` (reads that ingest keys may also make).
    pub fn require_any(&self, ps: &[Permission]) -> Result<()> {
        match ps.iter().find(|p| allows(self.role, **p)) {
            Some(_) => Ok(()),
            None => self.require(ps[0]),
        }
    }

    pub fn require(&self, p: Permission) -> Result<()> {
        if allows(self.role, p) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "a key with role '{}' may not {}",
                self.role.as_str(),
                p.describe()
            )))
        }
    }
}

/// `last_used_at` is refreshed at most this often, so reads don't become writes.
const LAST_USED_GRANULARITY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A resolved key is reused for this long without reading `api_keys`: hot
/// read routes (the persona routes) would otherwise spend most of their time
/// on that read. A key revoked through another server process is refused
/// there within this time; this process forgets it at once.
const KEY_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// More distinct keys than this in one second: start over rather than grow.
const KEY_CACHE_ENTRIES: usize = 10_000;

/// Principals by secret hash, with when they were read; and the keys whose
/// `last_used_at` is being written.
#[derive(Default)]
pub struct KeyCache(
    Mutex<HashMap<String, (Principal, Instant)>>,
    Mutex<std::collections::HashSet<Uuid>>,
);

impl KeyCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Principal, Instant)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this call should write the key's `last_used_at` (no other
    /// write of it is under way); [`Self::touched`] ends it.
    fn touching(&self, key_id: Uuid) -> bool {
        self.1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_id)
    }

    fn touched(&self, key_id: Uuid) {
        self.1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key_id);
    }

    fn get(&self, hash: &str) -> Option<Principal> {
        let map = self.map();
        let (p, read) = map.get(hash)?;
        (read.elapsed() < KEY_RECHECK).then(|| p.clone())
    }

    fn put(&self, hash: String, p: Principal) {
        let mut map = self.map();
        if map.len() >= KEY_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(hash, (p, Instant::now()));
    }

    pub(crate) fn forget(&self, key_id: Uuid) {
        self.map().retain(|_, (p, _)| p.key_id != key_id);
    }
}

impl Engine {
    /// Resolves a bearer secret to its principal. Unknown and revoked keys get
    /// the same answer, so a probe learns nothing.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        let hash = hash_secret(secret);
        if let Some(p) = self.key_cache.get(&hash) {
            return Ok(p);
        }
        let key = api_keys::Entity::find()
            .filter(api_keys::Column::SecretHash.eq(hash.as_str()))
            .one(&self.db)
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or_else(|| Error::Unauthenticated("invalid or revoked API key".into()))?;
        let role = key.role;
        let now = Utc::now();
        if key
            .last_used_at
            .is_none_or(|t| now - t > LAST_USED_GRANULARITY)
            && self.key_cache.touching(key.id)
        {
            // Off the request: a read never waits for the write lock (on
            // SQLite a long trait transaction may hold it), and a failed
            // write only delays the mark.
            let (db, cache, id) = (self.db.clone(), self.key_cache.clone(), key.id);
            tokio::spawn(async move {
                let written = api_keys::Entity::update_many()
                    .col_expr(api_keys::Column::LastUsedAt, Expr::value(Some(now)))
                    .filter(api_keys::Column::Id.eq(id))
                    .exec(&db)
                    .await;
                if let Err(e) = written {
                    tracing::warn!(key = %id, error = %e, "could not record the key's last use");
                }
                cache.touched(id);
            });
        }
        let p = Principal {
            key_id: key.id,
            workspace_id: key.workspace_id,
            account_id: key.account_id,
            role,
        };
        self.key_cache.put(hash, p.clone());
        Ok(p)
    }
}
