//! Writes validated rows, quarantined lines and the player/item upserts of one
//! load, in batches, inside the caller's transaction.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DbBackend, EntityTrait, IdenStatic, Iterable, Statement, TryIntoModel,
    sea_query::{Alias, Expr, ExprTrait, Func, OnConflict, Query},
};
use uuid::Uuid;

use entity::{
    actions, items, kpis, level_ups, logins, purchases, quarantined_lines, social_dynamics,
    touched_players, virtual_purchases,
};

use super::{
    records::{RecordType, Row},
    target::{CustomModel, CustomRow, Target},
};
use crate::Result;

/// Bound parameters per multi-row INSERT: under SQLite's 32766 (PostgreSQL
/// allows 65535). Fewer, larger statements are most of the load's speed.
const PARAMS_PER_STATEMENT: usize = 30_000;

/// Rows per multi-row INSERT into a table of `columns` columns.
fn rows_per_statement(columns: usize) -> usize {
    (PARAMS_PER_STATEMENT / columns.max(1)).max(1)
}

/// A line that could not be loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    pub line_number: i64,
    pub byte_offset: i64,
    pub field: Option<String>,
    pub message: String,
    pub excerpt: String,
    pub user_id: Option<String>,
}

/// What a player's events in one load say about them.
#[derive(Default)]
struct PlayerTouch {
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    login: Option<LoginAttributes>,
}

struct LoginAttributes {
    at: DateTime<Utc>,
    clan_id: Option<String>,
    level: Option<i64>,
    device: Option<String>,
    country: Option<String>,
    language: Option<String>,
    platform: Option<String>,
    register_date: Option<NaiveDate>,
}

impl PlayerTouch {
    fn saw(&mut self, at: DateTime<Utc>) {
        self.first = Some(self.first.map_or(at, |f| Ord::min(f, at)));
        self.last = Some(self.last.map_or(at, |l| Ord::max(l, at)));
    }
}

/// Where rows come from: a body (plain inserts) or a file line (inserted at
/// most once). `fresh`: no row of the file lies beyond its checkpoint, so a
/// batch (committed under the ledger row's lock) cannot meet its own lines
/// and plain inserts suffice; otherwise (a checkpoint behind its rows) lines
/// already there are skipped with ON CONFLICT DO NOTHING, which costs PostgreSQL
/// about 1.6× the plain insert.
#[derive(Clone, Copy)]
pub(crate) enum Origin<'a> {
    Post,
    PlayFab,
    File {
        id: Uuid,
        path: &'a str,
        fresh: bool,
    },
}

impl Origin<'_> {
    /// Whether inserts must skip lines that are already loaded.
    fn skips_loaded_lines(&self) -> bool {
        matches!(self, Origin::File { fresh: false, .. })
    }
}

pub use entity::states::LineOrigin;

impl Origin<'_> {
    fn origin(&self) -> LineOrigin {
        match self {
            Origin::Post => LineOrigin::Post,
            Origin::PlayFab => LineOrigin::Playfab,
            Origin::File { .. } => LineOrigin::File,
        }
    }
}

fn once_per_line() -> OnConflict {
    OnConflict::columns([
        Alias::new("workspace_id"),
        Alias::new("source_file_id"),
        Alias::new("line_number"),
    ])
    .do_nothing()
    .to_owned()
}

macro_rules! insert_batches {
    ($db:expr, $origin:expr, $entity:ty, $rows:expr) => {
        if $db.get_database_backend() == DbBackend::Postgres {
            insert_as_json::<$entity>($db, &$origin, $rows).await?;
        } else {
            let per =
                rows_per_statement(<<$entity as EntityTrait>::Column as Iterable>::iter().count());
            for chunk in $rows.chunks(per) {
                let insert = <$entity>::insert_many(chunk.to_vec());
                if $origin.skips_loaded_lines() {
                    insert
                        .on_conflict(once_per_line())
                        .exec_without_returning($db)
                        .await?;
                } else {
                    insert.exec_without_returning($db).await?;
                }
            }
        }
    };
}

