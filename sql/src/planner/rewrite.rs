//! Flink syntax DataFusion does not plan, rewritten in the AST before planning:
//!
//! * `TIMESTAMPDIFF(SECOND, a, b)` / `TIMESTAMPADD(unit, n, t)`: the unit is a bare word,
//!   which DataFusion would resolve as a column; it becomes a string literal.
//! * `IF(c, a, b)` becomes `CASE WHEN c THEN a ELSE b END` (a NULL condition takes ELSE).
//! * `LISTAGG(x [, sep])` is DataFusion's `string_agg(x, sep)`, with Flink's default `,`.
//! * `LOCALTIMESTAMP` / `CURRENT_TIMESTAMP` written without parentheses are calls of
//!   Eddy's clock functions (read per batch), not column names.
//! * `FLOOR(ts TO MINUTE)` / `CEIL(ts TO MINUTE)` become `floor_ts('MINUTE', ts)` / `ceil_ts(..)`.
//! * Types in `CAST`: `TIMESTAMP` without precision is Flink's `TIMESTAMP(6)`,
//!   `TIMESTAMP_LTZ(p)` is a timestamp with the session zone, `BYTES` is binary.

use std::ops::ControlFlow;

use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{
    visit_expressions_mut, CaseWhen, CeilFloorKind, DataType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, TimezoneInfo, Value, VisitMut,
};
use sqlparser::tokenizer::Span;

/// Rewrite every expression inside `node` (a query, an expression...).
pub fn rewrite_flink_syntax<V: VisitMut>(node: &mut V) {
    let _ = visit_expressions_mut(node, |e| {
        rewrite_expr(e);
        ControlFlow::<()>::Continue(())
    });
}

fn rewrite_expr(e: &mut Expr) {
    match e {
        Expr::Function(f) => rewrite_function(f).into_iter().for_each(|new| *e = new),
        Expr::Floor { expr, field: CeilFloorKind::DateTimeField(unit) } => {
            *e = call("floor_ts", vec![string(&unit.to_string()), (**expr).clone()]);
        }
        Expr::Ceil { expr, field: CeilFloorKind::DateTimeField(unit) } => {
            *e = call("ceil_ts", vec![string(&unit.to_string()), (**expr).clone()]);
        }
        Expr::Cast { data_type, .. } => rewrite_type(data_type),
        Expr::Identifier(i) if i.quote_style.is_none() => {
            let upper = i.value.to_ascii_uppercase();
            if matches!(upper.as_str(), "LOCALTIMESTAMP" | "CURRENT_TIMESTAMP") {
                *e = call(&upper.to_ascii_lowercase(), vec![]);
            }
        }
        _ => {}
    }
}

/// A replacement for a function call, if it needs one.
fn rewrite_function(f: &mut Function) -> Option<Expr> {
    let name = f.name.to_string().to_ascii_uppercase();
    let FunctionArguments::List(list) = &mut f.args else { return None };
    match name.as_str() {
        "TIMESTAMPDIFF" | "TIMESTAMPADD" => {
            if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(first))) = list.args.first_mut() {
                if let Expr::Identifier(unit) = first {
                    *first = string(&unit.value.to_ascii_uppercase());
                }
            }
            None
        }
        "LISTAGG" if matches!(list.args.len(), 1 | 2) => {
            if list.args.len() == 1 {
                list.args.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(string(","))));
            }
            f.name = ObjectName::from(vec![Ident::new("string_agg")]);
            None
        }
        "IF" if list.args.len() == 3 => {
            let mut args = list.args.iter().filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            });
            let (c, a, b) = (args.next()?, args.next()?, args.next()?);
            Some(Expr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![CaseWhen { condition: c, result: a }],
                else_result: Some(Box::new(b)),
            })
        }
        _ => None,
    }
}

fn rewrite_type(t: &mut DataType) {
    match t {
        DataType::Timestamp(None, tz) => *t = DataType::Timestamp(Some(6), *tz),
        DataType::Custom(name, args) => {
            let n = name.to_string().to_ascii_uppercase();
            let precision = args.first().and_then(|a| a.parse::<u64>().ok());
            match n.as_str() {
                "TIMESTAMP_LTZ" => *t = DataType::Timestamp(Some(precision.unwrap_or(6)), TimezoneInfo::WithTimeZone),
                "BYTES" => *t = DataType::Bytea,
                _ => {}
            }
        }
        _ => {}
    }
}

/// A call of `name(args...)`.
pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn string(s: &str) -> Expr {
    Expr::Value(Value::SingleQuotedString(s.to_string()).with_span(Span::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Statement;
    use crate::parser::parse_sql;

    fn rewritten(sql: &str) -> String {
        let mut v = parse_sql(sql).unwrap();
        let Statement::Query(q) = &mut v[0].node else { panic!() };
        rewrite_flink_syntax(q.as_mut());
        q.to_string()
    }

    #[test]
    fn rewrites_flink_forms() {
        assert_eq!(
            rewritten("SELECT TIMESTAMPDIFF(SECOND, a, b), IF(x > 1, 'a', 'b'), FLOOR(ts TO MINUTE) FROM t"),
            "SELECT TIMESTAMPDIFF('SECOND', a, b), CASE WHEN x > 1 THEN 'a' ELSE 'b' END, floor_ts('MINUTE', ts) FROM t"
        );
        assert_eq!(rewritten("SELECT CAST(a AS TIMESTAMP) FROM t"), "SELECT CAST(a AS TIMESTAMP(6)) FROM t");
    }
}
