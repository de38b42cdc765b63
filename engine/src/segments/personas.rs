//! Personas: k-means (linfa) over a segment's members' standardized facet
//! scores (survey where present, predicted otherwise), numbered 1..k by size
//! at the first clustering; later clusterings keep each persona's index,
//! id and name by matching centroids (`persona_identity`).
//! Assignments are stored per member; each persona's profile (mean score per
//! category and facet) is aggregated by the database from those assignments.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use bytes::Bytes;
use chrono::Utc;
use futures::TryStreamExt;
use linfa::{DatasetBase, prelude::Predict, traits::Fit};
use linfa_clustering::KMeans;
use ndarray::{Array2, ArrayView1};
use rand_xoshiro::{Xoshiro256Plus, rand_core::SeedableRng};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait, Func, Query},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use entity::{persona_members, personas, psych_scores, segments};

use super::{ComputeStatus, route_cache::Rendered};
use crate::pagination::{Page, PageRequest, user_id_page};
use crate::traits::scope::Scope;
use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
    zscore::standardize,
};

/// `auto` tries every k in this range and keeps the best silhouette.
const AUTO_K: std::ops::RangeInclusive<usize> = 2..=8;
/// Silhouette is quadratic: it is measured on an evenly spaced sample of at most this many members.
const SILHOUETTE_SAMPLE: usize = 1500;
/// Rows per insert of assignments (4 bound values each, under SQLite's 32 766).
const INSERT_CHUNK: usize = 4000;

/// Which persona(s) of a segment a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PersonaRef {
    All,
    Index(i32),
}

impl PersonaRef {
    /// `all`, or an index from 1.
    pub fn parse(s: &str) -> Result<PersonaRef> {
        if s == "all" {
            return Ok(PersonaRef::All);
        }
        match s.parse::<i32>() {
            Ok(i) if i >= 1 => Ok(PersonaRef::Index(i)),
            _ => Err(Error::Missing(format!(
                "persona `{s}` not found: use an index from 1 or `all`"
            ))),
        }
    }
}

/// The two persona routes of the player API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PersonaRoute {
    UserIds,
    Traits,
}

/// The player API's envelope around rendered `data`.
fn envelope(data: &Value) -> Result<Bytes> {
    let body = serde_json::to_vec(&json!({ "code": 200, "message": "", "data": data }))
        .map_err(Error::internal)?;
    Ok(Bytes::from(body))
}

/// The members' scores as a matrix: one row per member, one column per facet.
struct ScoreMatrix {
    user_ids: Vec<String>,
    facets: Vec<(String, String)>,
    x: Array2<f64>,
}

/// Where a segment's personas sit as of its last clustering (stored in
/// `segments.persona_space`): the facets, each one's mean and standard
/// deviation over the members then, and each persona's centroid in those
/// standardized units. An incremental pass places a member from it.
#[derive(Debug, Serialize, Deserialize)]
struct PersonaSpace {
    facets: Vec<(String, String)>,
    scaling: Vec<(f64, f64)>,
    centroids: Vec<(i32, Vec<f64>)>,
    /// Indexes of vanished personas and when they vanished (not reused
    /// for `persona_identity::RETIRED_DAYS`).
    #[serde(default)]
    retired: Vec<(i32, chrono::DateTime<Utc>)>,
}

/// Who a new clustering's personas are: per cluster label, its index.
struct Identities {
    index_of: Vec<i32>,
    retired: Vec<(i32, chrono::DateTime<Utc>)>,
}

impl PersonaSpace {
    /// The previous centroids in another clustering's standardized units (a
    /// facet the previous space lacks sits at the mean).
    fn centroids_in(
        &self,
        facets: &[(String, String)],
        scaling: &[(f64, f64)],
    ) -> Vec<(i32, Vec<f64>)> {
        let position: HashMap<&(String, String), usize> = self
            .facets
            .iter()
            .enumerate()
            .map(|(i, f)| (f, i))
            .collect();
        self.centroids
            .iter()
            .map(|(index, z)| {
                let moved = facets
                    .iter()
                    .zip(scaling)
                    .map(|(f, (mean, sd))| match position.get(f) {
                        Some(&i) => {
                            let (old_mean, old_sd) = self.scaling[i];
                            (old_mean + old_sd * z[i] - mean) / sd
                        }
                        None => 0.0,
                    })
                    .collect();
                (*index, moved)
            })
            .collect()
    }

