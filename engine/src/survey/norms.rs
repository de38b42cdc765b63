//! Norms from the game's own players. A T-score of 60 means one standard
//! deviation above this game's respondents: once `norm_min_completes`
//! players completed the survey (not disqualified), each facet's mean and
//! sample sd over their raw scores replace the instrument's provisional
//! norms, and every stored T-score — answered and predicted — is rescored in
//! one transaction with the new norm version. Refreshed at most daily after
//! completions, or on demand; an instrument may instead fix its norms.
//!
//! A rescoring is exact without the answers: a T-score is affine in the raw
//! score, so moving from norm (m, s) to (m′, s′) maps T to a·T + b with
//! a = s/s′ and b = 50 + 10·(m − m′)/s′ − 50·a, for survey and predicted
//! scores alike (a ridge model of an affine-mapped target is the same model,
//! mapped). Combined facets are the mean of their components again.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use uuid::Uuid;

use entity::{
    job_records, prediction_models, prediction_status, prediction_weights, survey_answers,
    survey_norms, survey_registrations,
};

use super::{
    ResponseStatus,
    instrument::{FacetRef, Instrument, Norm, NormMode},
    reliability::{FacetReliability, Reliability},
};
use crate::{
    Engine, Result,
    auth::{Permission, Principal},
    jobs::{JobHandler, JobKind, JobStatus},
    prediction::{PredictionStatus, TrainPrediction},
};

pub use entity::states::NormSource;

/// Complete respondents from whom a workspace's own norms replace the instrument's.
pub const DEFAULT_NORM_MIN_COMPLETES: u64 = 200;
/// Workspace norms are recomputed after completions at most this often.
pub const NORMS_REFRESH_HOURS: i64 = 24;
/// After the first training, completions retrain at most this often.
pub const DEFAULT_RETRAIN_MINUTES: f64 = 10.0;
/// Page submits one survey link may make per minute.
pub const DEFAULT_SUBMITS_PER_MINUTE: u32 = 30;
/// Advisory lock class of a workspace's completion-time job decisions.
const DECISIONS_LOCK: i32 = 7303;

/// How the survey turns completions into norms and trainings.
#[derive(Clone, Copy, Debug)]
pub struct SurveySettings {
    /// `NORM_MIN_COMPLETES`.
    pub norm_min_completes: u64,
    /// `PREDICTION_RETRAIN_MINUTES`: completions after the first training
    /// retrain at most once per this long.
    pub prediction_retrain: std::time::Duration,
    /// `SURVEY_SUBMITS_PER_MINUTE` per survey link.
    pub submits_per_minute: u32,
}

impl Default for SurveySettings {
    fn default() -> Self {
        SurveySettings {
            norm_min_completes: DEFAULT_NORM_MIN_COMPLETES,
            prediction_retrain: std::time::Duration::from_secs_f64(DEFAULT_RETRAIN_MINUTES * 60.0),
            submits_per_minute: DEFAULT_SUBMITS_PER_MINUTE,
        }
    }
}

/// The norm one facet's stored T-scores stand on.
#[derive(Clone, Debug, PartialEq)]
pub struct FacetNorm {
    pub category: String,
    pub facet: String,
    pub mean: f64,
    pub sd: f64,
    pub source: NormSource,
    pub respondents: i64,
    pub version: i32,
    pub computed_at: Option<DateTime<Utc>>,
}

impl FacetNorm {
    fn key(&self) -> FacetRef {
        FacetRef {
            category: self.category.clone(),
            facet: self.facet.clone(),
        }
    }
}

/// The workspace's norms as a whole.
#[derive(Clone, Debug)]
pub struct NormsReport {
    /// `workspace` once every facet has the workspace's own norm.
    pub source: NormSource,
    /// Complete respondents now, and needed for workspace norms.
    pub completes: i64,
    pub min_completes: i64,
    pub version: i32,
    pub facets: Vec<FacetNorm>,
}

