//! Segment filter trees: parsed from JSON with errors that name the node
//! (`filter.and[1].value`), checked against the workspace's traits and the
//! survey's facets, and compiled to one `EXISTS`-based condition over
//! `players` that the database evaluates for every player at once.
//!
//! ```json
//! {"and": [
//!   {"trait": "total_spend", "op": ">=", "value": 100},
//!   {"not": {"facet": "personality.Openness", "op": "between", "value": [40, 60]}},
//!   {"or": [{"trait": "country", "op": "in", "value": ["DE", "FR"]},
//!           {"trait": "badges", "op": "contains", "value": "founder"}]}
//! ]}
//! ```
//!
//! A condition holds only for players that have a value: `!=` does not match
//! players without one, `{"not": …}` does, and `exists` asks for a value
//! (`"value": false` for none).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    DbBackend,
    sea_query::{Alias, Cond, Expr, ExprTrait, Func, Query, SelectStatement, SimpleExpr},
};
use serde_json::Value;
use uuid::Uuid;

use crate::{Error, Result, traits::definition::ResultType};

/// Nesting deeper than this is refused (it is a mistake, and a stack risk).
const MAX_DEPTH: usize = 16;
/// Conditions per tree.
const MAX_CONDITIONS: usize = 200;

/// What a condition reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Subject {
    /// A trait of the players model, resolved to its id and value column.
    Trait {
        id: Uuid,
        slug: String,
        result_type: ResultType,
    },
    /// A psychological score (survey or predicted).
    Facet { category: String, facet: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Between,
    In,
    Contains,
    Exists,
}

impl Op {
    pub const ALL: [(&'static str, Op); 10] = [
        ("=", Op::Eq),
        ("!=", Op::NotEq),
        ("<", Op::Lt),
        ("<=", Op::LtEq),
        (">", Op::Gt),
        (">=", Op::GtEq),
        ("between", Op::Between),
        ("in", Op::In),
        ("contains", Op::Contains),
        ("exists", Op::Exists),
    ];

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.iter().find(|(n, _)| *n == s).map(|(_, op)| *op)
    }

    /// Whether the operator means something for values of this type.
    fn applies_to(self, kind: ResultType) -> bool {
        use ResultType::*;
        match self {
            Op::Exists => true,
            Op::Eq | Op::NotEq => kind != Array,
            Op::Lt | Op::LtEq | Op::Gt | Op::GtEq | Op::Between | Op::In => {
                matches!(kind, Number | Timestamp | Text)
            }
            Op::Contains => matches!(kind, Text | Array),
        }
    }

    fn name(self) -> &'static str {
        Op::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// A literal of the subject's type.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Number(f64),
    Text(String),
    Boolean(bool),
    Timestamp(DateTime<Utc>),
}