    /// Indexes for a clustering's labels (`sizes` and `centroids` by
    /// label): the persona each cluster continues, else the next index never
    /// used or retired long enough ago; largest clusters first.
    fn identities(
        previous: Option<&PersonaSpace>,
        facets: &[(String, String)],
        scaling: &[(f64, f64)],
        centroids: &[Vec<f64>],
        sizes: &[usize],
        now: chrono::DateTime<Utc>,
    ) -> Identities {
        let mut order: Vec<usize> = (0..sizes.len()).filter(|c| sizes[*c] > 0).collect();
        order.sort_by_key(|c| (std::cmp::Reverse(sizes[*c]), *c));
        let mut index_of = vec![0i32; sizes.len()];
        let Some(previous) = previous else {
            for (i, c) in order.iter().enumerate() {
                index_of[*c] = i as i32 + 1;
            }
            return Identities {
                index_of,
                retired: Vec::new(),
            };
        };
        let old = previous.centroids_in(facets, scaling);
        let new: Vec<Vec<f64>> = order.iter().map(|c| centroids[*c].clone()).collect();
        let old_points: Vec<Vec<f64>> = old.iter().map(|(_, c)| c.clone()).collect();
        let matched = super::persona_identity::match_centroids(&old_points, &new);
        let keep_until = now - chrono::Duration::days(super::persona_identity::RETIRED_DAYS);
        let mut retired: Vec<(i32, chrono::DateTime<Utc>)> = previous
            .retired
            .iter()
            .copied()
            .filter(|(_, at)| *at > keep_until)
            .collect();
        let mut next = old
            .iter()
            .map(|(i, _)| *i)
            .chain(retired.iter().map(|(i, _)| *i))
            .max()
            .unwrap_or(0)
            + 1;
        for (position, c) in order.iter().enumerate() {
            index_of[*c] = match matched[position] {
                Some(o) => old[o].0,
                None => {
                    next += 1;
                    next - 1
                }
            };
        }
        for (o, (index, _)) in old.iter().enumerate() {
            if !matched.contains(&Some(o)) {
                retired.push((*index, now));
            }
        }
        Identities { index_of, retired }
    }
}

impl PersonaSpace {
    /// From a clustering: `x` already standardized with `scaling`, labels
    /// mapped to persona indexes.
    fn of(
        facets: Vec<(String, String)>,
        scaling: Vec<(f64, f64)>,
        x: &Array2<f64>,
        indexes: &[i32],
    ) -> Self {
        let mut sums: BTreeMap<i32, (Vec<f64>, f64)> = BTreeMap::new();
        for (row, index) in x.rows().into_iter().zip(indexes) {
            let (sum, n) = sums
                .entry(*index)
                .or_insert_with(|| (vec![0.0; facets.len()], 0.0));
            sum.iter_mut().zip(row.iter()).for_each(|(s, v)| *s += v);
            *n += 1.0;
        }
        let centroids = sums
            .into_iter()
            .map(|(index, (sum, n))| (index, sum.into_iter().map(|s| s / n).collect()))
            .collect();
        PersonaSpace {
            facets,
            scaling,
            centroids,
            retired: Vec::new(),
        }
    }

    /// The persona whose centroid is nearest to a member's scores (a facet
    /// the member lacks counts as the mean, as in clustering); ties go to the
    /// lower index.
    fn nearest(&self, scores: &HashMap<(String, String), f64>) -> Option<i32> {
        let z: Vec<f64> = self
            .facets
            .iter()
            .zip(&self.scaling)
            .map(|(f, (mean, sd))| scores.get(f).map_or(0.0, |v| (v - mean) / sd))
            .collect();
        let distance = |c: &[f64]| -> f64 { c.iter().zip(&z).map(|(a, b)| (a - b).powi(2)).sum() };
        self.centroids
            .iter()
            .map(|(index, c)| (*index, distance(c)))
            .fold(None, |best: Option<(i32, f64)>, (i, d)| match best {
                Some((_, bd)) if bd <= d => best,
                _ => Some((i, d)),
            })
            .map(|(i, _)| i)
    }
}

