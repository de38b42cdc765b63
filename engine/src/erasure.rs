//! Erasing a player: every row naming their user id in the workspace, one
//! transaction per table group, and an audit record that keeps a keyed
//! fingerprint of the id (never the id) with the rows removed per table.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement},
};
use serde_json::json;
use uuid::Uuid;

use entity::{erasures, models, notifications, segments, traits};

use crate::pagination::{Direction, Page, PageRequest, paginate};
use crate::segments::jobs::ComputeSegment;
use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    ingest::records::RecordType,
    jobs::enqueue_once_in,
    keys::hash_secret,
};

/// What one erasure removed.
#[derive(Clone, Debug)]
pub struct ErasureReport {
    pub audit: erasures::Model,
    pub rows_removed: BTreeMap<String, u64>,
}

fn col(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

/// A quarantined line that could not be parsed far enough to know its user
/// still names them in its excerpt: as a JSON string (`"u1"`), a JSON number
/// after `"user_id":`, or a CSV field (`,u1,`). Matched exactly, so a short
/// id does not take every line containing its digits.
fn names_in_excerpt(backend: DbBackend, uid: &str) -> Expr {
    let contains = |haystack: &str| match backend {
        DbBackend::Postgres => format!("strpos({haystack}, $1) > 0"),
        _ => format!("instr({haystack}, ?) > 0"),
    };
    let forms = [
        ("excerpt", format!("\"{uid}\"")),
        ("excerpt", format!("\"user_id\":{uid}")),
        ("excerpt", format!("\"user_id\": {uid}")),
        ("',' || excerpt || ','", format!(",{uid},")),
    ];
    forms
        .into_iter()
        .map(|(haystack, needle)| Expr::cust_with_values(contains(haystack), [needle]))
        .reduce(|a, b| a.or(b))
        .expect("four forms")
}

/// Segment membership notifications list the ids that entered or left: the
/// player's id is taken out of their payloads (the notifications stay, with
/// their other ids). Returns how many notifications were rewritten.
async fn erase_from_notifications(
    tx: &DatabaseTransaction,
    backend: DbBackend,
    ws: Uuid,
    uid: &str,
) -> Result<u64> {
    let quoted = serde_json::Value::from(uid).to_string();
    let names = match backend {
        DbBackend::Postgres => "strpos(CAST(payload AS text), $1) > 0",
        _ => "instr(payload, ?) > 0",
    };
    let naming = notifications::Entity::find()
        .filter(notifications::Column::WorkspaceId.eq(ws))
        .filter(notifications::Column::Payload.is_not_null())
        .filter(Expr::cust_with_values(names, [quoted]))
        .all(tx)
        .await?;
    let mut rewritten = 0;
    for note in naming {
        let Some(mut payload) = note.payload else {
            continue;
        };
        let mut changed = false;
        for list in ["entered", "exited"] {
            if let Some(ids) = payload.get_mut(list).and_then(|v| v.as_array_mut()) {
                let before = ids.len();
                ids.retain(|id| id.as_str() != Some(uid));
                changed |= ids.len() != before;
            }
        }
        if changed {
            notifications::Entity::update_many()
                .col_expr(notifications::Column::Payload, Expr::value(payload))
                .filter(notifications::Column::Id.eq(note.id))
                .exec(tx)
                .await?;
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

/// Deletes the workspace's rows of `table` that match `cond`.
async fn delete_rows(tx: &DatabaseTransaction, table: &str, ws: Uuid, cond: Expr) -> Result<u64> {
    let q = Query::delete()
        .from_table(Alias::new(table))
        .and_where(col("workspace_id").eq(ws))
        .and_where(cond)
        .to_owned();
    Ok(tx.execute(&q).await?.rows_affected())
}

/// The workspace's own models whose rows name a player, by their user column.
async fn erase_from_custom_models(
    tx: &DatabaseTransaction,
    ws: Uuid,
    uid: &str,
    removed: &mut BTreeMap<String, u64>,
) -> Result<()> {
    for m in models::Entity::find()
        .filter(models::Column::WorkspaceId.eq(ws))
        .filter(models::Column::BuiltIn.eq(false))
        .filter(models::Column::UserColumn.is_not_null())
        .all(tx)
        .await?
    {
        let user_col = m.user_column.as_deref().unwrap_or("user_id");
        let count = delete_rows(tx, &m.table_name, ws, col(user_col).eq(uid)).await?;
        removed.insert(m.slug, count);
    }
    Ok(())
}

impl Engine {
    /// Every deletion, the audit record and the follow-up jobs (personas
    /// computed again without the player) commit in one transaction: a
    /// failure leaves everything as it was, and a retry erases whatever is
    /// there and audits it. Idempotent: erasing an unknown or already erased
    /// player removes nothing and is still audited.
    pub async fn erase_player(&self, p: &Principal, user_id: &str) -> Result<ErasureReport> {
        p.require(Permission::Write)?;
        let user_id = user_id.trim().to_owned();
        if user_id.is_empty() {
            return Err(Error::invalid("id", "must not be empty"));
        }
        let ws = p.workspace_id;
        let players_traits = self.player_trait_ids(ws);
        let fingerprint = self.user_id_fingerprints(ws, &user_id).swap_remove(0);
        let key_id = p.key_id;
        let backend = self.db.get_database_backend();
        let (audit, removed, jobs) = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let uid = user_id.as_str();
                let mut removed: BTreeMap<String, u64> = BTreeMap::new();
                // Behavioural events: every record type but items is an event
                // table keyed by user_id.
                for table in RecordType::ALL
                    .iter()
                    .filter(|t| **t != RecordType::Items)
                    .map(|t| t.as_str())
                {
                    let mut cond = col("user_id").eq(uid);
                    if table == "social_dynamics" {
                        cond = cond.or(col("target_user_id").eq(uid));
                    }
                    removed.insert(table.to_owned(), delete_rows(tx, table, ws, cond).await?);
                }
                erase_from_custom_models(tx, ws, uid, &mut removed).await?;
                // Every trait value computed for the player, then the player.
                let values = col("entity_id")
                    .eq(uid)
                    .and(col("trait_id").in_subquery(players_traits));
                removed.insert(
                    "trait_values".into(),
                    delete_rows(tx, "trait_values", ws, values).await?,
                );
                // The player, survey registration, answers and scores, segment
                // and persona memberships, quarantined lines naming the player.
                for table in [
                    "players",
                    "survey_answers",
                    "psych_scores",
                    "survey_registrations",
                    "segment_members",
                    "persona_members",
                    "segment_changes",
                ] {
                    let count = delete_rows(tx, table, ws, col("user_id").eq(uid)).await?;
                    removed.insert(table.to_owned(), count);
                }
                removed.insert(
                    "notifications".into(),
                    erase_from_notifications(tx, backend, ws, uid).await?,
                );
                let quarantined = col("user_id").eq(uid).or(names_in_excerpt(backend, uid));
                removed.insert(
                    "quarantined_lines".into(),
                    delete_rows(tx, "quarantined_lines", ws, quarantined).await?,
                );
                // A new stamp, so no server keeps serving a cached persona route with the id.
                segments::Entity::update_many()
                    .col_expr(segments::Column::UpdatedAt, Expr::val(Utc::now()))
                    .filter(segments::Column::WorkspaceId.eq(ws))
                    .exec(tx)
                    .await?;
                let mut jobs = Vec::new();
                if removed.get("persona_members").is_some_and(|n| *n > 0) {
                    // Persona sizes and profiles still count the player: cluster again.
                    for segment in segments::Entity::find()
                        .filter(segments::Column::WorkspaceId.eq(ws))
                        .all(tx)
                        .await?
                    {
                        let work = ComputeSegment {
                            segment_id: segment.id,
                        };
                        jobs.push(enqueue_once_in(tx, ws, &work).await?);
                    }
                }
                let total: u64 = removed.values().sum();
                let audit = erasures::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    workspace_id: Set(ws),
                    user_id_hash: Set(fingerprint),
                    api_key_id: Set(Some(key_id)),
                    rows_removed: Set(json!(removed)),
                    total_rows: Set(total as i64),
                    erased_at: Set(Utc::now()),
                }
                .insert(tx)
                .await?;
                Ok((audit, removed, jobs))
            })
        })
        .await?;
        self.route_cache.forget_workspace(ws);
        if backend == DbBackend::Sqlite {
            // Deleted rows are zeroed in place (`secure_delete`, on every
            // connection); their earlier versions in the WAL go with a
            // checkpoint. Best effort: a reader still on an old snapshot
            // keeps the WAL until the next checkpoint.
            if let Err(e) = self
                .db
                .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await
            {
                tracing::warn!(error = %e, "WAL not checkpointed after an erasure");
            }
        }
        for job in &jobs {
            self.dispatch(job).await;
        }
        tracing::info!(erasure = %audit.id, rows = audit.total_rows, "player erased");
        Ok(ErasureReport {
            audit,
            rows_removed: removed,
        })
    }

    /// Ids of the traits computed per player (their values are keyed by user id).
    fn player_trait_ids(&self, ws: Uuid) -> SelectStatement {
        Query::select()
            .column((traits::Entity, traits::Column::Id))
            .from(traits::Entity)
            .inner_join(
                models::Entity,
                Expr::col((models::Entity, models::Column::Id))
                    .equals((traits::Entity, traits::Column::ParentModelId)),
            )
            .and_where(Expr::col((traits::Entity, traits::Column::WorkspaceId)).eq(ws))
            // Players, and models keyed by the player's user id.
            .and_where(
                Expr::col((models::Entity, models::Column::Slug))
                    .eq("players")
                    .or(Expr::col((models::Entity, models::Column::UserColumn))
                        .equals((models::Entity, models::Column::PrimaryKey))),
            )
            .to_owned()
    }

    /// The erasure audit trail, newest first.
    /// The workspace's erasures, newest first; with `user_id`, only that
    /// player's (found by fingerprint: the id itself is not kept).
    pub async fn erasures(
        &self,
        p: &Principal,
        user_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<erasures::Model>> {
        p.require(Permission::Admin)?;
        let mut q =
            erasures::Entity::find().filter(erasures::Column::WorkspaceId.eq(p.workspace_id));
        if let Some(user_id) = user_id {
            q = q.filter(
                erasures::Column::UserIdHash
                    .is_in(self.user_id_fingerprints(p.workspace_id, user_id)),
            );
        }
        paginate(&self.db, q, erasures::Column::Id, Direction::Backward, page).await
    }

    /// What the audit keeps of a user id: a keyed fingerprint under
    /// `SECRETS_KEY` (first: the one written), the previous key's during a
    /// rotation, and the plain SHA-256 that servers without a key (and
    /// versions before keyed fingerprints) wrote.
    fn user_id_fingerprints(&self, ws: Uuid, user_id: &str) -> Vec<String> {
        let mut prints = self
            .secrets
            .as_ref()
            .map(|k| k.fingerprints(ws, user_id))
            .unwrap_or_default();
        prints.push(hash_secret(user_id));
        prints
    }
}
