//! Every lifecycle, kind and choice stored as fixed lower-case text. Declared
//! once here: the entities' columns have these types, so a stored value the
//! code does not know cannot be read into a model, and the engine, GraphQL and
//! REST all use the same enums.

use crate::stored_enum;

stored_enum! {
    /// What a job record does (its `kind` column): the registry maps each to its handler.
    pub enum JobKind {
        Diagnostic => "diagnostic",
        EvaluateTrait => "evaluate_trait",
        EvaluateTraits => "evaluate_traits",
        ScanSource => "scan_source",
        LoadFile => "load_file",
        DeliverNotification => "deliver_notification",
        ComputeSegment => "compute_segment",
        ComputePersonas => "compute_personas",
        TrainPrediction => "train_prediction",
        PruneHistory => "prune_history",
        IncrementalPass => "incremental_pass",
        ComputeNorms => "compute_norms",
        TrainPredictive => "train_predictive",
        ScorePredictive => "score_predictive",
    }
}

stored_enum! {
    pub enum JobStatus {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

stored_enum! {
    /// A trait run's or a source scan's lifecycle.
    pub enum RunStatus {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

stored_enum! {
    /// What started a trait run.
    pub enum Trigger {
        /// `POST …/trigger` or `triggerTrait`.
        Manual => "manual",
        /// A trait this one reads was recomputed.
        Dependency => "dependency",
        /// The trait's `refresh` cron schedule fired.
        Schedule => "schedule",
        /// The trait was created or its computation changed.
        Definition => "definition",
        /// `refreshTraits`: every trait of a parent model.
        Refresh => "refresh",
        /// Loaded data changed a source of a trait with `refresh: on_load`.
        Data => "data",
    }
}

stored_enum! {
    pub enum TraitType {
        Aggregation => "aggregation",
        Occurrence => "occurrence",
        List => "list",
        Sql => "sql",
        Formula => "formula",
        /// Written by a predictive trait's scoring, never computed from a definition.
        Prediction => "prediction",
    }
}

stored_enum! {
    pub enum ResultType {
        Text => "text",
        Number => "number",
        Boolean => "boolean",
        Timestamp => "timestamp",
        Array => "array",
    }
}

impl ResultType {
    /// The typed column of `trait_values` that holds values of this type.
    pub fn value_column(self) -> &'static str {
        match self {
            ResultType::Text => "value_text",
            ResultType::Number => "value_number",
            ResultType::Boolean => "value_boolean",
            ResultType::Timestamp => "value_timestamp",
            ResultType::Array => "value_json",
        }
    }
}

stored_enum! {
    pub enum TraitStatus {
        Draft => "draft",
        Active => "active",
        Error => "error",
    }
}

stored_enum! {
    pub enum Role {
        Admin => "admin",
        Editor => "editor",
        Viewer => "viewer",
        Ingest => "ingest",
    }
}

stored_enum! {
    /// Whether a player entered or left a segment.
    pub enum Change {
        Entered => "ENTERED",
        Exited => "EXITED",
    }
}

stored_enum! {
    /// A segment's members or personas computation.
    pub enum ComputeStatus {
        Pending => "pending",
        Ready => "ready",
        /// Personas only: too few scored members to cluster.
        Insufficient => "insufficient",
        Failed => "failed",
    }
}

stored_enum! {
    /// Where a psych score comes from: the player's own answers, or the model.
    pub enum ScoreSource {
        Survey => "survey",
        Predicted => "predicted",
    }
}

stored_enum! {
    /// Where the norms behind T-scores come from: the instrument's, until
    /// enough of the workspace's players completed the survey
    /// (`provisional`); the workspace's own respondents; or fixed by an
    /// admin in the instrument.
    pub enum NormSource {
        Provisional => "provisional",
        Workspace => "workspace",
        Instrument => "instrument",
    }
}

stored_enum! {
    pub enum PredictionStatus {
        Trained => "trained",
        /// Fewer completes than required, or no traits to learn from.
        Insufficient => "insufficient",
        Failed => "failed",
    }
}

stored_enum! {
    /// What a predictive trait foretells over its next `window_days`.
    pub enum PredictionGoal {
        /// No event of the chosen record types (players active lately).
        Churn => "churn",
        /// A purchase (or a matching row of the chosen model).
        Purchase => "purchase",
        /// At least one row of any record type or custom model, with filters.
        Custom => "custom",
        /// The sum of a numeric column (a regression).
        Spend => "spend",
    }
}

stored_enum! {
    /// A predictive trait's lifecycle.
    pub enum PredictiveStatus {
        /// Created; the first training is queued.
        Training => "training",
        /// Trained and scored.
        Ready => "ready",
        /// The data cannot train it (too few positives, too short a history).
        Insufficient => "insufficient",
        Failed => "failed",
    }
}

stored_enum! {
    /// The survey's lifecycle, spelled as the player API shows it.
    pub enum SurveyStatus {
        Launched => "Launched",
        Closed => "Closed",
        Deleted => "Deleted",
    }
}

stored_enum! {
    /// Where a registered player is in the survey.
    pub enum ResponseStatus {
        Requested => "requested",
        Partial => "partial",
        Complete => "complete",
        Disqualified => "disqualified",
    }
}

stored_enum! {
    pub enum ModelKind {
        Entity => "entity",
        Event => "event",
    }
}

stored_enum! {
    pub enum DataType {
        Text => "text",
        Number => "number",
        Boolean => "boolean",
        Timestamp => "timestamp",
        Date => "date",
        Json => "json",
    }
}

stored_enum! {
    pub enum Cardinality {
        ManyToOne => "many_to_one",
        OneToMany => "one_to_many",
        OneToOne => "one_to_one",
    }
}

stored_enum! {
    /// A source's health: `new` until its first scan, then the last scan's outcome.
    pub enum SourceStatus {
        New => "new",
        Ok => "ok",
        Error => "error",
    }
}

stored_enum! {
    pub enum SourceKind {
        Local => "local",
        S3 => "s3",
        Gcs => "gcs",
        Azure => "azure",
    }
}

stored_enum! {
    pub enum NotificationKind {
        StorageUnreachable => "storage_unreachable",
        InvalidFormat => "invalid_format",
        FileOverwritten => "file_overwritten",
        /// Players entered or left a segment (the webhook body lists them).
        SegmentMembership => "segment_membership",
    }
}

stored_enum! {
    /// Where a notification is on its way to the workspace's webhook.
    pub enum DeliveryStatus {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
    }
}

stored_enum! {
    /// How a file is decoded, from its extension (a trailing `.gz` is decompressed first).
    pub enum FileFormat {
        Ndjson => "ndjson",
        Csv => "csv",
    }
}

stored_enum! {
    /// A ledger file's lifecycle.
    pub enum FileStatus {
        Queued => "queued",
        Loading => "loading",
        Loaded => "loaded",
        Failed => "failed",
    }
}

stored_enum! {
    /// Where a quarantined line came from (its `origin` column).
    pub enum LineOrigin {
        Post => "post",
        Playfab => "playfab",
        File => "file",
    }
}
