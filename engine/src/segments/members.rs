//! Segment membership: who is in a segment (pages of members, counts), when
//! it is computed again (a trait it reads changed, events brought players,
//! scores changed), and the one set-based statement that materializes it.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    StatementBuilder,
    sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement},
};
use uuid::Uuid;

use entity::{persona_members, players, segment_members, segment_traits, segments, traits};

use super::jobs::{ComputePersonas, ComputeSegment};
use super::{ComputeStatus, filter::Node};
use crate::pagination::{Page, PageRequest, user_id_page};
use crate::traits::scope::Scope;
use crate::{
    Engine, Result,
    auth::{Permission, Principal},
};

/// The segments a player is in, and the personas (segment slug, index).
pub struct Memberships {
    pub segments: Vec<segments::Model>,
    pub personas: Vec<(String, i32)>,
}

impl Engine {
    /// "Which segments is this player in": the built-in `default` when they
    /// are a player, the others by their stored members; their personas.
    pub async fn player_memberships(&self, p: &Principal, user_id: &str) -> Result<Memberships> {
        p.require(Permission::Read)?;
        let ws = p.workspace_id;
        let is_player = players::Entity::find()
            .filter(players::Column::WorkspaceId.eq(ws))
            .filter(players::Column::UserId.eq(user_id))
            .count(&self.db)
            .await?
            > 0;
        let member_of: Vec<Uuid> = segment_members::Entity::find()
            .filter(segment_members::Column::WorkspaceId.eq(ws))
            .filter(segment_members::Column::UserId.eq(user_id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.segment_id)
            .collect();
        let all = segments::Entity::find()
            .filter(segments::Column::WorkspaceId.eq(ws))
            .order_by_asc(segments::Column::Id)
            .all(&self.db)
            .await?;
        let slug_of = |id: Uuid| all.iter().find(|s| s.id == id).map(|s| s.slug.clone());
        let mut personas: Vec<(String, i32)> = persona_members::Entity::find()
            .filter(persona_members::Column::WorkspaceId.eq(ws))
            .filter(persona_members::Column::UserId.eq(user_id))
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|m| Some((slug_of(m.segment_id)?, m.persona_index)))
            .collect();
        personas.sort();
        let segments = all
            .iter()
            .filter(|s| {
                if s.builtin {
                    is_player
                } else {
                    member_of.contains(&s.id)
                }
            })
            .cloned()
            .collect();
        Ok(Memberships { segments, personas })
    }
    /// Members in user-id order, after the cursor.
    pub async fn segment_members(
        &self,
        p: &Principal,
        reference: &str,
        page: PageRequest,
    ) -> Result<Page<String>> {
        p.require(Permission::Read)?;
        let segment = self.find_segment(p.workspace_id, reference).await?;
        user_id_page(&self.db, members_query(&segment), page).await
    }

    /// Every user id `SELECT user_id …` returns, in order.
    pub(crate) async fn user_ids(&self, mut query: SelectStatement) -> Result<Vec<String>> {
        query.order_by(Alias::new("user_id"), Order::Asc);
        self.db
            .query_all(&query)
            .await?
            .iter()
            .map(|row| Ok(row.try_get_by_index::<String>(0)?))
            .collect()
    }

    /// Live member count of the default segment (all players); stored for the others.
    pub async fn segment_member_count(&self, segment: &segments::Model) -> Result<i64> {
        if !segment.builtin {
            return Ok(segment.member_count);
        }
        Ok(players::Entity::find()
            .filter(players::Column::WorkspaceId.eq(segment.workspace_id))
            .count(&self.db)
            .await? as i64)
    }

    /// Every segment of the workspace with its member count: stored counts,
    /// and one count of the players for `default`.
    pub async fn list_segments_counted(
        &self,
        p: &Principal,
    ) -> Result<Vec<(segments::Model, i64)>> {
        let segments = self.list_segments(p).await?;
        let players = players::Entity::find()
            .filter(players::Column::WorkspaceId.eq(p.workspace_id))
            .count(&self.db)
            .await? as i64;
        Ok(segments
            .into_iter()
            .map(|s| {
                let count = if s.builtin { players } else { s.member_count };
                (s, count)
            })
            .collect())
    }