/// The norms the stored scores stand on, per item facet of `instrument`:
/// the stored ones, else the instrument's (provisional unless it fixes them).
pub(crate) async fn effective<C: ConnectionTrait>(
    conn: &C,
    ws: Uuid,
    instrument: &Instrument,
) -> Result<Vec<FacetNorm>> {
    let stored: HashMap<FacetRef, survey_norms::Model> = survey_norms::Entity::find()
        .filter(survey_norms::Column::WorkspaceId.eq(ws))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| {
            let key = FacetRef {
                category: r.category.clone(),
                facet: r.facet.clone(),
            };
            (key, r)
        })
        .collect();
    let version = stored.values().map(|r| r.version).max().unwrap_or(0);
    let fallback = match instrument.norms {
        NormMode::Instrument => NormSource::Instrument,
        NormMode::Workspace => NormSource::Provisional,
    };
    Ok(instrument
        .facets
        .iter()
        .map(|f| match stored.get(&f.key()) {
            Some(r) => FacetNorm {
                category: r.category.clone(),
                facet: r.facet.clone(),
                mean: r.mean,
                sd: r.sd,
                source: r.source,
                respondents: r.respondents,
                version: r.version,
                computed_at: Some(r.computed_at),
            },
            None => FacetNorm {
                category: f.category.clone(),
                facet: f.facet.clone(),
                mean: f.norm.mean,
                sd: f.norm.sd,
                source: fallback,
                respondents: 0,
                version,
                computed_at: None,
            },
        })
        .collect())
}

pub(crate) fn as_map(norms: &[FacetNorm]) -> HashMap<FacetRef, Norm> {
    norms
        .iter()
        .map(|n| {
            (
                n.key(),
                Norm {
                    mean: n.mean,
                    sd: n.sd,
                },
            )
        })
        .collect()
}

pub(crate) fn version(norms: &[FacetNorm]) -> i32 {
    norms.iter().map(|n| n.version).max().unwrap_or(0)
}

async fn completes<C: ConnectionTrait>(conn: &C, ws: Uuid) -> Result<u64> {
    Ok(survey_registrations::Entity::find()
        .filter(survey_registrations::Column::WorkspaceId.eq(ws))
        .filter(survey_registrations::Column::Status.eq(ResponseStatus::Complete))
        .count(conn)
        .await?)
}

/// Completions of a workspace write one at a time, counting each other (a
/// burst finds the job record the first of them wrote; the 200th sees 199
/// before it). Taken first in a completion's transaction, before any score
/// row: a completion waiting for it then holds no row a training waits for
/// (which would close a cycle: completion → training → another completion).
pub(crate) async fn lock_completions(tx: &DatabaseTransaction, ws: Uuid) -> Result<()> {
    crate::db::advisory_xact_lock(tx, DECISIONS_LOCK, ws).await
}

/// The jobs a completed response calls for, written in its transaction
/// (which holds [`lock_completions`]): the workspace's norms when the
/// minimum is first reached (and at most daily after), and a training — at
/// once the first time there are enough completes, then debounced to one per
/// `prediction_retrain`.
pub(crate) async fn after_completion(
    tx: &DatabaseTransaction,
    ws: Uuid,
    instrument: &Instrument,
    settings: SurveySettings,
    prediction_min_completes: u64,
) -> Result<Vec<job_records::Model>> {
    let completes = completes(tx, ws).await?;
    let now = Utc::now();
    let mut jobs = Vec::new();
    let records = |kind: JobKind| {
        job_records::Entity::find()
            .filter(job_records::Column::WorkspaceId.eq(ws))
            .filter(job_records::Column::Kind.eq(kind))
    };
    if instrument.norms == NormMode::Workspace {
        let stored = survey_norms::Entity::find()
            .filter(survey_norms::Column::WorkspaceId.eq(ws))
            .order_by_asc(survey_norms::Column::ComputedAt)
            .one(tx)
            .await?;
        let due = match stored {
            Some(r) if r.source == NormSource::Workspace => {
                r.computed_at < now - chrono::Duration::hours(NORMS_REFRESH_HOURS)
            }
            _ => completes >= settings.norm_min_completes,
        };
        // One computation at a time: the one waiting or running reads every
        // respondent who completed before it started; later ones wait for the
        // daily refresh.
        let pending = records(JobKind::ComputeNorms)
            .filter(job_records::Column::Status.is_in([JobStatus::Queued, JobStatus::Running]))
            .one(tx)
            .await?
            .is_some();
        if due && !pending {
            jobs.push(
                crate::jobs::enqueue_in(tx, Some(ws), &ComputeNorms { workspace_id: ws }).await?,
            );
        }
    }
    if completes < prediction_min_completes {
        return Ok(jobs);
    }
    // A training waiting to start will read this completion. Looked for
    // before the last one started: a record goes from queued to running, so
    // between the two reads a claim is seen by one of them.
    let waiting = records(JobKind::TrainPrediction)
        .filter(job_records::Column::Status.eq(JobStatus::Queued))
        .one(tx)
        .await?;
    if let Some(waiting) = waiting {
        jobs.push(waiting);
    } else {
        let last = records(JobKind::TrainPrediction)
            .filter(job_records::Column::StartedAt.is_not_null())
            .order_by_desc(job_records::Column::StartedAt)
            .one(tx)
            .await?;
        let trained = prediction_status::Entity::find_by_id(ws)
            .one(tx)
            .await?
            .is_some_and(|s| s.status == PredictionStatus::Trained);
        // Until a model stands (and no training is under way): at once. Then
        // one per `prediction_retrain` after the last one started.
        let retrain = chrono::Duration::from_std(settings.prediction_retrain)
            .unwrap_or(chrono::Duration::MAX);
        let run_after = last
            .filter(|l| trained || l.status == JobStatus::Running)
            .and_then(|l| l.started_at)
            .and_then(|at| at.checked_add_signed(retrain))
            .filter(|at| *at > now);
        let work = TrainPrediction { workspace_id: ws };
        jobs.push(crate::jobs::outbox::enqueue_once_after(tx, ws, &work, run_after).await?);
    }
    Ok(jobs)
}

