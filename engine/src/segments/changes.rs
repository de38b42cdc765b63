//! Who entered and who left a segment: each recomputation of its members
//! (after the first) records the difference set-based and raises one
//! `segment_membership` notification (delivered to the workspace's webhook)
//! listing them, all in the transaction that replaces the members.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QuerySelect,
    sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement},
};
use serde_json::json;
use uuid::Uuid;

use entity::{job_records, segment_changes, segments};

use super::filter::Node;
use crate::traits::scope::Scope;
use crate::{
    Engine, Result,
    auth::{Permission, Principal},
    ingest::{
        notifications::{Note, notify_in},
        sources::NotificationKind,
    },
    pagination::{Direction, Page, PageRequest, keyset},
};

/// Days changes are kept unless `SEGMENT_CHANGES_DAYS` says otherwise.
pub const DEFAULT_KEPT_DAYS: u32 = 90;
/// User ids per webhook delivery; more are split over several.
const IDS_PER_DELIVERY: usize = 10_000;

pub use entity::states::Change;

/// An incremental pass's view of one segment: the players the pass took
/// and a temporary table of those among them the segment admits now.
pub(crate) struct Pass<'a> {
    pub scope: &'a Scope,
    pub admitted: &'a str,
}

/// The players the tree admits now (alias `p`); in a pass, its table of them.
fn admitted(backend: DbBackend, ws: Uuid, tree: &Node, pass: Option<&Pass>) -> SelectStatement {
    let p = Alias::new("p");
    if let Some(pass) = pass {
        return Query::select()
            .column((p.clone(), Alias::new("user_id")))
            .from_as(Alias::new(pass.admitted), p)
            .to_owned();
    }
    Query::select()
        .column((p.clone(), Alias::new("user_id")))
        .from_as(Alias::new("players"), p.clone())
        .and_where(Expr::col((p, Alias::new("workspace_id"))).eq(ws))
        .cond_where(tree.condition(backend, ws))
        .to_owned()
}

/// `SELECT user_id FROM <players of the pass> AS p WHERE <tree>`: what a
/// pass's admitted table is made of.
pub(crate) fn admitted_in(
    backend: DbBackend,
    ws: Uuid,
    tree: &Node,
    scope: &Scope,
) -> SelectStatement {
    let p = Alias::new("p");
    Query::select()
        .column((p.clone(), Alias::new("user_id")))
        .from_as(Alias::new(&scope.players), p.clone())
        .and_where(Expr::col((p, Alias::new("workspace_id"))).eq(ws))
        .cond_where(tree.condition(backend, ws))
        .to_owned()
}

/// Records, before the members are replaced, who enters (admitted now, not a
/// member) and who exits (a member, not admitted now) — among the players of
/// `scope` only, in an incremental pass; drops changes older than the
/// retention. Returns the last `seq` before them.
pub(super) async fn record(
    tx: &DatabaseTransaction,
    segment: &segments::Model,
    tree: &Node,
    kept_days: u32,
    now: DateTime<Utc>,
    pass: Option<&Pass<'_>>,
) -> Result<i32> {
    let (ws, id) = (segment.workspace_id, segment.id);
    let backend = tx.get_database_backend();
    let before: Option<i32> = segment_changes::Entity::find()
        .select_only()
        .column_as(segment_changes::Column::Seq.max(), "m")
        .into_tuple()
        .one(tx)
        .await?
        .flatten();
    let columns = ["workspace_id", "segment_id", "user_id", "change", "at"].map(Alias::new);
    // Anti joins as NOT EXISTS: `NOT IN (subquery)` turns quadratic on
    // PostgreSQL once the subquery's rows outgrow work_mem (a segment of a
    // million players).
    let (p, m) = (Alias::new("p"), Alias::new("m"));
    let is_member = Query::select()
        .expr(Expr::val(1))
        .from_as(Alias::new("segment_members"), m.clone())
        .and_where(Expr::col((m.clone(), Alias::new("segment_id"))).eq(id))
        .and_where(
            Expr::col((m.clone(), Alias::new("user_id")))
                .equals((p.clone(), Alias::new("user_id"))),
        )
        .to_owned();
    let entered = Query::select()
        .expr(Expr::val(ws))
        .expr(Expr::val(id))
        .column(Alias::new("user_id"))
        .expr(Expr::val(Change::Entered))
        .expr(Expr::val(now))
        .from_subquery(
            admitted(backend, ws, tree, pass)
                .and_where(Expr::exists(is_member).not())
                .to_owned(),
            Alias::new("e"),
        )
        .to_owned();
    let still_admitted = admitted(backend, ws, tree, pass)
        .and_where(Expr::col((p, Alias::new("user_id"))).equals((m.clone(), Alias::new("user_id"))))
        .to_owned();
    let mut exited = Query::select()
        .expr(Expr::val(ws))
        .expr(Expr::val(id))
        .column((m.clone(), Alias::new("user_id")))
        .expr(Expr::val(Change::Exited))
        .expr(Expr::val(now))
        .from_as(Alias::new("segment_members"), m.clone())
        .and_where(Expr::col((m.clone(), Alias::new("segment_id"))).eq(id))
        .and_where(Expr::exists(still_admitted).not())
        .to_owned();
    if let Some(pass) = pass {
        exited.and_where(Expr::col((m, Alias::new("user_id"))).in_subquery(pass.scope.keys()));
    }
    for select in [entered, exited] {
        let insert = Query::insert()
            .into_table(Alias::new("segment_changes"))
            .columns(columns.clone())
            .select_from(select)
            .map_err(crate::Error::internal)?
            .to_owned();
        tx.execute(&insert).await?;
    }
    segment_changes::Entity::delete_many()
        .filter(segment_changes::Column::WorkspaceId.eq(ws))
        .filter(segment_changes::Column::At.lt(now - Duration::days(i64::from(kept_days))))
        .exec(tx)
        .await?;
    Ok(before.unwrap_or(0))
}

