//! The built-in models every workspace starts with: the player and item
//! entities and the seven behavioural event streams of the player API's record
//! schemas. Column names here are the physical column names (see the
//! foundation migration); a test checks that they agree on both backends.

use chrono::Utc;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use uuid::Uuid;

use entity::{model_columns, models, relationships};

use crate::Result;

pub use entity::states::ModelKind;

pub use entity::states::DataType;

pub use entity::states::Cardinality;

pub struct ModelSpec {
    pub name: &'static str,
    pub slug: &'static str,
    pub kind: ModelKind,
    pub primary_key: &'static str,
    pub timestamp_column: Option<&'static str>,
    /// (name, type, nullable)
    pub columns: &'static [(&'static str, DataType, bool)],
}

pub struct RelationshipSpec {
    pub from: &'static str,
    pub to: &'static str,
    pub column: &'static str,
    pub cardinality: Cardinality,
}

use DataType::{Date, Json, Number, Text, Timestamp};

const EVENT_HEAD: [(&str, DataType, bool); 2] =
    [("timestamp", Timestamp, false), ("user_id", Text, false)];

macro_rules! event {
    ($name:literal, $slug:literal, [$($col:expr),* $(,)?]) => {
        ModelSpec {
            name: $name,
            slug: $slug,
            kind: ModelKind::Event,
            primary_key: "id",
            timestamp_column: Some("timestamp"),
            columns: &[EVENT_HEAD[0], EVENT_HEAD[1], $($col),*],
        }
    };
}

/// The models seeded into every workspace; slugs equal table names.
pub const BUILT_IN_MODELS: [ModelSpec; 9] = [
    ModelSpec {
        name: "Players",
        slug: "players",
        kind: ModelKind::Entity,
        primary_key: "user_id",
        timestamp_column: None,
        columns: &[
            ("user_id", Text, false),
            ("first_seen_at", Timestamp, true),
            ("last_seen_at", Timestamp, true),
            ("clan_id", Text, true),
            ("level", Number, true),
            ("device", Text, true),
            ("country", Text, true),
            ("language", Text, true),
            ("platform", Text, true),
            ("register_date", Date, true),
            ("last_login_at", Timestamp, true),
        ],
    },
    ModelSpec {
        name: "Items",
        slug: "items",
        kind: ModelKind::Entity,
        primary_key: "item_id",
        timestamp_column: None,
        columns: &[
            ("item_id", Text, false),
            ("price", Number, true),
            ("currency", Text, true),
            ("name", Text, true),
            ("type", Text, true),
        ],
    },
    event!(
        "Purchases",
        "purchases",
        [
            ("item_id", Text, true),
            ("count", Number, true),
            ("price", Number, true),
            ("platform", Text, true),
        ]
    ),
    event!(
        "Logins",
        "logins",
        [
            ("clan_id", Text, true),
            ("level", Number, true),
            ("device", Text, true),
            ("country", Text, true),
            ("language", Text, true),
            ("platform", Text, true),
            ("register_date", Date, true),
            ("last_login_timestamp", Timestamp, true),
        ]
    ),
    event!(
        "Actions",
        "actions",
        [
            ("action_id", Text, true),
            ("action_name", Text, true),
            ("action_params", Json, true),
        ]
    ),
    event!(
        "Virtual purchases",
        "virtual_purchases",
        [
            ("item_id", Text, true),
            ("count", Number, true),
            ("virtual_price", Number, true),
            ("currency", Text, true),
        ]
    ),
    event!("Level ups", "level_ups", [("level", Number, true)]),
    event!(
        "Social dynamics",
        "social_dynamics",
        [
            ("target_user_id", Text, true),
            ("interaction", Text, true),
            ("interaction_params", Json, true),
        ]
    ),
    event!(
        "KPIs",
        "kpis",
        [
            ("register_date", Date, true),
            ("churn_date", Date, true),
            ("kpi_id", Text, false),
            ("value", Number, false),
        ]
    ),
];

/// Every event stream belongs to a player; purchases name the item bought.
pub fn built_in_relationships() -> Vec<RelationshipSpec> {
    let mut rels: Vec<RelationshipSpec> = BUILT_IN_MODELS
        .iter()
        .filter(|m| m.kind == ModelKind::Event)
        .map(|m| RelationshipSpec {
            from: m.slug,
            to: "players",
            column: "user_id",
            cardinality: Cardinality::ManyToOne,
        })
        .collect();
    for from in ["purchases", "virtual_purchases"] {
        rels.push(RelationshipSpec {
            from,
            to: "items",
            column: "item_id",
            cardinality: Cardinality::ManyToOne,
        });
    }
    rels
}

/// Writes the built-in models, their columns and relationships for a new workspace.
pub(crate) async fn seed(db: &impl ConnectionTrait, workspace_id: Uuid) -> Result<()> {
    let now = Utc::now();
    let mut model_rows = Vec::new();
    let mut column_rows = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for spec in &BUILT_IN_MODELS {
        let model_id = Uuid::now_v7();
        ids.insert(spec.slug, model_id);
        model_rows.push(models::ActiveModel {
            id: Set(model_id),
            workspace_id: Set(workspace_id),
            name: Set(spec.name.into()),
            slug: Set(spec.slug.into()),
            kind: Set(spec.kind),
            table_name: Set(spec.slug.into()),
            primary_key: Set(spec.primary_key.into()),
            timestamp_column: Set(spec.timestamp_column.map(Into::into)),
            user_column: Set((spec.slug != "items").then(|| "user_id".into())),
            built_in: Set(true),
            created_at: Set(now),
        });
        for (position, (name, data_type, nullable)) in spec.columns.iter().enumerate() {
            column_rows.push(model_columns::ActiveModel {
                id: Set(Uuid::now_v7()),
                workspace_id: Set(workspace_id),
                model_id: Set(model_id),
                name: Set((*name).into()),
                data_type: Set(*data_type),
                nullable: Set(*nullable),
                position: Set(position as i32),
            });
        }
    }
    let relationship_rows =
        built_in_relationships()
            .into_iter()
            .map(|r| relationships::ActiveModel {
                id: Set(Uuid::now_v7()),
                workspace_id: Set(workspace_id),
                from_model_id: Set(ids[r.from]),
                to_model_id: Set(ids[r.to]),
                from_column: Set(r.column.into()),
                to_column: Set(r.column.into()),
                cardinality: Set(r.cardinality),
                created_at: Set(now),
            });
    models::Entity::insert_many(model_rows).exec(db).await?;
    model_columns::Entity::insert_many(column_rows)
        .exec(db)
        .await?;
    relationships::Entity::insert_many(relationship_rows)
        .exec(db)
        .await?;
    Ok(())
}