/// Welford's running mean and sum of squared deviations.
#[derive(Default)]
struct Running {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Running {
    fn add(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    /// Sample standard deviation (n − 1).
    fn sd(&self) -> f64 {
        (self.m2 / (self.n - 1.0)).sqrt()
    }
}

/// From (current) to (target) norm: T ↦ a·T + b.
#[derive(Clone, Copy, Debug)]
struct Shift {
    a: f64,
    b: f64,
}

impl Shift {
    fn between(from: &FacetNorm, to: &FacetNorm) -> Shift {
        let a = from.sd / to.sd;
        Shift {
            a,
            b: 50.0 + 10.0 * (from.mean - to.mean) / to.sd - 50.0 * a,
        }
    }
}

impl Engine {
    /// The norms behind the workspace's T-scores.
    pub async fn survey_norms(&self, p: &Principal) -> Result<NormsReport> {
        p.require_any(&[Permission::Read, Permission::Ingest])?;
        let survey = self.survey_of(p.workspace_id).await?;
        let instrument = Instrument::stored(&survey.instrument)?;
        let facets = effective(&self.db, p.workspace_id, &instrument).await?;
        let source = if facets.iter().all(|f| f.source == NormSource::Workspace) {
            NormSource::Workspace
        } else if facets.iter().all(|f| f.source == NormSource::Instrument) {
            NormSource::Instrument
        } else {
            NormSource::Provisional
        };
        Ok(NormsReport {
            source,
            completes: completes(&self.db, p.workspace_id).await? as i64,
            min_completes: self.survey_settings.norm_min_completes as i64,
            version: version(&facets),
            facets,
        })
    }

    /// Per item facet: where the T-scores' norm comes from and how many
    /// respondents it stands on (combined facets: their first component's).
    pub async fn norm_sources(
        &self,
        p: &Principal,
    ) -> Result<HashMap<FacetRef, (NormSource, i64)>> {
        let survey = self.survey_of(p.workspace_id).await?;
        let instrument = Instrument::stored(&survey.instrument)?;
        let mut out: HashMap<FacetRef, (NormSource, i64)> =
            effective(&self.db, p.workspace_id, &instrument)
                .await?
                .into_iter()
                .map(|n| (n.key(), (n.source, n.respondents)))
                .collect();
        for c in &instrument.combined {
            if let Some(first) = c.from.first().and_then(|r| out.get(r)).copied() {
                out.insert(
                    FacetRef {
                        category: c.category.clone(),
                        facet: c.facet.clone(),
                    },
                    first,
                );
            }
        }
        Ok(out)
    }

    /// Cronbach's alpha and corrected item-total correlations per facet,
    /// over the complete respondents (one streamed pass over their answers).
    pub async fn survey_reliability(&self, p: &Principal) -> Result<Vec<FacetReliability>> {
        p.require_any(&[Permission::Read, Permission::Ingest])?;
        let survey = self.survey_of(p.workspace_id).await?;
        let instrument = Instrument::stored(&survey.instrument)?;
        let mut reliability = Reliability::new(&instrument);
        self.for_each_respondent(p.workspace_id, |answers| reliability.add(answers))
            .await?;
        Ok(reliability.finish())
    }