impl Scalar {
    fn expr(&self) -> Expr {
        match self {
            Scalar::Number(n) => Expr::val(*n),
            Scalar::Text(s) => Expr::val(s.clone()),
            Scalar::Boolean(b) => Expr::val(*b),
            Scalar::Timestamp(t) => Expr::val(*t),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    Compare(Op, Scalar),
    Between(Scalar, Scalar),
    In(Vec<Scalar>),
    /// Substring of a text value, or element of an array value.
    Contains(Scalar),
    Exists(bool),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Condition { subject: Subject, test: Test },
}

/// What a tree may name: the players model's traits by slug, and the facets
/// the survey scores.
pub struct Vocabulary {
    pub traits: HashMap<String, (Uuid, ResultType)>,
    pub facets: Vec<(String, String)>,
}

impl Node {
    /// Parses and checks a filter tree; `path` names the field in errors.
    pub fn parse(value: &Value, vocabulary: &Vocabulary) -> Result<Node> {
        let mut conditions = 0;
        parse_node(value, "filter", 0, vocabulary, &mut conditions)
    }

    /// The traits this tree reads.
    pub fn trait_ids(&self) -> Vec<Uuid> {
        let mut ids = Vec::new();
        self.walk(&mut |subject| {
            if let Subject::Trait { id, .. } = subject {
                ids.push(*id);
            }
        });
        ids.sort();
        ids.dedup();
        ids
    }

    /// Whether it reads psych scores (so new scores change its members).
    pub fn reads_facets(&self) -> bool {
        let mut any = false;
        self.walk(&mut |subject| any |= matches!(subject, Subject::Facet { .. }));
        any
    }

    fn walk(&self, f: &mut impl FnMut(&Subject)) {
        match self {
            Node::And(children) | Node::Or(children) => {
                children.iter().for_each(|c| c.walk(f));
            }
            Node::Not(child) => child.walk(f),
            Node::Condition { subject, .. } => f(subject),
        }
    }

    /// The condition on `players` (aliased `p`) for one workspace.
    pub fn condition(&self, backend: DbBackend, ws: Uuid) -> Cond {
        match self {
            Node::And(children) => children
                .iter()
                .fold(Cond::all(), |c, n| c.add(n.condition(backend, ws))),
            Node::Or(children) => children
                .iter()
                .fold(Cond::any(), |c, n| c.add(n.condition(backend, ws))),
            Node::Not(child) => child.condition(backend, ws).not(),
            Node::Condition { subject, test } => leaf(backend, ws, subject, test),
        }
    }
}

fn a(name: &str) -> Alias {
    Alias::new(name)
}

/// `EXISTS (SELECT 1 FROM <value table> WHERE <it belongs to p> AND <test>)`.
fn leaf(backend: DbBackend, ws: Uuid, subject: &Subject, test: &Test) -> Cond {
    let (mut lookup, column): (SelectStatement, Expr) = match subject {
        Subject::Trait {
            id, result_type, ..
        } => {
            let mut q = Query::select();
            q.expr(Expr::val(1))
                .from_as(a("trait_values"), a("v"))
                .and_where(Expr::col((a("v"), a("workspace_id"))).eq(ws))
                .and_where(Expr::col((a("v"), a("trait_id"))).eq(*id))
                .and_where(Expr::col((a("v"), a("entity_id"))).equals((a("p"), a("user_id"))));
            (q, Expr::col((a("v"), a(result_type.value_column()))))
        }
        Subject::Facet { category, facet } => {
            let mut q = Query::select();
            q.expr(Expr::val(1))
                .from_as(a("psych_scores"), a("s"))
                .and_where(Expr::col((a("s"), a("workspace_id"))).eq(ws))
                .and_where(Expr::col((a("s"), a("user_id"))).equals((a("p"), a("user_id"))))
                .and_where(Expr::col((a("s"), a("category"))).eq(category.as_str()))
                .and_where(Expr::col((a("s"), a("facet"))).eq(facet.as_str()));
            (q, Expr::col((a("s"), a("score"))))
        }
    };
    let array = matches!(
        subject,
        Subject::Trait {
            result_type: ResultType::Array,
            ..
        }
    );
    let predicate: SimpleExpr = match test {
        Test::Exists(wanted) => {
            lookup.and_where(column.is_not_null());
            let exists = Expr::exists(lookup);
            return if *wanted {
                Cond::all().add(exists)
            } else {
                Cond::all().add(exists).not()
            };
        }
        Test::Compare(op, v) => {
            let v = v.expr();
            match op {
                Op::Eq => column.eq(v),
                Op::NotEq => column.ne(v),
                Op::Lt => column.lt(v),
                Op::LtEq => column.lte(v),
                Op::Gt => column.gt(v),
                _ => column.gte(v),
            }
        }
        Test::Between(lo, hi) => column.between(lo.expr(), hi.expr()),
        Test::In(values) => column.is_in(values.iter().map(Scalar::expr)),
        Test::Contains(v) if array => match backend {
            // jsonb containment of a one-element array: `["a","b"] @> ["a"]`.
            DbBackend::Postgres => {
                Expr::cust_with_exprs("$1 @> jsonb_build_array($2)", [column, v.expr()])
            }
            _ => {
                let mut each = Query::select();
                each.expr(Expr::val(1))
                    .from_function(Func::cust(a("json_each")).arg(column), a("e"))
                    .and_where(Expr::col((a("e"), a("value"))).eq(v.expr()));
                Expr::exists(each)
            }
        },
        // Case-sensitive on both backends (LIKE is not on SQLite) and free of wildcards.
        Test::Contains(v) => {
            let find = if backend == DbBackend::Postgres {
                "strpos"
            } else {
                "instr"
            };
            Func::cust(a(find)).arg(column).arg(v.expr()).gt(0)
        }
    };
    lookup.and_where(predicate);
    Cond::all().add(Expr::exists(lookup))
}

fn invalid(path: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid(path, message)
}

fn parse_node(
    value: &Value,
    path: &str,
    depth: usize,
    vocabulary: &Vocabulary,
    conditions: &mut usize,
) -> Result<Node> {
    if depth > MAX_DEPTH {
        return Err(invalid(
            path,
            format!("nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    let Value::Object(map) = value else {
        return Err(invalid(
            path,
            "must be an object: {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}} or a condition {\"trait\"|\"facet\", \"op\", \"value\"}",
        ));
    };
    for (key, make) in [
        ("and", Node::And as fn(Vec<Node>) -> Node),
        ("or", Node::Or),
    ] {
        if let Some(children) = map.get(key) {
            if map.len() != 1 {
                return Err(invalid(path, format!("an `{key}` node has no other keys")));
            }
            let Value::Array(children) = children else {
                return Err(invalid(&format!("{path}.{key}"), "must be a list of nodes"));
            };
            if children.is_empty() {
                return Err(invalid(&format!("{path}.{key}"), "must not be empty"));
            }
            let nodes = children
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    parse_node(
                        c,
                        &format!("{path}.{key}[{i}]"),
                        depth + 1,
                        vocabulary,
                        conditions,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(make(nodes));
        }
    }
    if let Some(child) = map.get("not") {
        if map.len() != 1 {
            return Err(invalid(path, "a `not` node has no other keys"));
        }
        let inner = parse_node(
            child,
            &format!("{path}.not"),
            depth + 1,
            vocabulary,
            conditions,
        )?;
        return Ok(Node::Not(Box::new(inner)));
    }
    *conditions += 1;
    if *conditions > MAX_CONDITIONS {
        return Err(invalid(
            path,
            format!("a filter has at most {MAX_CONDITIONS} conditions"),
        ));
    }
    parse_condition(map, path, vocabulary)
}

fn parse_condition(
    map: &serde_json::Map<String, Value>,
    path: &str,
    vocabulary: &Vocabulary,
) -> Result<Node> {
    if let Some(unknown) = map
        .keys()
        .find(|k| !["trait", "facet", "op", "value"].contains(&k.as_str()))
    {
        return Err(invalid(
            &format!("{path}.{unknown}"),
            "is not a filter key (and, or, not, trait, facet, op, value)",
        ));
    }
    let subject = match (map.get("trait"), map.get("facet")) {
        (Some(Value::String(slug)), None) => {
            let (id, result_type) = vocabulary.traits.get(slug).ok_or_else(|| {
                invalid(
                    &format!("{path}.trait"),
                    format!("no trait `{slug}` on the players model"),
                )
            })?;
            Subject::Trait {
                id: *id,
                slug: slug.clone(),
                result_type: *result_type,
            }
        }
        (None, Some(Value::String(name))) => {
            let field = format!("{path}.facet");
            let (category, facet) = name.split_once('.').ok_or_else(|| {
                invalid(
                    &field,
                    "must be `category.Facet`, e.g. `personality.Openness`",
                )
            })?;
            if !vocabulary
                .facets
                .iter()
                .any(|(c, f)| c == category && f == facet)
            {
                return Err(invalid(
                    &field,
                    format!("the survey scores no facet `{name}`"),
                ));
            }
            Subject::Facet {
                category: category.to_owned(),
                facet: facet.to_owned(),
            }
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                path,
                "a condition names either `trait` or `facet`, not both",
            ));
        }
        (None, None) => {
            return Err(invalid(
                path,
                "must be `and`, `or`, `not`, or a condition naming a `trait` or a `facet`",
            ));
        }
        (Some(_), None) => return Err(invalid(&format!("{path}.trait"), "must be a trait slug")),
        (None, Some(_)) => return Err(invalid(&format!("{path}.facet"), "must be a string")),
    };
    let op_field = format!("{path}.op");
    let op = match map.get("op") {
        Some(Value::String(s)) => Op::parse(s).ok_or_else(|| {
            invalid(
                &op_field,
                format!(
                    "unknown operator `{s}`; one of {}",
                    Op::ALL.map(|(n, _)| n).join(", ")
                ),
            )
        })?,
        _ => return Err(invalid(&op_field, "is required")),
    };
    let kind = match &subject {
        Subject::Trait { result_type, .. } => *result_type,
        Subject::Facet { .. } => ResultType::Number,
    };
    let test = parse_test(
        op,
        kind,
        map.get("value"),
        &format!("{path}.value"),
        &op_field,
    )?;
    Ok(Node::Condition { subject, test })
}

fn parse_test(
    op: Op,
    kind: ResultType,
    value: Option<&Value>,
    field: &str,
    op_field: &str,
) -> Result<Test> {
    if !op.applies_to(kind) {
        let allowed: Vec<&str> = Op::ALL
            .iter()
            .filter(|(_, o)| o.applies_to(kind))
            .map(|(n, _)| *n)
            .collect();
        return Err(invalid(
            op_field,
            format!(
                "`{}` does not apply to a {} value; use one of {}",
                op.name(),
                kind.as_str(),
                allowed.join(", ")
            ),
        ));
    }
    if op == Op::Exists {
        return match value {
            None | Some(Value::Null) => Ok(Test::Exists(true)),
            Some(Value::Bool(b)) => Ok(Test::Exists(*b)),
            Some(_) => Err(invalid(
                field,
                "for `exists` is true or false (default true)",
            )),
        };
    }
    let value = value
        .filter(|v| !v.is_null())
        .ok_or_else(|| invalid(field, "is required"))?;
    match op {
        Op::Between => match value {
            Value::Array(pair) if pair.len() == 2 => {
                let lo = scalar(&pair[0], kind, &format!("{field}[0]"))?;
                let hi = scalar(&pair[1], kind, &format!("{field}[1]"))?;
                Ok(Test::Between(lo, hi))
            }
            _ => Err(invalid(
                field,
                "for `between` is a list of two bounds [low, high]",
            )),
        },
        Op::In => match value {
            Value::Array(list) if !list.is_empty() && list.len() <= 1000 => Ok(Test::In(
                list.iter()
                    .enumerate()
                    .map(|(i, v)| scalar(v, kind, &format!("{field}[{i}]")))
                    .collect::<Result<_>>()?,
            )),
            _ => Err(invalid(field, "for `in` is a list of 1 to 1000 values")),
        },
        Op::Contains if kind == ResultType::Array => match value {
            Value::String(s) => Ok(Test::Contains(Scalar::Text(s.clone()))),
            Value::Number(n) => Ok(Test::Contains(Scalar::Number(n.as_f64().unwrap_or(0.0)))),
            _ => Err(invalid(
                field,
                "for `contains` on a list is a string or a number",
            )),
        },
        Op::Contains => Ok(Test::Contains(scalar(value, kind, field)?)),
        _ => Ok(Test::Compare(op, scalar(value, kind, field)?)),
    }
}

fn scalar(value: &Value, kind: ResultType, field: &str) -> Result<Scalar> {
    match (kind, value) {
        (ResultType::Number, Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Scalar::Number)
            .ok_or_else(|| invalid(field, "must be a finite number")),
        (ResultType::Text, Value::String(s)) => Ok(Scalar::Text(s.clone())),
        (ResultType::Boolean, Value::Bool(b)) => Ok(Scalar::Boolean(*b)),
        (ResultType::Timestamp, Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
            })
            .map(Scalar::Timestamp)
            .map_err(|_| invalid(field, "must be an RFC 3339 timestamp or a YYYY-MM-DD date")),
        (kind, _) => Err(invalid(field, format!("must be a {} value", kind.as_str()))),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    use super::*;

    fn vocabulary() -> Vocabulary {
        let id = |n: u128| Uuid::from_u128(n);
        Vocabulary {
            traits: [
                ("spend".to_owned(), (id(1), ResultType::Number)),
                ("platform".to_owned(), (id(2), ResultType::Text)),
                ("badges".to_owned(), (id(3), ResultType::Array)),
            ]
            .into(),
            facets: vec![("personality".into(), "Openness".into())],
        }
    }

    /// The generated membership SQL, pinned per backend.
    #[test]
    fn membership_sql_per_backend() {
        let tree = Node::parse(
            &serde_json::json!({"and": [
                {"trait": "spend", "op": "between", "value": [10, 20]},
                {"not": {"trait": "platform", "op": "contains", "value": "Steam"}},
                {"or": [
                    {"trait": "badges", "op": "contains", "value": "founder"},
                    {"facet": "personality.Openness", "op": "exists", "value": false}
                ]}
            ]}),
            &vocabulary(),
        )
        .unwrap();
        assert_eq!(tree.trait_ids().len(), 3);
        assert!(tree.reads_facets());
        let (ws, segment) = (Uuid::from_u128(7), Uuid::from_u128(8));
        let pg = crate::segments::membership_statement(DbBackend::Postgres, ws, segment, &tree);
        let lite = crate::segments::membership_statement(DbBackend::Sqlite, ws, segment, &tree);
        insta::assert_snapshot!("membership_postgres", pg.to_string(PostgresQueryBuilder));
        insta::assert_snapshot!("membership_sqlite", lite.to_string(SqliteQueryBuilder));
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let mut deep = serde_json::json!({"trait": "spend", "op": "exists"});
        for _ in 0..20 {
            deep = serde_json::json!({ "not": deep });
        }
        let e = Node::parse(&deep, &vocabulary()).unwrap_err();
        assert!(e.to_string().contains("deeper"), "{e}");
        let wide: Vec<_> = (0..201)
            .map(|_| serde_json::json!({"trait": "spend", "op": "exists"}))
            .collect();
        let e = Node::parse(&serde_json::json!({ "or": wide }), &vocabulary()).unwrap_err();
        assert!(e.to_string().contains("at most 200"), "{e}");
    }
}
