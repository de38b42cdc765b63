//! PlayFab webhook events (PlayStream JSON). Every player event is kept as an
//! action (`action_name` = `EventName`, the other top-level scalar fields as
//! parameters); documented events also fill their typed tables. Redelivered
//! events (same `EventId`) are duplicates; title and character events are
//! counted as ignored. Each event is parsed into its own group of rows, so an
//! event received before is dropped with exactly its rows.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use entity::playfab_events;

use super::{
    Rejected, excerpt,
    load::{self, Origin},
    records::{self, RecordType, Row},
    target::Target,
};
use crate::{
    Engine, Error, Result,
    auth::{Permission, Principal},
};

#[derive(Clone, Debug, Default)]
pub struct PlayFabSummary {
    pub accepted: u64,
    pub duplicate: u64,
    /// Title and character events: valid, not about a player, not kept.
    pub ignored: u64,
    pub rejected: u64,
    /// Why events were rejected (the first 20), by position in the body.
    pub errors: Vec<Rejected>,
}

/// The typed rows a documented PlayStream event also fills, with its
/// properties mapped as PlayFab's event reference names them (the README has
/// the table). A purchase of several catalog items is one purchases row per
/// item, the order's `OrderTotal` (PlayFab's unit: the title's system
/// currency) split evenly between them, so a player's spend sums to it.
fn typed(event_name: &str, event: &Map<String, Value>) -> Vec<(RecordType, Map<String, Value>)> {
    let pick = |pairs: &[(&str, &str)]| -> Map<String, Value> {
        pairs
            .iter()
            .filter_map(|(ours, theirs)| {
                event
                    .get(*theirs)
                    .filter(|v| !v.is_null())
                    .map(|v| (ours.to_string(), v.clone()))
            })
            .collect()
    };
    match event_name {
        "player_logged_in" => {
            let mut m = pick(&[("platform", "Platform")]);
            if let Some(country) = event.get("Location").and_then(|l| l.get("CountryCode")) {
                m.insert("country".into(), country.clone());
            }
            vec![(RecordType::Logins, m)]
        }
        "player_realmoney_purchase" => {
            let products: Vec<Value> = match event.get("PurchasedProduct") {
                Some(Value::Array(items)) if !items.is_empty() => items.clone(),
                Some(one @ Value::String(_)) => vec![one.clone()],
                _ => vec![Value::Null],
            };
            let share = event
                .get("OrderTotal")
                .and_then(Value::as_f64)
                .map(|total| total / products.len() as f64);
            products
                .into_iter()
                .map(|product| {
                    let mut m = pick(&[("platform", "PaymentProvider")]);
                    m.insert("count".into(), json!(1));
                    if !product.is_null() {
                        m.insert("item_id".into(), product);
                    }
                    if let Some(share) = share {
                        m.insert("price".into(), json!(share));
                    }
                    (RecordType::Purchases, m)
                })
                .collect()
        }
        "player_vc_item_purchased" => vec![(
            RecordType::VirtualPurchases,
            pick(&[
                ("item_id", "ItemId"),
                ("count", "Quantity"),
                ("virtual_price", "UnitPrice"),
                ("currency", "CurrencyCode"),
            ]),
        )],
        // The catalog: which items exist, their names and classes.
        "player_inventory_item_added" => vec![(
            RecordType::Items,
            pick(&[
                ("item_id", "ItemId"),
                ("name", "DisplayName"),
                ("type", "Class"),
            ]),
        )],
        "player_statistic_changed" => vec![(
            RecordType::Kpis,
            pick(&[("kpi_id", "StatisticName"), ("value", "StatisticValue")]),
        )],
        _ => Vec::new(),
    }
}

const ENVELOPE_FIELDS: [&str; 5] = [
    "EventName",
    "EventId",
    "EntityType",
    "EntityId",
    "Timestamp",
];

/// What one PlayStream event of a delivery is.
enum Parsed {
    /// A player event: its rows (its action first, then its typed rows) and
    /// the typed parts that did not map (quarantined, the event kept).
    Kept {
        event_id: String,
        rows: Vec<Row>,
        typed_failures: Vec<Rejected>,
    },
    /// A title or character event: valid, not about a player.
    Ignored,
    Rejected(Rejected),
}

