//! The lifecycles of the engine as GraphQL enums, each declared once in the
//! engine and mirrored here (`remote`). Their values are the lower-case words
//! the engine stores and the REST families send (`succeeded`, `on_load`…),
//! so that GraphQL clients that compared strings keep working; the older
//! enums of the schema (`Role`, `DataType`, `JobStatus`…) keep their
//! upper-case values for the same reason.

use async_graphql::Enum;

macro_rules! lifecycle {
    ($(#[$meta:meta])* $name:ident = $remote:literal { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Enum, Copy, Clone, Eq, PartialEq)]
        #[graphql(remote = $remote, rename_items = "snake_case")]
        pub enum $name { $($variant),+ }
    };
}

lifecycle!(TraitType = "engine::traits::definition::TraitType" { Aggregation, Occurrence, List, Sql, Formula, Prediction });
lifecycle!(ResultType = "engine::traits::definition::ResultType" { Text, Number, Boolean, Timestamp, Array });
lifecycle!(TraitStatus = "engine::traits::definition::TraitStatus" { Draft, Active, Error });
lifecycle!(RunStatus = "engine::traits::RunStatus" { Queued, Running, Succeeded, Failed });
lifecycle!(
    /// What started a trait run.
    RunTrigger = "engine::traits::Trigger" { Manual, Dependency, Schedule, Definition, Refresh, Data }
);
lifecycle!(SourceKind = "engine::ingest::sources::SourceKind" { Local, S3, Gcs, Azure });
lifecycle!(
    /// `new` until the source's first scan, then the last scan's outcome.
    SourceStatus = "engine::ingest::sources::SourceStatus" { New, Ok, Error }
);
lifecycle!(NotificationKind = "engine::ingest::sources::NotificationKind" { StorageUnreachable, InvalidFormat, FileOverwritten, SegmentMembership });
lifecycle!(DeliveryStatus = "engine::ingest::sources::DeliveryStatus" { Pending, Delivered, Failed });
lifecycle!(FileFormat = "engine::ingest::sources::FileFormat" { Ndjson, Csv });
lifecycle!(FileStatus = "engine::ingest::files::FileStatus" { Queued, Loading, Loaded, Failed });
lifecycle!(
    /// Where a quarantined line came from.
    LineOrigin = "engine::ingest::LineOrigin" { Post, Playfab, File }
);
lifecycle!(ComputeStatus = "engine::segments::ComputeStatus" { Pending, Ready, Insufficient, Failed });
lifecycle!(PredictionStatus = "engine::prediction::PredictionStatus" { Trained, Insufficient, Failed });
lifecycle!(ScoreSource = "engine::prediction::ScoreSource" { Survey, Predicted });
lifecycle!(
    /// Where the norms behind T-scores come from.
    NormSource = "engine::survey::NormSource" { Provisional, Workspace, Instrument }
);
lifecycle!(ResponseStatus = "engine::survey::ResponseStatus" { Requested, Partial, Complete, Disqualified });
lifecycle!(JobKind = "engine::jobs::JobKind" {
    Diagnostic, EvaluateTrait, EvaluateTraits, ScanSource, LoadFile, DeliverNotification,
    ComputeSegment, ComputePersonas, TrainPrediction, PruneHistory, IncrementalPass, ComputeNorms,
    TrainPredictive, ScorePredictive,
});
lifecycle!(
    /// What a prediction foretells over its window.
    PredictionGoal = "engine::predictive::PredictionGoal" { Churn, Purchase, Custom, Spend }
);
lifecycle!(
    /// A prediction's lifecycle: `training`, then `ready`, `insufficient` or `failed`.
    PredictiveStatus = "engine::predictive::PredictiveStatus" { Training, Ready, Insufficient, Failed }
);

/// Whether a player entered or left a segment.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "engine::segments::changes::Change")]
pub enum SegmentChangeKind {
    Entered,
    Exited,
}

/// A survey's status, as the player API spells it (`Launched`…).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "engine::survey::SurveyStatus", rename_items = "PascalCase")]
pub enum SurveyStatus {
    Launched,
    Closed,
    Deleted,
}