impl Engine {
    /// Personas of a segment, largest first.
    pub async fn personas(&self, p: &Principal, reference: &str) -> Result<Vec<personas::Model>> {
        p.require(Permission::Read)?;
        let segment = self.find_segment(p.workspace_id, reference).await?;
        Ok(personas::Entity::find()
            .filter(personas::Column::SegmentId.eq(segment.id))
            .order_by_asc(personas::Column::PersonaIndex)
            .all(&self.db)
            .await?)
    }

    /// A persona by its stable id.
    pub async fn persona_by_id(&self, p: &Principal, id: Uuid) -> Result<personas::Model> {
        p.require(Permission::Read)?;
        personas::Entity::find()
            .filter(personas::Column::WorkspaceId.eq(p.workspace_id))
            .filter(personas::Column::Id.eq(id))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound { what: "persona" })
    }

    /// Names or describes a persona (`Some(None)` clears); kept across re-clusterings.
    pub async fn update_persona(
        &self,
        p: &Principal,
        segment: &str,
        index: i32,
        name: Option<Option<String>>,
        description: Option<Option<String>>,
    ) -> Result<personas::Model> {
        p.require(Permission::Write)?;
        let segment = self.find_segment(p.workspace_id, segment).await?;
        let found = personas::Entity::find_by_id((segment.id, index))
            .one(&self.db)
            .await?
            .ok_or_else(|| {
                Error::Missing(format!("segment `{}` has no persona {index}", segment.slug))
            })?;
        let mut m: personas::ActiveModel = found.into();
        if let Some(name) = name {
            m.name = Set(name.map(|n| crate::limits::name(&n, "name")).transpose()?);
        }
        if let Some(description) = description {
            m.description = Set(description
                .map(|d| crate::limits::description(d, "description"))
                .transpose()?);
        }
        Ok(m.update(&self.db).await?)
    }

    /// One persona's members in user-id order, after the cursor.
    pub async fn persona_members(
        &self,
        p: &Principal,
        segment_id: Uuid,
        index: i32,
        page: PageRequest,
    ) -> Result<Page<String>> {
        p.require(Permission::Read)?;
        let query = persona_query(segment_id, index)
            .and_where(Expr::col(persona_members::Column::WorkspaceId).eq(p.workspace_id))
            .to_owned();
        user_id_page(&self.db, query, page).await
    }

    /// The persona a player API route names (none for `all`); 404s say
    /// which part is missing.
    async fn persona_of(
        &self,
        segment: &segments::Model,
        which: PersonaRef,
    ) -> Result<Option<personas::Model>> {
        let PersonaRef::Index(i) = which else {
            return Ok(None);
        };
        if segment.personas_computed_at.is_none() || segment.personas_status != ComputeStatus::Ready
        {
            return Err(not_computed(segment));
        }
        let found = personas::Entity::find_by_id((segment.id, i))
            .one(&self.db)
            .await?
            .ok_or_else(|| {
                Error::Missing(format!(
                    "segment `{}` has no persona {i}; its personas are numbered from 1",
                    segment.slug
                ))
            })?;
        Ok(Some(found))
    }

    /// A persona route's whole response (`{"code":200,"message":"","data":…}`),
    /// rendered once per segment state.
    pub async fn persona_route(
        &self,
        p: &Principal,
        segment: &str,
        persona: &str,
        route: PersonaRoute,
    ) -> Result<Arc<Rendered>> {
        p.require(Permission::Read)?;
        let which = PersonaRef::parse(persona)?;
        // All players of `default` change with every load: never cached.
        let cacheable = !(segment == super::DEFAULT_SLUG
            && which == PersonaRef::All
            && route == PersonaRoute::UserIds);
        let key = (p.workspace_id, segment.to_owned(), which, route);
        if cacheable && let Some(body) = self.route_cache.recent(&key) {
            return Ok(body);
        }
        let found = self.find_segment(p.workspace_id, segment).await?;
        let stamp = (
            found.updated_at,
            found.members_computed_at,
            found.personas_computed_at,
        );
        let cacheable = cacheable
            && !(found.builtin && which == PersonaRef::All && route == PersonaRoute::UserIds);
        if cacheable && let Some(body) = self.route_cache.current(&key, &stamp) {
            return Ok(body);
        }
        let persona = self.persona_of(&found, which).await?;
        let data = match (route, persona) {
            (PersonaRoute::UserIds, Some(persona)) => json!({
                "ids": self.user_ids(persona_query(found.id, persona.persona_index)).await?
            }),
            // `all`: every member of the segment.
            (PersonaRoute::UserIds, None) => json!({
                "ids": self.user_ids(super::members_query(&found)).await?
            }),
            (PersonaRoute::Traits, Some(persona)) => persona.profile,
            // `all`: the profile over every scored member.
            (PersonaRoute::Traits, None) => {
                found.profile.clone().ok_or_else(|| not_computed(&found))?
            }
        };
        let body = Rendered::new(envelope(&data)?);
        if cacheable {
            self.route_cache.put(key, stamp, body.clone());
        }
        Ok(body)
    }

    /// The body of the `ComputePersonas` job.
    pub async fn execute_personas(&self, segment_id: Uuid) -> Result<()> {
        let Some(segment) = segments::Entity::find_by_id(segment_id)
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        let outcome = self.cluster(&segment).await;
        let mut done: segments::ActiveModel = segment.clone().into();
        match &outcome {
            Ok(()) => {}
            Err(Error::Conflict(message)) => {
                // Too few scored members: no personas, and the reason on the segment.
                self.clear_personas(segment.id).await?;
                done.personas_status = Set(ComputeStatus::Insufficient);
                done.personas_error = Set(Some(message.clone()));
                done.profile = Set(None);
                done.persona_space = Set(None);
                done.personas_computed_at = Set(Some(Utc::now()));
                done.update(&self.db).await?;
                return Ok(());
            }
            // The database failed, not the clustering: run again.
            Err(e) if e.is_transient() => {}
            Err(e) => {
                done.personas_status = Set(ComputeStatus::Failed);
                done.personas_error = Set(Some(e.cause()));
                done.update(&self.db).await?;
            }
        }
        outcome
    }

    async fn clear_personas(&self, segment_id: Uuid) -> Result<()> {
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move { delete_personas(tx, segment_id).await })
        })
        .await
    }

    async fn cluster(&self, segment: &segments::Model) -> Result<()> {
        let scores = self.member_scores(segment).await?;
        let n = scores.user_ids.len();
        let k = match segment.persona_k {
            Some(k) => k as usize,
            None => *AUTO_K.start(),
        };
        if n < k.max(2) {
            return Err(Error::Conflict(format!(
                "{n} members of segment `{}` have psych scores; {} personas need at least {}",
                segment.slug,
                k,
                k.max(2)
            )));
        }
        let mut x = scores.x;
        let scaling = standardize(&mut x);
        let seed = segment.seed as u64;
        let labels = match segment.persona_k {
            Some(k) => kmeans(&x, k as usize, seed)?,
            None => best_by_silhouette(&x, seed)?,
        };
        let k = labels.iter().max().map_or(0, |m| m + 1);
        let mut sizes = vec![0usize; k];
        let mut sums = vec![vec![0.0; scores.facets.len()]; k];
        for (row, l) in x.rows().into_iter().zip(&labels) {
            sizes[*l] += 1;
            sums[*l]
                .iter_mut()
                .zip(row.iter())
                .for_each(|(s, v)| *s += v);
        }
        let centroids: Vec<Vec<f64>> = sums
            .into_iter()
            .zip(&sizes)
            .map(|(s, n)| s.into_iter().map(|v| v / (*n).max(1) as f64).collect())
            .collect();
        let previous: Option<PersonaSpace> = segment
            .persona_space
            .clone()
            .and_then(|v| serde_json::from_value(v).ok());
        let now = Utc::now();
        let found = PersonaSpace::identities(
            previous.as_ref(),
            &scores.facets,
            &scaling,
            &centroids,
            &sizes,
            now,
        );
        let mut identities: BTreeMap<i32, Identity> = BTreeMap::new();
        for (label, index) in found.index_of.iter().enumerate() {
            if sizes[label] > 0 {
                identities.insert(
                    *index,
                    Identity {
                        size: sizes[label] as i64,
                        label: super::persona_identity::label(&scores.facets, &centroids[label]),
                        ..Identity::default()
                    },
                );
            }
        }
        let indexes: Vec<i32> = labels.iter().map(|l| found.index_of[*l]).collect();
        let mut space = PersonaSpace::of(scores.facets, scaling, &x, &indexes);
        space.retired = found.retired;
        let space = serde_json::to_value(&space).map_err(Error::internal)?;
        let assignments: Vec<(String, i32)> = scores.user_ids.into_iter().zip(indexes).collect();
        let (ws, id) = (segment.workspace_id, segment.id);
        let carried = previous.is_some();
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                super::lock_segment(tx, id).await?;
                if carried {
                    carry_identities(tx, id, &assignments, &mut identities).await?;
                }
                delete_personas(tx, id).await?;
                insert_assignments(tx, ws, id, &assignments).await?;
                write_profiles(tx, ws, id, &identities).await?;
                segments::Entity::update_many()
                    .col_expr(segments::Column::PersonaSpace, Expr::val(Some(space)))
                    .filter(segments::Column::Id.eq(id))
                    .exec(tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Streams the scored members' psych scores into a matrix (missing facets
    /// are NaN until standardized).
    async fn member_scores(&self, segment: &segments::Model) -> Result<ScoreMatrix> {
        let ws = segment.workspace_id;
        let members = super::members_query(segment);
        let scores = || {
            psych_scores::Entity::find()
                .filter(psych_scores::Column::WorkspaceId.eq(ws))
                .filter(psych_scores::Column::UserId.in_subquery(members.clone()))
        };
        let facets: Vec<(String, String)> = scores()
            .select_only()
            .column(psych_scores::Column::Category)
            .column(psych_scores::Column::Facet)
            .distinct()
            .order_by_asc(psych_scores::Column::Category)
            .order_by_asc(psych_scores::Column::Facet)
            .into_tuple()
            .all(&self.db)
            .await?;
        let column: HashMap<(String, String), usize> = facets
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, f)| (f, i))
            .collect();
        let width = facets.len();
        let mut user_ids: Vec<String> = Vec::new();
        let mut values: Vec<f64> = Vec::new();
        let mut rows = scores()
            .select_only()
            .column(psych_scores::Column::UserId)
            .column(psych_scores::Column::Category)
            .column(psych_scores::Column::Facet)
            .column(psych_scores::Column::Score)
            .order_by_asc(psych_scores::Column::UserId)
            .into_tuple::<(String, String, String, f64)>()
            .stream(&self.db)
            .await?;
        while let Some((user, category, facet, score)) = rows.try_next().await? {
            if user_ids.last() != Some(&user) {
                user_ids.push(user);
                values.extend(std::iter::repeat_n(f64::NAN, width));
            }
            if let Some(c) = column.get(&(category, facet)) {
                let row = user_ids.len() - 1;
                values[row * width + c] = score;
            }
        }
        let x = Array2::from_shape_vec((user_ids.len(), width), values).map_err(Error::internal)?;
        Ok(ScoreMatrix {
            user_ids,
            facets,
            x,
        })
    }
}

