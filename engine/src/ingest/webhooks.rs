//! Notifications delivered to the workspace's webhook: a JSON POST, retried
//! with exponential backoff; the outcome is kept on the notification.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::json;
use uuid::Uuid;

use entity::{notifications, workspaces};

use super::sources::DeliveryStatus;
use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
};

/// Attempts per notification, and the wait before the second one (doubling after).
pub const MAX_ATTEMPTS: i32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An error with its causes, `: `-separated (reqwest keeps the reason, such
/// as the outbound policy's refusal, in its sources).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Engine {
    /// Sets (or, with `None`, removes) the URL notifications are POSTed to.
    pub async fn set_notification_webhook(
        &self,
        p: &Principal,
        url: Option<String>,
    ) -> Result<workspaces::Model> {
        p.require(Permission::Admin)?;
        let url = url.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
        if let Some(u) = &url {
            if u.len() > 2048 {
                return Err(Error::invalid("url", "must be at most 2048 characters"));
            }
            self.outbound.check_url("url", u)?;
        }
        let mut w: workspaces::ActiveModel = self.workspace(p.workspace_id).await?.into();
        w.notification_webhook_url = Set(url);
        Ok(w.update(&self.db).await?)
    }

    /// The `DeliverNotification` job. Gives up after [`MAX_ATTEMPTS`] and
    /// records the last error; it never fails the job, so a dead receiver
    /// does not fill the job list with failures.
    pub async fn deliver_notification(&self, id: Uuid) -> Result<()> {
        let Some(note) = notifications::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(());
        };
        if note.delivery_status != Some(DeliveryStatus::Pending) {
            return Ok(());
        }
        let Some(url) = self
            .workspace(note.workspace_id)
            .await?
            .notification_webhook_url
        else {
            return Ok(());
        };
        let body = note.payload.clone().unwrap_or_else(|| {
            json!({
                "id": note.id,
                "workspace_id": note.workspace_id,
                "source_id": note.source_id,
                "kind": note.kind,
                "path": note.path,
                "message": note.message,
                "created_at": note.created_at,
            })
        });
        let client = self.outbound.http_client(REQUEST_TIMEOUT)?;
        let mut attempts = note.delivery_attempts;
        let mut backoff = FIRST_BACKOFF;
        let (status, error) = loop {
            // Stored before the policy, or OUTBOUND_ALLOW changed since: checked again.
            if let Err(e) = self.outbound.check_url("url", &url) {
                break (DeliveryStatus::Failed, Some(e.to_string()));
            }
            attempts += 1;
            let sent = client.post(&url).json(&body).send().await;
            let error = match sent {
                Ok(r) if r.status().is_success() => break (DeliveryStatus::Delivered, None),
                // A redirect is not followed: it is an answer like any other.
                Ok(r) => format!("the webhook answered {}", r.status()),
                Err(e) => format!("the webhook could not be reached: {}", causes(&e)),
            };
            if attempts >= MAX_ATTEMPTS {
                tracing::warn!(notification = %id, %error, "notification not delivered");
                break (DeliveryStatus::Failed, Some(error));
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        };
        let mut done: notifications::ActiveModel = note.into();
        done.delivery_attempts = Set(attempts);
        done.delivery_status = Set(Some(status));
        done.delivered_at = Set((status == DeliveryStatus::Delivered).then(Utc::now));
        done.delivery_error = Set(error);
        done.update(&self.db).await?;
        Ok(())
    }
}
