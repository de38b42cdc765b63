//! GraphQL for the survey (status, titles, instrument, quality settings,
//! statistics), players' psychological scores, and erasure with its audit.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use engine::{
    entity::{erasures, psych_scores, surveys},
    survey::{SurveyStatus as EngineSurveyStatus, SurveyUpdate},
};

use super::{
    connection::{Conn, connection, id_cursor, page_request},
    enums::{ScoreSource, SurveyStatus},
    query::scope,
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
}

/// A psychological score (T-score, mean 50, sd 10 in the norm group).
#[derive(SimpleObject)]
pub struct PsychScore {
    pub category: String,
    pub facet: String,
    pub score: f64,
    pub source: ScoreSource,
    pub computed_at: DateTime<Utc>,
}

impl TryFrom<psych_scores::Model> for PsychScore {
    type Error = engine::Error;
    fn try_from(m: psych_scores::Model) -> std::result::Result<Self, engine::Error> {
        Ok(PsychScore {
            source: m.source.into(),
            category: m.category,
            facet: m.facet,
            score: m.score,
            computed_at: m.computed_at,
        })
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

    /// Erases a player everywhere, as `DELETE /v1/userData` does.
    async fn erase_player(&self, ctx: &Context<'_>, user_id: String) -> Result<Erasure> {
        let (engine, p) = scope(ctx)?;
        Ok(engine.erase_player(p, &user_id).await.gql()?.audit.into())
    }
}
