//! The record schemas of the player API's behavioural data, one per root
//! folder: a JSON object becomes a typed row, or a field error that names the
//! field. Unknown fields are kept in `extra`; empty strings are null.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use sea_orm::ActiveValue::Set;
use serde_json::{Map, Value};
use uuid::Uuid;

use entity::{
    actions, items, kpis, level_ups, logins, purchases, social_dynamics, virtual_purchases,
};

use crate::text_enum::text_enum;

text_enum! {
    /// The eight root folders of a bucket, and the `{type}` of `POST /v1/events/{type}`.
    pub enum RecordType {
        Purchases => "purchases",
        Logins => "logins",
        Actions => "actions",
        Kpis => "kpis",
        VirtualPurchases => "virtual_purchases",
        LevelUps => "level_ups",
        Items => "items",
        SocialDynamics => "social_dynamics",
    }
}

/// Why a record was refused.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub field: Option<String>,
    pub message: String,
}

impl FieldError {
    pub(super) fn at(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

/// A validated record, ready to insert.
#[derive(Clone, Debug)]
pub enum Row {
    Purchase(purchases::ActiveModel),
    Login(logins::ActiveModel),
    Action(actions::ActiveModel),
    Kpi(kpis::ActiveModel),
    VirtualPurchase(virtual_purchases::ActiveModel),
    LevelUp(level_ups::ActiveModel),
    Item(items::ActiveModel),
    SocialDynamic(social_dynamics::ActiveModel),
    /// A row of a workspace's own model.
    Custom(super::target::CustomRow),
}

impl Row {
    /// The built-in record type of the row (None for a custom model's row).
    pub fn record_type(&self) -> Option<RecordType> {
        Some(match self {
            Row::Purchase(_) => RecordType::Purchases,
            Row::Login(_) => RecordType::Logins,
            Row::Action(_) => RecordType::Actions,
            Row::Kpi(_) => RecordType::Kpis,
            Row::VirtualPurchase(_) => RecordType::VirtualPurchases,
            Row::LevelUp(_) => RecordType::LevelUps,
            Row::Item(_) => RecordType::Items,
            Row::SocialDynamic(_) => RecordType::SocialDynamics,
            Row::Custom(_) => return None,
        })
    }

    /// Marks an event row with the file line it came from (items are upserts and need no mark).
    pub fn stamp(&mut self, file_id: Uuid, line: i64) {
        macro_rules! stamp {
            ($m:expr) => {{
                $m.source_file_id = Set(Some(file_id));
                $m.line_number = Set(Some(line));
            }};
        }
        match self {
            Row::Purchase(m) => stamp!(m),
            Row::Login(m) => stamp!(m),
            Row::Action(m) => stamp!(m),
            Row::Kpi(m) => stamp!(m),
            Row::VirtualPurchase(m) => stamp!(m),
            Row::LevelUp(m) => stamp!(m),
            Row::SocialDynamic(m) => stamp!(m),
            Row::Custom(r) => {
                r.source_file_id = Some(file_id);
                r.line_number = Some(line);
            }
            Row::Item(_) => {}
        }
    }
}

/// Reads fields out of one record, remembering which were used.
pub(super) struct Fields {
    pub(super) map: Map<String, Value>,
}

const TIMESTAMP_FORMATS: &str =
    "YYYY-MM-DD HH:MM:SS (UTC), RFC 3339, or epoch seconds/milliseconds";

impl Fields {
    /// Present and not an empty string (empty strings mean null, e.g. `churn_date: ""`).
    pub(super) fn take(&mut self, name: &str) -> Option<Value> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(v) => Some(v),
        }
    }