/// The `position`-th event (from 1) of a delivery.
fn parse_event(position: usize, event: Value, workspace_id: Uuid, now: DateTime<Utc>) -> Parsed {
    let raw = event.to_string();
    let reject = |field: Option<&str>, message: String| Rejected {
        line_number: position as i64,
        byte_offset: 0,
        field: field.map(str::to_owned),
        message,
        excerpt: excerpt(raw.as_bytes()),
        user_id: None,
    };
    let Value::Object(event) = event else {
        return Parsed::Rejected(reject(None, "an event must be a JSON object".into()));
    };
    let text = |k: &str| {
        event
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|s| !s.is_empty())
    };
    let (Some(name), Some(event_id)) = (text("EventName"), text("EventId")) else {
        let message = "EventName and EventId are required".into();
        return Parsed::Rejected(reject(Some("EventId"), message));
    };
    if text("EntityType").as_deref() != Some("player") {
        return Parsed::Ignored;
    }
    let Some(user) = text("EntityId") else {
        return Parsed::Rejected(reject(Some("EntityId"), "is required".into()));
    };
    let timestamp = event.get("Timestamp").cloned().unwrap_or(Value::Null);
    let params: Vec<Value> = event
        .iter()
        .filter(|(k, v)| {
            !ENVELOPE_FIELDS.contains(&k.as_str())
                && !v.is_object()
                && !v.is_array()
                && !v.is_null()
        })
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    let mut action = Map::new();
    action.insert("timestamp".into(), timestamp.clone());
    action.insert("user_id".into(), Value::String(user.clone()));
    action.insert("action_id".into(), Value::String(event_id.clone()));
    action.insert("action_name".into(), Value::String(name.clone()));
    action.insert("action_params".into(), Value::Array(params));
    let mut rows = match records::parse(RecordType::Actions, workspace_id, action, now) {
        Ok(row) => vec![row],
        Err(e) => {
            let field = e.field.map(|f| {
                if f == "timestamp" {
                    "Timestamp".to_owned()
                } else {
                    f
                }
            });
            return Parsed::Rejected(reject(field.as_deref(), e.message));
        }
    };
    // A typed row that does not map is quarantined with its reason; the
    // event itself (its action) is kept either way.
    let mut typed_failures = Vec::new();
    for (record_type, mut fields) in typed(&name, &event) {
        if record_type != RecordType::Items {
            fields.insert("timestamp".into(), timestamp.clone());
            fields.insert("user_id".into(), Value::String(user.clone()));
        }
        match records::parse(record_type, workspace_id, fields, now) {
            Ok(row) => rows.push(row),
            Err(e) => {
                let message = format!("{} row not kept: {}", record_type.as_str(), e.message);
                let mut failure = reject(e.field.as_deref(), message);
                failure.user_id = Some(user.clone());
                typed_failures.push(failure);
            }
        }
    }
    Parsed::Kept {
        event_id,
        rows,
        typed_failures,
    }
}

/// A player event of a delivery, kept unless an earlier delivery had it.
struct Event {
    id: String,
    rows: Vec<Row>,
    typed_failures: Vec<Rejected>,
}

impl Engine {
    pub async fn ingest_playfab(&self, p: &Principal, body: &[u8]) -> Result<PlayFabSummary> {
        p.require(Permission::Ingest)?;
        let parsed: Value = serde_json::from_slice(body)
            .map_err(|e| Error::BadRequest(format!("the body is not JSON: {e}")))?;
        let events = match parsed {
            Value::Array(list) => list,
            Value::Object(o) => vec![Value::Object(o)],
            _ => {
                return Err(Error::BadRequest(
                    "send one PlayFab event object or an array of them".into(),
                ));
            }
        };
        let now = Utc::now();
        let workspace_id = p.workspace_id;
        let mut summary = PlayFabSummary::default();
        let mut rejected = Vec::new();
        let mut kept: Vec<Event> = Vec::new();
        let mut seen = HashSet::new();
        for (i, event) in events.into_iter().enumerate() {
            match parse_event(i + 1, event, workspace_id, now) {
                Parsed::Ignored => summary.ignored += 1,
                Parsed::Rejected(r) => rejected.push(r),
                Parsed::Kept { event_id, .. } if !seen.insert(event_id.clone()) => {
                    summary.duplicate += 1;
                }
                Parsed::Kept {
                    event_id,
                    rows,
                    typed_failures,
                } => kept.push(Event {
                    id: event_id,
                    rows,
                    typed_failures,
                }),
            }
        }
        summary.rejected = rejected.len() as u64;
        let mut loaded_types: Vec<RecordType> = kept
            .iter()
            .flat_map(|e| e.rows.iter().filter_map(Row::record_type))
            .collect();
        loaded_types.sort_by_key(|t| t.as_str());
        loaded_types.dedup();
        let loaded_types: Vec<Target> = loaded_types.into_iter().map(Target::Record).collect();
        let rejected_events = rejected.clone();
        let (accepted, duplicate, typed_failures) = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                // Events received before (another delivery) are dropped with their rows.
                let ids: Vec<String> = kept.iter().map(|e| e.id.clone()).collect();
                let known: HashSet<String> = playfab_events::Entity::find()
                    .filter(playfab_events::Column::WorkspaceId.eq(workspace_id))
                    .filter(playfab_events::Column::EventId.is_in(ids))
                    .all(tx)
                    .await?
                    .into_iter()
                    .map(|e| e.event_id)
                    .collect();
                let fresh: Vec<Event> = kept
                    .into_iter()
                    .filter(|e| !known.contains(&e.id))
                    .collect();
                for chunk in fresh.chunks(500) {
                    playfab_events::Entity::insert_many(chunk.iter().map(|e| {
                        playfab_events::ActiveModel {
                            workspace_id: Set(workspace_id),
                            event_id: Set(e.id.clone()),
                            received_at: Set(now),
                        }
                    }))
                    .exec_without_returning(tx)
                    .await?;
                }
                let accepted = fresh.len() as u64;
                let mut rows = Vec::new();
                let mut typed_failures = Vec::new();
                for event in fresh {
                    rows.extend(event.rows);
                    typed_failures.extend(event.typed_failures);
                }
                // Rejected events and the typed parts that did not map, quarantined together.
                let mut quarantine = rejected_events;
                quarantine.extend(typed_failures.iter().cloned());
                load::write(
                    tx,
                    workspace_id,
                    &Target::Record(RecordType::Actions),
                    Origin::PlayFab,
                    rows,
                    &quarantine,
                    now,
                )
                .await?;
                Ok((accepted, known.len() as u64, typed_failures))
            })
        })
        .await?;
        if accepted > 0 {
            self.after_load(workspace_id, &loaded_types).await;
        }
        summary.accepted = accepted;
        summary.duplicate += duplicate;
        rejected.extend(typed_failures);
        rejected.truncate(20);
        summary.errors = rejected;
        Ok(summary)
    }
}
