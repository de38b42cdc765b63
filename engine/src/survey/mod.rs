//! The hosted survey: one per workspace, player registrations with tokens,
//! page-by-page answers, quality checks and scoring into psychological
//! T-scores on completion.

pub mod instrument;
pub mod norms;
mod rate_limit;
pub mod reliability;

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use serde_json::Value;
use uuid::Uuid;

use entity::{psych_scores, survey_answers, survey_registrations, surveys};

use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
};
pub use instrument::Instrument;
pub use norms::{NormSource, SurveySettings};
pub(crate) use rate_limit::RateLimiter;

pub use entity::states::SurveyStatus;

pub use entity::states::ResponseStatus;

pub const DEFAULT_TITLE: &str = "Traitforge Survey";
pub const DEFAULT_TYPE: &str = "Standard Survey";
/// Answering 124 items faster than this is not reading them.
pub const DEFAULT_MIN_SECONDS: i32 = 120;
pub const DEFAULT_TOKEN_TTL_HOURS: i32 = 24 * 7;
const MAX_USER_ID_LEN: usize = 256;

/// Responses counted by outcome, as `GET /v1/assessment` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SurveyStatistics {
    pub partial: i64,
    pub disqualified: i64,
    pub complete: i64,
}

/// Changes to the survey; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct SurveyUpdate {
    pub status: Option<String>,
    pub survey_type: Option<String>,
    pub title: Option<String>,
    pub internal_title: Option<String>,
    pub instrument: Option<Value>,
    pub min_seconds: Option<i32>,
    pub token_ttl_hours: Option<i32>,
}

/// What the survey page shows for a token.
#[derive(Clone, Debug)]
pub struct SurveySession {
    pub title: String,
    pub instrument: Instrument,
    /// 0-based page to answer next.
    pub page: usize,
    pub answers: HashMap<String, i16>,
}

/// The result of submitting one page.
#[derive(Clone, Debug, PartialEq)]
pub enum PageOutcome {
    /// More pages to answer.
    Next { page: usize },
    /// The last page was saved and the response scored or disqualified.
    Finished { status: ResponseStatus },
}

fn validate_user_id(id: &str) -> Result<&str> {
    let id = id.trim();
    if id.is_empty() || id.len() > MAX_USER_ID_LEN {
        return Err(Error::invalid(
            "id",
            format!("must be 1 to {MAX_USER_ID_LEN} characters"),
        ));
    }
    Ok(id)
}

