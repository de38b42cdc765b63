//! The expression sandbox for `sql` and `formula` traits.
//!
//! User text is parsed with sqlparser and converted into [`Node`], a small AST
//! that can only express what is whitelisted here: literals, the parent
//! model's columns, other traits, arithmetic, comparison, logic, CASE and a
//! fixed list of scalar functions. The compiler renders `Node`s through
//! sea-query with quoted identifiers and bound values, so no user text ever
//! reaches the database as SQL. Anything else is refused with a message
//! saying what was refused.

use sqlparser::{
    ast::{
        self, BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr,
        FunctionArguments, ObjectNamePart, UnaryOperator, Value,
    },
    dialect::GenericDialect,
    parser::Parser,
    tokenizer::{Token, Tokenizer, Whitespace},
};

/// Expressions longer than this are refused before parsing.
pub const MAX_EXPRESSION_LEN: usize = 10_000;
/// Nesting deeper than this is refused (guards the compiler's recursion).
const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A column of the parent model (`sql` traits only).
    Column(String),
    /// Another trait of the same parent model, by slug.
    Trait(String),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    Not(Box<Node>),
    Neg(Box<Node>),
    Binary(Box<Node>, BinOp, Box<Node>),
    IsNull {
        expr: Box<Node>,
        negated: bool,
    },
    Between {
        expr: Box<Node>,
        low: Box<Node>,
        high: Box<Node>,
        negated: bool,
    },
    InList {
        expr: Box<Node>,
        list: Vec<Node>,
        negated: bool,
    },
    Like {
        expr: Box<Node>,
        pattern: Box<Node>,
        negated: bool,
    },
    Case {
        whens: Vec<(Node, Node)>,
        otherwise: Option<Box<Node>>,
    },
    Func(Function, Vec<Node>),
    Cast(Box<Node>, CastType),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastType {
    Number,
    Integer,
    Text,
}

/// The whitelisted scalar functions, with their arities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Nullif,
    Coalesce,
    Round,
    Abs,
    Least,
    Greatest,
    Floor,
    Ceil,
    Lower,
    Upper,
    Length,
}

