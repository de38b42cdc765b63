//! Relay connections over engine pages; the cursor is the row's UUIDv7 id.

use async_graphql::{
    OutputType,
    connection::{Connection, Edge},
};
use engine::{
    Error,
    pagination::{Page, PageRequest},
};
use uuid::Uuid;

pub type Conn<T> = Connection<String, T>;

pub fn page_request(first: Option<i32>, after: Option<String>) -> Result<PageRequest, Error> {
    let first = first
        .map(|n| u64::try_from(n).map_err(|_| Error::invalid("first", "must be positive")))
        .transpose()?;
    let after = after
        .map(|c| {
            Uuid::parse_str(&c)
                .map_err(|_| Error::invalid("after", "is not a cursor returned by this API"))
        })
        .transpose()?;
    Ok(PageRequest { first, after })
}

pub fn connection<T, U: OutputType>(
    page: Page<T>,
    cursor: impl Fn(&T) -> Uuid,
    node: impl Fn(T) -> Result<U, Error>,
) -> Result<Conn<U>, Error> {
    let mut conn = Connection::new(page.has_previous_page, page.has_next_page);
    for item in page.items {
        let c = cursor(&item).to_string();
        conn.edges.push(Edge::new(c, node(item)?));
    }
    Ok(conn)
}

pub fn parse_id(field: &str, id: &async_graphql::ID) -> Result<Uuid, Error> {
    Uuid::parse_str(id)
        .map_err(|_| Error::invalid(field, format!("'{}' is not a valid id", id.as_str())))
}