/// In an incremental pass, after the members of the segment changed: the
/// pass's players leave the persona they were in, and those who are members
/// with psych scores join the persona nearest to their scores as of the
/// last clustering (no clustering here: that stays a job of its own). Sizes
/// and the scored-member count follow; profiles stay those of the last
/// clustering. Returns whether anyone moved.
pub(crate) async fn place_members(
    tx: &DatabaseTransaction,
    segment_id: Uuid,
    scope: &Scope,
) -> Result<bool> {
    let Some(segment) = segments::Entity::find_by_id(segment_id).one(tx).await? else {
        return Ok(false);
    };
    let Some(space) = segment
        .persona_space
        .clone()
        .and_then(|v| serde_json::from_value::<PersonaSpace>(v).ok())
    else {
        return Ok(false);
    };
    let in_scope = |c: persona_members::Column| Expr::col(c).in_subquery(scope.keys());
    let left: Vec<(String, i32)> = persona_members::Entity::find()
        .select_only()
        .column(persona_members::Column::UserId)
        .column(persona_members::Column::PersonaIndex)
        .filter(persona_members::Column::SegmentId.eq(segment_id))
        .filter(in_scope(persona_members::Column::UserId))
        .into_tuple()
        .all(tx)
        .await?;
    persona_members::Entity::delete_many()
        .filter(persona_members::Column::SegmentId.eq(segment_id))
        .filter(in_scope(persona_members::Column::UserId))
        .exec(tx)
        .await?;
    let mut scores: BTreeMap<String, HashMap<(String, String), f64>> = BTreeMap::new();
    let rows: Vec<(String, String, String, f64)> = psych_scores::Entity::find()
        .select_only()
        .column(psych_scores::Column::UserId)
        .column(psych_scores::Column::Category)
        .column(psych_scores::Column::Facet)
        .column(psych_scores::Column::Score)
        .filter(psych_scores::Column::WorkspaceId.eq(segment.workspace_id))
        .filter(Expr::col(psych_scores::Column::UserId).in_subquery(scope.keys()))
        .filter(psych_scores::Column::UserId.in_subquery(super::members_query(&segment)))
        .into_tuple()
        .all(tx)
        .await?;
    for (user, category, facet, score) in rows {
        scores
            .entry(user)
            .or_default()
            .insert((category, facet), score);
    }
    let placed: Vec<(String, i32)> = scores
        .iter()
        .filter_map(|(user, s)| space.nearest(s).map(|i| (user.clone(), i)))
        .collect();
    insert_assignments(tx, segment.workspace_id, segment_id, &placed).await?;
    let mut delta: BTreeMap<i32, i64> = BTreeMap::new();
    for (_, index) in &left {
        *delta.entry(*index).or_default() -= 1;
    }
    for (_, index) in &placed {
        *delta.entry(*index).or_default() += 1;
    }
    for (index, d) in &delta {
        if *d != 0 {
            personas::Entity::update_many()
                .col_expr(
                    personas::Column::Size,
                    Expr::col(personas::Column::Size).add(*d),
                )
                .filter(personas::Column::SegmentId.eq(segment_id))
                .filter(personas::Column::PersonaIndex.eq(*index))
                .exec(tx)
                .await?;
        }
    }
    let scored: i64 = delta.values().sum();
    if scored != 0 {
        segments::Entity::update_many()
            .col_expr(
                segments::Column::ScoredMembers,
                Expr::col(segments::Column::ScoredMembers).add(scored),
            )
            .filter(segments::Column::Id.eq(segment_id))
            .exec(tx)
            .await?;
    }
    let mut left = left;
    left.sort();
    let mut now = placed;
    now.sort();
    Ok(left != now)
}

