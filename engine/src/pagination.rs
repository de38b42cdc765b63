//! Keyset pagination on UUIDv7 ids: ids sort by creation time on both
//! backends (PostgreSQL uuid, SQLite 16-byte blob), so `id > after` is stable
//! under concurrent inserts, unlike OFFSET.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use crate::{Error, Result};

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;

#[derive(Clone, Copy, Debug, Default)]
pub struct PageRequest {
    pub first: Option<u64>,
    pub after: Option<Uuid>,
}

impl PageRequest {
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
}

/// Runs `query` ordered by `id`, after the cursor, fetching one extra row to know if more exist.
pub async fn paginate<E, C>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    id: C,
    page: PageRequest,
) -> Result<Page<E::Model>>
where
    E: EntityTrait,
    C: ColumnTrait,
{
    let limit = page.limit()?;
    let mut q = query.order_by_asc(id);
    if let Some(after) = page.after {
        q = q.filter(id.gt(after));
    }
    let mut items = q.limit(limit + 1).all(db).await?;
    let has_next_page = items.len() as u64 > limit;
    items.truncate(limit as usize);
    Ok(Page {
        items,
        has_next_page,
        has_previous_page: page.after.is_some(),
    })
}