    /// After a trait's values changed: its segments recompute their members.
    pub(crate) async fn trait_values_changed(&self, t: &traits::Model) -> Result<()> {
        let ids: Vec<Uuid> = segment_traits::Entity::find()
            .filter(segment_traits::Column::WorkspaceId.eq(t.workspace_id))
            .filter(segment_traits::Column::TraitId.eq(t.id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| r.segment_id)
            .collect();
        for segment_id in ids {
            self.enqueue_once(t.workspace_id, ComputeSegment { segment_id })
                .await?;
        }
        self.prediction_inputs_changed(t).await
    }

    /// After events were loaded (by any path: post, PlayFab, bucket file):
    /// the built-in segment exists. The incremental pass then takes the
    /// players they touched into every segment, predicts their psych scores
    /// with the trained model and places them into personas; training and
    /// clustering stay jobs of their own (survey completes, `trainPrediction`,
    /// `refreshSegment`), so a stream of posts never retrains or re-clusters.
    pub(crate) async fn players_loaded(&self, ws: Uuid) -> Result<()> {
        self.default_segment(ws).await.map(drop)
    }

    /// After psych scores changed: segments reading facets recompute their
    /// members, every other segment its personas.
    pub(crate) async fn scores_changed(&self, ws: Uuid) -> Result<()> {
        self.default_segment(ws).await?;
        let vocabulary = self.vocabulary(ws).await?;
        for segment in segments::Entity::find()
            .filter(segments::Column::WorkspaceId.eq(ws))
            .order_by_asc(segments::Column::Id)
            .all(&self.db)
            .await?
        {
            let reads_facets = match &segment.filter {
                Some(f) => Node::parse(f, &vocabulary)
                    .map(|t| t.reads_facets())
                    .unwrap_or(false),
                None => false,
            };
            let segment_id = segment.id;
            if reads_facets {
                self.enqueue_once(ws, ComputeSegment { segment_id }).await?;
            } else {
                self.enqueue_once(ws, ComputePersonas { segment_id })
                    .await?;
            }
        }
        Ok(())
    }

    /// The body of the `ComputeSegment` job: members replaced in one
    /// transaction by one set-based statement, then personas queued.
    pub async fn execute_segment_members(&self, segment_id: Uuid) -> Result<()> {
        let Some(segment) = segments::Entity::find_by_id(segment_id)
            .one(&self.db)
            .await?
        else {
            return Ok(()); // deleted since
        };
        let ws = segment.workspace_id;
        let outcome = match &segment.filter {
            None => Ok(()),
            Some(filter) => match Node::parse(filter, &self.vocabulary(ws).await?) {
                Ok(tree) => self.materialize_members(&segment, &tree).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = &outcome
            && e.is_transient()
        {
            return outcome; // the database failed, not the filter: run again
        }
        let mut done: segments::ActiveModel = segment.into();
        done.members_computed_at = Set(Some(Utc::now()));
        match &outcome {
            Ok(()) => {
                done.members_status = Set(ComputeStatus::Ready);
                done.members_error = Set(None);
            }
            Err(e) => {
                done.members_status = Set(ComputeStatus::Failed);
                done.members_error = Set(Some(e.cause()));
            }
        }
        done.update(&self.db).await?;
        outcome?;
        self.enqueue_once(ws, ComputePersonas { segment_id })
            .await?;
        Ok(())
    }

    /// The computed segments of a workspace with their parsed filters: what an
    /// incremental pass keeps current for the players it takes.
    pub(crate) async fn computed_segments(&self, ws: Uuid) -> Result<Vec<(segments::Model, Node)>> {
        let vocabulary = self.vocabulary(ws).await?;
        Ok(segments::Entity::find()
            .filter(segments::Column::WorkspaceId.eq(ws))
            .filter(segments::Column::Builtin.eq(false))
            .filter(segments::Column::MembersStatus.eq(ComputeStatus::Ready))
            .filter(segments::Column::MembersComputedAt.is_not_null())
            .order_by_asc(segments::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|s| {
                let tree = Node::parse(s.filter.as_ref()?, &vocabulary).ok()?;
                Some((s, tree))
            })
            .collect())
    }

    /// Inside an incremental pass: each segment's membership among the
    /// players of `scope` follows their new values, their entries and exits
    /// recorded and announced as in a full recomputation. Returns the
    /// segments whose members changed and the delivery jobs to dispatch.
    pub(crate) async fn update_members_in(
        &self,
        tx: &sea_orm::DatabaseTransaction,
        segments: &[(segments::Model, Node)],
        scope: &Scope,
    ) -> Result<(Vec<Uuid>, Vec<entity::job_records::Model>)> {
        let backend = tx.get_database_backend();
        let kept_days = self.segment_changes_days();
        let (mut changed, mut deliveries) = (Vec::new(), Vec::new());
        for (segment, tree) in segments {
            let (ws, id) = (segment.workspace_id, segment.id);
            lock_segment(tx, id).await?;
            // The filter is evaluated once per pass: entries, exits and the
            // members' difference all read this table.
            let admitted = format!("tf_admitted_{}", id.simple());
            let select = StatementBuilder::build(
                &super::changes::admitted_in(backend, ws, tree, scope),
                &backend,
            );
            tx.execute_raw(sea_orm::Statement::from_sql_and_values(
                backend,
                format!("CREATE TEMPORARY TABLE \"{admitted}\" AS {}", select.sql),
                select.values.map(|v| v.0).unwrap_or_default(),
            ))
            .await?;
            let pass = super::changes::Pass {
                scope,
                admitted: &admitted,
            };
            let after =
                super::changes::record(tx, segment, tree, kept_days, Utc::now(), Some(&pass))
                    .await?;
            let admitted_ids = Query::select()
                .column(Alias::new("user_id"))
                .from(Alias::new(&admitted))
                .to_owned();
            let removed = segment_members::Entity::delete_many()
                .filter(segment_members::Column::SegmentId.eq(id))
                .filter(Expr::col(segment_members::Column::UserId).in_subquery(scope.keys()))
                .filter(
                    Expr::col(segment_members::Column::UserId)
                        .not_in_subquery(admitted_ids.clone()),
                )
                .exec(tx)
                .await?
                .rows_affected as i64;
            let already = Query::select()
                .column(segment_members::Column::UserId)
                .from(segment_members::Entity)
                .and_where(segment_members::Column::SegmentId.eq(id))
                .and_where(Expr::col(segment_members::Column::UserId).in_subquery(admitted_ids))
                .to_owned();
            let insert = Query::insert()
                .into_table(segment_members::Entity)
                .columns([
                    segment_members::Column::WorkspaceId,
                    segment_members::Column::SegmentId,
                    segment_members::Column::UserId,
                ])
                .select_from(
                    Query::select()
                        .expr(Expr::val(ws))
                        .expr(Expr::val(id))
                        .column(Alias::new("user_id"))
                        .from(Alias::new(&admitted))
                        .and_where(Expr::col(Alias::new("user_id")).not_in_subquery(already))
                        .to_owned(),
                )
                .expect("three columns, three values")
                .to_owned();
            let added = tx.execute(&insert).await?.rows_affected() as i64;
            tx.execute_unprepared(&format!("DROP TABLE \"{admitted}\""))
                .await?;
            segments::Entity::update_many()
                .col_expr(
                    segments::Column::MemberCount,
                    Expr::col(segments::Column::MemberCount).add(added - removed),
                )
                .col_expr(
                    segments::Column::MembersComputedAt,
                    Expr::val(Some(Utc::now())),
                )
                .filter(segments::Column::Id.eq(id))
                .exec(tx)
                .await?;
            let placed = super::personas::place_members(tx, id, scope).await?;
            if added + removed > 0 || placed {
                changed.push(id);
            }
            deliveries.extend(super::changes::announce(tx, segment, after).await?);
        }
        Ok((changed, deliveries))
    }

    async fn materialize_members(&self, segment: &segments::Model, tree: &Node) -> Result<()> {
        let backend = self.db.get_database_backend();
        let insert = membership_statement(backend, segment.workspace_id, segment.id, tree);
        let (ws, id) = (segment.workspace_id, segment.id);
        // The first computation makes the members; later ones change them.
        let changes = segment.members_computed_at.is_some();
        let kept_days = self.segment_changes_days();
        let (seg, tree_c) = (segment.clone(), tree.clone());
        let (deliveries, inserted) = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                lock_segment(tx, id).await?;
                let after_seq = if changes {
                    let now = Utc::now();
                    Some(super::changes::record(tx, &seg, &tree_c, kept_days, now, None).await?)
                } else {
                    None
                };
                segment_members::Entity::delete_many()
                    .filter(segment_members::Column::SegmentId.eq(id))
                    .exec(tx)
                    .await?;
                let inserted = tx.execute(&insert).await?.rows_affected();
                segments::Entity::update_many()
                    .col_expr(segments::Column::MemberCount, Expr::val(inserted as i64))
                    .filter(segments::Column::Id.eq(id))
                    .filter(segments::Column::WorkspaceId.eq(ws))
                    .exec(tx)
                    .await?;
                // After the new members are in, with the change they announce.
                let deliveries = match after_seq {
                    Some(after) => super::changes::announce(tx, &seg, after).await?,
                    None => Vec::new(),
                };
                Ok((deliveries, inserted))
            })
        })
        .await?;
        crate::db::analyze_after_bulk_write(&self.db, "segment_members", inserted).await;
        for job in &deliveries {
            self.dispatch(job).await;
        }
        Ok(())
    }
}