/// `SELECT user_id` of one persona's members.
fn persona_query(segment_id: Uuid, index: i32) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(persona_members::Column::UserId)
        .from(persona_members::Entity)
        .and_where(Expr::col(persona_members::Column::SegmentId).eq(segment_id))
        .and_where(Expr::col(persona_members::Column::PersonaIndex).eq(index))
        .to_owned()
}

fn not_computed(segment: &segments::Model) -> Error {
    let why = match (segment.personas_status.as_str(), &segment.personas_error) {
        ("insufficient" | "failed", Some(reason)) => format!(": {reason}"),
        _ => String::new(),
    };
    Error::Missing(format!(
        "personas of segment `{}` are not computed yet{why}",
        segment.slug
    ))
}

/// Writes members' persona assignments, a few thousand rows per statement.
async fn insert_assignments(
    tx: &DatabaseTransaction,
    ws: Uuid,
    segment_id: Uuid,
    assignments: &[(String, i32)],
) -> Result<()> {
    for chunk in assignments.chunks(INSERT_CHUNK) {
        persona_members::Entity::insert_many(chunk.iter().map(|(user, index)| {
            persona_members::ActiveModel {
                workspace_id: Set(ws),
                segment_id: Set(segment_id),
                persona_index: Set(*index),
                user_id: Set(user.clone()),
            }
        }))
        .exec(tx)
        .await?;
    }
    Ok(())
}