/// In the transaction that recorded them (after [`record`]): one
/// notification listing who entered and who left (several above
/// [`IDS_PER_DELIVERY`] ids), when anyone did. Returns the delivery jobs to
/// dispatch once committed.
pub(super) async fn announce(
    tx: &DatabaseTransaction,
    segment: &segments::Model,
    after_seq: i32,
) -> Result<Vec<job_records::Model>> {
    let changes = segment_changes::Entity::find()
        .filter(segment_changes::Column::SegmentId.eq(segment.id))
        .filter(segment_changes::Column::Seq.gt(after_seq))
        .all(tx)
        .await?;
    let Some(at) = changes.first().map(|c| c.at) else {
        return Ok(Vec::new());
    };
    let ids = |change: Change| -> Vec<String> {
        changes
            .iter()
            .filter(|c| c.change == change)
            .map(|c| c.user_id.clone())
            .collect()
    };
    let (entered, exited) = (ids(Change::Entered), ids(Change::Exited));
    let parts = entered
        .len()
        .max(exited.len())
        .div_ceil(IDS_PER_DELIVERY)
        .max(1);
    let mut jobs = Vec::new();
    for part in 0..parts {
        let slice = |v: &[String]| -> Vec<String> {
            v.iter()
                .skip(part * IDS_PER_DELIVERY)
                .take(IDS_PER_DELIVERY)
                .cloned()
                .collect()
        };
        let note = Note {
            source_id: None,
            kind: NotificationKind::SegmentMembership,
            path: None,
            message: format!(
                "segment `{}`: {} entered, {} left",
                segment.slug,
                entered.len(),
                exited.len()
            ),
            payload: Some(json!({
                "kind": NotificationKind::SegmentMembership,
                "segment": segment.slug,
                "entered": slice(&entered),
                "exited": slice(&exited),
                "at": at,
            })),
        };
        jobs.extend(notify_in(tx, segment.workspace_id, note).await?);
    }
    Ok(jobs)
}

impl Engine {
    /// A segment's entries and exits, newest first.
    pub async fn segment_changes(
        &self,
        p: &Principal,
        reference: &str,
        page: PageRequest,
    ) -> Result<Page<segment_changes::Model>> {
        p.require(Permission::Read)?;
        let segment = self.find_segment(p.workspace_id, reference).await?;
        let after = page
            .after
            .as_deref()
            .map(|c| {
                c.parse::<i32>().map_err(|_| {
                    crate::Error::invalid("after", "is not a cursor returned by this API")
                })
            })
            .transpose()?;
        let q = segment_changes::Entity::find()
            .filter(segment_changes::Column::WorkspaceId.eq(p.workspace_id))
            .filter(segment_changes::Column::SegmentId.eq(segment.id));
        keyset(
            &self.db,
            q,
            segment_changes::Column::Seq,
            Direction::Backward,
            after,
            page.limit()?,
        )
        .await
    }

    pub(crate) fn segment_changes_days(&self) -> u32 {
        self.segment_changes_days
    }
}
