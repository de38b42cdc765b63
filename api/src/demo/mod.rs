//! `traitforge demo`: a living studio in one command. When the default
//! workspace holds no data, the demo fills it through the product's own
//! paths: bucket files of all eight record types loaded by a local source,
//! traits defined and computed, surveys answered and scored, prediction
//! trained, segments clustered into personas.

mod studio;

use std::{collections::HashMap, time::Instant};

use anyhow::Context as _;
use chrono::Utc;
use engine::{
    Engine,
    auth::{Principal, Role},
    ingest::sources::SourceInput,
    models::ModelRef,
    segments::SegmentInput,
    survey::{Instrument, SurveyUpdate},
    traits::TraitInput,
};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use uuid::Uuid;

pub const DEFAULT_PLAYERS: usize = 3000;

/// What the demo made, for the message that follows.
pub struct Filled {
    pub players: usize,
    pub rows: usize,
    pub surveys: usize,
    pub seconds: f64,
}

async fn drained(engine: &Engine) -> anyhow::Result<()> {
    while engine.unfinished_jobs().await? > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Fills the workspace unless it already has players; None when it had.
pub async fn fill(
    engine: &Engine,
    workspace_id: Uuid,
    players: usize,
) -> anyhow::Result<Option<Filled>> {
    let started = Instant::now();
    // A key for the demo's own calls, revoked when it is done.
    let key = engine
        .create_api_key_as_operator(workspace_id, "demo", Role::Admin)
        .await?;
    let p = engine.authenticate(&key.secret).await?;
    if engine.overview(&p).await?.players > 0 {
        engine.revoke_api_key(&p, key.key.id).await?;
        return Ok(None);
    }
    let result = populate(engine, &p, players).await;
    engine.revoke_api_key(&p, key.key.id).await?;
    let (rows, surveys) = result?;
    Ok(Some(Filled {
        players,
        rows,
        surveys,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

async fn populate(engine: &Engine, p: &Principal, n: usize) -> anyhow::Result<(usize, usize)> {
    let mut clock = Instant::now();
    let mut phase = |name: &str| {
        tracing::info!(
            phase = name,
            seconds = clock.elapsed().as_secs_f64(),
            "demo"
        );
        clock = Instant::now();
    };
    // 1. Behaviour: files in the workspace's folder, loaded by a local source.
    let folder = engine.workspace_folder(p.workspace_id)?.join("demo-studio");
    let (players, rows) = tokio::task::spawn_blocking(move || {
        let players = studio::players(n);
        let rows = studio::write_files(&folder, &players, Utc::now());
        rows.map(|rows| (players, rows))
    })
    .await?
    .context("writing the demo's files")?;
    let source = engine
        .create_source(
            p,
            SourceInput {
                name: Some("Demo studio bucket".into()),
                kind: Some("local".into()),
                config: Some(json!({ "path": "demo-studio" })),
                ..SourceInput::default()
            },
        )
        .await?;
    engine.scan_source(p, source.id).await?;
    drained(engine).await?;
    phase("files loaded");

    // 2. Surveys, answered by a tenth of the players through the real scoring
    //    (before the traits exist, so the retraining each completion asks
    //    for has nothing to learn from yet and stays cheap).
    let surveys = answer_surveys(engine, p, &players).await?;
    drained(engine).await?;
    phase("surveys answered");

    // 3. Traits over what was loaded.
    define_traits(engine, p).await?;
    drained(engine).await?;
    phase("traits computed");

    // 4. Prediction for everyone else, then segments and their personas.
    engine.train_prediction(p).await?;
    drained(engine).await?;
    phase("prediction trained");
    for (name, filter) in [
        (
            "Whales",
            json!({ "trait": "spend", "op": ">", "value": 30 }),
        ),
        (
            "Fighters",
            json!({ "trait": "fights_won", "op": ">", "value": 40 }),
        ),
        (
            "Regulars",
            json!({ "trait": "sessions", "op": ">=", "value": 20 }),
        ),
    ] {
        engine
            .create_segment(
                p,
                SegmentInput {
                    name: Some(name.into()),
                    filter: Some(filter),
                    ..SegmentInput::default()
                },
            )
            .await?;
    }
    engine.refresh_segment(p, "default").await?;
    drained(engine).await?;
    phase("segments and personas computed");

    // 5. Who will churn and how much they will spend over the next two weeks.
    for (name, goal) in [("Churn risk", "churn"), ("Spend 14d", "spend")] {
        let input = engine::predictive::PredictionInput {
            name: Some(name.into()),
            goal: Some(goal.into()),
            window_days: Some(14),
            ..Default::default()
        };
        // A studio too small to train on still gets everything else.
        if let Err(e) = engine.create_prediction(p, input).await {
            tracing::warn!(prediction = name, error = %e, "demo prediction not created");
        }
    }
    drained(engine).await?;
    phase("predictions trained");
    Ok((rows, surveys))
}

async fn define_traits(engine: &Engine, p: &Principal) -> anyhow::Result<()> {
    let players = engine.model(p, ModelRef::Slug("players")).await?.model.id;
    let mut relation = HashMap::new();
    for slug in [
        "purchases",
        "logins",
        "actions",
        "level_ups",
        "social_dynamics",
        "virtual_purchases",
    ] {
        let view = engine.model(p, ModelRef::Slug(slug)).await?;
        let rel = view
            .relationships
            .iter()
            .find(|r| r.from_model_id == view.model.id && r.to_model_id == players)
            .context("a built-in event model without its players relationship")?;
        relation.insert(slug, (view.model.id, rel.id));
    }
    let source = |slug: &str, extra: Value| {
        let (model, rel) = relation[slug];
        let mut config = json!({ "source_model_id": model, "relationship_id": rel });
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        config
    };
    let traits: [(&str, &str, Value, &str); 9] = [
        (
            "Spend",
            "aggregation",
            source(
                "purchases",
                json!({ "aggregation": "sum", "column": "price" }),
            ),
            "number",
        ),
        (
            "Purchases",
            "aggregation",
            source("purchases", json!({ "aggregation": "count" })),
            "number",
        ),
        (
            "Sessions",
            "aggregation",
            source("logins", json!({ "aggregation": "count" })),
            "number",
        ),
        (
            "Last login",
            "occurrence",
            source(
                "logins",
                json!({ "occurrence": "last", "column": "timestamp" }),
            ),
            "timestamp",
        ),
        (
            "Fights won",
            "aggregation",
            source(
                "actions",
                json!({ "aggregation": "count", "filters": [{ "column": "action_name", "op": "=", "value": "fight_won" }] }),
            ),
            "number",
        ),
        (
            "Highest level",
            "aggregation",
            source(
                "level_ups",
                json!({ "aggregation": "max", "column": "level" }),
            ),
            "number",
        ),
        (
            "Social interactions",
            "aggregation",
            source("social_dynamics", json!({ "aggregation": "count" })),
            "number",
        ),
        (
            "Favourite platform",
            "sql",
            json!({ "sql_expression": "COALESCE(platform, 'unknown')" }),
            "text",
        ),
        (
            "Spend per session",
            "formula",
            json!({ "expression": "{spend} / NULLIF({sessions}, 0)" }),
            "number",
        ),
    ];
    for (name, trait_type, config, result_type) in traits {
        engine
            .create_trait(
                p,
                TraitInput {
                    name: Some(name.into()),
                    parent_model_id: Some(players),
                    trait_type: Some(trait_type.into()),
                    config: Some(config),
                    result_type: Some(result_type.into()),
                    ..TraitInput::default()
                },
            )
            .await
            .with_context(|| format!("defining the trait {name}"))?;
    }
    Ok(())
}

async fn answer_surveys(
    engine: &Engine,
    p: &Principal,
    players: &[studio::Player],
) -> anyhow::Result<usize> {
    let survey = engine.survey(p).await?;
    let instrument = Instrument::stored(&survey.instrument)?;
    // The demo answers at machine speed: the minimum time per page is lifted meanwhile.
    let min_seconds = survey.min_seconds;
    engine
        .update_survey(
            p,
            SurveyUpdate {
                min_seconds: Some(0),
                ..SurveyUpdate::default()
            },
        )
        .await?;
    // A few players at a time, as real players arrive.
    let outcome: anyhow::Result<Vec<()>> =
        futures::stream::iter(players.iter().step_by(10).enumerate())
            .map(|(i, player)| answer_one(engine, p, &instrument, i, player))
            .buffer_unordered(4)
            .try_collect()
            .await;
    let answered = outcome.as_ref().map_or(0, Vec::len);
    engine
        .update_survey(
            p,
            SurveyUpdate {
                min_seconds: Some(min_seconds),
                ..SurveyUpdate::default()
            },
        )
        .await?;
    outcome?;
    Ok(answered)
}

/// One player's survey, every page, with dice of its own.
async fn answer_one(
    engine: &Engine,
    p: &Principal,
    instrument: &Instrument,
    i: usize,
    player: &studio::Player,
) -> anyhow::Result<()> {
    let mut rng = studio::rng(i as u64);
    let token = engine.register_for_survey(p, &player.user_id).await?.token;
    let pages = instrument.items.chunks(instrument.items_per_page.max(1));
    for (page, items) in pages.enumerate() {
        let answers: HashMap<String, String> = items
            .iter()
            .map(|item| {
                let (min, max) = (instrument.scale.min, instrument.scale.max);
                let a = studio::answer(player.kind, item, min, max, &mut rng);
                (item.id.clone(), a.to_string())
            })
            .collect();
        engine.submit_survey_page(&token, page, &answers).await?;
    }
    Ok(())
}