/// What a persona row carries besides its profile.
#[derive(Default)]
struct Identity {
    size: i64,
    label: String,
    id: Option<Uuid>,
    name: Option<String>,
    description: Option<String>,
    stability: Option<f64>,
}

/// The personas a clustering continues keep their id, name and description,
/// and learn how many of their members they kept (before the old rows go).
async fn carry_identities(
    tx: &DatabaseTransaction,
    segment_id: Uuid,
    assignments: &[(String, i32)],
    identities: &mut BTreeMap<i32, Identity>,
) -> Result<()> {
    for old in personas::Entity::find()
        .filter(personas::Column::SegmentId.eq(segment_id))
        .all(tx)
        .await?
    {
        if let Some(i) = identities.get_mut(&old.persona_index) {
            i.id = old.id;
            i.name = old.name;
            i.description = old.description;
        }
    }
    let new: HashMap<&str, i32> = assignments.iter().map(|(u, i)| (u.as_str(), *i)).collect();
    let mut rows = persona_members::Entity::find()
        .select_only()
        .column(persona_members::Column::UserId)
        .column(persona_members::Column::PersonaIndex)
        .filter(persona_members::Column::SegmentId.eq(segment_id))
        .into_tuple::<(String, i32)>()
        .stream(tx)
        .await?;
    let mut counts: HashMap<i32, (f64, f64)> = HashMap::new();
    while let Some((user, index)) = rows.try_next().await? {
        let c = counts.entry(index).or_default();
        c.0 += 1.0;
        if new.get(user.as_str()) == Some(&index) {
            c.1 += 1.0;
        }
    }
    for (index, (before, kept)) in counts {
        if let Some(i) = identities.get_mut(&index) {
            i.stability = Some(kept / before);
        }
    }
    Ok(())
}