/// PostgreSQL: all rows in one statement whose only parameter is a JSON
/// array, expanded by `json_populate_recordset` into the table's own row
/// type. Binding and planning stay constant whatever the batch size, which
/// multi-row VALUES (one parameter per value) cannot do.
async fn insert_as_json<E>(
    db: &impl ConnectionTrait,
    origin: &Origin<'_>,
    rows: Vec<E::ActiveModel>,
) -> Result<()>
where
    E: EntityTrait,
    E::Model: serde::Serialize,
    E::ActiveModel: TryIntoModel<E::Model>,
{
    if rows.is_empty() {
        return Ok(());
    }
    let table = E::default().table_name().to_owned();
    let columns: Vec<String> = E::Column::iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect();
    let columns = columns.join(", ");
    let models = rows
        .into_iter()
        .map(|r| r.try_into_model())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(crate::Error::internal)?;
    let json = serde_json::to_string(&models).map_err(crate::Error::internal)?;
    let conflict = if origin.skips_loaded_lines() {
        " ON CONFLICT (workspace_id, source_file_id, line_number) DO NOTHING"
    } else {
        ""
    };
    let sql = format!(
        "INSERT INTO \"{table}\" ({columns}) SELECT {columns} \
         FROM json_populate_recordset(NULL::\"{table}\", $1::json){conflict}"
    );
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [json.into()],
    ))
    .await?;
    Ok(())
}

