//! Every job kind, failing transiently on every attempt, ends with its record
//! failed and its domain rows failed with the cause: nothing is left
//! `queued`, `running`, `loading` or `pending`.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseTransaction, EntityTrait};
use serde_json::json;
use uuid::Uuid;

use entity::{
    data_sources, ingestion_runs, job_records, notifications, prediction_status, predictions,
    segments, source_files,
    states::{
        ComputeStatus, DeliveryStatus, FileFormat, FileStatus, JobKind, JobStatus,
        NotificationKind, PredictionStatus, RunStatus, SourceKind, SourceStatus,
    },
    trait_runs,
};

use crate::{
    Engine, Error, Result,
    error::DATABASE,
    ingest::jobs::{DeliverNotification, LoadFile, ScanSource},
    jobs::{Diagnostic, MAX_ATTEMPTS, Runnable, enqueue_in},
    prediction::TrainPrediction,
    predictive::{PredictionGoal, PredictiveStatus, ScorePredictive, TrainPredictive},
    segments::{
        SegmentInput,
        jobs::{ComputePersonas, ComputeSegment},
    },
    survey::norms::ComputeNorms,
    test_engine::engine,
    traits::{
        TraitInput,
        incremental::IncrementalPass,
        jobs::{EvaluateTrait, EvaluateTraits},
    },
};

#[test]
fn every_stored_kind_has_a_handler() {
    let registry = super::registry();
    for kind in JobKind::ALL {
        assert!(registry.handles(*kind), "no handler for {kind}");
    }
}

const CAUSE: &str = "connection reset by peer (injected)";

/// A handler whose database goes away under it on every attempt.
struct AlwaysTransient(Box<dyn Runnable>);

#[async_trait::async_trait]
impl Runnable for AlwaysTransient {
    fn heavy(&self) -> bool {
        false
    }

    async fn run(&self, _: &Engine) -> Result<()> {
        Err(Error::Unavailable(format!("{DATABASE}: {CAUSE}")))
    }

    async fn abandon(&self, tx: &DatabaseTransaction, reason: &str) -> Result<()> {
        self.0.abandon(tx, reason).await
    }
}

/// Claims and runs `record_id` until the job system gives up on it; returns the record.
async fn fail_every_attempt(engine: &Engine, record_id: Uuid) -> job_records::Model {
    for attempt in 1..=MAX_ATTEMPTS {
        let record = engine
            .claim(record_id, "test-worker")
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("attempt {attempt}: the record was not queued again"));
        assert_eq!(record.attempts, attempt);
        let job = engine.registry.decode(&record).unwrap();
        engine
            .run_claimed(&record, &AlwaysTransient(job))
            .await
            .unwrap();
    }
    job_records::Entity::find_by_id(record_id)
        .one(engine.db())
        .await
        .unwrap()
        .unwrap()
}

fn trait_input(name: &str, parent: Uuid) -> TraitInput {
    TraitInput {
        name: Some(name.into()),
        parent_model_id: Some(parent),
        trait_type: Some("sql".into()),
        config: Some(json!({ "sql_expression": "level" })),
        result_type: Some("number".into()),
        ..Default::default()
    }
}

async fn source(engine: &Engine, ws: Uuid) -> data_sources::Model {
    data_sources::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(ws),
        name: Set("bucket".into()),
        kind: Set(SourceKind::Local),
        config: Set(json!({ "path": "." })),
        credentials: Set(None),
        scan_interval_minutes: Set(60),
        enabled: Set(true),
        reload_overwritten: Set(false),
        status: Set(SourceStatus::New),
        last_error: Set(None),
        last_scan_at: Set(None),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(engine.db())
    .await
    .unwrap()
}