async fn delete_personas(tx: &DatabaseTransaction, segment_id: Uuid) -> Result<()> {
    persona_members::Entity::delete_many()
        .filter(persona_members::Column::SegmentId.eq(segment_id))
        .exec(tx)
        .await?;
    personas::Entity::delete_many()
        .filter(personas::Column::SegmentId.eq(segment_id))
        .exec(tx)
        .await?;
    Ok(())
}

/// Profiles aggregated by the database from the assignments just written:
/// mean and count per persona, category and facet; the segment's profile is
/// the count-weighted mean over personas.
async fn write_profiles(
    tx: &DatabaseTransaction,
    ws: Uuid,
    segment_id: Uuid,
    identities: &BTreeMap<i32, Identity>,
) -> Result<()> {
    let scored: i64 = identities.values().map(|i| i.size).sum();
    let pm = |c: persona_members::Column| Expr::col((persona_members::Entity, c));
    let ps = |c: psych_scores::Column| Expr::col((psych_scores::Entity, c));
    let select = Query::select()
        .expr(pm(persona_members::Column::PersonaIndex))
        .expr(ps(psych_scores::Column::Category))
        .expr(ps(psych_scores::Column::Facet))
        .expr(Func::avg(ps(psych_scores::Column::Score)))
        .expr(Func::count(ps(psych_scores::Column::Score)))
        .from(persona_members::Entity)
        .inner_join(
            psych_scores::Entity,
            ps(psych_scores::Column::WorkspaceId)
                .equals((
                    persona_members::Entity,
                    persona_members::Column::WorkspaceId,
                ))
                .and(
                    ps(psych_scores::Column::UserId)
                        .equals((persona_members::Entity, persona_members::Column::UserId)),
                ),
        )
        .and_where(pm(persona_members::Column::SegmentId).eq(segment_id))
        .group_by_col((
            persona_members::Entity,
            persona_members::Column::PersonaIndex,
        ))
        .group_by_col((psych_scores::Entity, psych_scores::Column::Category))
        .group_by_col((psych_scores::Entity, psych_scores::Column::Facet))
        .to_owned();
    let rows = tx.query_all(&select).await?;
    let mut per_persona: BTreeMap<i32, Profile> = BTreeMap::new();
    let mut overall: Profile = BTreeMap::new();
    for row in rows {
        let index: i32 = row.try_get_by_index(0)?;
        let category: String = row.try_get_by_index(1)?;
        let facet: String = row.try_get_by_index(2)?;
        let mean: f64 = row.try_get_by_index(3)?;
        let count: i64 = row.try_get_by_index(4)?;
        per_persona
            .entry(index)
            .or_default()
            .insert((category.clone(), facet.clone()), (mean, count));
        let total = overall.entry((category, facet)).or_insert((0.0, 0));
        total.0 += mean * count as f64;
        total.1 += count;
    }
    for total in overall.values_mut() {
        total.0 /= std::cmp::max(total.1, 1) as f64;
    }
    let now = Utc::now();
    if !identities.is_empty() {
        personas::Entity::insert_many(identities.iter().map(|(index, i)| personas::ActiveModel {
            workspace_id: Set(ws),
            segment_id: Set(segment_id),
            persona_index: Set(*index),
            size: Set(i.size),
            profile: Set(profile_json(per_persona.get(index))),
            computed_at: Set(now),
            id: Set(Some(i.id.unwrap_or_else(Uuid::now_v7))),
            name: Set(i.name.clone()),
            description: Set(i.description.clone()),
            label: Set(i.label.clone()),
            stability: Set(i.stability),
        }))
        .exec(tx)
        .await?;
    }
    segments::Entity::update_many()
        .col_expr(
            segments::Column::PersonasStatus,
            Expr::val(ComputeStatus::Ready),
        )
        .col_expr(
            segments::Column::PersonasError,
            Expr::val(Option::<String>::None),
        )
        .col_expr(segments::Column::ScoredMembers, Expr::val(scored))
        .col_expr(
            segments::Column::Profile,
            Expr::val(profile_json(Some(&overall))),
        )
        .col_expr(segments::Column::PersonasComputedAt, Expr::val(Some(now)))
        .filter(segments::Column::Id.eq(segment_id))
        .exec(tx)
        .await?;
    Ok(())
}