impl Function {
    const ALL: [(&'static str, Function, usize, usize); 12] = [
        ("NULLIF", Function::Nullif, 2, 2),
        ("COALESCE", Function::Coalesce, 1, 16),
        ("ROUND", Function::Round, 1, 2),
        ("ABS", Function::Abs, 1, 1),
        ("LEAST", Function::Least, 2, 16),
        ("GREATEST", Function::Greatest, 2, 16),
        ("FLOOR", Function::Floor, 1, 1),
        ("CEIL", Function::Ceil, 1, 1),
        ("CEILING", Function::Ceil, 1, 1),
        ("LOWER", Function::Lower, 1, 1),
        ("UPPER", Function::Upper, 1, 1),
        ("LENGTH", Function::Length, 1, 1),
    ];

    fn lookup(name: &str) -> Option<(Function, usize, usize)> {
        Function::ALL
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
            .map(|&(_, f, min, max)| (f, min, max))
    }

    pub fn names() -> String {
        Function::ALL
            .iter()
            .map(|(n, ..)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Which kind of text is being parsed, and what its identifiers may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `{slug}` references only.
    Formula,
    /// Bare identifiers: a parent column or a trait slug.
    Sql,
}

/// Resolves identifiers: to a parent column, a trait, or nothing.
pub trait Scope {
    fn is_column(&self, name: &str) -> bool;
    fn is_trait(&self, slug: &str) -> bool;
}

/// Parses and whitelists an expression. The error says what was refused.
pub fn parse(text: &str, flavor: Flavor, scope: &dyn Scope) -> Result<Node, String> {
    if text.trim().is_empty() {
        return Err("the expression is empty".into());
    }
    if text.len() > MAX_EXPRESSION_LEN {
        return Err(format!(
            "the expression is longer than {MAX_EXPRESSION_LEN} characters"
        ));
    }
    let sql = match flavor {
        Flavor::Formula => replace_references(text)?,
        Flavor::Sql => text.to_owned(),
    };
    let dialect = GenericDialect {};
    // Comments and statement separators are refused outright: a comment can
    // hide text from a reviewer, and `;` means a second statement.
    let tokens = Tokenizer::new(&dialect, &sql)
        .tokenize()
        .map_err(|e| format!("cannot read the expression: {e}"))?;
    for t in &tokens {
        match t {
            Token::SemiColon => {
                return Err("`;` is not allowed: only a single expression is accepted".into());
            }
            Token::Whitespace(
                Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_),
            ) => {
                return Err("comments are not allowed in expressions".into());
            }
            Token::Placeholder(p) => return Err(format!("placeholder `{p}` is not allowed")),
            _ => {}
        }
    }
    let mut parser = Parser::new(&dialect)
        .try_with_sql(&sql)
        .map_err(|e| format!("cannot parse the expression: {e}"))?;
    let expr = parser.parse_expr().map_err(|e| {
        format!(
            "cannot parse the expression: {}",
            strip_parser_prefix(&e.to_string())
        )
    })?;
    if parser.peek_token().token != Token::EOF {
        return Err(format!(
            "unexpected `{}` after the end of the expression",
            parser.peek_token().token
        ));
    }
    Converter { flavor, scope }.convert(&expr, 0)
}

fn strip_parser_prefix(s: &str) -> String {
    s.trim_start_matches("sql parser error: ").to_owned()
}

/// `{slug}` → `"slug"`: a quoted identifier the parser reads as one name.
/// Slugs are `[a-z0-9_]+`, so the quoting is unambiguous. Text inside
/// single-quoted string literals is left as written (`'{total}'` stays a
/// string); a doubled `''` inside one is its escaped quote.
fn replace_references(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 8);
    let mut in_string = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => {
                in_string = !in_string;
                out.push(c);
            }
            _ if in_string => out.push(c),
            '}' => return Err("unbalanced `}` in formula".into()),
            '{' => {
                let after = &text[i + 1..];
                let close = after.find('}').ok_or("unclosed `{` in formula")?;
                let slug = &after[..close];
                if slug.is_empty()
                    || !slug
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    return Err(format!(
                        "`{{{slug}}}` is not a trait reference: use {{slug}} with lower-case letters, digits and _"
                    ));
                }
                out.push('"');
                out.push_str(slug);
                out.push('"');
                // Skip the slug and its closing brace.
                while chars.next_if(|(j, _)| *j <= i + 1 + close).is_some() {}
            }
            _ => out.push(c),
        }
    }
    if !out.matches('"').count().is_multiple_of(2) {
        return Err("unbalanced double quote".into());
    }
    Ok(out)
}

struct Converter<'a> {
    flavor: Flavor,
    scope: &'a dyn Scope,
}