/// The last-attempt rule for every kind: a transient failure on the last
/// attempt used to fail the record but leave the domain rows open for ever.
#[tokio::test]
async fn a_job_failing_transiently_on_every_attempt_fails_its_domain_rows() {
    let (engine, p) = engine().await;
    let ws = p.workspace_id;
    let db = engine.db();
    let players = engine.players_model_id(ws).await.unwrap();
    let expected = Error::Unavailable(format!("{DATABASE}: {CAUSE}")).cause();

    // Trait runs: one run per job, and runs sharing a scan.
    let t = engine
        .create_trait(&p, trait_input("Spend", players))
        .await
        .unwrap();
    let runs = [
        engine.trigger_trait(&p, t.id).await.unwrap(),
        engine.trigger_trait(&p, t.id).await.unwrap(),
        engine.trigger_trait(&p, t.id).await.unwrap(),
    ];
    let one = enqueue_in(db, Some(ws), &EvaluateTrait { run_id: runs[0].id })
        .await
        .unwrap();
    let shared = EvaluateTraits {
        run_ids: vec![runs[1].id, runs[2].id],
    };
    let shared = enqueue_in(db, Some(ws), &shared).await.unwrap();

    // A scan and a file load of a source; a notification on its way out.
    let src = source(&engine, ws).await;
    let scan = ingestion_runs::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(ws),
        source_id: Set(src.id),
        status: Set(RunStatus::Queued),
        files_found: Set(0),
        files_queued: Set(0),
        files_skipped: Set(0),
        skipped_paths: Set(json!([])),
        error: Set(None),
        queued_at: Set(Utc::now()),
        finished_at: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    let scan_job = enqueue_in(db, Some(ws), &ScanSource { run_id: scan.id })
        .await
        .unwrap();
    let file = source_files::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(ws),
        source_id: Set(src.id),
        path: Set("purchases/a.ndjson".into()),
        record_type: Set("purchases".into()),
        format: Set(FileFormat::Ndjson),
        size: Set(10),
        etag: Set(None),
        last_modified: Set(None),
        status: Set(FileStatus::Loading),
        rows_loaded: Set(0),
        rows_rejected: Set(0),
        checkpoint_line: Set(0),
        error: Set(None),
        discovered_at: Set(Utc::now()),
        started_at: Set(Some(Utc::now())),
        finished_at: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    let load = enqueue_in(db, Some(ws), &LoadFile { file_id: file.id })
        .await
        .unwrap();
    let note = notifications::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(ws),
        source_id: Set(Some(src.id)),
        kind: Set(NotificationKind::InvalidFormat),
        path: Set(None),
        message: Set("bad".into()),
        created_at: Set(Utc::now()),
        delivery_status: Set(Some(DeliveryStatus::Pending)),
        delivery_attempts: Set(0),
        delivery_error: Set(None),
        delivered_at: Set(None),
        payload: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    let deliver = DeliverNotification {
        notification_id: note.id,
    };
    let deliver = enqueue_in(db, Some(ws), &deliver).await.unwrap();

    // A segment's members and personas; the workspace's prediction.
    let segment = engine
        .create_segment(
            &p,
            SegmentInput {
                name: Some("Spenders".into()),
                filter: Some(json!({ "trait": "spend", "op": ">", "value": 1 })),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let members = ComputeSegment {
        segment_id: segment.id,
    };
    let members = enqueue_in(db, Some(ws), &members).await.unwrap();
    let personas = ComputePersonas {
        segment_id: segment.id,
    };
    let personas = enqueue_in(db, Some(ws), &personas).await.unwrap();
    prediction_status::ActiveModel {
        workspace_id: Set(ws),
        status: Set(PredictionStatus::Trained),
        message: Set(String::new()),
        completes: Set(0),
        required: Set(0),
        predicted_players: Set(0),
        finished_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .unwrap();
    let train = enqueue_in(db, Some(ws), &TrainPrediction { workspace_id: ws })
        .await
        .unwrap();
    // A pass given up leaves its players recorded for the next one.
    let pass = IncrementalPass { workspace_id: ws };
    let pass = enqueue_in(db, Some(ws), &pass).await.unwrap();
    let norms = enqueue_in(db, Some(ws), &ComputeNorms { workspace_id: ws })
        .await
        .unwrap();
    // A prediction training, then rescoring.
    let predictive = predictions::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(ws),
        name: Set("Churn".into()),
        slug: Set("churn".into()),
        description: Set(String::new()),
        goal: Set(PredictionGoal::Churn),
        window_days: Set(14),
        config: Set(json!({})),
        retrain: Set("manual".into()),
        status: Set(PredictiveStatus::Training),
        status_error: Set(String::new()),
        score_trait_id: Set(Uuid::now_v7()),
        percentile_trait_id: Set(Uuid::now_v7()),
        risk_trait_id: Set(Uuid::now_v7()),
        model: Set(None),
        quality: Set(None),
        score_cuts: Set(None),
        cutoff: Set(None),
        trained_at: Set(None),
        scored_at: Set(None),
        scored_players: Set(0),
        version: Set(1),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .unwrap();
    let training = TrainPredictive {
        prediction_id: predictive.id,
    };
    let training = enqueue_in(db, Some(ws), &training).await.unwrap();
    let scoring = ScorePredictive {
        prediction_id: predictive.id,
    };
    let scoring = enqueue_in(db, Some(ws), &scoring).await.unwrap();
    let diagnostic = Diagnostic {
        message: "hello".into(),
    };
    let diagnostic = enqueue_in(db, Some(ws), &diagnostic).await.unwrap();

    let all = [
        &one,
        &shared,
        &scan_job,
        &load,
        &deliver,
        &members,
        &personas,
        &train,
        &diagnostic,
        &pass,
        &norms,
        &training,
        &scoring,
    ];
    let covered: std::collections::HashSet<_> = all.iter().map(|r| r.kind).collect();
    assert_eq!(
        covered.len(),
        JobKind::ALL.len() - 1,
        "every kind but the pruning"
    );
    for record in all {
        let done = fail_every_attempt(&engine, record.id).await;
        assert_eq!(done.status, JobStatus::Failed, "{:?}", record.kind);
        assert_eq!(
            done.error.as_deref(),
            Some(expected.as_str()),
            "{:?}",
            record.kind
        );
        assert!(done.finished_at.is_some());
    }

    for run in &runs {
        let run = trait_runs::Entity::find_by_id(run.id)
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.error.as_deref(), Some(expected.as_str()));
        assert!(run.finished_at.is_some());
    }
    let scan = ingestion_runs::Entity::find_by_id(scan.id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (scan.status, scan.error.as_deref()),
        (RunStatus::Failed, Some(expected.as_str()))
    );
    let file = source_files::Entity::find_by_id(file.id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (file.status, file.error.as_deref()),
        (FileStatus::Failed, Some(expected.as_str()))
    );
    let note = notifications::Entity::find_by_id(note.id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (note.delivery_status, note.delivery_error.as_deref()),
        (Some(DeliveryStatus::Failed), Some(expected.as_str()))
    );
    let segment = segments::Entity::find_by_id(segment.id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (segment.members_status, segment.members_error.as_deref()),
        (ComputeStatus::Failed, Some(expected.as_str()))
    );
    assert_eq!(
        (segment.personas_status, segment.personas_error.as_deref()),
        (ComputeStatus::Failed, Some(expected.as_str()))
    );
    let prediction = prediction_status::Entity::find_by_id(ws)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (prediction.status, prediction.message.as_str()),
        (PredictionStatus::Failed, expected.as_str())
    );
    let predictive = predictions::Entity::find_by_id(predictive.id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (predictive.status, predictive.status_error.as_str()),
        (PredictiveStatus::Failed, expected.as_str())
    );
}
