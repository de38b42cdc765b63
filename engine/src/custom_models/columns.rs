//! A custom model's columns: names and types checked, the table's DDL, and
//! what an update's new column list changes.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{
    Alias, ColumnDef, Index, IndexCreateStatement, Table, TableCreateStatement,
};

use entity::{model_columns, models};

use super::ColumnInput;
use crate::{Error, Result, catalog::DataType};

/// Columns every custom table has besides the declared ones.
const RESERVED_COLUMNS: [&str; 5] = [
    "workspace_id",
    "extra",
    "source_file_id",
    "line_number",
    "loaded_at",
];
const MAX_COLUMNS: usize = 200;
const MAX_COLUMN_NAME: usize = 63;

pub(super) struct Column {
    pub(super) name: String,
    pub(super) data_type: DataType,
    pub(super) nullable: bool,
}

fn column_name(name: &str, field: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_COLUMN_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(Error::invalid(
            field,
            format!(
                "`{name}` must be lower-case letters, digits and `_`, starting with a letter (at most {MAX_COLUMN_NAME})"
            ),
        ));
    }
    if RESERVED_COLUMNS.contains(&name) {
        return Err(Error::invalid(
            field,
            format!("`{name}` is reserved ({})", RESERVED_COLUMNS.join(", ")),
        ));
    }
    Ok(())
}

pub(super) fn columns(input: Vec<ColumnInput>) -> Result<Vec<Column>> {
    if input.is_empty() || input.len() > MAX_COLUMNS {
        return Err(Error::invalid(
            "columns",
            format!("must list 1 to {MAX_COLUMNS} columns"),
        ));
    }
    let mut seen = HashSet::new();
    input
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let field = format!("columns[{i}]");
            column_name(&c.name, &format!("{field}.name"))?;
            if !seen.insert(c.name.clone()) {
                return Err(Error::invalid(
                    format!("{field}.name"),
                    format!("`{}` is listed twice", c.name),
                ));
            }
            let data_type = DataType::parse(&c.data_type).ok_or_else(|| {
                Error::invalid(
                    format!("{field}.data_type"),
                    format!("must be one of {}", DataType::expected()),
                )
            })?;
            Ok(Column {
                name: c.name,
                data_type,
                nullable: c.nullable,
            })
        })
        .collect()
}

/// The column `name` names, of the type `want` (any when None).
pub(super) fn declared<'a>(
    cols: &'a [Column],
    name: &str,
    field: &str,
    want: &[DataType],
) -> Result<&'a Column> {
    let c = cols
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::invalid(field, format!("`{name}` is not one of the columns")))?;
    if !want.is_empty() && !want.contains(&c.data_type) {
        let names: Vec<&str> = want.iter().map(|t| t.as_str()).collect();
        return Err(Error::invalid(
            field,
            format!("`{name}` must be of type {}", names.join(" or ")),
        ));
    }
    Ok(c)
}

pub(super) fn column_def(c: &Column) -> ColumnDef {
    let mut def = ColumnDef::new(Alias::new(&c.name));
    match c.data_type {
        DataType::Text => def.string(),
        DataType::Number => def.double(),
        DataType::Boolean => def.boolean(),
        DataType::Timestamp => def.timestamp_with_time_zone(),
        DataType::Date => def.date(),
        DataType::Json => def.json_binary(),
    };
    if c.nullable {
        def.null();
    } else {
        def.not_null();
    }
    def
}

pub(super) fn create_table_sql(
    table: &str,
    cols: &[Column],
    pk: &str,
    user: Option<&str>,
    ts: Option<&str>,
) -> (TableCreateStatement, Option<IndexCreateStatement>) {
    let t = Alias::new(table);
    let mut create = Table::create();
    create
        .table(t.clone())
        .col(ColumnDef::new(Alias::new("workspace_id")).uuid().not_null());
    for c in cols {
        create.col(column_def(c));
    }
    create
        .col(ColumnDef::new(Alias::new("extra")).json_binary().null())
        .col(ColumnDef::new(Alias::new("source_file_id")).uuid().null())
        .col(
            ColumnDef::new(Alias::new("line_number"))
                .big_integer()
                .null(),
        )
        .col(
            ColumnDef::new(Alias::new("loaded_at"))
                .timestamp_with_time_zone()
                .not_null(),
        )
        .primary_key(
            Index::create()
                .col(Alias::new("workspace_id"))
                .col(Alias::new(pk)),
        );
    // Trait evaluation groups by player and windows by time, as on the built-in tables.
    let index = user.filter(|u| *u != pk).map(|u| {
        let mut i = Index::create();
        i.name(format!("idx_{table}_user_time"))
            .table(t)
            .col(Alias::new("workspace_id"))
            .col(Alias::new(u));
        if let Some(ts) = ts {
            i.col(Alias::new(ts));
        }
        i.to_owned()
    });
    (create.to_owned(), index)
}

/// What an update does to the columns.
pub(super) struct ColumnChange {
    pub(super) added: Vec<Column>,
    pub(super) removed: Vec<String>,
    pub(super) next_position: i32,
}

pub(super) fn column_change(
    model: &models::Model,
    old: &[model_columns::Model],
    new: Vec<Column>,
) -> Result<ColumnChange> {
    let old_by_name: HashMap<&str, &model_columns::Model> =
        old.iter().map(|c| (c.name.as_str(), c)).collect();
    let listed: HashSet<String> = new.iter().map(|c| c.name.clone()).collect();
    let mut added = Vec::new();
    for (i, c) in new.into_iter().enumerate() {
        match old_by_name.get(c.name.as_str()) {
            Some(o) if o.data_type != c.data_type || o.nullable != c.nullable => {
                return Err(Error::invalid(
                    format!("columns[{i}]"),
                    format!(
                        "`{}` is {} ({}); a column's type cannot change (add a new column)",
                        c.name,
                        o.data_type,
                        if o.nullable { "nullable" } else { "required" }
                    ),
                ));
            }
            Some(_) => {}
            None if !c.nullable => {
                return Err(Error::invalid(
                    format!("columns[{i}].nullable"),
                    format!(
                        "new column `{}` must be nullable: rows already loaded have no value",
                        c.name
                    ),
                ));
            }
            None => added.push(c),
        }
    }
    let removed: Vec<String> = old
        .iter()
        .map(|c| c.name.clone())
        .filter(|n| !listed.contains(n))
        .collect();
    for key in [
        Some(&model.primary_key),
        model.user_column.as_ref(),
        model.timestamp_column.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if removed.contains(key) {
            return Err(Error::invalid(
                "columns",
                format!(
                    "`{key}` is the model's key, user or timestamp column and cannot be removed"
                ),
            ));
        }
    }
    Ok(ColumnChange {
        next_position: old.iter().map(|c| c.position + 1).max().unwrap_or(0),
        added,
        removed,
    })
}
