//! Sizing an audience before it is saved: how many players a filter tree
//! admits, a sample of them, and how many each condition alone admits.
//! Validated exactly like `createSegment`; reads only, writes nothing.

use sea_orm::{
    ConnectionTrait,
    sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement},
};
use serde_json::Value;
use uuid::Uuid;

use super::filter::Node;
use crate::{
    Engine, Result,
    auth::{Permission, Principal},
};

/// Sampled user ids, at most.
pub const MAX_SAMPLE: u64 = 100;

pub struct SegmentPreview {
    pub count: i64,
    pub sample_user_ids: Vec<String>,
    /// (path as in filter errors, players that condition alone admits).
    pub conditions: Vec<(String, i64)>,
}

fn players(ws: Uuid, node: &Node, backend: sea_orm::DbBackend) -> SelectStatement {
    let p = Alias::new("p");
    Query::select()
        .from_as(Alias::new("players"), p.clone())
        .and_where(Expr::col((p, Alias::new("workspace_id"))).eq(ws))
        .cond_where(node.condition(backend, ws))
        .to_owned()
}

/// Every condition of the tree with its path (`filter.and[1]`…).
fn leaves<'a>(node: &'a Node, path: String, out: &mut Vec<(String, &'a Node)>) {
    match node {
        Node::And(children) | Node::Or(children) => {
            let key = if matches!(node, Node::And(_)) {
                "and"
            } else {
                "or"
            };
            for (i, c) in children.iter().enumerate() {
                leaves(c, format!("{path}.{key}[{i}]"), out);
            }
        }
        Node::Not(child) => leaves(child, format!("{path}.not"), out),
        Node::Condition { .. } => out.push((path, node)),
    }
}

impl Engine {
    pub async fn preview_segment(
        &self,
        p: &Principal,
        filter: &Value,
        sample: Option<u64>,
    ) -> Result<SegmentPreview> {
        p.require(Permission::Read)?;
        let ws = p.workspace_id;
        crate::limits::filter(filter, "filter")?;
        let tree = Node::parse(filter, &self.vocabulary(ws).await?)?;
        let backend = self.db.get_database_backend();
        let count = |node: &Node| {
            let q = players(ws, node, backend)
                .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
                .to_owned();
            async move {
                let row = self.db.query_one(&q).await?;
                Ok::<i64, crate::Error>(
                    row.map(|r| r.try_get_by_index::<i64>(0))
                        .transpose()?
                        .unwrap_or(0),
                )
            }
        };
        let total = count(&tree).await?;
        let limit = Ord::min(sample.unwrap_or(10), MAX_SAMPLE);
        let sample_q = players(ws, &tree, backend)
            .column((Alias::new("p"), Alias::new("user_id")))
            .order_by((Alias::new("p"), Alias::new("user_id")), Order::Asc)
            .limit(limit)
            .to_owned();
        let sample_user_ids = self
            .db
            .query_all(&sample_q)
            .await?
            .iter()
            .map(|r| Ok(r.try_get_by_index::<String>(0)?))
            .collect::<Result<Vec<_>>>()?;
        let mut found = Vec::new();
        leaves(&tree, "filter".into(), &mut found);
        let mut conditions = Vec::with_capacity(found.len());
        for (path, node) in found {
            conditions.push((path, count(node).await?));
        }
        Ok(SegmentPreview {
            count: total,
            sample_user_ids,
            conditions,
        })
    }
}
