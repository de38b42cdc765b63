//! Relay connections over engine pages, one type for every list that can
//! grow. Cursors are opaque (a row id, a path, a user id: whatever key the
//! list is ordered by). `pageInfo.endCursor` is null on the last page, so a
//! client pages with `while (endCursor) fetch(after: endCursor)`.

use async_graphql::{
    OutputType, SimpleObject,
    connection::{Edge, EmptyFields},
};
use engine::{
    Error,
    pagination::{Page, PageRequest},
};
use uuid::Uuid;

use super::{
    segments::{Member, Segment, SegmentChange},
    sources::{DataSource, Notification, QuarantinedLine, SourceFile},
    survey::Erasure,
    traits::{Trait, TraitRun, TraitValue, TraitVersion},
    types::{ApiKey, Job, Model, Relationship},
};

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    /// The cursor to pass as `after` for the next page; null on the last page.
    pub end_cursor: Option<String>,
}

/// A page of a list, with its edges (cursor and node) and the nodes alone.
#[derive(SimpleObject)]
#[graphql(concrete(name = "ModelConnection", params(Model)))]
#[graphql(concrete(name = "RelationshipConnection", params(Relationship)))]
#[graphql(concrete(name = "ApiKeyConnection", params(ApiKey)))]
#[graphql(concrete(name = "JobConnection", params(Job)))]
#[graphql(concrete(name = "TraitConnection", params(Trait)))]
#[graphql(concrete(name = "TraitValueConnection", params(TraitValue)))]
#[graphql(concrete(name = "TraitRunConnection", params(TraitRun)))]
#[graphql(concrete(name = "TraitVersionConnection", params(TraitVersion)))]
#[graphql(concrete(name = "SegmentConnection", params(Segment)))]
#[graphql(concrete(name = "MemberConnection", params(Member)))]
#[graphql(concrete(name = "DataSourceConnection", params(DataSource)))]
#[graphql(concrete(name = "SourceFileConnection", params(SourceFile)))]
#[graphql(concrete(name = "NotificationConnection", params(Notification)))]
#[graphql(concrete(name = "QuarantinedLineConnection", params(QuarantinedLine)))]
#[graphql(concrete(name = "ErasureConnection", params(Erasure)))]
#[graphql(concrete(name = "SegmentChangeConnection", params(SegmentChange)))]
pub struct Conn<T: OutputType> {
    pub edges: Vec<Edge<String, T, EmptyFields>>,
    pub nodes: Vec<T>,
    pub page_info: PageInfo,
}

/// `first` and `after` as every list takes them (checked by the engine's policy).
pub fn page_request(first: Option<i32>, after: Option<String>) -> Result<PageRequest, Error> {
    // A negative `first` is out of range like any other.
    let first = first.map(|n| u64::try_from(n).unwrap_or(0));
    let request = PageRequest::new(first, after);
    request.limit()?;
    Ok(request)
}

/// A connection from an engine page: `cursor` gives each item's key.
pub fn connection<T, U: OutputType + Clone>(
    page: Page<T>,
    cursor: impl Fn(&T) -> String,
    node: impl Fn(T) -> Result<U, Error>,
) -> Result<Conn<U>, Error> {
    let mut edges = Vec::with_capacity(page.items.len());
    for item in page.items {
        let c = cursor(&item);
        edges.push(Edge::new(c, node(item)?));
    }
    let page_info = PageInfo {
        has_next_page: page.has_next_page,
        has_previous_page: page.has_previous_page,
        start_cursor: edges.first().map(|e| e.cursor.clone()),
        end_cursor: edges
            .last()
            .filter(|_| page.has_next_page)
            .map(|e| e.cursor.clone()),
    };
    Ok(Conn {
        nodes: edges.iter().map(|e| e.node.clone()).collect(),
        edges,
        page_info,
    })
}

/// The cursor of a list keyed by row id.
pub fn id_cursor(id: Uuid) -> String {
    id.to_string()
}

pub fn parse_id(field: &str, id: &async_graphql::ID) -> Result<Uuid, Error> {
    Uuid::parse_str(id)
        .map_err(|_| Error::invalid(field, format!("'{}' is not a valid id", id.as_str())))
}
