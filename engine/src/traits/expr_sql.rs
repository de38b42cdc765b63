//! Renders sandboxed SQL expressions and formulas (the sandbox's [`Node`]
//! tree) as sea-query expressions for one backend: operators parenthesized as
//! written, functions mapped to what each backend has.

use sea_orm::{
    DbBackend,
    sea_query::{BinOper, Expr, ExprTrait, Func, UnOper},
};

use super::{
    compiler::{a, col, null, template},
    sandbox::{BinOp, CastType, Function, Node},
};

/// `x op y`, parenthesized explicitly: the user's grouping must survive re-emission.
fn binary(backend: DbBackend, x: Expr, op: &BinOp, y: Expr) -> Expr {
    let op = match op {
        BinOp::Add => BinOper::Add,
        BinOp::Sub => BinOper::Sub,
        BinOp::Mul => BinOper::Mul,
        BinOp::Div => BinOper::Div,
        BinOp::Mod => BinOper::Mod,
        BinOp::Eq => BinOper::Equal,
        BinOp::NotEq => BinOper::NotEqual,
        BinOp::Lt => BinOper::SmallerThan,
        BinOp::LtEq => BinOper::SmallerThanOrEqual,
        BinOp::Gt => BinOper::GreaterThan,
        BinOp::GtEq => BinOper::GreaterThanOrEqual,
        BinOp::And => BinOper::And,
        BinOp::Or => BinOper::Or,
        BinOp::Concat => {
            return template(
                backend,
                "(CAST($1 AS TEXT) || CAST($2 AS TEXT))",
                vec![x, y],
            );
        }
    };
    template(
        backend,
        "($1)",
        vec![Expr::Binary(Box::new(x), op, Box::new(y))],
    )
}

/// Renders a sandboxed expression. `trait_col(slug)` gives the joined value column of a trait.
pub fn render(backend: DbBackend, n: &Node, trait_col: &dyn Fn(&str) -> Expr) -> Expr {
    let r = |n: &Node| render(backend, n, trait_col);
    match n {
        Node::Column(c) => col("p", c),
        Node::Trait(slug) => trait_col(slug),
        Node::Int(i) => Expr::val(*i),
        Node::Float(f) => Expr::val(*f),
        Node::Str(s) => Expr::val(s.clone()),
        Node::Bool(b) => Expr::val(*b),
        Node::Null => null(),
        Node::Not(x) => Expr::Unary(UnOper::Not, Box::new(r(x))),
        Node::Neg(x) => template(backend, "(-($1))", vec![r(x)]),
        Node::Binary(x, op, y) => binary(backend, r(x), op, r(y)),
        Node::IsNull { expr, negated } => {
            let e = r(expr);
            template(
                backend,
                "($1)",
                vec![if *negated {
                    e.is_not_null()
                } else {
                    e.is_null()
                }],
            )
        }
        Node::Between {
            expr,
            low,
            high,
            negated,
        } => {
            let t = if *negated {
                "($1 NOT BETWEEN $2 AND $3)"
            } else {
                "($1 BETWEEN $2 AND $3)"
            };
            template(backend, t, vec![r(expr), r(low), r(high)])
        }
        Node::InList {
            expr,
            list,
            negated,
        } => {
            let op = if *negated {
                BinOper::NotIn
            } else {
                BinOper::In
            };
            template(
                backend,
                "($1)",
                vec![Expr::Binary(
                    Box::new(r(expr)),
                    op,
                    Box::new(Expr::Tuple(list.iter().map(r).collect())),
                )],
            )
        }
        Node::Like {
            expr,
            pattern,
            negated,
        } => {
            let t = if *negated {
                "($1 NOT LIKE $2)"
            } else {
                "($1 LIKE $2)"
            };
            template(backend, t, vec![r(expr), r(pattern)])
        }
        Node::Case { whens, otherwise } => {
            let mut text = String::from("(CASE");
            let mut args = Vec::new();
            for (c, v) in whens {
                args.push(r(c));
                args.push(r(v));
                text.push_str(&format!(" WHEN ${} THEN ${}", args.len() - 1, args.len()));
            }
            if let Some(o) = otherwise {
                args.push(r(o));
                text.push_str(&format!(" ELSE ${}", args.len()));
            }
            text.push_str(" END)");
            template(backend, &text, args)
        }
        Node::Func(f, args) => {
            let args: Vec<Expr> = args.iter().map(r).collect();
            function(backend, *f, args)
        }
        Node::Cast(x, t) => {
            let ty = match (t, backend) {
                (CastType::Number, DbBackend::Postgres) => "DOUBLE PRECISION",
                (CastType::Number, _) => "REAL",
                (CastType::Integer, _) => "BIGINT",
                (CastType::Text, _) => "TEXT",
            };
            template(backend, &format!("CAST($1 AS {ty})"), vec![r(x)])
        }
    }
}

fn function(backend: DbBackend, f: Function, args: Vec<Expr>) -> Expr {
    let call =
        |name: &'static str, args: Vec<Expr>| -> Expr { Func::cust(a(name)).args(args).into() };
    match f {
        Function::Nullif => call("NULLIF", args),
        Function::Coalesce => call("COALESCE", args),
        Function::Abs => call("ABS", args),
        Function::Lower => call("LOWER", args),
        Function::Upper => call("UPPER", args),
        Function::Length => call("LENGTH", args),
        Function::Least => Func::least(args).into(),
        Function::Greatest => Func::greatest(args).into(),
        // PostgreSQL rounds numerics only, with an integer digit count.
        Function::Round => match (backend, args.len()) {
            (DbBackend::Postgres, 1) => template(backend, "ROUND(CAST($1 AS NUMERIC))", args),
            (DbBackend::Postgres, _) => template(
                backend,
                "ROUND(CAST($1 AS NUMERIC), CAST($2 AS INTEGER))",
                args,
            ),
            _ => call("ROUND", args),
        },
        // SQLite has no FLOOR/CEIL before 3.44; express them portably.
        Function::Floor => match backend {
            DbBackend::Postgres => call("FLOOR", args),
            _ => template(
                backend,
                "(CASE WHEN $1 < CAST($1 AS INTEGER) THEN CAST($1 AS INTEGER) - 1 ELSE CAST($1 AS INTEGER) END)",
                args,
            ),
        },
        Function::Ceil => match backend {
            DbBackend::Postgres => call("CEIL", args),
            _ => template(
                backend,
                "(CASE WHEN $1 > CAST($1 AS INTEGER) THEN CAST($1 AS INTEGER) + 1 ELSE CAST($1 AS INTEGER) END)",
                args,
            ),
        },
    }
}