/// Writes one load. Returns the number of rows written to the record table.
pub(crate) async fn write(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    target: &Target,
    origin: Origin<'_>,
    rows: Vec<Row>,
    rejected: &[Rejected],
    now: DateTime<Utc>,
) -> Result<u64> {
    let accepted = rows.len() as u64;
    let mut touches: HashMap<String, PlayerTouch> = HashMap::new();
    let (mut p, mut l, mut a, mut k, mut v, mut u, mut s) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    // The last row of an item wins; one upsert may not touch a key twice.
    let mut item_rows: HashMap<String, items::ActiveModel> = HashMap::new();
    let mut custom_rows = CustomRows::default();
    for row in rows {
        macro_rules! touch {
            ($m:expr) => {
                if let (Set(user), Set(at)) = (&$m.user_id, &$m.timestamp) {
                    touches.entry(user.clone()).or_default().saw(*at);
                }
            };
        }
        match row {
            Row::Purchase(m) => {
                touch!(m);
                p.push(m)
            }
            Row::Login(m) => {
                touch!(m);
                if let (Set(user), Set(at)) = (&m.user_id, &m.timestamp) {
                    let t = touches.entry(user.clone()).or_default();
                    if t.login.as_ref().is_none_or(|prev| *at >= prev.at) {
                        let get = |v: &sea_orm::ActiveValue<Option<String>>| v.clone().unwrap();
                        t.login = Some(LoginAttributes {
                            at: *at,
                            clan_id: get(&m.clan_id),
                            level: m.level.clone().unwrap(),
                            device: get(&m.device),
                            country: get(&m.country),
                            language: get(&m.language),
                            platform: get(&m.platform),
                            register_date: m.register_date.clone().unwrap(),
                        });
                    }
                }
                l.push(m)
            }
            Row::Action(m) => {
                touch!(m);
                a.push(m)
            }
            Row::Kpi(m) => {
                touch!(m);
                k.push(m)
            }
            Row::VirtualPurchase(m) => {
                touch!(m);
                v.push(m)
            }
            Row::LevelUp(m) => {
                touch!(m);
                u.push(m)
            }
            Row::SocialDynamic(m) => {
                touch!(m);
                s.push(m)
            }
            Row::Item(m) => {
                if let Set(id) = &m.item_id {
                    item_rows.insert(id.clone(), m);
                }
            }
            Row::Custom(r) => custom_rows.push(r, &mut touches),
        }
    }
    if let Target::Custom(model) = target {
        upsert_custom(db, workspace_id, model, &custom_rows.rows, now).await?;
    }
    insert_batches!(db, origin, purchases::Entity, p);
    insert_batches!(db, origin, logins::Entity, l);
    insert_batches!(db, origin, actions::Entity, a);
    insert_batches!(db, origin, kpis::Entity, k);
    insert_batches!(db, origin, virtual_purchases::Entity, v);
    insert_batches!(db, origin, level_ups::Entity, u);
    insert_batches!(db, origin, social_dynamics::Entity, s);
    let item_rows: Vec<items::ActiveModel> = item_rows.into_values().collect();
    for chunk in item_rows.chunks(rows_per_statement(
        <items::Column as Iterable>::iter().count(),
    )) {
        items::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([items::Column::WorkspaceId, items::Column::ItemId])
                    .update_columns([
                        items::Column::Price,
                        items::Column::Currency,
                        items::Column::Name,
                        items::Column::Type,
                        items::Column::Extra,
                        items::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    // A file's players are upserted (and recorded for the incremental
    // pass) once, set-based, when it is done (`players_from_file`).
    if !matches!(origin, Origin::File { .. }) || matches!(target, Target::Custom(_)) {
        record_touched(db, workspace_id, touches.keys(), now).await?;
        upsert_players(db, workspace_id, touches, now).await?;
    }

    let quarantined = quarantine_rows(workspace_id, target.slug(), &origin, rejected, now);
    insert_batches!(db, origin, quarantined_lines::Entity, quarantined);
    Ok(accepted)
}

/// The quarantine rows of rejected lines.
pub(crate) fn quarantine_rows(
    workspace_id: Uuid,
    record_type: &str,
    origin: &Origin<'_>,
    rejected: &[Rejected],
    now: DateTime<Utc>,
) -> Vec<quarantined_lines::ActiveModel> {
    rejected
        .iter()
        .map(|r| quarantined_lines::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            origin: Set(origin.origin()),
            record_type: Set(record_type.to_owned()),
            source_file_id: Set(match origin {
                Origin::File { id, .. } => Some(*id),
                Origin::Post | Origin::PlayFab => None,
            }),
            path: Set(match origin {
                Origin::File { path, .. } => Some((*path).to_owned()),
                Origin::Post | Origin::PlayFab => None,
            }),
            line_number: Set(r.line_number),
            byte_offset: Set(r.byte_offset),
            field: Set(r.field.clone()),
            message: Set(r.message.clone()),
            excerpt: Set(r.excerpt.clone()),
            user_id: Set(r.user_id.clone()),
            created_at: Set(now),
        })
        .collect()
}

/// Player columns written by loads, in insert order.
const PLAYER_COLUMNS: [&str; 13] = [
    "workspace_id",
    "user_id",
    "first_seen_at",
    "last_seen_at",
    "clan_id",
    "level",
    "device",
    "country",
    "language",
    "platform",
    "register_date",
    "last_login_at",
    "updated_at",
];

/// Login attributes a player row takes from their latest login.
const LOGIN_COLUMNS: [&str; 8] = [
    "clan_id",
    "level",
    "device",
    "country",
    "language",
    "platform",
    "register_date",
    "last_login_at",
];

/// How a load merges into an existing player: first/last seen widen; the
/// latest login's attributes replace older ones; a row is rewritten only when
/// one of those changes (most events of a known player change nothing).
fn player_conflict() -> OnConflict {
    let cur = |c: &str| Expr::col((Alias::new("players"), Alias::new(c)));
    let new = |c: &str| Expr::col((Alias::new("excluded"), Alias::new(c)));
    let newer_login = new("last_login_at").is_not_null().and(
        cur("last_login_at")
            .is_null()
            .or(new("last_login_at").gte(cur("last_login_at"))),
    );
    let changes = cur("first_seen_at")
        .is_null()
        .or(new("first_seen_at").lt(cur("first_seen_at")))
        .or(cur("last_seen_at").is_null())
        .or(new("last_seen_at").gt(cur("last_seen_at")))
        .or(newer_login.clone());
    let mut updates = vec![
        (
            "first_seen_at",
            Expr::from(Func::least([
                Expr::from(Func::coalesce([cur("first_seen_at"), new("first_seen_at")])),
                new("first_seen_at"),
            ])),
        ),
        (
            "last_seen_at",
            Expr::from(Func::greatest([
                Expr::from(Func::coalesce([cur("last_seen_at"), new("last_seen_at")])),
                new("last_seen_at"),
            ])),
        ),
        ("updated_at", new("updated_at")),
    ];
    for c in LOGIN_COLUMNS {
        updates.push((
            c,
            Expr::case(newer_login.clone(), new(c))
                .finally(cur(c))
                .into(),
        ));
    }
    let mut on_conflict = OnConflict::columns([Alias::new("workspace_id"), Alias::new("user_id")]);
    on_conflict.values(updates.into_iter().map(|(c, e)| (Alias::new(c), e)));
    on_conflict.action_and_where(changes);
    on_conflict
}

/// A custom model's rows of one load, the last of each primary key, in the
/// order the lines came (rows stay in file order on disk, as the built-in
/// tables' do, which keeps trait scans by player cache-friendly).
#[derive(Default)]
struct CustomRows {
    rows: Vec<CustomRow>,
    at: HashMap<String, usize>,
}

impl CustomRows {
    fn push(&mut self, r: CustomRow, touches: &mut HashMap<String, PlayerTouch>) {
        if let (Some(user), Some(at)) = (&r.user_id, r.at) {
            touches.entry(user.clone()).or_default().saw(at);
        }
        match self.at.get(&r.key) {
            Some(&i) => self.rows[i] = r,
            None => {
                self.at.insert(r.key.clone(), self.rows.len());
                self.rows.push(r);
            }
        }
    }
}

/// A custom model's rows, upserted by primary key: a line loaded again (a
/// retried batch, a redelivered post) replaces its row instead of adding one.
async fn upsert_custom(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    model: &CustomModel,
    rows: &[CustomRow],
    now: DateTime<Utc>,
) -> Result<()> {
    let mut names: Vec<&str> = vec!["workspace_id"];
    names.extend(model.columns.iter().map(|(n, _, _)| n.as_str()));
    names.extend(["extra", "source_file_id", "line_number", "loaded_at"]);
    let columns: Vec<Alias> = names.iter().map(|n| Alias::new(*n)).collect();
    let updated: Vec<Alias> = names[1..]
        .iter()
        .filter(|n| **n != model.primary_key)
        .map(|n| Alias::new(*n))
        .collect();
    for chunk in rows.chunks(rows_per_statement(columns.len())) {
        let mut q = Query::insert();
        q.into_table(Alias::new(&model.table))
            .columns(columns.clone());
        for r in chunk {
            let mut values = vec![Expr::val(workspace_id)];
            values.extend(r.values.iter().cloned().map(Expr::val));
            values.extend([
                Expr::val(r.extra.clone()),
                Expr::val(r.source_file_id),
                Expr::val(r.line_number),
                Expr::val(now),
            ]);
            q.values_panic(values);
        }
        q.on_conflict(
            OnConflict::columns([Alias::new("workspace_id"), Alias::new(&model.primary_key)])
                .update_columns(updated.clone())
                .to_owned(),
        );
        db.execute(&q).await?;
    }
    Ok(())
}

/// First/last seen widen; the latest login's attributes replace older ones.
async fn upsert_players(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    touches: HashMap<String, PlayerTouch>,
    now: DateTime<Utc>,
) -> Result<()> {
    // In user order, as `record_touched`: concurrent loads over the same
    // players then lock their rows in one order and never deadlock.
    let mut touches: Vec<(String, PlayerTouch)> = touches.into_iter().collect();
    touches.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for chunk in touches.chunks(rows_per_statement(PLAYER_COLUMNS.len())) {
        let mut q = Query::insert();
        q.into_table(Alias::new("players"))
            .columns(PLAYER_COLUMNS.map(Alias::new));
        for (user, t) in chunk {
            let login = t.login.as_ref();
            q.values_panic([
                Expr::val(workspace_id),
                Expr::val(user.clone()),
                Expr::val(t.first),
                Expr::val(t.last),
                Expr::val(login.and_then(|l| l.clan_id.clone())),
                Expr::val(login.and_then(|l| l.level)),
                Expr::val(login.and_then(|l| l.device.clone())),
                Expr::val(login.and_then(|l| l.country.clone())),
                Expr::val(login.and_then(|l| l.language.clone())),
                Expr::val(login.and_then(|l| l.platform.clone())),
                Expr::val(login.and_then(|l| l.register_date)),
                Expr::val(login.map(|l| l.at)),
                Expr::val(now),
            ]);
        }
        q.on_conflict(player_conflict());
        db.execute(&q).await?;
    }
    Ok(())
}

/// Records the players whose rows a load wrote, in the load's transaction:
/// the work of the workspace's next incremental pass.
async fn record_touched<'a>(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    users: impl Iterator<Item = &'a String>,
    now: DateTime<Utc>,
) -> Result<()> {
    let version = new_version();
    let mut users: Vec<&String> = users.collect();
    users.sort_unstable();
    let rows: Vec<touched_players::ActiveModel> = users
        .into_iter()
        .map(|u| touched_players::ActiveModel {
            workspace_id: Set(workspace_id),
            user_id: Set(u.clone()),
            committed_at: Set(now),
            version: Set(version),
            ..Default::default()
        })
        .collect();
    for chunk in rows.chunks(rows_per_statement(4)) {
        touched_players::Entity::insert_many(chunk.to_vec())
            .on_conflict(touch_again())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// A player already waiting for a pass keeps one record, stamped with this
/// load's version (and its first `committed_at`, so the lag is the oldest).
fn touch_again() -> OnConflict {
    OnConflict::columns([
        touched_players::Column::WorkspaceId,
        touched_players::Column::UserId,
    ])
    .update_column(touched_players::Column::Version)
    .to_owned()
}

/// A load's version of the records it writes: any value other than the one
/// a pass took will do, so a random one.
fn new_version() -> i64 {
    Uuid::new_v4().as_u64_pair().0 as i64
}

/// Upserts the players of one loaded file from its rows, in one set-based
/// statement: first/last seen per player, and for logins the attributes of
/// each player's latest login. Idempotent, so a retried load may run it again.
pub(crate) async fn players_from_file(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    target: &Target,
    file_id: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    // Custom models' players are upserted with each batch (their rows are upserts).
    let Target::Record(record_type) = *target else {
        return Ok(());
    };
    if record_type == RecordType::Items {
        return Ok(());
    }
    let table = Alias::new(record_type.as_str());
    let col = |c: &str| Expr::col(Alias::new(c));
    let touched = Query::insert()
        .into_table(Alias::new("touched_players"))
        .columns(["workspace_id", "user_id", "committed_at", "version"].map(Alias::new))
        .select_from(
            Query::select()
                .distinct()
                .column(Alias::new("workspace_id"))
                .column(Alias::new("user_id"))
                .expr(Expr::val(now))
                .expr(Expr::val(new_version()))
                .from(table.clone())
                .and_where(col("workspace_id").eq(workspace_id))
                .and_where(col("source_file_id").eq(file_id))
                .to_owned(),
        )
        .map_err(crate::Error::internal)?
        .on_conflict(touch_again())
        .to_owned();
    db.execute(&touched).await?;
    let logins = record_type == RecordType::Logins;
    if !logins {
        // Only first and last seen: one hash aggregate, no sort of the file's rows.
        let mut select = Query::select();
        select
            .columns([Alias::new("workspace_id"), Alias::new("user_id")])
            .expr(Func::min(col("timestamp")))
            .expr(Func::max(col("timestamp")))
            .from(table)
            .and_where(col("workspace_id").eq(workspace_id))
            .and_where(col("source_file_id").eq(file_id))
            .group_by_columns([Alias::new("workspace_id"), Alias::new("user_id")]);
        for _ in LOGIN_COLUMNS {
            // An untyped NULL: the columns have several types.
            select.expr(Expr::cust("NULL"));
        }
        select.expr(Expr::val(now));
        return upsert_players_from(db, select).await;
    }
    let window = "OVER (PARTITION BY user_id)";
    // Each row of the file with its player's first and last timestamp in it,
    // and its rank among that player's rows, latest first.
    let mut ranked = Query::select();
    ranked
        .from(table)
        .columns([Alias::new("workspace_id"), Alias::new("user_id"), Alias::new("timestamp")])
        .expr_as(Expr::cust(format!("MIN(timestamp) {window}")), Alias::new("first_at"))
        .expr_as(Expr::cust(format!("MAX(timestamp) {window}")), Alias::new("last_at"))
        .expr_as(
            Expr::cust("ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY timestamp DESC, line_number DESC)"),
            Alias::new("latest"),
        )
        .and_where(col("workspace_id").eq(workspace_id))
        .and_where(col("source_file_id").eq(file_id));
    for c in LOGIN_COLUMNS.iter().filter(|c| **c != "last_login_at") {
        ranked.column(Alias::new(*c));
    }
    let mut select = Query::select();
    select
        .columns([
            Alias::new("workspace_id"),
            Alias::new("user_id"),
            Alias::new("first_at"),
            Alias::new("last_at"),
        ])
        .from_subquery(ranked, Alias::new("ranked"))
        .and_where(col("latest").eq(1));
    for c in LOGIN_COLUMNS {
        match c {
            "last_login_at" => select.expr(col("timestamp")),
            c => select.column(Alias::new(c)),
        };
    }
    select.expr(Expr::val(now));
    upsert_players_from(db, select).await
}

/// `INSERT INTO players … SELECT` with the loads' upsert rule.
async fn upsert_players_from(
    db: &impl ConnectionTrait,
    select: sea_orm::sea_query::SelectStatement,
) -> Result<()> {
    let insert = Query::insert()
        .into_table(Alias::new("players"))
        .columns(PLAYER_COLUMNS.map(Alias::new))
        .select_from(select)
        .map_err(crate::Error::internal)?
        .on_conflict(player_conflict())
        .to_owned();
    db.execute(&insert).await?;
    Ok(())
}