    /// Recomputes the norms now (and rescores if they changed).
    pub async fn refresh_survey_norms(&self, p: &Principal) -> Result<job_records::Model> {
        p.require(Permission::Write)?;
        self.enqueue_once(
            p.workspace_id,
            ComputeNorms {
                workspace_id: p.workspace_id,
            },
        )
        .await
    }

    /// Calls `f` with each complete respondent's answers (by item id),
    /// streaming them in user order; returns how many there were.
    async fn for_each_respondent(
        &self,
        ws: Uuid,
        mut f: impl FnMut(&HashMap<String, i16>),
    ) -> Result<u64> {
        let complete = Query::select()
            .column(survey_registrations::Column::UserId)
            .from(survey_registrations::Entity)
            .and_where(Expr::col(survey_registrations::Column::WorkspaceId).eq(ws))
            .and_where(Expr::col(survey_registrations::Column::Status).eq(ResponseStatus::Complete))
            .to_owned();
        let mut rows = survey_answers::Entity::find()
            .select_only()
            .column(survey_answers::Column::UserId)
            .column(survey_answers::Column::ItemId)
            .column(survey_answers::Column::Value)
            .filter(survey_answers::Column::WorkspaceId.eq(ws))
            .filter(survey_answers::Column::UserId.in_subquery(complete))
            .order_by_asc(survey_answers::Column::UserId)
            .into_tuple::<(String, String, i16)>()
            .stream(&self.db)
            .await?;
        let (mut current, mut answers, mut n) = (None::<String>, HashMap::new(), 0);
        while let Some((user, item, value)) = rows.try_next().await? {
            if current.as_ref() != Some(&user) {
                if current.is_some() {
                    f(&answers);
                    n += 1;
                }
                answers.clear();
                current = Some(user);
            }
            answers.insert(item, value);
        }
        if current.is_some() {
            f(&answers);
            n += 1;
        }
        Ok(n)
    }

    /// The body of `ComputeNorms`: the norms the workspace should stand on
    /// now; when they differ from the stored ones, every score is rescored
    /// in one transaction, then personas follow.
    pub async fn compute_norms(&self, ws: Uuid) -> Result<()> {
        let survey = self.survey_of(ws).await?;
        let instrument = Instrument::stored(&survey.instrument)?;
        let mut running: BTreeMap<FacetRef, Running> = BTreeMap::new();
        let respondents = match instrument.norms {
            NormMode::Instrument => 0,
            NormMode::Workspace => {
                self.for_each_respondent(ws, |answers| {
                    for (facet, raw) in instrument.raw_scores(answers) {
                        running.entry(facet).or_default().add(raw);
                    }
                })
                .await?
            }
        };
        let enough = respondents >= self.survey_settings.norm_min_completes;
        let now = Utc::now();
        let target: Vec<FacetNorm> = instrument
            .facets
            .iter()
            .map(|f| {
                let own = running
                    .get(&f.key())
                    .filter(|r| enough && r.n >= 2.0 && r.sd() > 0.0);
                let (mean, sd, source, n) = match (own, instrument.norms) {
                    (Some(r), _) => (r.mean, r.sd(), NormSource::Workspace, r.n as i64),
                    (None, NormMode::Instrument) => {
                        (f.norm.mean, f.norm.sd, NormSource::Instrument, 0)
                    }
                    (None, NormMode::Workspace) => {
                        (f.norm.mean, f.norm.sd, NormSource::Provisional, 0)
                    }
                };
                FacetNorm {
                    category: f.category.clone(),
                    facet: f.facet.clone(),
                    mean,
                    sd,
                    source,
                    respondents: n,
                    version: 0,
                    computed_at: Some(now),
                }
            })
            .collect();
        let changed = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                crate::norm_version::lock(tx, ws, true).await?;
                let current = effective(tx, ws, &instrument).await?;
                let differs = current
                    .iter()
                    .zip(&target)
                    .any(|(c, t)| (c.mean, c.sd, c.source) != (t.mean, t.sd, t.source));
                let version = version(&current) + i32::from(differs);
                if differs {
                    rescore(tx, ws, &instrument, &current, &target, version).await?;
                }
                write_norms(tx, ws, &target, version).await?;
                Ok(differs)
            })
        })
        .await?;
        if changed {
            tracing::info!(workspace = %ws, respondents, "survey norms changed; scores rescored");
            self.scores_changed(ws).await?;
        }
        Ok(())
    }
}

