//! GraphQL for the survey (status, titles, instrument, quality settings,
//! statistics), players' psychological scores, and erasure with its audit.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use engine::{
    entity::{erasures, psych_scores, surveys},
    survey::{
        SurveyStatus as EngineSurveyStatus, SurveyUpdate,
        instrument::FacetRef,
        norms::{FacetNorm, NormsReport},
        reliability,
    },
};

use super::{
    connection::{Conn, connection, id_cursor, page_request},
    enums::{NormSource, ScoreSource, SurveyStatus},
    query::scope,
    types::Job,
};
use crate::errors::GqlResultExt;

#[derive(Default)]
pub struct SurveyQuery;

#[derive(Default)]
pub struct SurveyMutation;

/// The workspace's hosted survey.
pub struct Survey(surveys::Model);

#[derive(SimpleObject)]
pub struct SurveyStatistics {
    pub partial: i64,
    pub disqualified: i64,
    pub complete: i64,
}

#[Object]
impl Survey {
    async fn status(&self) -> SurveyStatus {
        self.0.status.into()
    }
    #[graphql(name = "type")]
    async fn survey_type(&self) -> &str {
        &self.0.survey_type
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn internal_title(&self) -> &str {
        &self.0.internal_title
    }
    /// Items, facets with norms, combined facets and the scale (JSON).
    async fn instrument(&self) -> Json<serde_json::Value> {
        Json(self.0.instrument.clone())
    }
    /// Completing faster than this disqualifies a response.
    async fn min_seconds(&self) -> i32 {
        self.0.min_seconds
    }
    /// How long a registration token stays valid.
    async fn token_ttl_hours(&self) -> i32 {
        self.0.token_ttl_hours
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn modified_at(&self) -> DateTime<Utc> {
        self.0.modified_at
    }
    /// When the survey was closed, if it is.
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    async fn statistics(&self, ctx: &Context<'_>) -> Result<SurveyStatistics> {
        let (engine, p) = scope(ctx)?;
        let s = engine.survey_statistics(p).await.gql()?;
        Ok(SurveyStatistics {
            partial: s.partial,
            disqualified: s.disqualified,
            complete: s.complete,
        })
    }
    /// The norms the T-scores stand on: the instrument's (provisional)
    /// until `minCompletes` players completed the survey, then the workspace's own.
    async fn norms(&self, ctx: &Context<'_>) -> Result<SurveyNorms> {
        let (engine, p) = scope(ctx)?;
        Ok(engine.survey_norms(p).await.gql()?.into())
    }
    /// Per facet: Cronbach's alpha and corrected item-total correlations
    /// over the complete respondents (computed when asked).
    async fn reliability(&self, ctx: &Context<'_>) -> Result<Vec<FacetReliability>> {
        let (engine, p) = scope(ctx)?;
        Ok(engine
            .survey_reliability(p)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct SurveyNorms {
    /// `workspace` once every facet has the workspace's own norm.
    pub source: NormSource,
    /// Complete (not disqualified) respondents now.
    pub completes: i64,
    /// Completes from which the workspace's own norms apply (`NORM_MIN_COMPLETES`).
    pub min_completes: i64,
    /// Raised at every change; each stored score stands on one.
    pub version: i32,
    pub facets: Vec<SurveyFacetNorm>,
}

/// A facet's norm: T = 50 + 10 × (raw − mean) / sd.
#[derive(SimpleObject)]
pub struct SurveyFacetNorm {
    pub category: String,
    pub facet: String,
    pub mean: f64,
    /// Sample standard deviation (n − 1) for workspace norms.
    pub sd: f64,
    pub source: NormSource,
    pub respondents: i64,
    pub computed_at: Option<DateTime<Utc>>,
}

impl From<FacetNorm> for SurveyFacetNorm {
    fn from(n: FacetNorm) -> Self {
        SurveyFacetNorm {
            source: n.source.into(),
            category: n.category,
            facet: n.facet,
            mean: n.mean,
            sd: n.sd,
            respondents: n.respondents,
            computed_at: n.computed_at,
        }
    }
}

impl From<NormsReport> for SurveyNorms {
    fn from(r: NormsReport) -> Self {
        SurveyNorms {
            source: r.source.into(),
            completes: r.completes,
            min_completes: r.min_completes,
            version: r.version,
            facets: r.facets.into_iter().map(Into::into).collect(),
        }
    }
}

/// Do a facet's items measure one thing?
#[derive(SimpleObject)]
pub struct FacetReliability {
    pub category: String,
    pub facet: String,
    /// Complete respondents who answered every item of the facet.
    pub respondents: i64,
    /// Cronbach's alpha (null below two respondents or without variance).
    pub alpha: Option<f64>,
    /// Alpha below 0.7: the items may not measure one thing.
    pub low_alpha: bool,
    pub items: Vec<ItemReliability>,
}

#[derive(SimpleObject)]
pub struct ItemReliability {
    pub item_id: String,
    pub reverse_keyed: bool,
    /// Correlation of the item with the sum of the facet's other items.
    pub corrected_item_total: Option<f64>,
}

impl From<reliability::FacetReliability> for FacetReliability {
    fn from(r: reliability::FacetReliability) -> Self {
        FacetReliability {
            category: r.category,
            facet: r.facet,
            respondents: r.respondents,
            alpha: r.alpha,
            low_alpha: r.low_alpha,
            items: r
                .items
                .into_iter()
                .map(|i| ItemReliability {
                    item_id: i.item_id,
                    reverse_keyed: i.reverse_keyed,
                    corrected_item_total: i.corrected_item_total,
                })
                .collect(),
        }
    }
}

/// A psychological score (T-score, mean 50, sd 10 in the norm group).
#[derive(SimpleObject)]
pub struct PsychScore {
    pub category: String,
    pub facet: String,
    pub score: f64,
    pub source: ScoreSource,
    pub computed_at: DateTime<Utc>,
    /// The norm group the T-score is relative to.
    pub norms: NormSource,
    /// Respondents behind the norm (0 for an instrument's).
    pub norm_respondents: i64,
}

impl PsychScore {
    /// A stored score with the norm it stands on (`norms`: per facet).
    pub fn new(
        m: psych_scores::Model,
        norms: &std::collections::HashMap<FacetRef, (engine::survey::NormSource, i64)>,
    ) -> Self {
        let key = FacetRef {
            category: m.category,
            facet: m.facet,
        };
        let (source, respondents) = norms
            .get(&key)
            .copied()
            .unwrap_or((engine::survey::NormSource::Provisional, 0));
        PsychScore {
            source: m.source.into(),
            category: key.category,
            facet: key.facet,
            score: m.score,
            computed_at: m.computed_at,
            norms: source.into(),
            norm_respondents: respondents,
        }
    }
}

/// The audit record of one erasure (the user id itself is not kept).
#[derive(SimpleObject, Clone)]
pub struct Erasure {
    pub id: ID,
    /// A fingerprint of the erased user id: HMAC-SHA-256 (hex) under the
    /// server's `SECRETS_KEY` and the workspace, so it cannot be recomputed
    /// from a guessed id without the key (a plain SHA-256 on servers without
    /// one). Find a player's erasures with `erasures(userId:)`.
    pub user_id_hash: String,
    /// The API key that asked for it.
    pub api_key_id: Option<ID>,
    /// `{table: rows removed}`.
    pub rows_removed: Json<serde_json::Value>,
    pub total_rows: i64,
    pub erased_at: DateTime<Utc>,
}

impl From<erasures::Model> for Erasure {
    fn from(m: erasures::Model) -> Self {
        Erasure {
            id: m.id.into(),
            user_id_hash: m.user_id_hash,
            api_key_id: m.api_key_id.map(Into::into),
            rows_removed: Json(m.rows_removed),
            total_rows: m.total_rows,
            erased_at: m.erased_at,
        }
    }
}

#[derive(InputObject, Default)]
pub struct UpdateSurveyInput {
    /// Launched, Closed or Deleted.
    pub status: Option<SurveyStatus>,
    #[graphql(name = "type")]
    pub survey_type: Option<String>,
    pub title: Option<String>,
    pub internal_title: Option<String>,
    /// A whole instrument, validated before it is stored.
    pub instrument: Option<Json<serde_json::Value>>,
    pub min_seconds: Option<i32>,
    pub token_ttl_hours: Option<i32>,
}

#[Object]
impl SurveyQuery {
    async fn survey(&self, ctx: &Context<'_>) -> Result<Survey> {
        let (engine, p) = scope(ctx)?;
        Ok(Survey(engine.survey(p).await.gql()?))
    }

    /// Erasures of this workspace, newest first (admin); with `userId`, only
    /// that player's.
    async fn erasures(
        &self,
        ctx: &Context<'_>,
        user_id: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Conn<Erasure>> {
        let (engine, p) = scope(ctx)?;
        let page = page_request(first, after).gql()?;
        let page = engine.erasures(p, user_id.as_deref(), page).await.gql()?;
        connection(page, |e| id_cursor(e.id), |e| Ok(Erasure::from(e))).gql()
    }
}

#[Object]
impl SurveyMutation {
    async fn update_survey(&self, ctx: &Context<'_>, input: UpdateSurveyInput) -> Result<Survey> {
        let (engine, p) = scope(ctx)?;
        let update = SurveyUpdate {
            status: input
                .status
                .map(|s| EngineSurveyStatus::from(s).as_str().to_owned()),
            survey_type: input.survey_type,
            title: input.title,
            internal_title: input.internal_title,
            instrument: input.instrument.map(|j| j.0),
            min_seconds: input.min_seconds,
            token_ttl_hours: input.token_ttl_hours,
        };
        Ok(Survey(engine.update_survey(p, update).await.gql()?))
    }

    /// Recomputes the survey norms now (every stored score is rescored if
    /// they changed); otherwise they follow completions at most daily.
    async fn refresh_survey_norms(&self, ctx: &Context<'_>) -> Result<Job> {
        let (engine, p) = scope(ctx)?;
        Job::try_from(engine.refresh_survey_norms(p).await.gql()?).gql()
    }

    /// Erases a player everywhere, as `DELETE /v1/userData` does.
    async fn erase_player(&self, ctx: &Context<'_>, user_id: String) -> Result<Erasure> {
        let (engine, p) = scope(ctx)?;
        Ok(engine.erase_player(p, &user_id).await.gql()?.audit.into())
    }
}
