//! What a source trait reads from its rows: a column or one key of a
//! key/value parameter list (`action_params.damage`, cast to the result
//! type), and filters with their literals, checked against the source model.

use chrono::{DateTime, NaiveDate, Utc};

use super::definition::{
    FilterConfig, FilterOp, FilterPlan, Literal, ModelInfo, ResultType, ValueRef, invalid,
};
use crate::{Result, catalog::DataType};

/// `column` or `params_column.key`; parameter values are text and get cast by `result_type`.
pub(super) fn value_ref(
    source: &ModelInfo,
    path: &str,
    result_type: ResultType,
    field: &str,
) -> Result<ValueRef> {
    if let Some(dt) = source.columns.get(path) {
        if *dt == DataType::Json {
            return Err(invalid(
                field,
                format!("`{path}` is a key/value list: name one key, as `{path}.<key>`"),
            ));
        }
        return Ok(ValueRef {
            column: path.to_owned(),
            data_type: *dt,
            param_key: None,
            cast: None,
        });
    }
    let Some((col, key)) = path.split_once('.') else {
        return Err(invalid(
            field,
            format!("`{path}` is not a column of `{}`", source.slug),
        ));
    };
    match source.columns.get(col) {
        Some(DataType::Json) if !key.is_empty() && key.len() <= 200 => Ok(ValueRef {
            column: col.to_owned(),
            data_type: DataType::Json,
            param_key: Some(key.to_owned()),
            cast: Some(match result_type {
                ResultType::Number => DataType::Number,
                ResultType::Timestamp => DataType::Timestamp,
                _ => DataType::Text,
            }),
        }),
        Some(_) => Err(invalid(
            field,
            format!("`{col}` is not a key/value list, so `{path}` names nothing"),
        )),
        None => Err(invalid(
            field,
            format!("`{path}` is not a column of `{}`", source.slug),
        )),
    }
}

pub(super) fn filter_plan(source: &ModelInfo, f: &FilterConfig, field: &str) -> Result<FilterPlan> {
    let op = FilterOp::parse(&f.op).ok_or_else(|| {
        invalid(
            &format!("{field}.op"),
            format!("unknown operator '{}' ({})", f.op, FilterOp::expected()),
        )
    })?;
    // A parameter compared with a number is cast to a number; otherwise compared as text.
    let numeric_param = matches!(&f.value, serde_json::Value::Number(_))
        || matches!(&f.value, serde_json::Value::Array(a) if a.first().is_some_and(|v| v.is_number()));
    let hint = if numeric_param {
        ResultType::Number
    } else {
        ResultType::Text
    };
    let target = value_ref(source, &f.column, hint, &format!("{field}.column"))?;
    let kind = target.cast.unwrap_or(target.data_type);
    let vfield = format!("{field}.value");
    let values = match op {
        FilterOp::IsNull | FilterOp::IsNotNull => Vec::new(),
        FilterOp::In | FilterOp::NotIn => {
            let items = f
                .value
                .as_array()
                .ok_or_else(|| invalid(&vfield, "must be a list for in / not_in"))?;
            if items.is_empty() || items.len() > 1000 {
                return Err(invalid(&vfield, "must hold 1 to 1000 values"));
            }
            items
                .iter()
                .map(|v| literal(v, kind, &vfield))
                .collect::<Result<_>>()?
        }
        _ => vec![literal(&f.value, kind, &vfield)?],
    };
    if kind == DataType::Boolean
        && !matches!(
            op,
            FilterOp::Eq | FilterOp::NotEq | FilterOp::IsNull | FilterOp::IsNotNull
        )
    {
        return Err(invalid(
            &format!("{field}.op"),
            "booleans compare with = and != only",
        ));
    }
    Ok(FilterPlan { target, op, values })
}

fn literal(v: &serde_json::Value, kind: DataType, field: &str) -> Result<Literal> {
    use serde_json::Value as J;
    let bad = |what: &str| invalid(field, format!("expected {what}, got {v}"));
    Ok(match kind {
        DataType::Number => match v {
            J::Number(n) => Literal::Number(n.as_f64().ok_or_else(|| bad("a number"))?),
            J::String(s) => Literal::Number(s.trim().parse().map_err(|_| bad("a number"))?),
            _ => return Err(bad("a number")),
        },
        DataType::Text => match v {
            J::String(s) => Literal::Text(s.clone()),
            J::Number(n) => Literal::Text(n.to_string()),
            J::Bool(b) => Literal::Text(b.to_string()),
            _ => return Err(bad("text")),
        },
        DataType::Boolean => Literal::Bool(v.as_bool().ok_or_else(|| bad("true or false"))?),
        DataType::Timestamp => {
            let s = v.as_str().ok_or_else(|| bad("an RFC 3339 timestamp"))?;
            Literal::Timestamp(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|_| bad("an RFC 3339 timestamp"))?
                    .with_timezone(&Utc),
            )
        }
        DataType::Date => {
            let s = v.as_str().ok_or_else(|| bad("a YYYY-MM-DD date"))?;
            Literal::Date(
                NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad("a YYYY-MM-DD date"))?,
            )
        }
        DataType::Json => {
            return Err(invalid(
                field,
                "key/value lists are filtered by one key: `column.key`",
            ));
        }
    })
}