    pub(super) fn text(&mut self, name: &str) -> Result<Option<String>, FieldError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(FieldError::at(
                name,
                format!("expected text, got {}", kind(&other)),
            )),
        }
    }

    pub(super) fn required_text(&mut self, name: &str) -> Result<String, FieldError> {
        self.text(name)?
            .ok_or_else(|| FieldError::at(name, "is required"))
    }

    pub(super) fn float(&mut self, name: &str) -> Result<Option<f64>, FieldError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| FieldError::at(name, "is out of range")),
            Some(Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| FieldError::at(name, format!("'{s}' is not a number"))),
            Some(other) => Err(FieldError::at(
                name,
                format!("expected a number, got {}", kind(&other)),
            )),
        }
    }

    pub(super) fn int(&mut self, name: &str) -> Result<Option<i64>, FieldError> {
        match self.float(name)? {
            None => Ok(None),
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            Some(f) => Err(FieldError::at(name, format!("{f} is not a whole number"))),
        }
    }

    pub(super) fn timestamp(&mut self, name: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
        let bad = |shown: &str| {
            FieldError::at(
                name,
                format!("'{shown}' is not a timestamp ({TIMESTAMP_FORMATS})"),
            )
        };
        let parsed = match self.take(name) {
            None => return Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .and_then(epoch)
                .ok_or_else(|| bad(&n.to_string()))?,
            Some(Value::String(s)) => parse_timestamp(s.trim()).ok_or_else(|| bad(&s))?,
            Some(other) => {
                return Err(FieldError::at(
                    name,
                    format!("expected a timestamp, got {}", kind(&other)),
                ));
            }
        };
        Ok(Some(parsed))
    }

    pub(super) fn required_timestamp(&mut self, name: &str) -> Result<DateTime<Utc>, FieldError> {
        self.timestamp(name)?
            .ok_or_else(|| FieldError::at(name, "is required"))
    }

    pub(super) fn date(&mut self, name: &str) -> Result<Option<NaiveDate>, FieldError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(Some)
                .map_err(|_| FieldError::at(name, format!("'{s}' is not a date (YYYY-MM-DD)"))),
            Some(other) => Err(FieldError::at(
                name,
                format!("expected a YYYY-MM-DD date, got {}", kind(&other)),
            )),
        }
    }

    /// A key/value parameter list: `[{"key": …, "value": …}]`, or that list as JSON text (CSV).
    pub(super) fn params(&mut self, name: &str) -> Result<Option<Value>, FieldError> {
        let list = match self.take(name) {
            None => return Ok(None),
            Some(Value::String(s)) => serde_json::from_str::<Value>(&s)
                .map_err(|e| FieldError::at(name, format!("is not a JSON key/value list: {e}")))?,
            Some(v) => v,
        };
        let Value::Array(items) = list else {
            return Err(FieldError::at(
                name,
                format!(
                    "expected a list of {{\"key\", \"value\"}}, got {}",
                    kind(&list)
                ),
            ));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let Value::Object(mut kv) = item else {
                return Err(FieldError::at(
                    &format!("{name}[{i}]"),
                    "expected {\"key\", \"value\"}",
                ));
            };
            let key = match kv.remove("key") {
                Some(Value::String(k)) if !k.is_empty() => k,
                _ => {
                    return Err(FieldError::at(
                        &format!("{name}[{i}].key"),
                        "is required text",
                    ));
                }
            };
            // Values are text in the data model; scalars are kept as their text.
            let value = match kv.remove("value") {
                None | Some(Value::Null) => Value::Null,
                Some(Value::String(v)) => Value::String(v),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => Value::String(v.to_string()),
                Some(other) => {
                    return Err(FieldError::at(
                        &format!("{name}[{i}].value"),
                        format!("expected text, got {}", kind(&other)),
                    ));
                }
            };
            out.push(serde_json::json!({ "key": key, "value": value }));
        }
        Ok(Some(Value::Array(out)))
    }

    /// Whatever was not part of the schema.
    pub(super) fn extra(self) -> Option<Value> {
        let empty = self.map.is_empty();
        (!empty).then_some(Value::Object(self.map))
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Epoch seconds, or milliseconds when the number is too large to be seconds.
fn epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let millis = if n >= 1.0e11 { n } else { n * 1000.0 };
    let t = Utc.timestamp_millis_opt(millis as i64).single()?;
    sane(t)
}

fn sane(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (1970..=2200)
        .contains(&chrono::Datelike::year(&t))
        .then_some(t)
}

pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return epoch(s.parse().ok()?);
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return sane(t.and_utc());
        }
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| sane(t.with_timezone(&Utc)))
}