impl Converter<'_> {
    fn convert(&self, e: &Expr, depth: usize) -> Result<Node, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "the expression is nested more than {MAX_DEPTH} levels deep"
            ));
        }
        let c = |e: &Expr| self.convert(e, depth + 1).map(Box::new);
        Ok(match e {
            Expr::Identifier(ident) => self.identifier(ident)?,
            Expr::CompoundIdentifier(parts) => {
                let name = parts
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join(".");
                return Err(format!(
                    "`{name}`: qualified names are not allowed; name a column of the parent model or a trait"
                ));
            }
            Expr::Value(v) => literal(&v.value)?,
            Expr::Nested(inner) => self.convert(inner, depth + 1)?,
            Expr::UnaryOp { op, expr } => match op {
                UnaryOperator::Not => Node::Not(c(expr)?),
                UnaryOperator::Minus => match self.convert(expr, depth + 1)? {
                    Node::Int(i) => Node::Int(-i),
                    Node::Float(f) => Node::Float(-f),
                    other => Node::Neg(Box::new(other)),
                },
                UnaryOperator::Plus => self.convert(expr, depth + 1)?,
                other => return Err(format!("operator `{other}` is not allowed")),
            },
            Expr::BinaryOp { left, op, right } => Node::Binary(c(left)?, binop(op)?, c(right)?),
            Expr::IsNull(inner) => Node::IsNull {
                expr: c(inner)?,
                negated: false,
            },
            Expr::IsNotNull(inner) => Node::IsNull {
                expr: c(inner)?,
                negated: true,
            },
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => Node::Between {
                expr: c(expr)?,
                low: c(low)?,
                high: c(high)?,
                negated: *negated,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                if list.len() > 1000 {
                    return Err("IN lists may hold at most 1000 values".into());
                }
                Node::InList {
                    expr: c(expr)?,
                    list: list
                        .iter()
                        .map(|e| self.convert(e, depth + 1))
                        .collect::<Result<_, _>>()?,
                    negated: *negated,
                }
            }
            Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => Node::Like {
                expr: c(expr)?,
                pattern: c(pattern)?,
                negated: *negated,
            },
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(
                operand.as_deref(),
                conditions,
                else_result.as_deref(),
                depth,
            )?,
            Expr::Function(f) => self.function(f, depth)?,
            Expr::Cast {
                kind: CastKind::Cast,
                expr,
                data_type,
                format: None,
                ..
            } => Node::Cast(c(expr)?, cast_type(data_type)?),
            Expr::Ceil { expr, .. } => {
                Node::Func(Function::Ceil, vec![self.convert(expr, depth + 1)?])
            }
            Expr::Floor { expr, .. } => {
                Node::Func(Function::Floor, vec![self.convert(expr, depth + 1)?])
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                return Err("subqueries are not allowed".into());
            }
            other => return Err(format!("`{other}` is not allowed in a trait expression")),
        })
    }

    fn case(
        &self,
        operand: Option<&Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&Expr>,
        depth: usize,
    ) -> Result<Node, String> {
        let operand = operand.map(|o| self.convert(o, depth + 1)).transpose()?;
        let whens = conditions
            .iter()
            .map(|w| {
                let cond = self.convert(&w.condition, depth + 1)?;
                // Simple CASE `CASE x WHEN 1` becomes searched `CASE WHEN x = 1`.
                let cond = match &operand {
                    Some(o) => Node::Binary(Box::new(o.clone()), BinOp::Eq, Box::new(cond)),
                    None => cond,
                };
                Ok((cond, self.convert(&w.result, depth + 1)?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Node::Case {
            whens,
            otherwise: else_result
                .map(|e| self.convert(e, depth + 1))
                .transpose()?
                .map(Box::new),
        })
    }

    fn identifier(&self, ident: &ast::Ident) -> Result<Node, String> {
        let name = ident.value.as_str();
        let quoted = ident.quote_style.is_some();
        match self.flavor {
            Flavor::Formula => {
                if !quoted {
                    return Err(format!("`{name}`: formulas reference traits as {{slug}}"));
                }
                if self.scope.is_trait(name) {
                    Ok(Node::Trait(name.to_owned()))
                } else {
                    Err(format!("`{{{name}}}` is not a trait of this parent model"))
                }
            }
            Flavor::Sql => {
                if ident.quote_style.is_some_and(|q| q != '"') {
                    return Err(format!(
                        "`{name}`: only double quotes may quote identifiers"
                    ));
                }
                if self.scope.is_column(name) {
                    Ok(Node::Column(name.to_owned()))
                } else if self.scope.is_trait(name) {
                    Ok(Node::Trait(name.to_owned()))
                } else {
                    Err(format!(
                        "`{name}` is neither a column of the parent model nor a trait of it"
                    ))
                }
            }
        }
    }

    fn function(&self, f: &ast::Function, depth: usize) -> Result<Node, String> {
        let name = match f.name.0.as_slice() {
            [ObjectNamePart::Identifier(i)] => i.value.clone(),
            _ => return Err(format!("function `{}` is not allowed", f.name)),
        };
        let Some((func, min, max)) = Function::lookup(&name) else {
            return Err(format!(
                "function `{name}` is not allowed (allowed: {})",
                Function::names()
            ));
        };
        if f.over.is_some()
            || f.filter.is_some()
            || !f.within_group.is_empty()
            || f.null_treatment.is_some()
        {
            return Err(format!(
                "`{name}`: window, FILTER and WITHIN GROUP clauses are not allowed"
            ));
        }
        if !matches!(f.parameters, FunctionArguments::None) {
            return Err(format!("`{name}`: parametric calls are not allowed"));
        }
        let list = match &f.args {
            FunctionArguments::List(l) => l,
            FunctionArguments::None => return Err(format!("`{name}` needs arguments")),
            FunctionArguments::Subquery(_) => return Err("subqueries are not allowed".into()),
        };
        if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
            return Err(format!(
                "`{name}`: DISTINCT and argument clauses are not allowed"
            ));
        }
        let args = list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => self.convert(e, depth + 1),
                _ => Err(format!("`{name}`: only plain arguments are allowed")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            };
            return Err(format!(
                "`{name}` takes {expected} arguments, not {}",
                args.len()
            ));
        }
        Ok(Node::Func(func, args))
    }
}

