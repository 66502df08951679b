//! `CROSS JOIN UNNEST(arr) AS t (x)`, Flink's way to expand an array into rows.
//!
//! DataFusion cannot unnest an array taken from another relation of the FROM clause
//! (a lateral table function), but it plans `unnest(..)` in a select list. So the join is
//! rewritten in the AST into a derived table with the left relation's name:
//!
//! ```text
//! FROM posts AS p CROSS JOIN UNNEST(p.tags) AS t (tag)
//!   => FROM (SELECT p.*, unnest(p.tags) AS tag FROM posts AS p) AS p
//! ```
//! and references to `t.tag` become `p.tag`. Rows whose array is NULL or empty produce no
//! rows, as a cross join does. `FROM a, UNNEST(..)` is the same join written with a comma.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, Ident, JoinConstraint, JoinOperator, ObjectNamePart,
    Query, Select, SetExpr, TableAlias, TableFactor,
};

use crate::dialect::FlinkDialect;

/// Rewrite every `CROSS JOIN UNNEST` of a query (and its subqueries in FROM).
pub(crate) fn rewrite_unnest(q: &mut Query) -> Result<(), String> {
    rewrite_set_expr(&mut q.body)
}

fn rewrite_set_expr(s: &mut SetExpr) -> Result<(), String> {
    match s {
        SetExpr::Select(sel) => rewrite_select(sel),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left)?;
            rewrite_set_expr(right)
        }
        SetExpr::Query(q) => rewrite_unnest(q),
        _ => Ok(()),
    }
}

/// `UNNEST(..) [AS t (cols)]`: sqlparser gives Flink's dialect a table function call named
/// UNNEST (its UNNEST factor is reserved to a few dialects); both shapes are accepted.
fn is_unnest(t: &TableFactor) -> bool {
    match t {
        TableFactor::UNNEST { .. } => true,
        TableFactor::Table { name, args: Some(_), .. } => name.to_string().eq_ignore_ascii_case("unnest"),
        _ => false,
    }
}

/// The arrays and alias of an UNNEST factor; errors for the forms not supported yet.
fn unnest_parts(t: TableFactor) -> Result<(Vec<Expr>, Option<TableAlias>), String> {
    match t {
        TableFactor::UNNEST { alias, array_exprs, with_offset, with_ordinality, .. } => {
            if with_offset || with_ordinality {
                return Err("UNNEST ... WITH ORDINALITY is not supported yet".into());
            }
            Ok((array_exprs, alias))
        }
        TableFactor::Table { args: Some(args), alias, .. } => {
            let exprs = args
                .args
                .into_iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                    other => Err(format!("unexpected UNNEST argument {other}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((exprs, alias))
        }
        other => Err(format!("{other} is not an UNNEST")),
    }
}

fn rewrite_select(sel: &mut Select) -> Result<(), String> {
    // `FROM a, UNNEST(..)` is `FROM a CROSS JOIN UNNEST(..)`.
    while sel.from.len() > 1 && is_unnest(&sel.from[1].relation) && sel.from[1].joins.is_empty() {
        let u = sel.from.remove(1);
        sel.from[0].joins.insert(
            0,
            sqlparser::ast::Join {
                relation: u.relation,
                global: false,
                join_operator: JoinOperator::CrossJoin(JoinConstraint::None),
            },
        );
    }
    let mut renames: Vec<(String, String)> = Vec::new();
    for twj in sel.from.iter_mut() {
        if let TableFactor::Derived { subquery, .. } = &mut twj.relation {
            rewrite_unnest(subquery)?;
        }
        for j in twj.joins.iter_mut() {
            if let TableFactor::Derived { subquery, .. } = &mut j.relation {
                rewrite_unnest(subquery)?;
            }
        }
        while let Some(k) = twj.joins.iter().position(|j| is_unnest(&j.relation)) {
            if k != 0 {
                return Err("UNNEST must directly follow the table whose array it expands (FROM t CROSS JOIN UNNEST(t.arr) AS x (a))".into());
            }
            let join = twj.joins.remove(0);
            let cross = matches!(
                &join.join_operator,
                JoinOperator::CrossJoin(JoinConstraint::None)
                    | JoinOperator::Join(JoinConstraint::On(Expr::Value(_)))
                    | JoinOperator::Inner(JoinConstraint::On(Expr::Value(_)))
            );
            if !cross {
                return Err("only CROSS JOIN UNNEST is supported yet (LEFT JOIN UNNEST .. ON TRUE is not)".into());
            }
            let (array_exprs, alias) = unnest_parts(join.relation)?;
            let [array] = array_exprs.as_slice() else {
                return Err("UNNEST of several arrays at once is not supported yet".into());
            };
            let column = match alias.as_ref().map(|a| a.columns.as_slice()) {
                None | Some([]) => Ident::new("EXPR$0"),
                Some([c]) => c.name.clone(),
                Some(_) => {
                    return Err("UNNEST of an array of ROWs into several columns is not supported yet; unnest it into one column and use col.field".into())
                }
            };
            let left_name =
                relation_name(&twj.relation).ok_or("the table before CROSS JOIN UNNEST needs a name or an alias")?;
            let left = twj.relation.to_string();
            let sql = format!("SELECT {left_name}.*, unnest({array}) AS {column} FROM {left}");
            let inner = sqlparser::parser::Parser::new(&FlinkDialect)
                .try_with_sql(&sql)
                .and_then(|mut p| p.parse_query())
                .map_err(|e| format!("cannot rewrite UNNEST: {e}"))?;
            twj.relation = TableFactor::Derived {
                lateral: false,
                subquery: inner,
                alias: Some(TableAlias { explicit: true, name: left_name.clone(), columns: vec![], at: None }),
                sample: None,
            };
            if let Some(a) = alias {
                renames.push((a.name.value.clone(), left_name.value.clone()));
            }
        }
    }
    if !renames.is_empty() {
        let _ = visit_expressions_mut(sel, |e| {
            if let Expr::CompoundIdentifier(parts) = e {
                if parts.len() == 2 {
                    if let Some((_, to)) = renames.iter().find(|(from, _)| *from == parts[0].value) {
                        parts[0] = Ident::new(to.clone());
                    }
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    Ok(())
}

/// The name a relation's columns are qualified with: its alias, else its table name.
fn relation_name(t: &TableFactor) -> Option<Ident> {
    match t {
        TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => Some(a.name.clone()),
        TableFactor::Table { name, .. } => match name.0.last() {
            Some(ObjectNamePart::Identifier(i)) => Some(i.clone()),
            _ => None,
        },
        _ => None,
    }
}
