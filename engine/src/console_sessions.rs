//! Console sessions: signing in with an API key opens a session for the
//! browser (a random token in an HttpOnly cookie; only its hash is stored),
//! which acts with that key's principal until it expires, is signed out, or
//! the key is revoked.

use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, distr::Alphanumeric};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use entity::{api_keys, console_sessions};

use crate::{
    Engine, Error, Result,
    auth::{Principal, Role},
    keys::hash_secret,
};

/// How long a console session lasts.
pub const SESSION_LIFETIME: TimeDelta = TimeDelta::hours(12);

/// A session just opened: the cookie's token (shown to the browser only) and its CSRF token.
pub struct OpenedSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
    pub principal: Principal,
}

/// A live session's principal and CSRF token.
pub struct Session {
    pub principal: Principal,
    pub csrf_token: String,
}

fn random_token() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(43)
        .map(char::from)
        .collect()
}

impl Engine {
    /// Signs in with an API key (any role but `ingest`, which reads nothing).
    pub async fn open_console_session(&self, secret: &str) -> Result<OpenedSession> {
        let principal = self.authenticate(secret.trim()).await?;
        if principal.role == Role::Ingest {
            return Err(Error::Forbidden(
                "an ingest key only sends data; sign in with a viewer, editor or admin key".into(),
            ));
        }
        let (token, csrf_token) = (random_token(), random_token());
        let now = Utc::now();
        let expires_at = now + SESSION_LIFETIME;
        // Expired sessions of the workspace go as new ones come.
        console_sessions::Entity::delete_many()
            .filter(console_sessions::Column::WorkspaceId.eq(principal.workspace_id))
            .filter(console_sessions::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await?;
        console_sessions::Entity::insert(console_sessions::ActiveModel {
            token_hash: Set(hash_secret(&token)),
            workspace_id: Set(principal.workspace_id),
            key_id: Set(principal.key_id),
            csrf_token: Set(csrf_token.clone()),
            created_at: Set(now),
            expires_at: Set(expires_at),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(OpenedSession {
            token,
            csrf_token,
            expires_at,
            principal,
        })
    }

    /// The session a cookie's token names, while it lasts and its key is not revoked.
    pub async fn console_session(&self, token: &str) -> Result<Session> {
        let expired =
            || Error::Unauthenticated("the console session has ended: sign in again".into());
        let session = console_sessions::Entity::find_by_id(hash_secret(token))
            .one(&self.db)
            .await?
            .filter(|s| s.expires_at > Utc::now())
            .ok_or_else(expired)?;
        let key = api_keys::Entity::find_by_id(session.key_id)
            .one(&self.db)
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or_else(expired)?;
        let role = key.role;
        Ok(Session {
            principal: Principal {
                key_id: key.id,
                workspace_id: key.workspace_id,
                account_id: key.account_id,
                role,
            },
            csrf_token: session.csrf_token,
        })
    }

    /// Signs out: the session is gone (idempotent).
    pub async fn close_console_session(&self, token: &str) -> Result<()> {
        console_sessions::Entity::delete_by_id(hash_secret(token))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