/// Takes the segment's row lock for the rest of the transaction. Two
/// recomputations of one segment (members or personas) then replace its
/// rows one after the other: without it, on PostgreSQL the second one's
/// delete cannot see the rows the first just inserted, and its inserts
/// collide with them.
pub(crate) async fn lock_segment(tx: &sea_orm::DatabaseTransaction, id: Uuid) -> Result<()> {
    segments::Entity::update_many()
        .col_expr(segments::Column::Id, Expr::col(segments::Column::Id))
        .filter(segments::Column::Id.eq(id))
        .exec(tx)
        .await?;
    Ok(())
}

/// `SELECT user_id` of a segment's members: every player of the workspace
/// for the built-in segment, the materialized members otherwise.
pub(crate) fn members_query(segment: &segments::Model) -> SelectStatement {
    if segment.builtin {
        Query::select()
            .column(players::Column::UserId)
            .from(players::Entity)
            .and_where(Expr::col(players::Column::WorkspaceId).eq(segment.workspace_id))
            .to_owned()
    } else {
        Query::select()
            .column(segment_members::Column::UserId)
            .from(segment_members::Entity)
            .and_where(Expr::col(segment_members::Column::SegmentId).eq(segment.id))
            .to_owned()
    }
}

/// `INSERT INTO segment_members … SELECT` every player of the workspace the tree holds for.
pub fn membership_statement(
    backend: sea_orm::DbBackend,
    ws: Uuid,
    segment_id: Uuid,
    tree: &Node,
) -> sea_orm::sea_query::InsertStatement {
    let p = Alias::new("p");
    let select = Query::select()
        .expr(Expr::val(ws))
        .expr(Expr::val(segment_id))
        .column((p.clone(), Alias::new("user_id")))
        .from_as(Alias::new("players"), p.clone())
        .and_where(Expr::col((p, Alias::new("workspace_id"))).eq(ws))
        .cond_where(tree.condition(backend, ws))
        .to_owned();
    Query::insert()
        .into_table(Alias::new("segment_members"))
        .columns([
            Alias::new("workspace_id"),
            Alias::new("segment_id"),
            Alias::new("user_id"),
        ])
        .select_from(select)
        .expect("three columns, three values")
        .to_owned()
}
