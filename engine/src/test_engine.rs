//! An engine on a private in-memory SQLite database, for tests of rules that
//! need no HTTP (the api crate's tests cover the transports).

use uuid::Uuid;

use crate::{Engine, EngineConfig, auth::Principal};

/// A migrated engine with one workspace, and its admin principal.
pub(crate) async fn engine() -> (Engine, Principal) {
    // One shared in-memory database for every pooled connection of this engine.
    let name = Uuid::new_v4().simple();
    let config = EngineConfig {
        database_url: format!("sqlite:file:tf_{name}?mode=memory&cache=shared"),
        redis_url: None,
        queue_name: "traitforge.test".into(),
        local_source_root: None,
        max_line_bytes: crate::ingest::DEFAULT_MAX_LINE_BYTES,
        prediction_min_completes: crate::prediction::DEFAULT_MIN_COMPLETES,
        survey: Default::default(),
        secrets_key: None,
        secrets_key_previous: None,
        outbound_allow: None,
        storage_timeout: crate::ingest::DEFAULT_STORAGE_TIMEOUT,
        segment_changes_days: crate::segments::changes::DEFAULT_KEPT_DAYS,
        history: Default::default(),
    };
    let engine = Engine::open(&config).await.expect("open");
    engine.migrate().await.expect("migrate");
    let created = engine
        .create_workspace("Test studio", None)
        .await
        .expect("workspace");
    let p = engine
        .authenticate(&created.admin_key.secret)
        .await
        .expect("admin key");
    (engine, p)
}

mod rules {
    //! Rules that need no HTTP, checked on the engine itself.

    use serde_json::json;

    use super::engine;
    use crate::{Error, segments::SegmentInput, traits::TraitInput};

    fn sql_trait(name: &str, expression: &str, parent: uuid::Uuid) -> TraitInput {
        TraitInput {
            name: Some(name.into()),
            parent_model_id: Some(parent),
            trait_type: Some("sql".into()),
            config: Some(json!({ "sql_expression": expression })),
            result_type: Some("number".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_renamed_trait_keeps_its_slug_and_a_cycle_is_refused() {
        let (engine, p) = engine().await;
        let players = engine.players_model_id(p.workspace_id).await.unwrap();
        let level = engine
            .create_trait(&p, sql_trait("Level", "level", players))
            .await
            .unwrap();
        let formula = TraitInput {
            name: Some("Double level".into()),
            parent_model_id: Some(players),
            trait_type: Some("formula".into()),
            config: Some(json!({ "expression": "{level} * 2" })),
            result_type: Some("number".into()),
            ..Default::default()
        };
        let double = engine.create_trait(&p, formula).await.unwrap();
        let renamed = TraitInput {
            name: Some("Player level".into()),
            ..Default::default()
        };
        let level = engine.update_trait(&p, level.id, renamed).await.unwrap();
        assert_eq!(
            (level.name.as_str(), level.slug.as_str()),
            ("Player level", "level")
        );
        // `level` reading `double_level`, which reads `level`: refused, nothing changed.
        let cycle = TraitInput {
            trait_type: Some("formula".into()),
            config: Some(json!({ "expression": "{double_level} + 1" })),
            ..Default::default()
        };
        let e = engine.update_trait(&p, level.id, cycle).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
        let unchanged = engine.get_trait(&p, level.id).await.unwrap();
        assert_eq!(
            unchanged.trait_type,
            crate::traits::definition::TraitType::Sql
        );
        assert_eq!(
            engine.get_trait(&p, double.id).await.unwrap().slug,
            "double_level"
        );
    }

    #[tokio::test]
    async fn segment_filters_are_checked_and_default_stays() {
        let (engine, p) = engine().await;
        let input = SegmentInput {
            name: Some("Whales".into()),
            filter: Some(json!({ "and": [{ "trait": "nope", "op": "exists" }] })),
            ..Default::default()
        };
        let e = engine.create_segment(&p, input).await.unwrap_err();
        assert_eq!(e.field(), Some("filter.and[0].trait"), "{e:?}");
        assert!(
            engine.list_segments(&p).await.unwrap().len() <= 1,
            "nothing written"
        );
        engine.segment(&p, "default").await.unwrap();
        let e = engine.delete_segment(&p, "default").await.unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    }
}

#[tokio::test]
async fn the_test_engine_keeps_one_database_across_connections() {
    let (engine, p) = engine().await;
    let body = b"{\"timestamp\":\"2026-11-01 10:00:00\",\"user_id\":\"u1\"}\n";
    let loaded = engine.ingest_ndjson(&p, "logins", body).await.unwrap();
    assert_eq!(loaded.accepted, 1);
    // Reads on other pooled connections see the same data.
    let reads = (0..8).map(|_| engine.unfinished_jobs());
    for r in futures::future::join_all(reads).await {
        r.unwrap();
    }
}
