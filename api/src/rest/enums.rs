//! The stored lifecycles as they appear in REST responses: the same
//! lower-case words the engine stores, declared as OpenAPI enums so that
//! `/openapi.json` lists each one's values.

use engine::entity::states;

/// Mirrors a stored enum variant by variant (the compiler checks both lists).
macro_rules! rest_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(poem_openapi::Enum, Clone, Copy, Debug, PartialEq, Eq)]
        #[oai(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl From<states::$name> for $name {
            fn from(v: states::$name) -> Self {
                match v { $(states::$name::$variant => $name::$variant),+ }
            }
        }
    };
}

rest_enum!(
    /// A trait run's or a source scan's lifecycle.
    RunStatus { Queued, Running, Succeeded, Failed }
);
rest_enum!(
    /// What started a trait run.
    Trigger { Manual, Dependency, Schedule, Definition, Refresh, Data }
);
rest_enum!(
    /// `prediction` traits hold a prediction's scores (read-only here).
    TraitType { Aggregation, Occurrence, List, Sql, Formula, Prediction }
);
rest_enum!(
    /// What a prediction foretells over its window.
    PredictionGoal { Churn, Purchase, Custom, Spend }
);
rest_enum!(
    /// A prediction's lifecycle.
    PredictiveStatus { Training, Ready, Insufficient, Failed }
);
rest_enum!(ResultType {
    Text,
    Number,
    Boolean,
    Timestamp,
    Array
});
rest_enum!(TraitStatus {
    Draft,
    Active,
    Error
});
rest_enum!(
    /// A segment's members or personas computation.
    ComputeStatus { Pending, Ready, Insufficient, Failed }
);
rest_enum!(
    /// `entity`, or `event` (a model with a timestamp column).
    ModelKind { Entity, Event }
);
rest_enum!(DataType {
    Text,
    Number,
    Boolean,
    Timestamp,
    Date,
    Json
});
rest_enum!(Cardinality {
    ManyToOne,
    OneToMany,
    OneToOne
});
rest_enum!(SourceKind {
    Local,
    S3,
    Gcs,
    Azure
});
rest_enum!(
    /// `new` until the source's first scan, then the last scan's outcome.
    SourceStatus { New, Ok, Error }
);
