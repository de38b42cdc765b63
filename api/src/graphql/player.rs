//! GraphQL for one player, by the user id the studio sends: trait values,
//! psychological scores and survey response.

use async_graphql::{Context, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use engine::segments::Memberships;

use super::{enums::ResponseStatus, query::scope, survey::PsychScore};
use crate::errors::GqlResultExt;

#[derive(Default)]
pub struct PlayerQuery;

/// A player's trait value.
#[derive(SimpleObject)]
pub struct PlayerTrait {
    pub slug: String,
    pub name: String,
    pub value: Json<serde_json::Value>,
    /// When the trait was last computed.
    pub computed_at: Option<DateTime<Utc>>,
}

/// A player's survey response.
#[derive(SimpleObject)]
pub struct SurveyResponse {
    pub status: ResponseStatus,
    pub disqualified_reason: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct PlayerSegment {
    pub slug: String,
    pub name: String,
}

#[derive(SimpleObject)]
pub struct PlayerPersona {
    /// The segment's slug.
    pub segment: String,
    pub index: i32,
}

pub struct Player {
    user_id: String,
    /// Read once for `segments` and `personas` together.
    memberships: tokio::sync::OnceCell<Memberships>,
}

impl Player {
    async fn memberships(&self, ctx: &Context<'_>) -> Result<&Memberships> {
        let (engine, p) = scope(ctx)?;
        self.memberships
            .get_or_try_init(|| engine.player_memberships(p, &self.user_id))
            .await
            .gql()
    }
}

#[Object]
impl Player {
    async fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The segments the player is in (`default` when they are a player).
    async fn segments(&self, ctx: &Context<'_>) -> Result<Vec<PlayerSegment>> {
        let m = self.memberships(ctx).await?;
        Ok(m.segments
            .iter()
            .map(|s| PlayerSegment {
                slug: s.slug.clone(),
                name: s.name.clone(),
            })
            .collect())
    }

    /// The personas the player belongs to, one per segment at most.
    async fn personas(&self, ctx: &Context<'_>) -> Result<Vec<PlayerPersona>> {
        let m = self.memberships(ctx).await?;
        Ok(m.personas
            .iter()
            .map(|(segment, index)| PlayerPersona {
                segment: segment.clone(),
                index: *index,
            })
            .collect())
    }

    /// Every trait of the players model that has a value for this player.
    async fn traits(&self, ctx: &Context<'_>) -> Result<Vec<PlayerTrait>> {
        let (engine, p) = scope(ctx)?;
        Ok(engine
            .player_traits(p, &self.user_id)
            .await
            .gql()?
            .into_iter()
            .map(|(t, v)| PlayerTrait {
                slug: t.slug,
                name: t.name,
                value: Json(v.value),
                computed_at: t.last_computed_at,
            })
            .collect())
    }

    /// T-scores per category and facet, from the survey or predicted.
    async fn psych_scores(&self, ctx: &Context<'_>) -> Result<Vec<PsychScore>> {
        let (engine, p) = scope(ctx)?;
        let scores = engine.psych_scores(p, &self.user_id).await.gql()?;
        if scores.is_empty() {
            return Ok(Vec::new());
        }
        let norms = engine.norm_sources(p).await.gql()?;
        Ok(scores
            .into_iter()
            .map(|s| PsychScore::new(s, &norms))
            .collect())
    }

    /// The player's survey response, if they were registered.
    async fn survey(&self, ctx: &Context<'_>) -> Result<Option<SurveyResponse>> {
        let (engine, p) = scope(ctx)?;
        match engine.survey_response(p, &self.user_id).await {
            Ok(r) => Ok(Some(SurveyResponse {
                status: r.status.into(),
                disqualified_reason: r.disqualified_reason,
                registered_at: r.registered_at,
                completed_at: r.completed_at,
            })),
            Err(engine::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).gql(),
        }
    }
}

#[Object]
impl PlayerQuery {
    /// A player by user id.
    async fn player(&self, ctx: &Context<'_>, user_id: String) -> Result<Player> {
        let (_, p) = scope(ctx)?;
        p.require(engine::auth::Permission::Read).gql()?;
        Ok(Player {
            user_id,
            memberships: Default::default(),
        })
    }
}