fn literal(v: &Value) -> Result<Node, String> {
    Ok(match v {
        Value::Number(n, _) => {
            if let Ok(i) = n.parse::<i64>() {
                Node::Int(i)
            } else {
                let f: f64 = n.parse().map_err(|_| format!("`{n}` is not a number"))?;
                if !f.is_finite() {
                    return Err(format!("`{n}` is out of range"));
                }
                Node::Float(f)
            }
        }
        Value::SingleQuotedString(s) => Node::Str(s.clone()),
        Value::Boolean(b) => Node::Bool(*b),
        Value::Null => Node::Null,
        other => {
            return Err(format!(
                "literal `{other}` is not allowed (use 'text', numbers, TRUE, FALSE, NULL)"
            ));
        }
    })
}

fn binop(op: &BinaryOperator) -> Result<BinOp, String> {
    Ok(match op {
        BinaryOperator::Plus => BinOp::Add,
        BinaryOperator::Minus => BinOp::Sub,
        BinaryOperator::Multiply => BinOp::Mul,
        BinaryOperator::Divide => BinOp::Div,
        BinaryOperator::Modulo => BinOp::Mod,
        BinaryOperator::Eq => BinOp::Eq,
        BinaryOperator::NotEq => BinOp::NotEq,
        BinaryOperator::Lt => BinOp::Lt,
        BinaryOperator::LtEq => BinOp::LtEq,
        BinaryOperator::Gt => BinOp::Gt,
        BinaryOperator::GtEq => BinOp::GtEq,
        BinaryOperator::And => BinOp::And,
        BinaryOperator::Or => BinOp::Or,
        BinaryOperator::StringConcat => BinOp::Concat,
        other => return Err(format!("operator `{other}` is not allowed")),
    })
}

fn cast_type(t: &DataType) -> Result<CastType, String> {
    Ok(match t {
        DataType::Numeric(_)
        | DataType::Decimal(_)
        | DataType::Real
        | DataType::Double(_)
        | DataType::DoublePrecision
        | DataType::Float(_) => CastType::Number,
        DataType::Int(_) | DataType::Integer(_) | DataType::BigInt(_) => CastType::Integer,
        DataType::Text | DataType::Varchar(_) => CastType::Text,
        other => {
            return Err(format!(
                "CAST to `{other}` is not allowed (numeric, integer, text)"
            ));
        }
    })
}

impl Node {
    /// The trait slugs this expression reads, in first-seen order.
    pub fn trait_refs(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |n| {
            if let Node::Trait(s) = n
                && !out.contains(s)
            {
                out.push(s.clone());
            }
        });
        out
    }

    /// Whether the expression reads a column of the parent model (`sql` traits).
    pub fn reads_columns(&self) -> bool {
        let mut found = false;
        self.walk(&mut |n| found |= matches!(n, Node::Column(_)));
        found
    }

    fn walk(&self, f: &mut impl FnMut(&Node)) {
        f(self);
        match self {
            Node::Not(a) | Node::Neg(a) | Node::Cast(a, _) => a.walk(f),
            Node::IsNull { expr, .. } => expr.walk(f),
            Node::Binary(a, _, b)
            | Node::Like {
                expr: a,
                pattern: b,
                ..
            } => {
                a.walk(f);
                b.walk(f);
            }
            Node::Between {
                expr, low, high, ..
            } => {
                expr.walk(f);
                low.walk(f);
                high.walk(f);
            }
            Node::InList { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|n| n.walk(f));
            }
            Node::Case { whens, otherwise } => {
                for (c, r) in whens {
                    c.walk(f);
                    r.walk(f);
                }
                if let Some(o) = otherwise {
                    o.walk(f);
                }
            }
            Node::Func(_, args) => args.iter().for_each(|n| n.walk(f)),
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod tests;
