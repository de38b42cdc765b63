//! What a workspace is told about its data: notifications (raised by scans
//! and loads, delivered to its webhook when it has one) and the quarantine.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use uuid::Uuid;

use entity::{
    data_sources, job_records, notifications, quarantined_lines, source_files, workspaces,
};

use super::jobs::DeliverNotification;
use super::sources::{DeliveryStatus, NotificationKind};
use crate::{
    Engine, Result,
    auth::{Permission, Principal},
    jobs::enqueue_in,
    pagination::{Direction, Page, PageRequest, paginate},
};

impl Engine {
    /// The workspace's notifications, newest first.
    pub async fn notifications(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> Result<Page<notifications::Model>> {
        p.require(Permission::Read)?;
        let q = notifications::Entity::find()
            .filter(notifications::Column::WorkspaceId.eq(p.workspace_id));
        paginate(
            &self.db,
            q,
            notifications::Column::Id,
            Direction::Backward,
            page,
        )
        .await
    }

    /// Quarantined lines, newest first.
    pub async fn quarantine(
        &self,
        p: &Principal,
        page: PageRequest,
    ) -> Result<Page<quarantined_lines::Model>> {
        p.require(Permission::Read)?;
        let q = quarantined_lines::Entity::find()
            .filter(quarantined_lines::Column::WorkspaceId.eq(p.workspace_id));
        paginate(
            &self.db,
            q,
            quarantined_lines::Column::Id,
            Direction::Backward,
            page,
        )
        .await
    }

    pub(crate) async fn notify(
        &self,
        workspace_id: Uuid,
        source_id: Option<Uuid>,
        kind: NotificationKind,
        path: Option<&str>,
        message: String,
    ) -> Result<()> {
        self.notify_with(workspace_id, source_id, kind, path, message, None)
            .await
    }

    /// A notification whose webhook body is `payload` (when given) instead of the usual fields.
    pub(crate) async fn notify_with(
        &self,
        workspace_id: Uuid,
        source_id: Option<Uuid>,
        kind: NotificationKind,
        path: Option<&str>,
        message: String,
        payload: Option<serde_json::Value>,
    ) -> Result<()> {
        let path = path.map(str::to_owned);
        let job = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let note = Note {
                    source_id,
                    kind,
                    path,
                    message,
                    payload,
                };
                notify_in(tx, workspace_id, note).await
            })
        })
        .await?;
        if let Some(job) = job {
            self.dispatch(&job).await;
        }
        Ok(())
    }

    pub(super) async fn notify_overwritten(
        &self,
        source: &data_sources::Model,
        path: &str,
        known: &source_files::Model,
        size: u64,
    ) -> Result<()> {
        let message = if source.reload_overwritten {
            format!(
                "{path} changed after it was loaded ({} → {size} bytes); its rows are replaced by the new version",
                known.size
            )
        } else {
            format!(
                "{path} changed after it was loaded ({} → {size} bytes); it is not reloaded: upload new data as new files",
                known.size
            )
        };
        let already = notifications::Entity::find()
            .filter(notifications::Column::WorkspaceId.eq(source.workspace_id))
            .filter(notifications::Column::Kind.eq(NotificationKind::FileOverwritten))
            .filter(notifications::Column::Message.eq(&message))
            .one(&self.db)
            .await?;
        if already.is_none() {
            self.notify(
                source.workspace_id,
                Some(source.id),
                NotificationKind::FileOverwritten,
                Some(path),
                message,
            )
            .await?;
        }
        Ok(())
    }
}

/// A notification to raise.
pub(crate) struct Note {
    pub source_id: Option<Uuid>,
    pub kind: NotificationKind,
    pub path: Option<String>,
    pub message: String,
    /// The webhook body instead of the usual fields (membership changes).
    pub payload: Option<serde_json::Value>,
}

/// Writes a notification and, when the workspace has a webhook, its
/// delivery job, on `conn` (so with the change that raised it); the caller
/// dispatches the returned job once committed.
pub(crate) async fn notify_in(
    conn: &impl ConnectionTrait,
    workspace_id: Uuid,
    note: Note,
) -> Result<Option<job_records::Model>> {
    tracing::info!(%workspace_id, kind = note.kind.as_str(), path = note.path, message = %note.message, "notification");
    let webhook = workspaces::Entity::find_by_id(workspace_id)
        .one(conn)
        .await?
        .ok_or(crate::Error::NotFound { what: "workspace" })?
        .notification_webhook_url;
    let row = notifications::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        source_id: Set(note.source_id),
        kind: Set(note.kind),
        path: Set(note.path),
        message: Set(note.message),
        created_at: Set(Utc::now()),
        delivery_status: Set(webhook.as_ref().map(|_| DeliveryStatus::Pending)),
        delivery_attempts: Set(0),
        delivery_error: Set(None),
        delivered_at: Set(None),
        payload: Set(note.payload),
    }
    .insert(conn)
    .await?;
    if webhook.is_none() {
        return Ok(None);
    }
    let work = DeliverNotification {
        notification_id: row.id,
    };
    Ok(Some(enqueue_in(conn, Some(workspace_id), &work).await?))
}
