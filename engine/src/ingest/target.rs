//! Where a load goes: one of the eight built-in record types, or a model the
//! workspace defined itself (`custom_models.rs`), whose rows are validated
//! against its declared columns and written to its own table.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Map, Value};
use uuid::Uuid;

use entity::{model_columns, models};

use super::records::{FieldError, Fields, RecordType, Row, kind};
use crate::{Error, Result, catalog::DataType};

/// A workspace's own model, as ingestion sees it.
#[derive(Debug)]
pub struct CustomModel {
    pub id: Uuid,
    pub slug: String,
    pub table: String,
    pub primary_key: String,
    /// The column holding the player's user id, when rows belong to players.
    pub user_column: Option<String>,
    pub timestamp_column: Option<String>,
    /// (name, type, nullable) in the model's order.
    pub columns: Vec<(String, DataType, bool)>,
}

impl CustomModel {
    /// Rows that name a player and a time make the player known (first/last seen).
    pub fn touches_players(&self) -> bool {
        self.user_column.is_some() && self.timestamp_column.is_some()
    }

    /// Fields a CSV header must name.
    pub fn required_fields(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|(_, _, nullable)| !nullable)
            .map(|(n, _, _)| n.as_str())
            .collect()
    }
}

/// The destination of a load.
#[derive(Clone, Debug)]
pub enum Target {
    Record(RecordType),
    Custom(Arc<CustomModel>),
}

impl Target {
    /// The `{type}` of `POST /v1/events/{type}`, the bucket folder and the model slug.
    pub fn slug(&self) -> &str {
        match self {
            Target::Record(t) => t.as_str(),
            Target::Custom(m) => &m.slug,
        }
    }

    /// The table rows land in.
    pub fn table(&self) -> &str {
        match self {
            Target::Record(t) => t.as_str(),
            Target::Custom(m) => &m.table,
        }
    }

    /// Rows are upserts by key (items, custom models): loading a line twice changes nothing.
    pub fn upserts(&self) -> bool {
        matches!(self, Target::Record(RecordType::Items) | Target::Custom(_))
    }

    /// Whether a load of this target may bring players.
    pub fn touches_players(&self) -> bool {
        match self {
            Target::Record(t) => *t != RecordType::Items,
            Target::Custom(m) => m.touches_players(),
        }
    }

    pub fn record_type(&self) -> Option<RecordType> {
        match self {
            Target::Record(t) => Some(*t),
            Target::Custom(_) => None,
        }
    }

    /// Validates one record into a row of this target's table.
    pub fn parse(
        &self,
        workspace_id: Uuid,
        object: Map<String, Value>,
        loaded_at: DateTime<Utc>,
    ) -> std::result::Result<Row, FieldError> {
        match self {
            Target::Record(t) => super::records::parse(*t, workspace_id, object, loaded_at),
            Target::Custom(m) => parse_custom(m, object).map(Row::Custom),
        }
    }

    /// The user id a refused record names, for the quarantine (erasure finds it there).
    pub fn user_id_of(&self, object: &Map<String, Value>) -> Option<String> {
        let field = match self {
            Target::Record(_) => "user_id",
            Target::Custom(m) => m.user_column.as_deref()?,
        };
        object.get(field).and_then(|u| match u {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    }
}

/// A validated row of a custom model: its values in column order.
#[derive(Clone, Debug)]
pub struct CustomRow {
    /// The primary key's text, so that a load keeps the last row of a key.
    pub key: String,
    pub user_id: Option<String>,
    pub at: Option<DateTime<Utc>>,
    pub values: Vec<sea_orm::Value>,
    pub extra: Option<Value>,
    pub source_file_id: Option<Uuid>,
    pub line_number: Option<i64>,
}

impl Fields {
    fn boolean(&mut self, name: &str) -> std::result::Result<Option<bool>, FieldError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(FieldError::at(name, format!("'{s}' is not true or false"))),
            },
            Some(Value::Number(n)) if n.as_f64() == Some(1.0) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(Some(false)),
            Some(other) => Err(FieldError::at(
                name,
                format!("expected true or false, got {}", kind(&other)),
            )),
        }
    }

    /// Any JSON value; CSV cells (text) are parsed as JSON when they are JSON.
    fn json(&mut self, name: &str) -> Option<Value> {
        match self.take(name)? {
            Value::String(s) => Some(serde_json::from_str(&s).unwrap_or(Value::String(s))),
            v => Some(v),
        }
    }
}

