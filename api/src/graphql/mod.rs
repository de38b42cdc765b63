//! The GraphQL API: thin resolvers over `engine` services.

mod connection;
mod enums;
mod models;
mod mutation;
mod player;
mod predictions;
mod query;
mod segments;
mod sources;
mod survey;
mod traits;
mod types;

use async_graphql::{EmptySubscription, MergedObject, Schema, SchemaBuilder};
use engine::Engine;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    query::CoreQuery,
    traits::TraitQuery,
    sources::SourceQuery,
    survey::SurveyQuery,
    player::PlayerQuery,
    segments::SegmentQuery,
    predictions::PredictionQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    mutation::CoreMutation,
    traits::TraitMutation,
    sources::SourceMutation,
    survey::SurveyMutation,
    segments::SegmentMutation,
    models::ModelMutation,
    predictions::PredictionMutation,
);

pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deep or expensive queries are refused before they reach the database.
const MAX_DEPTH: usize = 12;
const MAX_COMPLEXITY: usize = 2_000;

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
}

pub fn schema(engine: Engine) -> AppSchema {
    builder().data(engine).finish()
}

/// The SDL checked into the repository as `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