/// Validates one record of `record_type` into a row of its table.
pub fn parse(
    record_type: RecordType,
    workspace_id: Uuid,
    object: Map<String, Value>,
    loaded_at: DateTime<Utc>,
) -> Result<Row, FieldError> {
    let mut f = Fields { map: object };
    let id = Uuid::now_v7();
    Ok(match record_type {
        RecordType::Items => {
            let item_id = f.required_text("item_id")?;
            let price = f.float("price")?;
            let currency = f.text("currency")?;
            let name = f.text("name")?;
            let item_type = f.text("type")?;
            Row::Item(items::ActiveModel {
                workspace_id: Set(workspace_id),
                item_id: Set(item_id),
                price: Set(price),
                currency: Set(currency),
                name: Set(name),
                r#type: Set(item_type),
                extra: Set(f.extra()),
                updated_at: Set(loaded_at),
            })
        }
        event => {
            let timestamp = f.required_timestamp("timestamp")?;
            let user_id = f.required_text("user_id")?;
            macro_rules! event_row {
                ($variant:ident, $module:ident { $($field:ident: $value:expr),* $(,)? }) => {{
                    $(let $field = $value;)*
                    Row::$variant($module::ActiveModel {
                        workspace_id: Set(workspace_id),
                        id: Set(id),
                        user_id: Set(user_id),
                        timestamp: Set(timestamp),
                        $($field: Set($field),)*
                        extra: Set(f.extra()),
                        source_file_id: Set(None),
                        line_number: Set(None),
                        loaded_at: Set(loaded_at),
                    })
                }};
            }
            match event {
                RecordType::Purchases => event_row!(
                    Purchase,
                    purchases {
                        item_id: f.text("item_id")?,
                        count: f.int("count")?,
                        price: f.float("price")?,
                        platform: f.text("platform")?,
                    }
                ),
                RecordType::Logins => event_row!(
                    Login,
                    logins {
                        clan_id: f.text("clan_id")?,
                        level: f.int("level")?,
                        device: f.text("device")?,
                        country: f.text("country")?,
                        language: f.text("language")?,
                        platform: f.text("platform")?,
                        register_date: f.date("register_date")?,
                        last_login_timestamp: f.timestamp("last_login_timestamp")?,
                    }
                ),
                RecordType::Actions => event_row!(
                    Action,
                    actions {
                        action_id: f.text("action_id")?,
                        action_name: f.text("action_name")?,
                        action_params: f.params("action_params")?,
                    }
                ),
                RecordType::VirtualPurchases => event_row!(
                    VirtualPurchase,
                    virtual_purchases {
                        item_id: f.text("item_id")?,
                        count: f.int("count")?,
                        virtual_price: f.float("virtual_price")?,
                        currency: f.text("currency")?,
                    }
                ),
                RecordType::LevelUps => event_row!(
                    LevelUp,
                    level_ups {
                        level: f.int("level")?
                    }
                ),
                RecordType::SocialDynamics => event_row!(
                    SocialDynamic,
                    social_dynamics {
                        target_user_id: f.text("target_user_id")?,
                        interaction: f.text("interaction")?,
                        interaction_params: f.params("interaction_params")?,
                    }
                ),
                RecordType::Kpis => event_row!(
                    Kpi,
                    kpis {
                        kpi_id: f.required_text("kpi_id")?,
                        value: f
                            .float("value")?
                            .ok_or_else(|| FieldError::at("value", "is required"))?,
                        register_date: f.date("register_date")?,
                        churn_date: f.date("churn_date")?,
                    }
                ),
                RecordType::Items => unreachable!("handled above"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_documented_form() {
        let want = Utc.with_ymd_and_hms(2019, 1, 1, 15, 4, 5).unwrap();
        for s in [
            "2019-01-01 15:04:05",
            "2019-01-01T15:04:05Z",
            "2019-01-01T17:04:05+02:00",
            "1546355045",
            "1546355045000",
        ] {
            assert_eq!(parse_timestamp(s), Some(want), "{s}");
        }
        for s in [
            "2019-13-01 15:04:05",
            "01/01/2019",
            "yesterday",
            "",
            "99999999999999999999",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s}");
        }
    }
}
