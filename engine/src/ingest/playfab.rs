//! PlayFab webhook events (PlayStream JSON). Every player event is kept as an
//! action (`action_name` = `EventName`, the other top-level scalar fields as
//! parameters); documented events also fill their typed tables. Redelivered
//! events (same `EventId`) are duplicates; title and character events are
//! counted as ignored.

use std::collections::HashSet;

use chrono::Utc;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Map, Value, json};

use entity::playfab_events;

use super::{
    Rejected, excerpt,
    load::{self, Origin},
    records::{self, RecordType, Row},
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
        let mut summary = PlayFabSummary::default();
        let mut rows: Vec<Row> = Vec::new();
        let mut rejected = Vec::new();
        let mut quarantined = Vec::new();
        let mut event_ids: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for (i, event) in events.into_iter().enumerate() {
            let raw = event.to_string();
            let reject = |field: Option<&str>, message: String| Rejected {
                line_number: i as i64 + 1,
                byte_offset: 0,
                field: field.map(str::to_owned),
                message,
                excerpt: excerpt(raw.as_bytes()),
                user_id: None,
            };
            let Value::Object(event) = event else {
                rejected.push(reject(None, "an event must be a JSON object".into()));
                continue;
            };
            let text = |k: &str| {
                event
                    .get(k)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .filter(|s| !s.is_empty())
            };
            let (Some(name), Some(event_id)) = (text("EventName"), text("EventId")) else {
                rejected.push(reject(
                    Some("EventId"),
                    "EventName and EventId are required".into(),
                ));
                continue;
            };
            if text("EntityType").as_deref() != Some("player") {
                summary.ignored += 1;
                continue;
            }
            let Some(user) = text("EntityId") else {
                rejected.push(reject(Some("EntityId"), "is required".into()));
                continue;
            };
            if !seen.insert(event_id.clone()) {
                summary.duplicate += 1;
                continue;
            }
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
            let mut event_rows = Vec::new();
            match records::parse(RecordType::Actions, p.workspace_id, action, now) {
                Ok(row) => event_rows.push(row),
                Err(e) => {
                    let field = e.field.map(|f| {
                        if f == "timestamp" {
                            "Timestamp".to_owned()
                        } else {
                            f
                        }
                    });
                    rejected.push(reject(field.as_deref(), e.message));
                    continue;
                }
            }
            // A typed row that does not map is quarantined with its reason;
            // the event itself (its action) is kept either way.
            for (record_type, mut fields) in typed(&name, &event) {
                if record_type != RecordType::Items {
                    fields.insert("timestamp".into(), timestamp.clone());
                    fields.insert("user_id".into(), Value::String(user.clone()));
                }
                match records::parse(record_type, p.workspace_id, fields, now) {
                    Ok(row) => event_rows.push(row),
                    Err(e) => {
                        let mut typed_part = reject(
                            e.field.as_deref(),
                            format!("{} row not kept: {}", record_type.as_str(), e.message),
                        );
                        typed_part.user_id = Some(user.clone());
                        quarantined.push((event_id.clone(), typed_part));
                    }
                }
            }
            rows.extend(event_rows);
            event_ids.push(event_id);
        }
        summary.rejected = rejected.len() as u64;
        let workspace_id = p.workspace_id;
        // Rejected events, and the typed parts that did not map of events not
        // received before, are quarantined together.
        let rejected_events = rejected.clone();
        let typed_parts = quarantined.clone();
        let mut loaded_types: Vec<RecordType> = rows.iter().map(Row::record_type).collect();
        loaded_types.sort_by_key(|t| t.as_str());
        loaded_types.dedup();
        let (accepted, duplicate) = crate::db::write_tx(&self.db, |tx| {
            Box::pin(async move {
                // Events received before (another delivery) are dropped with their rows.
                let known: HashSet<String> = playfab_events::Entity::find()
                    .filter(playfab_events::Column::WorkspaceId.eq(workspace_id))
                    .filter(playfab_events::Column::EventId.is_in(event_ids.clone()))
                    .all(tx)
                    .await?
                    .into_iter()
                    .map(|e| e.event_id)
                    .collect();
                let new_ids: Vec<&String> =
                    event_ids.iter().filter(|id| !known.contains(*id)).collect();
                let fresh = drop_known(rows, &event_ids, &known);
                let mut to_quarantine = rejected_events;
                to_quarantine.extend(
                    typed_parts
                        .into_iter()
                        .filter(|(id, _)| !known.contains(id))
                        .map(|(_, r)| r),
                );
                for chunk in new_ids.chunks(500) {
                    playfab_events::Entity::insert_many(chunk.iter().map(|id| {
                        playfab_events::ActiveModel {
                            workspace_id: Set(workspace_id),
                            event_id: Set((*id).clone()),
                            received_at: Set(now),
                        }
                    }))
                    .exec_without_returning(tx)
                    .await?;
                }
                load::write(
                    tx,
                    workspace_id,
                    RecordType::Actions,
                    Origin::PlayFab,
                    fresh,
                    &to_quarantine,
                    now,
                )
                .await?;
                Ok((new_ids.len() as u64, known.len() as u64))
            })
        })
        .await?;
        if accepted > 0 {
            self.after_load(workspace_id, &loaded_types).await;
        }
        summary.accepted = accepted;
        summary.duplicate += duplicate;
        rejected.extend(quarantined.into_iter().map(|(_, r)| r));
        rejected.truncate(20);
        summary.errors = rejected;
        Ok(summary)
    }
}

/// Rows are pushed per event in order: its action, then its typed rows.
/// Removes the rows of events received before.
fn drop_known(rows: Vec<Row>, event_ids: &[String], known: &HashSet<String>) -> Vec<Row> {
    if known.is_empty() {
        return rows;
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut current_known = false;
    let mut ids = event_ids.iter();
    for row in rows {
        match &row {
            Row::Action(_) => {
                current_known = ids.next().is_some_and(|id| known.contains(id));
                if !current_known {
                    out.push(row);
                }
            }
            _ if !current_known => out.push(row),
            _ => {}
        }
    }
    out
}
