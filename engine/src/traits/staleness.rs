//! Loaded data makes traits stale: the traits reading a changed source (and
//! those reading them) are marked, and the ones with `refresh: on_load` are
//! queued for a run. A successful run clears the mark (see `finish_run`).

use std::collections::HashSet;

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use entity::{models, trait_runs, traits};

use super::{
    definition::{TraitStatus, TraitType},
    runs::{RunStatus, Trigger},
    service::REFRESH_ON_LOAD,
};
use crate::{Engine, Result, ingest::Target};

impl Engine {
    /// Called after a load committed rows of `targets`. Every event also
    /// upserts its player, so the players model counts as changed too.
    pub(crate) async fn data_loaded(&self, workspace_id: Uuid, targets: &[Target]) -> Result<()> {
        let mut slugs: Vec<&str> = targets.iter().map(Target::slug).collect();
        if targets.iter().any(Target::touches_players) {
            slugs.push("players");
        }
        let changed: HashSet<Uuid> = models::Entity::find()
            .filter(models::Column::WorkspaceId.eq(workspace_id))
            .filter(models::Column::Slug.is_in(slugs))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect();
        let reads_changed = |t: &traits::Model| {
            let source = t
                .config
                .get("source_model_id")
                .and_then(|v| v.as_str())
                .and_then(|s| Uuid::parse_str(s).ok());
            // Source traits read their source model; SQL traits read their parent's columns.
            source.is_some_and(|s| changed.contains(&s))
                || (t.trait_type == TraitType::Sql && changed.contains(&t.parent_model_id))
        };
        let direct: Vec<traits::Model> = traits::Entity::find()
            .filter(traits::Column::WorkspaceId.eq(workspace_id))
            .filter(traits::Column::Status.ne(TraitStatus::Draft))
            .all(&self.db)
            .await?
            .into_iter()
            .filter(|t| reads_changed(t))
            .collect();
        if direct.is_empty() {
            return Ok(());
        }
        let mut stale: Vec<Uuid> = direct.iter().map(|t| t.id).collect();
        stale.extend(self.downstream(&direct).await?.iter().map(|t| t.id));
        traits::Entity::update_many()
            .col_expr(traits::Column::StaleSince, Expr::value(Some(Utc::now())))
            .filter(traits::Column::Id.is_in(stale))
            .filter(traits::Column::StaleSince.is_null())
            .exec(&self.db)
            .await?;

        // One waiting run is enough: it will read everything loaded so far.
        let waiting: HashSet<Uuid> = trait_runs::Entity::find()
            .filter(trait_runs::Column::WorkspaceId.eq(workspace_id))
            .filter(trait_runs::Column::Status.eq(RunStatus::Queued))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| r.trait_id)
            .collect();
        // `on_load` traits of the players model follow incrementally (see
        // `incremental`); others (an entity model's traits) run in full.
        let players = self.players_model_id(workspace_id).await?;
        for t in direct.iter().filter(|t| {
            t.refresh == REFRESH_ON_LOAD && t.parent_model_id != players && !waiting.contains(&t.id)
        }) {
            self.queue_run(t, Trigger::Data, None).await?;
        }
        Ok(())
    }
}