async fn write_norms(
    tx: &DatabaseTransaction,
    ws: Uuid,
    norms: &[FacetNorm],
    version: i32,
) -> Result<()> {
    survey_norms::Entity::delete_many()
        .filter(survey_norms::Column::WorkspaceId.eq(ws))
        .exec(tx)
        .await?;
    survey_norms::Entity::insert_many(norms.iter().map(|n| survey_norms::ActiveModel {
        workspace_id: Set(ws),
        category: Set(n.category.clone()),
        facet: Set(n.facet.clone()),
        mean: Set(n.mean),
        sd: Set(n.sd),
        source: Set(n.source),
        respondents: Set(n.respondents),
        version: Set(version),
        computed_at: Set(n.computed_at.unwrap_or_else(Utc::now)),
    }))
    .on_conflict(
        OnConflict::columns([
            survey_norms::Column::WorkspaceId,
            survey_norms::Column::Category,
            survey_norms::Column::Facet,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(tx)
    .await?;
    Ok(())
}

/// Every stored score and the prediction models move from `current` to
/// `target` norms (see the module's comment); in the caller's transaction.
/// Two statements, each one pass over the workspace's scores: the item
/// facets through a table of their (a, b), then the combined facets from
/// their parts' new scores (one `UPDATE … WHERE facet = ?` per facet would
/// scan every score once per facet: the key leads with the user).
async fn rescore(
    tx: &DatabaseTransaction,
    ws: Uuid,
    instrument: &Instrument,
    current: &[FacetNorm],
    target: &[FacetNorm],
    version: i32,
) -> Result<()> {
    let backend = tx.get_database_backend();
    let mut shifts: HashMap<FacetRef, Shift> = HashMap::new();
    let mut b = crate::db::Binds::new(backend);
    let mut rows = Vec::new();
    for (from, to) in current.iter().zip(target) {
        let shift = Shift::between(from, to);
        rows.push(format!(
            "({}, {}, CAST({} AS DOUBLE PRECISION), CAST({} AS DOUBLE PRECISION))",
            b.bind(to.category.clone()),
            b.bind(to.facet.clone()),
            b.bind(shift.a),
            b.bind(shift.b),
        ));
        shifts.insert(to.key(), shift);
    }
    if !rows.is_empty() {
        let sql = format!(
            "WITH t(category, facet, a, b) AS (VALUES {}) \
             UPDATE psych_scores SET score = psych_scores.score * t.a + t.b, norm_version = {} \
             FROM t WHERE psych_scores.workspace_id = {} \
               AND psych_scores.category = t.category AND psych_scores.facet = t.facet",
            rows.join(", "),
            b.bind(version),
            b.bind(ws),
        );
        tx.execute_raw(b.statement(sql)).await?;
    }
    let mut b = crate::db::Binds::new(backend);
    let mut parts = Vec::new();
    for c in &instrument.combined {
        for r in &c.from {
            parts.push(format!(
                "({}, {}, {}, {})",
                b.bind(c.category.clone()),
                b.bind(c.facet.clone()),
                b.bind(r.category.clone()),
                b.bind(r.facet.clone()),
            ));
        }
    }
    if !parts.is_empty() {
        // Placeholders in the order they appear (SQLite binds by position).
        let mut sql = format!(
            "WITH parts(category, facet, part_category, part_facet) AS (VALUES {}), \
             means AS (SELECT c.user_id, c.source, q.category, q.facet, AVG(c.score) AS score \
                       FROM psych_scores c JOIN parts q ON c.category = q.part_category AND c.facet = q.part_facet \
                       WHERE c.workspace_id = {} GROUP BY c.user_id, c.source, q.category, q.facet) ",
            parts.join(", "),
            b.bind(ws),
        );
        sql.push_str(&format!(
            "UPDATE psych_scores SET score = means.score, norm_version = {} ",
            b.bind(version)
        ));
        sql.push_str(&format!(
            "FROM means WHERE psych_scores.workspace_id = {} AND psych_scores.user_id = means.user_id \
               AND psych_scores.source = means.source \
               AND psych_scores.category = means.category AND psych_scores.facet = means.facet",
            b.bind(ws)
        ));
        tx.execute_raw(b.statement(sql)).await?;
    }
    shift_models(tx, ws, instrument, &shifts).await
}

/// The prediction models follow their targets: an item facet's model is
/// mapped like its scores; a combined facet's becomes the mean of its
/// components' (as its scores are).
async fn shift_models(
    tx: &DatabaseTransaction,
    ws: Uuid,
    instrument: &Instrument,
    shifts: &HashMap<FacetRef, Shift>,
) -> Result<()> {
    let mut models: BTreeMap<FacetRef, prediction_models::Model> =
        prediction_models::Entity::find()
            .filter(prediction_models::Column::WorkspaceId.eq(ws))
            .all(tx)
            .await?
            .into_iter()
            .map(|m| {
                let key = FacetRef {
                    category: m.category.clone(),
                    facet: m.facet.clone(),
                };
                (key, m)
            })
            .collect();
    if models.is_empty() {
        return Ok(());
    }
    let mut weights: BTreeMap<FacetRef, Vec<prediction_weights::Model>> = BTreeMap::new();
    for w in prediction_weights::Entity::find()
        .filter(prediction_weights::Column::WorkspaceId.eq(ws))
        .order_by_asc(prediction_weights::Column::TraitId)
        .all(tx)
        .await?
    {
        let key = FacetRef {
            category: w.category.clone(),
            facet: w.facet.clone(),
        };
        weights.entry(key).or_default().push(w);
    }
    for (facet, shift) in shifts {
        if let Some(m) = models.get_mut(facet) {
            m.intercept = shift.a * m.intercept + shift.b;
        }
        for w in weights.get_mut(facet).into_iter().flatten() {
            w.weight *= shift.a;
            w.missing_on *= shift.a;
            w.missing_off *= shift.a;
        }
    }
    for c in &instrument.combined {
        let key = FacetRef {
            category: c.category.clone(),
            facet: c.facet.clone(),
        };
        let parts: Vec<&prediction_models::Model> =
            c.from.iter().filter_map(|r| models.get(r)).collect();
        if parts.len() != c.from.len() || !models.contains_key(&key) {
            continue;
        }
        let k = parts.len() as f64;
        let intercept = parts.iter().map(|m| m.intercept).sum::<f64>() / k;
        let mut mean_weights: Vec<prediction_weights::Model> =
            weights.get(&c.from[0]).cloned().unwrap_or_default();
        for (j, w) in mean_weights.iter_mut().enumerate() {
            let of = |f: fn(&prediction_weights::Model) -> f64| {
                c.from
                    .iter()
                    .filter_map(|r| weights.get(r).and_then(|ws| ws.get(j)))
                    .map(f)
                    .sum::<f64>()
                    / k
            };
            w.weight = of(|w| w.weight);
            w.missing_on = of(|w| w.missing_on);
            w.missing_off = of(|w| w.missing_off);
            w.category = c.category.clone();
            w.facet = c.facet.clone();
        }
        if let Some(m) = models.get_mut(&key) {
            m.intercept = intercept;
        }
        weights.insert(key, mean_weights);
    }
    for m in models.into_values() {
        prediction_models::Entity::update_many()
            .col_expr(
                prediction_models::Column::Intercept,
                Expr::value(m.intercept),
            )
            .filter(prediction_models::Column::WorkspaceId.eq(ws))
            .filter(prediction_models::Column::Category.eq(m.category))
            .filter(prediction_models::Column::Facet.eq(m.facet))
            .exec(tx)
            .await?;
    }
    prediction_weights::Entity::delete_many()
        .filter(prediction_weights::Column::WorkspaceId.eq(ws))
        .exec(tx)
        .await?;
    let rows: Vec<prediction_weights::ActiveModel> = weights
        .into_values()
        .flatten()
        .map(|w| prediction_weights::ActiveModel {
            workspace_id: Set(w.workspace_id),
            category: Set(w.category),
            facet: Set(w.facet),
            trait_id: Set(w.trait_id),
            mean: Set(w.mean),
            sd: Set(w.sd),
            weight: Set(w.weight),
            fill: Set(w.fill),
            missing_on: Set(w.missing_on),
            missing_off: Set(w.missing_off),
        })
        .collect();
    for chunk in rows.chunks(2000) {
        prediction_weights::Entity::insert_many(chunk.to_vec())
            .exec(tx)
            .await?;
    }
    Ok(())
}

/// Recomputes a workspace's survey norms and rescores on a change.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ComputeNorms {
    pub workspace_id: Uuid,
}

#[async_trait::async_trait]
impl JobHandler for ComputeNorms {
    const KIND: JobKind = JobKind::ComputeNorms;
    const HEAVY: bool = true;

    async fn run(&self, engine: &Engine) -> Result<()> {
        engine.compute_norms(self.workspace_id).await
    }

    /// Nothing is left open: the rescoring commits whole or not at all.
    async fn abandon(&self, _: &DatabaseTransaction, _: &str) -> Result<()> {
        Ok(())
    }
}