type Profile = BTreeMap<(String, String), (f64, i64)>;

/// `{category: {facet: mean}}`, the player API's shape.
fn profile_json(profile: Option<&Profile>) -> Value {
    let mut out = Map::new();
    for ((category, facet), (mean, _)) in profile.into_iter().flatten() {
        let entry = out
            .entry(category.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(facets) = entry {
            facets.insert(facet.clone(), json!(mean));
        }
    }
    Value::Object(out)
}

/// Cluster labels 0..k for each row; deterministic for a seed.
fn kmeans(x: &Array2<f64>, k: usize, seed: u64) -> Result<Vec<usize>> {
    let runs = if x.nrows() > 20_000 { 3 } else { 10 };
    let data = DatasetBase::from(x.clone());
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .n_runs(runs)
        .max_n_iterations(300)
        .tolerance(1e-6)
        .fit(&data)
        .map_err(|e| Error::internal(format!("k-means: {e}")))?;
    Ok(model.predict(x).to_vec())
}

/// `auto`: the k in 2..=8 with the best mean silhouette on a sample.
fn best_by_silhouette(x: &Array2<f64>, seed: u64) -> Result<Vec<usize>> {
    let mut best: Option<(f64, Vec<usize>)> = None;
    for k in AUTO_K.filter(|k| *k < x.nrows()) {
        let labels = kmeans(x, k, seed)?;
        let score = silhouette(x, &labels);
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, labels));
        }
    }
    best.map(|(_, labels)| labels)
        .ok_or_else(|| Error::Conflict("too few scored members to choose a persona count".into()))
}

/// Mean silhouette over an evenly spaced sample of rows.
fn silhouette(x: &Array2<f64>, labels: &[usize]) -> f64 {
    let n = x.nrows();
    let step = n.div_ceil(SILHOUETTE_SAMPLE).max(1);
    let sample: Vec<usize> = (0..n).step_by(step).collect();
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let dist = |a: ArrayView1<f64>, b: ArrayView1<f64>| {
        a.iter()
            .zip(b.iter())
            .map(|(p, q)| (p - q).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut total = 0.0;
    for &i in &sample {
        let mut sum = vec![0.0; k];
        let mut count = vec![0usize; k];
        for &j in &sample {
            if i != j {
                sum[labels[j]] += dist(x.row(i), x.row(j));
                count[labels[j]] += 1;
            }
        }
        let own = labels[i];
        if count[own] == 0 {
            continue; // a singleton scores 0
        }
        let a = sum[own] / count[own] as f64;
        let b = (0..k)
            .filter(|c| *c != own && count[*c] > 0)
            .map(|c| sum[c] / count[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b);
        }
    }
    total / sample.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> Array2<f64> {
        // Three tight groups on a line.
        let mut rows = Vec::new();
        for (center, n) in [(0.0, 10), (10.0, 6), (20.0, 4)] {
            for i in 0..n {
                rows.extend([center + (i % 3) as f64 * 0.1, center - (i % 2) as f64 * 0.1]);
            }
        }
        Array2::from_shape_vec((20, 2), rows).unwrap()
    }

    #[test]
    fn silhouette_picks_the_planted_number_of_groups() {
        let mut x = blobs();
        standardize(&mut x);
        let labels = best_by_silhouette(&x, 7).unwrap();
        let k = labels.iter().max().unwrap() + 1;
        assert_eq!(k, 3);
        // Same group, same label; different groups, different labels.
        assert!(labels[..10].iter().all(|l| *l == labels[0]));
        assert!(labels[10..16].iter().all(|l| *l == labels[10]));
        assert_ne!(labels[0], labels[10]);
        assert_ne!(labels[10], labels[16]);
    }
}
