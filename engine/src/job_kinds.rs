//! The registry of job kinds: the one module that sees every domain's jobs.
//! The job infrastructure (`jobs`) decodes a record through it.

use crate::{
    ingest::jobs::{DeliverNotification, LoadFile, ScanSource},
    jobs::{Diagnostic, Registry},
    prediction::TrainPrediction,
    predictive::{ScorePredictive, TrainPredictive},
    retention::PruneHistory,
    segments::jobs::{ComputePersonas, ComputeSegment},
    survey::norms::ComputeNorms,
    traits::{
        incremental::IncrementalPass,
        jobs::{EvaluateTrait, EvaluateTraits},
    },
};

pub(crate) fn registry() -> Registry {
    Registry::default()
        .with::<Diagnostic>()
        .with::<EvaluateTrait>()
        .with::<EvaluateTraits>()
        .with::<ScanSource>()
        .with::<LoadFile>()
        .with::<DeliverNotification>()
        .with::<ComputeSegment>()
        .with::<ComputePersonas>()
        .with::<TrainPrediction>()
        .with::<PruneHistory>()
        .with::<IncrementalPass>()
        .with::<ComputeNorms>()
        .with::<TrainPredictive>()
        .with::<ScorePredictive>()
}

#[cfg(test)]
mod tests;
