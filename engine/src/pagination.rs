//! One pagination policy for every list that can grow: keyset pages over an
//! ordered, unique column (`column > after`, or `<` newest first), never
//! OFFSET, so a page is stable under concurrent inserts. UUIDv7 ids sort by
//! creation time on both backends (PostgreSQL uuid, SQLite 16-byte blob), so
//! "oldest first" and "newest first" are id orders. Every list takes the same
//! `first` (1 to [`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`]) and refuses
//! anything else with the same error.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    sea_query::{Alias, Expr, ExprTrait, Order, SelectStatement},
};
use uuid::Uuid;

use crate::{Error, Result};

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;

/// `first` rows after the opaque cursor `after` (the last cursor of the page before).
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    pub first: Option<u64>,
    pub after: Option<String>,
}

impl PageRequest {
    pub fn new(first: Option<u64>, after: Option<String>) -> Self {
        PageRequest { first, after }
    }

    pub fn limit(&self) -> Result<u64> {
        match self.first {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            Some(_) => Err(Error::invalid(
                "first",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            )),
        }
    }

    /// The cursor of a list keyed by row id.
    pub fn after_id(&self) -> Result<Option<Uuid>> {
        self.after
            .as_deref()
            .map(|c| {
                Uuid::parse_str(c)
                    .map_err(|_| Error::invalid("after", "is not a cursor returned by this API"))
            })
            .transpose()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Direction {
    /// Ascending key: oldest first for ids.
    Forward,
    /// Descending key: newest first for ids.
    Backward,
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }

    /// Rows fetched with one extra (to know whether more follow) made a page.
    fn from_rows(mut items: Vec<T>, limit: u64, had_cursor: bool) -> Self {
        let has_next_page = items.len() as u64 > limit;
        items.truncate(limit as usize);
        Page {
            items,
            has_next_page,
            has_previous_page: had_cursor,
        }
    }
}

/// One page of `query` in `direction` of the unique `key`, after `after`.
pub async fn keyset<E, C, K>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    key: C,
    direction: Direction,
    after: Option<K>,
    limit: u64,
) -> Result<Page<E::Model>>
where
    E: EntityTrait,
    C: ColumnTrait,
    K: Into<sea_orm::Value>,
{
    let had_cursor = after.is_some();
    let mut q = match direction {
        Direction::Forward => query.order_by_asc(key),
        Direction::Backward => query.order_by_desc(key),
    };
    if let Some(after) = after {
        q = q.filter(match direction {
            Direction::Forward => key.gt(after),
            Direction::Backward => key.lt(after),
        });
    }
    let rows = q.limit(limit + 1).all(db).await?;
    Ok(Page::from_rows(rows, limit, had_cursor))
}

/// A page of rows keyed by their UUIDv7 id.
pub async fn paginate<E, C>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    id: C,
    direction: Direction,
    page: PageRequest,
) -> Result<Page<E::Model>>
where
    E: EntityTrait,
    C: ColumnTrait,
{
    keyset(db, query, id, direction, page.after_id()?, page.limit()?).await
}

/// A page of the user ids `SELECT user_id …` returns, in user-id order.
pub async fn user_id_page(
    db: &impl ConnectionTrait,
    mut query: SelectStatement,
    page: PageRequest,
) -> Result<Page<String>> {
    let limit = page.limit()?;
    let had_cursor = page.after.is_some();
    if let Some(after) = page.after {
        query.and_where(Expr::col(Alias::new("user_id")).gt(after));
    }
    query.order_by(Alias::new("user_id"), Order::Asc);
    query.limit(limit + 1);
    let ids = db
        .query_all(&query)
        .await?
        .iter()
        .map(|row| Ok(row.try_get_by_index::<String>(0)?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(ids, limit, had_cursor))
}