fn new_token() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Engine {
    /// The workspace's survey, created with the default instrument on first use.
    pub(crate) async fn survey_of(&self, workspace_id: Uuid) -> Result<surveys::Model> {
        if let Some(s) = surveys::Entity::find()
            .filter(surveys::Column::WorkspaceId.eq(workspace_id))
            .one(&self.db)
            .await?
        {
            return Ok(s);
        }
        let now = Utc::now();
        let instrument = serde_json::from_str::<Value>(instrument::DEFAULT_INSTRUMENT)
            .map_err(Error::internal)?;
        let model = surveys::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            status: Set(SurveyStatus::Launched),
            survey_type: Set(DEFAULT_TYPE.into()),
            title: Set(DEFAULT_TITLE.into()),
            internal_title: Set(DEFAULT_TITLE.into()),
            instrument: Set(instrument),
            min_seconds: Set(DEFAULT_MIN_SECONDS),
            token_ttl_hours: Set(DEFAULT_TOKEN_TTL_HOURS),
            created_at: Set(now),
            modified_at: Set(now),
            closed_at: Set(None),
        };
        // Two first requests at once: one insert wins, both read it back.
        surveys::Entity::insert(model)
            .on_conflict(
                OnConflict::column(surveys::Column::WorkspaceId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        surveys::Entity::find()
            .filter(surveys::Column::WorkspaceId.eq(workspace_id))
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::internal("survey vanished after insert"))
    }

    /// The survey readable by players' backends (ingest keys) and dashboards.
    pub async fn survey(&self, p: &Principal) -> Result<surveys::Model> {
        p.require_any(&[Permission::Read, Permission::Ingest])?;
        self.survey_of(p.workspace_id).await
    }

    pub async fn survey_statistics(&self, p: &Principal) -> Result<SurveyStatistics> {
        p.require_any(&[Permission::Read, Permission::Ingest])?;
        let rows: Vec<(String, i64)> = survey_registrations::Entity::find()
            .select_only()
            .column(survey_registrations::Column::Status)
            .column_as(Expr::col(survey_registrations::Column::Id).count(), "n")
            .filter(survey_registrations::Column::WorkspaceId.eq(p.workspace_id))
            .group_by(survey_registrations::Column::Status)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut stats = SurveyStatistics::default();
        for (status, n) in rows {
            match ResponseStatus::parse(&status) {
                Some(ResponseStatus::Partial) => stats.partial = n,
                Some(ResponseStatus::Disqualified) => stats.disqualified = n,
                Some(ResponseStatus::Complete) => stats.complete = n,
                _ => {}
            }
        }
        Ok(stats)
    }

    pub async fn update_survey(&self, p: &Principal, u: SurveyUpdate) -> Result<surveys::Model> {
        p.require(Permission::Write)?;
        let current = self.survey_of(p.workspace_id).await?;
        let mut m: surveys::ActiveModel = current.clone().into();
        let now = Utc::now();
        if let Some(status) = u.status {
            let s = SurveyStatus::parse(&status).ok_or_else(|| {
                Error::invalid(
                    "status",
                    format!("'{status}' is not one of: {}", SurveyStatus::expected()),
                )
            })?;
            m.closed_at = Set(match s {
                SurveyStatus::Launched => None,
                _ => current.closed_at.or(Some(now)),
            });
            m.status = Set(s);
        }
        let text = |field: &str, v: String| crate::limits::name(&v, field);
        if let Some(v) = u.survey_type {
            m.survey_type = Set(text("type", v)?);
        }
        if let Some(v) = u.title {
            m.title = Set(text("title", v)?);
        }
        if let Some(v) = u.internal_title {
            m.internal_title = Set(text("internal_title", v)?);
        }
        let new_instrument = u.instrument.is_some();
        if let Some(v) = u.instrument {
            Instrument::parse(&v)?;
            m.instrument = Set(v);
        }
        if let Some(v) = u.min_seconds {
            if !(0..=86_400).contains(&v) {
                return Err(Error::invalid("min_seconds", "must be between 0 and 86400"));
            }
            m.min_seconds = Set(v);
        }
        if let Some(v) = u.token_ttl_hours {
            if !(1..=24 * 365).contains(&v) {
                return Err(Error::invalid(
                    "token_ttl_hours",
                    "must be between 1 and 8760",
                ));
            }
            m.token_ttl_hours = Set(v);
        }
        m.modified_at = Set(now);
        let ws = p.workspace_id;
        // Another instrument may bring other facets or norms: the stored
        // scores are brought onto its norms with the change.
        let (survey, job) = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let survey = m.update(tx).await?;
                let job = match new_instrument {
                    true => Some(
                        crate::jobs::enqueue_once_in(
                            tx,
                            ws,
                            &norms::ComputeNorms { workspace_id: ws },
                        )
                        .await?,
                    ),
                    false => None,
                };
                Ok((survey, job))
            })
        })
        .await?;
        if let Some(job) = job {
            self.dispatch(&job).await;
        }
        Ok(survey)
    }

    /// Registers a player for the survey. While the player's token is valid,
    /// registering again returns the same token; an expired one is replaced
    /// (answers saved so far are kept).
    pub async fn register_for_survey(
        &self,
        p: &Principal,
        user_id: &str,
    ) -> Result<survey_registrations::Model> {
        p.require(Permission::Ingest)?;
        let user_id = validate_user_id(user_id)?;
        let survey = self.survey_of(p.workspace_id).await?;
        if survey.status != SurveyStatus::Launched {
            return Err(Error::Conflict(format!(
                "the survey is {}: registration is closed",
                survey.status
            )));
        }
        let now = Utc::now();
        let expires_at = now + Duration::hours(i64::from(survey.token_ttl_hours));
        let existing = self.registration_of(p.workspace_id, user_id).await?;
        match existing {
            Some(r) if r.expires_at > now || r.completed_at.is_some() => Ok(r),
            Some(r) => {
                let mut m: survey_registrations::ActiveModel = r.into();
                m.token = Set(new_token());
                m.expires_at = Set(expires_at);
                Ok(m.update(&self.db).await?)
            }
            None => {
                let model = survey_registrations::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    workspace_id: Set(p.workspace_id),
                    user_id: Set(user_id.to_owned()),
                    token: Set(new_token()),
                    expires_at: Set(expires_at),
                    status: Set(ResponseStatus::Requested),
                    disqualified_reason: Set(None),
                    registered_at: Set(now),
                    started_at: Set(None),
                    completed_at: Set(None),
                };
                // A concurrent registration of the same player wins; return it.
                survey_registrations::Entity::insert(model)
                    .on_conflict(
                        OnConflict::columns([
                            survey_registrations::Column::WorkspaceId,
                            survey_registrations::Column::UserId,
                        ])
                        .do_nothing()
                        .to_owned(),
                    )
                    .exec_without_returning(&self.db)
                    .await?;
                self.registration_of(p.workspace_id, user_id)
                    .await?
                    .ok_or_else(|| Error::internal("registration vanished after insert"))
            }
        }
    }

    async fn registration_of(
        &self,
        workspace_id: Uuid,
        user_id: &str,
    ) -> Result<Option<survey_registrations::Model>> {
        Ok(survey_registrations::Entity::find()
            .filter(survey_registrations::Column::WorkspaceId.eq(workspace_id))
            .filter(survey_registrations::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?)
    }

    /// A registered player's response; unknown players are not found.
    pub async fn survey_response(
        &self,
        p: &Principal,
        user_id: &str,
    ) -> Result<survey_registrations::Model> {
        p.require_any(&[Permission::Read, Permission::Ingest])?;
        self.registration_of(p.workspace_id, user_id.trim())
            .await?
            .ok_or(Error::NotFound {
                what: "registered player",
            })
    }

    /// The registration behind a survey link, if the link can still be used.
    async fn usable_registration(
        &self,
        token: &str,
    ) -> Result<(survey_registrations::Model, surveys::Model)> {
        let token = token.trim();
        let reg = if token.len() == 40 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
            survey_registrations::Entity::find()
                .filter(survey_registrations::Column::Token.eq(token.to_ascii_lowercase()))
                .one(&self.db)
                .await?
        } else {
            None
        };
        let reg = reg.ok_or(Error::NotFound {
            what: "survey link",
        })?;
        let survey = self.survey_of(reg.workspace_id).await?;
        if reg.completed_at.is_some() {
            return Err(Error::Conflict(
                "you have already completed this survey".into(),
            ));
        }
        if survey.status != SurveyStatus::Launched {
            return Err(Error::Conflict("this survey is closed".into()));
        }
        if reg.expires_at <= Utc::now() {
            return Err(Error::Expired("this survey link has expired".into()));
        }
        Ok((reg, survey))
    }

    async fn answers_of(&self, reg: &survey_registrations::Model) -> Result<HashMap<String, i16>> {
        Ok(survey_answers::Entity::find()
            .filter(survey_answers::Column::WorkspaceId.eq(reg.workspace_id))
            .filter(survey_answers::Column::UserId.eq(&reg.user_id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| (a.item_id, a.value))
            .collect())
    }

    /// Opens the survey behind a link at the first page not fully answered.
    /// The token is the player's credential; the clock for the minimum time starts here.
    pub async fn open_survey(&self, token: &str) -> Result<SurveySession> {
        let (reg, survey) = self.usable_registration(token).await?;
        let instrument = Instrument::stored(&survey.instrument)?;
        if reg.started_at.is_none() {
            survey_registrations::Entity::update_many()
                .col_expr(
                    survey_registrations::Column::StartedAt,
                    Expr::val(Utc::now()),
                )
                .filter(survey_registrations::Column::Id.eq(reg.id))
                .filter(survey_registrations::Column::StartedAt.is_null())
                .exec(&self.db)
                .await?;
        }
        let answers = self.answers_of(&reg).await?;
        let page = instrument.next_page(&answers).unwrap_or(0);
        Ok(SurveySession {
            title: survey.title,
            instrument,
            page,
            answers,
        })
    }

    /// Saves one page of answers (all of its items, each on the scale); the
    /// last page completes the response: quality checks, then scores.
    pub async fn submit_survey_page(
        &self,
        token: &str,
        page: usize,
        submitted: &HashMap<String, String>,
    ) -> Result<PageOutcome> {
        let (reg, survey) = self.usable_registration(token).await?;
        self.survey_limiter.check(reg.id)?;
        let instrument = Instrument::stored(&survey.instrument)?;
        if page >= instrument.page_count() {
            return Err(Error::invalid("page", "does not exist"));
        }
        let (values, missing) = instrument.read_page(page, submitted);
        if let Some(first) = missing.first() {
            return Err(Error::invalid(first.clone(), "please choose an answer"));
        }
        let now = Utc::now();
        let (reg_id, ws) = (reg.id, reg.workspace_id);
        self.save_answers(&reg, values, now).await?;

        let answers = self.answers_of(&reg).await?;
        if let Some(next) = instrument.next_page(&answers) {
            return Ok(PageOutcome::Next { page: next });
        }
        let seconds = (now - reg.started_at.unwrap_or(now)).num_seconds();
        let verdict = instrument.disqualification(&answers, seconds, i64::from(survey.min_seconds));
        let status = if verdict.is_some() {
            ResponseStatus::Disqualified
        } else {
            ResponseStatus::Complete
        };
        let completion = std::sync::Arc::new(Completion {
            ws,
            reg_id,
            user_id: reg.user_id.clone(),
            instrument,
            answers,
            status,
            reason: verdict.map(|d| d.to_string()),
            now,
            settings: self.survey_settings,
            min_completes: self.prediction_min_completes,
        });
        // The scores (on the norms in force, read under the norms lock) and
        // the jobs they call for commit together (outbox). A deadlock with a
        // training writing the same player's predicted scores is retried: the
        // respondent should not see it.
        let mut attempt = 0;
        let jobs = loop {
            let c = completion.clone();
            match crate::db::write_tx(&self.db, |tx| Box::pin(async move { c.write(tx).await }))
                .await
            {
                Err(e) if e.is_transient() && attempt < 2 => attempt += 1,
                done => break done?,
            }
        };
        for job in &jobs {
            self.dispatch(job).await;
        }
        Ok(PageOutcome::Finished { status })
    }

    /// A page's answers (upserted: a page answered again replaces them); the
    /// registration becomes `partial` and remembers when it started.
    async fn save_answers(
        &self,
        reg: &survey_registrations::Model,
        values: Vec<(String, i16)>,
        now: chrono::DateTime<Utc>,
    ) -> Result<()> {
        let (reg_id, ws, uid) = (reg.id, reg.workspace_id, reg.user_id.clone());
        crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                let rows = values
                    .into_iter()
                    .map(|(item_id, value)| survey_answers::ActiveModel {
                        workspace_id: Set(ws),
                        user_id: Set(uid.clone()),
                        item_id: Set(item_id),
                        value: Set(value),
                        answered_at: Set(now),
                    });
                survey_answers::Entity::insert_many(rows)
                    .on_conflict(
                        OnConflict::columns([
                            survey_answers::Column::WorkspaceId,
                            survey_answers::Column::UserId,
                            survey_answers::Column::ItemId,
                        ])
                        .update_columns([
                            survey_answers::Column::Value,
                            survey_answers::Column::AnsweredAt,
                        ])
                        .to_owned(),
                    )
                    .exec(tx)
                    .await?;
                survey_registrations::Entity::update_many()
                    .col_expr(
                        survey_registrations::Column::Status,
                        Expr::val(ResponseStatus::Partial),
                    )
                    .col_expr(
                        survey_registrations::Column::StartedAt,
                        Expr::col(survey_registrations::Column::StartedAt).if_null(now),
                    )
                    .filter(survey_registrations::Column::Id.eq(reg_id))
                    .exec(tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// A player's psychological scores (survey or predicted).
    pub async fn psych_scores(
        &self,
        p: &Principal,
        user_id: &str,
    ) -> Result<Vec<psych_scores::Model>> {
        p.require(Permission::Read)?;
        Ok(psych_scores::Entity::find()
            .filter(psych_scores::Column::WorkspaceId.eq(p.workspace_id))
            .filter(psych_scores::Column::UserId.eq(user_id))
            .order_by_asc(psych_scores::Column::Category)
            .order_by_asc(psych_scores::Column::Facet)
            .all(&self.db)
            .await?)
    }
}

/// A finished response, written with the jobs it calls for.
struct Completion {
    ws: Uuid,
    reg_id: Uuid,
    user_id: String,
    instrument: Instrument,
    answers: HashMap<String, i16>,
    status: ResponseStatus,
    reason: Option<String>,
    now: DateTime<Utc>,
    settings: SurveySettings,
    min_completes: u64,
}

impl Completion {
    async fn write(
        &self,
        tx: &sea_orm::DatabaseTransaction,
    ) -> Result<Vec<entity::job_records::Model>> {
        norms::lock_completions(tx, self.ws).await?;
        crate::norm_version::lock(tx, self.ws, false).await?;
        let in_force = norms::effective(tx, self.ws, &self.instrument).await?;
        let scores = if self.status == ResponseStatus::Complete {
            self.instrument
                .score_with(&self.answers, &norms::as_map(&in_force))
        } else {
            Vec::new()
        };
        let norm_version = norms::version(&in_force);
        psych_scores::Entity::delete_many()
            .filter(psych_scores::Column::WorkspaceId.eq(self.ws))
            .filter(psych_scores::Column::UserId.eq(&self.user_id))
            .exec(tx)
            .await?;
        if !scores.is_empty() {
            psych_scores::Entity::insert_many(scores.into_iter().map(|s| {
                psych_scores::ActiveModel {
                    workspace_id: Set(self.ws),
                    user_id: Set(self.user_id.clone()),
                    category: Set(s.category),
                    facet: Set(s.facet),
                    score: Set(s.score),
                    source: Set(crate::prediction::ScoreSource::Survey),
                    computed_at: Set(self.now),
                    norm_version: Set(norm_version),
                }
            }))
            .on_conflict(
                // A training that predicted this player meanwhile: the answers win.
                OnConflict::columns([
                    psych_scores::Column::WorkspaceId,
                    psych_scores::Column::UserId,
                    psych_scores::Column::Category,
                    psych_scores::Column::Facet,
                ])
                .update_columns([
                    psych_scores::Column::Score,
                    psych_scores::Column::Source,
                    psych_scores::Column::ComputedAt,
                    psych_scores::Column::NormVersion,
                ])
                .to_owned(),
            )
            .exec(tx)
            .await?;
        }
        survey_registrations::Entity::update_many()
            .col_expr(
                survey_registrations::Column::Status,
                Expr::val(self.status.as_str()),
            )
            .col_expr(
                survey_registrations::Column::DisqualifiedReason,
                Expr::val(self.reason.clone()),
            )
            .col_expr(
                survey_registrations::Column::CompletedAt,
                Expr::val(Some(self.now)),
            )
            .filter(survey_registrations::Column::Id.eq(self.reg_id))
            .exec(tx)
            .await?;
        if self.status != ResponseStatus::Complete {
            return Ok(Vec::new());
        }
        // New survey scores: norms and predictions follow (personas after them).
        norms::after_completion(
            tx,
            self.ws,
            &self.instrument,
            self.settings,
            self.min_completes,
        )
        .await
    }
}

/// Seconds since the epoch, 0 for none (the player API's convention).
pub fn unix_or_zero(t: Option<DateTime<Utc>>) -> i64 {
    t.map(|t| t.timestamp()).unwrap_or(0)
}
