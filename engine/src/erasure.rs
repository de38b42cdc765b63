//! Erasing a player: every row naming their user id in the workspace, one
//! transaction per table group, and an audit record that keeps a keyed
//! fingerprint of the id (never the id) with the rows removed per table.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement},
};
use serde_json::json;
use uuid::Uuid;

use entity::{erasures, models, traits};

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    ingest::records::RecordType,
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

/// Deletes the workspace's rows of `table` that match `cond`.
async fn delete_rows(tx: &DatabaseTransaction, table: &str, ws: Uuid, cond: Expr) -> Result<u64> {
    let q = Query::delete()
        .from_table(Alias::new(table))
        .and_where(col("workspace_id").eq(ws))
        .and_where(cond)
        .to_owned();
    Ok(tx.execute(&q).await?.rows_affected())
}

impl Engine {
    /// Idempotent: erasing an unknown or already erased player removes
    /// nothing and is still audited.
    pub async fn erase_player(&self, p: &Principal, user_id: &str) -> Result<ErasureReport> {
        p.require(Permission::Write)?;
        let user_id = user_id.trim().to_owned();
        if user_id.is_empty() {
            return Err(Error::invalid("id", "must not be empty"));
        }
        let ws = p.workspace_id;
        let mut removed: BTreeMap<String, u64> = BTreeMap::new();

        // Behavioural events.
        let uid = user_id.clone();
        let events = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let mut n = Vec::new();
                // Every record type but items is an event table keyed by user_id.
                for table in RecordType::ALL
                    .iter()
                    .filter(|t| **t != RecordType::Items)
                    .map(|t| t.as_str())
                {
                    let mut cond = col("user_id").eq(uid.as_str());
                    if table == "social_dynamics" {
                        cond = cond.or(col("target_user_id").eq(uid.as_str()));
                    }
                    let count = delete_rows(tx, table, ws, cond).await?;
                    n.push((table, count));
                }
                Ok(n)
            })
        })
        .await?;
        removed.extend(events.into_iter().map(|(t, n)| (t.to_owned(), n)));

        // The player and every trait value computed for them.
        let players_traits = self.player_trait_ids(ws);
        let uid = user_id.clone();
        let player = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let values = delete_rows(
                    tx,
                    "trait_values",
                    ws,
                    col("entity_id")
                        .eq(uid.as_str())
                        .and(col("trait_id").in_subquery(players_traits)),
                )
                .await?;
                let players =
                    delete_rows(tx, "players", ws, col("user_id").eq(uid.as_str())).await?;
                Ok([("trait_values", values), ("players", players)])
            })
        })
        .await?;
        removed.extend(player.into_iter().map(|(t, n)| (t.to_owned(), n)));

        // Survey registration, answers and scores; segment and persona
        // memberships; then quarantined lines that name the player.
        for group in [
            &["survey_answers", "psych_scores", "survey_registrations"][..],
            &["segment_members", "persona_members"][..],
            &["quarantined_lines"][..],
        ] {
            let uid = user_id.clone();
            let counts = crate::db::write_tx(&self.db, |tx| {
                Box::pin(async move {
                    let mut n = Vec::new();
                    for table in group {
                        let count =
                            delete_rows(tx, table, ws, col("user_id").eq(uid.as_str())).await?;
                        n.push((*table, count));
                    }
                    if group.contains(&"segment_members") {
                        // A new stamp, so no server keeps serving a cached persona route with the id.
                        entity::segments::Entity::update_many()
                            .col_expr(entity::segments::Column::UpdatedAt, Expr::val(Utc::now()))
                            .filter(entity::segments::Column::WorkspaceId.eq(ws))
                            .exec(tx)
                            .await?;
                    }
                    Ok(n)
                })
            })
            .await?;
            removed.extend(counts.into_iter().map(|(t, n)| (t.to_owned(), n)));
        }

        self.route_cache.forget_workspace(ws);
        if removed.get("persona_members").is_some_and(|n| *n > 0) {
            // Persona sizes and profiles still count the player: cluster again.
            self.scores_changed(ws).await?;
        }
        let total: u64 = removed.values().sum();
        let audit = erasures::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(ws),
            user_id_hash: Set(self.user_id_fingerprints(ws, &user_id).swap_remove(0)),
            api_key_id: Set(Some(p.key_id)),
            rows_removed: Set(json!(removed)),
            total_rows: Set(total as i64),
            erased_at: Set(Utc::now()),
        }
        .insert(&self.db)
        .await?;
        tracing::info!(erasure = %audit.id, rows = total, "player erased");
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
            .and_where(Expr::col((models::Entity, models::Column::Slug)).eq("players"))
            .to_owned()
    }

    /// The erasure audit trail, newest first.
    /// The workspace's erasures, newest first; with `user_id`, only that
    /// player's (found by fingerprint: the id itself is not kept).
    pub async fn erasures(
        &self,
        p: &Principal,
        user_id: Option<&str>,
    ) -> Result<Vec<erasures::Model>> {
        p.require(Permission::Admin)?;
        let mut q = erasures::Entity::find()
            .filter(erasures::Column::WorkspaceId.eq(p.workspace_id))
            .order_by_desc(erasures::Column::Id);
        if let Some(user_id) = user_id {
            q = q.filter(
                erasures::Column::UserIdHash
                    .is_in(self.user_id_fingerprints(p.workspace_id, user_id)),
            );
        }
        Ok(q.all(&self.db).await?)
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
