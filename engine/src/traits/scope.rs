//! The players an incremental pass took, as temporary tables of its
//! transaction: every statement of the pass (trait values, stale values,
//! segment membership) is restricted to them by joining these small tables,
//! so its cost follows the players touched, not the workspace.

use sea_orm::{
    DbBackend, Statement, StatementBuilder,
    sea_query::{Alias, Asterisk, Expr, ExprTrait, Query, SelectStatement},
};
use uuid::Uuid;

/// Names of a pass's two tables.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `user_id` of every player the pass took, once each.
    pub keys: String,
    /// Their rows of `players` (a player erased since is in `keys` only).
    pub players: String,
}

impl Scope {
    pub fn new(suffix: &str) -> Self {
        Scope {
            keys: format!("tf_scope_{suffix}"),
            players: format!("tf_players_{suffix}"),
        }
    }

    /// `SELECT user_id FROM keys`.
    pub fn keys(&self) -> SelectStatement {
        Query::select()
            .column(Alias::new("user_id"))
            .from(Alias::new(&self.keys))
            .to_owned()
    }

    /// The keys without a row in `players`: their values and memberships go.
    pub fn gone(&self) -> SelectStatement {
        Query::select()
            .column((Alias::new("k"), Alias::new("user_id")))
            .from_as(Alias::new(&self.keys), Alias::new("k"))
            .and_where(
                Expr::col((Alias::new("k"), Alias::new("user_id"))).not_in_subquery(
                    Query::select()
                        .column(Alias::new("user_id"))
                        .from(Alias::new(&self.players))
                        .to_owned(),
                ),
            )
            .to_owned()
    }

    /// `CREATE TEMPORARY TABLE players AS …` their rows (after `keys` is filled).
    pub fn fill_players(&self, backend: DbBackend, ws: Uuid) -> Statement {
        let select = Query::select()
            .column((Alias::new("p"), Asterisk))
            .from_as(Alias::new("players"), Alias::new("p"))
            .and_where(Expr::col((Alias::new("p"), Alias::new("workspace_id"))).eq(ws))
            .and_where(Expr::col((Alias::new("p"), Alias::new("user_id"))).in_subquery(self.keys()))
            .to_owned();
        let built = StatementBuilder::build(&select, &backend);
        Statement::from_sql_and_values(
            backend,
            format!(
                "CREATE TEMPORARY TABLE \"{}\" AS {}",
                self.players, built.sql
            ),
            built.values.map(|v| v.0).unwrap_or_default(),
        )
    }
}