fn parse_custom(
    m: &CustomModel,
    object: Map<String, Value>,
) -> std::result::Result<CustomRow, FieldError> {
    let mut f = Fields { map: object };
    let mut values = Vec::with_capacity(m.columns.len());
    let (mut key, mut user_id, mut at) = (None, None, None);
    for (name, data_type, nullable) in &m.columns {
        let name = name.as_str();
        let (value, text): (sea_orm::Value, Option<String>) = match data_type {
            DataType::Text => {
                let v = f.text(name)?;
                (v.clone().into(), v)
            }
            DataType::Number => {
                let v = f.float(name)?;
                (v.into(), v.map(|n| n.to_string()))
            }
            DataType::Boolean => {
                let v = f.boolean(name)?;
                (v.into(), v.map(|b| b.to_string()))
            }
            DataType::Timestamp => {
                let v = f.timestamp(name)?;
                if m.timestamp_column.as_deref() == Some(name) {
                    at = v;
                }
                (v.into(), v.map(|t| t.to_rfc3339()))
            }
            DataType::Date => {
                let v = f.date(name)?;
                (v.into(), v.map(|d| d.to_string()))
            }
            DataType::Json => {
                let v = f.json(name);
                (v.clone().into(), v.map(|j| j.to_string()))
            }
        };
        if text.is_none() && !nullable {
            return Err(FieldError::at(name, "is required"));
        }
        if m.primary_key == name {
            key = text.clone();
        }
        if m.user_column.as_deref() == Some(name) {
            user_id = text;
        }
        values.push(value);
    }
    Ok(CustomRow {
        key: key.ok_or_else(|| FieldError::at(&m.primary_key, "is required"))?,
        user_id,
        at,
        values,
        extra: f.extra(),
        source_file_id: None,
        line_number: None,
    })
}

/// The target a slug names in the workspace: a built-in record type, else one
/// of the workspace's own models (built-in entity models other than items take no loads).
pub(crate) async fn resolve(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    slug: &str,
) -> Result<Target> {
    if let Some(t) = RecordType::parse(slug) {
        return Ok(Target::Record(t));
    }
    let model = models::Entity::find()
        .filter(models::Column::WorkspaceId.eq(workspace_id))
        .filter(models::Column::Slug.eq(slug))
        .filter(models::Column::BuiltIn.eq(false))
        .one(db)
        .await?
        .ok_or(Error::NotFound {
            what: "record type",
        })?;
    Ok(Target::Custom(Arc::new(custom_model(db, model).await?)))
}

/// Every custom model of the workspace (bucket scans look for their folders).
pub(crate) async fn custom_targets(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for model in models::Entity::find()
        .filter(models::Column::WorkspaceId.eq(workspace_id))
        .filter(models::Column::BuiltIn.eq(false))
        .order_by_asc(models::Column::Slug)
        .all(db)
        .await?
    {
        out.push(Target::Custom(Arc::new(custom_model(db, model).await?)));
    }
    Ok(out)
}

async fn custom_model(db: &impl ConnectionTrait, model: models::Model) -> Result<CustomModel> {
    let columns = model_columns::Entity::find()
        .filter(model_columns::Column::WorkspaceId.eq(model.workspace_id))
        .filter(model_columns::Column::ModelId.eq(model.id))
        .order_by_asc(model_columns::Column::Position)
        .all(db)
        .await?
        .into_iter()
        .map(|c| {
            let dt = c.data_type;
            Ok((c.name, dt, c.nullable))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CustomModel {
        id: model.id,
        slug: model.slug,
        table: model.table_name,
        primary_key: model.primary_key,
        user_column: model.user_column,
        timestamp_column: model.timestamp_column,
        columns,
    })
}
