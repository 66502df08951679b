//! Postgres queries rewritten into forms DataFusion plans, before datafusion-postgres sees
//! them. Client drivers and ORMs send catalog queries written for Postgres' executor; the
//! rules here keep their meaning and change only their shape:
//!
//! - A correlated scalar subquery in a select list (`(SELECT e FROM t WHERE t.k = o.k)`,
//!   also nested in `CASE`) becomes a `LEFT JOIN` to a derived table keyed by the
//!   correlated columns. DataFusion decorrelates only aggregated subqueries, and not those
//!   under `CASE`; SQLAlchemy's column reflection sends four such subqueries.
//! - `current_user`/`session_user`/`user` answer the connection's user (DataFusion has
//!   one session context for every connection).
//! - A bare integer literal in a select list is `integer` when it fits, as in Postgres
//!   (`SELECT 1` is int4 there, which node-pg decodes as a number).
//! - `generate_subscripts(a, 1)` is the unnest of `range(1, cardinality(a) + 1)`, and
//!   JDBC's `information_schema._pg_expandarray(a)` is the unnest of `(x, n)` structs,
//!   whose fields `(e).x` reads with `get_field`.
//! - psql's `\d+` asks for the options of the relation's TOAST table through
//!   `array(select ... unnest(tc.reloptions) ...)`; Eddy's relations have no TOAST table, so
//!   the array is empty.
//!
//! A statement that does not parse, or that no rule changes, is passed on as it came.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, visit_expressions_mut, AccessExpr, BinaryOperator, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, Query, Select, SelectItem, SetExpr, Statement, TableFactor, Value, VisitMut,
    VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// psql's TOAST-options fragment (`\d+`), as its tokens print.
const PSQL_TOAST_OPTIONS: &str = "array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x)";

/// `sql` rewritten for DataFusion, or `None` when nothing needed rewriting.
pub fn rewrite(sql: &str, user: &str) -> Option<String> {
    let (text, mut changed) = match sql.find(PSQL_TOAST_OPTIONS) {
        Some(_) => (sql.replace(PSQL_TOAST_OPTIONS, "CAST(NULL AS TEXT[])"), true),
        None => (sql.to_string(), false),
    };
    let mut statements = match Parser::parse_sql(&PostgreSqlDialect {}, &text) {
        Ok(s) => s,
        Err(_) => return changed.then_some(text),
    };
    for statement in &mut statements {
        if !matches!(statement, Statement::Query(_)) {
            continue;
        }
        let mut rules = Rules { user, changed: false, next_alias: 0 };
        let _ = statement.visit(&mut rules);
        changed |= rules.changed;
    }
    if !changed {
        return None;
    }
    let text = statements.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("; ");
    tracing::debug!(rewritten = %text, "query rewritten for DataFusion");
    Some(text)
}

struct Rules<'a> {
    user: &'a str,
    changed: bool,
    next_alias: usize,
}

impl VisitorMut for Rules<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(new) = self.rewrite_expr(expr) {
            *expr = new;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            self.typed_literals(select);
            self.decorrelate(select);
        }
        ControlFlow::Continue(())
    }
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).ok()?.parse_expr().ok()
}

fn function_name(name: &ObjectName) -> String {
    name.0.last().map(|p| p.to_string().to_lowercase()).unwrap_or_default()
}

/// The arguments of a plain `f(a, b)` call.
fn plain_args(args: &FunctionArguments) -> Option<Vec<&Expr>> {
    let FunctionArguments::List(list) = args else { return None };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

impl Rules<'_> {
    fn rewrite_expr(&mut self, expr: &Expr) -> Option<Expr> {
        match expr {
            Expr::Identifier(id) if id.quote_style.is_none() => {
                let name = id.value.to_lowercase();
                matches!(name.as_str(), "current_user" | "session_user" | "user" | "current_role")
                    .then(|| Expr::value(Value::SingleQuotedString(self.user.to_string())))
            }
            Expr::Function(f) => {
                let name = function_name(&f.name);
                if matches!(name.as_str(), "current_user" | "session_user" | "current_role")
                    && matches!(f.args, FunctionArguments::None)
                {
                    return Some(Expr::value(Value::SingleQuotedString(self.user.to_string())));
                }
                let args = plain_args(&f.args)?;
                match (name.as_str(), args.as_slice()) {
                    ("generate_subscripts", [array, dim]) if dim.to_string() == "1" => {
                        parse_expr(&format!("unnest(range(1, CAST(cardinality({array}) AS BIGINT) + 1))"))
                    }
                    ("_pg_expandarray", [array]) => parse_expr(&format!("unnest(pg_expandarray({array}))")),
                    _ => None,
                }
            }
            // `(_pg_expandarray(a)).x` and `.n`: the elements and their positions; other
            // `(e).field`s through get_field.
            Expr::CompoundFieldAccess { root, access_chain } => {
                let root = match root.as_ref() {
                    Expr::Nested(e) => e.as_ref(),
                    e => e,
                };
                let [AccessExpr::Dot(Expr::Identifier(key))] = access_chain.as_slice() else { return None };
                // `(composite).field`: DataFusion reads a struct's field with get_field.
                let Expr::Function(f) = root else {
                    return parse_expr(&format!("get_field({root}, '{}')", key.value));
                };
                if function_name(&f.name) != "_pg_expandarray" {
                    return parse_expr(&format!("get_field({root}, '{}')", key.value));
                }
                let array = plain_args(&f.args)?.first()?.to_string();
                match key.value.to_lowercase().as_str() {
                    "x" => parse_expr(&format!("unnest({array})")),
                    "n" => parse_expr(&format!("unnest(range(1, CAST(cardinality({array}) AS BIGINT) + 1))")),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// `SELECT 1` answers `integer`, as Postgres types a literal that fits in 32 bits.
    fn typed_literals(&mut self, select: &mut Select) {
        for item in &mut select.projection {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
                _ => continue,
            };
            let Expr::Value(v) = expr else { continue };
            let Value::Number(n, _) = &v.value else { continue };
            if n.parse::<i32>().is_err() {
                continue;
            }
            let Some(cast) = parse_expr(&format!("CAST({n} AS INTEGER)")) else { continue };
            // Postgres names an unaliased literal column `?column?`.
            let alias = alias.unwrap_or_else(|| Ident::with_quote('"', "?column?"));
            *item = SelectItem::ExprWithAlias { expr: cast, alias };
            self.changed = true;
        }
    }

    /// Replace each correlated scalar subquery in `select`'s list by a column of a
    /// `LEFT JOIN`ed derived table (see the module comment).
    fn decorrelate(&mut self, select: &mut Select) {
        if select.from.len() != 1 {
            return;
        }
        let outer = relation_names(select);
        let mut joins = Vec::new();
        for item in &mut select.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(e) => e,
                SelectItem::ExprWithAlias { expr, .. } => expr,
                _ => continue,
            };
            let _ = visit_expressions_mut(expr, |e| {
                if let Expr::Subquery(q) = e {
                    let alias = format!("__eddy_sq{}", self.next_alias);
                    if let Some((join, column)) = decorrelated(q, &outer, &alias) {
                        self.next_alias += 1;
                        joins.push(join);
                        *e = column;
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
        if !joins.is_empty() {
            select.from[0].joins.extend(joins);
            self.changed = true;
        }
    }
}

/// The names a select's relations are referred to by: the alias, or the table's name
/// (qualified and bare).
fn relation_names(select: &Select) -> HashSet<String> {
    let mut names = HashSet::new();
    for twj in &select.from {
        for factor in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            match factor {
                TableFactor::Table { alias: Some(a), .. }
                | TableFactor::Derived { alias: Some(a), .. }
                | TableFactor::Function { alias: Some(a), .. }
                | TableFactor::UNNEST { alias: Some(a), .. } => {
                    names.insert(a.name.value.to_lowercase());
                }
                TableFactor::Table { name, .. } => {
                    names.insert(name.to_string().to_lowercase());
                    if let Some(last) = name.0.last() {
                        names.insert(last.to_string().to_lowercase());
                    }
                }
                _ => {}
            }
        }
    }
    names
}

/// Which query a column reference belongs to.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Inner,
    Outer,
    Unknown,
}

fn side_of(idents: &[Ident], inner: &HashSet<String>, outer: &HashSet<String>) -> Side {
    let qualifier = idents[..idents.len() - 1].iter().map(|i| i.value.to_lowercase()).collect::<Vec<_>>().join(".");
    if inner.contains(&qualifier) {
        Side::Inner
    } else if outer.contains(&qualifier) {
        Side::Outer
    } else {
        Side::Unknown
    }
}

/// The sides an expression's column references belong to (`None`: one is unknown, or the
/// expression holds a subquery of its own).
fn sides(expr: &Expr, inner: &HashSet<String>, outer: &HashSet<String>) -> Option<(bool, bool)> {
    let (mut has_inner, mut has_outer) = (false, false);
    let flow = visit_expressions(expr, |e| {
        match e {
            Expr::Identifier(_) => has_inner = true,
            Expr::CompoundIdentifier(ids) => match side_of(ids, inner, outer) {
                Side::Inner => has_inner = true,
                Side::Outer => has_outer = true,
                Side::Unknown => return ControlFlow::Break(()),
            },
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => return ControlFlow::Break(()),
            _ => {}
        }
        ControlFlow::Continue(())
    });
    (!flow.is_break()).then_some((has_inner, has_outer))
}

fn conjuncts(expr: &Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(e) => conjuncts(e, out),
        e => out.push(e.clone()),
    }
}

/// Aggregates make a subquery one DataFusion decorrelates itself.
fn has_aggregate(expr: &Expr) -> bool {
    const AGGREGATES: &[&str] = &[
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "every",
        "json_agg",
        "jsonb_agg",
        "json_object_agg",
        "jsonb_object_agg",
    ];
    visit_expressions(expr, |e| match e {
        Expr::Function(f) if AGGREGATES.contains(&function_name(&f.name).as_str()) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// The `LEFT JOIN` and the column that answer scalar subquery `q` correlated with the
/// relations `outer`, or `None` when `q` is not of the shape handled here.
fn decorrelated(q: &Query, outer: &HashSet<String>, alias: &str) -> Option<(sqlparser::ast::Join, Expr)> {
    if q.with.is_some() || q.order_by.is_some() || q.fetch.is_some() {
        return None;
    }
    if let Some(limit) = &q.limit_clause {
        if limit.to_string().trim().to_uppercase() != "LIMIT 1" {
            return None;
        }
    }
    let SetExpr::Select(sub) = q.body.as_ref() else { return None };
    let no_grouping = match &sub.group_by {
        sqlparser::ast::GroupByExpr::Expressions(e, m) => e.is_empty() && m.is_empty(),
        sqlparser::ast::GroupByExpr::All(_) => false,
    };
    if sub.distinct.is_some()
        || sub.having.is_some()
        || !no_grouping
        || sub.projection.len() != 1
        || sub.from.is_empty()
    {
        return None;
    }
    let value = match &sub.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    if has_aggregate(value) {
        return None;
    }
    // A name of both resolves to the subquery's relation, as SQL scoping has it.
    let inner = relation_names(sub);

    let mut parts = Vec::new();
    if let Some(w) = &sub.selection {
        conjuncts(w, &mut parts);
    }
    let (mut inner_preds, mut on, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for p in parts {
        match sides(&p, &inner, outer)? {
            (_, false) => inner_preds.push(p.to_string()),
            (false, true) => on.push(p.to_string()),
            (true, true) => {
                let Expr::BinaryOp { left, op: BinaryOperator::Eq, right } = &p else { return None };
                let (l, r) = (sides(left, &inner, outer)?, sides(right, &inner, outer)?);
                let (inner_side, outer_side) = match (l, r) {
                    ((true, false), (false, true)) => (left, right),
                    ((false, true), (true, false)) => (right, left),
                    _ => return None,
                };
                on.push(format!("{alias}.__k{} = {outer_side}", keys.len()));
                keys.push(format!("{inner_side} AS __k{}", keys.len()));
            }
        }
    }
    if on.is_empty() {
        return None; // not correlated: DataFusion plans it as it is
    }

    // The value, computed in the derived table when it reads only the subquery's
    // relations; otherwise over the derived table's copies of the inner columns it reads,
    // NULL when no row matched.
    let (value_sql, column) = match sides(value, &inner, outer)? {
        (_, false) => (format!("{value} AS __v"), parse_expr(&format!("{alias}.__v"))?),
        _ => {
            let mut copies: Vec<String> = Vec::new();
            let mut outside = value.clone();
            let _ = visit_expressions_mut(&mut outside, |e| {
                let is_inner = match e {
                    Expr::Identifier(_) => true,
                    Expr::CompoundIdentifier(ids) => side_of(ids, &inner, outer) == Side::Inner,
                    _ => false,
                };
                if is_inner {
                    let text = e.to_string();
                    let n = copies.iter().position(|c| *c == text).unwrap_or_else(|| {
                        copies.push(text);
                        copies.len() - 1
                    });
                    *e = Expr::CompoundIdentifier(vec![Ident::new(alias), Ident::new(format!("__c{n}"))]);
                }
                ControlFlow::<()>::Continue(())
            });
            let projected = copies.iter().enumerate().map(|(n, c)| format!("{c} AS __c{n}")).collect::<Vec<_>>();
            let value_sql = if projected.is_empty() { "NULL AS __v".to_string() } else { projected.join(", ") };
            (value_sql, parse_expr(&format!("CASE WHEN {alias}.__present THEN {outside} END"))?)
        }
    };
    let from = sub.from.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
    let mut select_list = keys.clone();
    select_list.push(value_sql);
    select_list.push("TRUE AS __present".into());
    let filter = if inner_preds.is_empty() { String::new() } else { format!(" WHERE {}", inner_preds.join(" AND ")) };
    let derived = format!("SELECT {} FROM {from}{filter}", select_list.join(", "));
    let holder = format!("SELECT 1 FROM __eddy_outer LEFT JOIN ({derived}) AS {alias} ON {}", on.join(" AND "));
    let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, &holder).ok()?;
    let Some(Statement::Query(holder)) = parsed.pop() else { return None };
    let SetExpr::Select(holder) = *holder.body else { return None };
    let join = holder.from.into_iter().next()?.joins.into_iter().next()?;
    Some((join, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlated_subquery_under_case_becomes_a_left_join() {
        let sql = "SELECT a.attname, CASE WHEN a.atthasdef THEN (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d \
                   WHERE a.atthasdef AND d.adrelid = a.attrelid AND d.adnum = a.attnum) END AS dflt FROM pg_attribute a";
        let out = rewrite(sql, "eddy").unwrap();
        assert_eq!(
            out,
            "SELECT a.attname, CASE WHEN a.atthasdef THEN __eddy_sq0.__v END AS dflt FROM pg_attribute a \
             LEFT JOIN (SELECT d.adrelid AS __k0, d.adnum AS __k1, pg_get_expr(d.adbin, d.adrelid) AS __v, true AS __present \
             FROM pg_attrdef d) AS __eddy_sq0 ON a.atthasdef AND __eddy_sq0.__k0 = a.attrelid AND __eddy_sq0.__k1 = a.attnum"
        );
    }

    #[test]
    fn value_reading_the_outer_row_is_computed_outside() {
        let sql = "SELECT (SELECT json_build_object('always', a.x = 'a', 'start', s.start) FROM seq s WHERE s.id = a.id) FROM a";
        let out = rewrite(sql, "eddy").unwrap();
        assert!(out.contains("CASE WHEN __eddy_sq0.__present THEN json_build_object('always', a.x = 'a', 'start', __eddy_sq0.__c0) END"), "{out}");
        assert!(out.contains("SELECT s.id AS __k0, s.start AS __c0, true AS __present FROM seq s"), "{out}");
    }

    #[test]
    fn aggregated_and_uncorrelated_subqueries_are_left_to_datafusion() {
        assert_eq!(rewrite("SELECT a.k, (SELECT max(b.v) FROM b WHERE b.k = a.k) FROM a", "eddy"), None);
        assert_eq!(rewrite("SELECT a.k, (SELECT b.v FROM b WHERE b.k = 1) FROM a", "eddy"), None);
        assert_eq!(rewrite("SELECT k FROM t WHERE k = 1", "eddy"), None);
    }

    #[test]
    fn current_user_is_the_connections() {
        assert_eq!(
            rewrite("SELECT current_database(), current_user", "alice").unwrap(),
            "SELECT current_database(), 'alice'"
        );
    }

    #[test]
    fn integer_literals_are_int4() {
        assert_eq!(rewrite("SELECT 1", "u").unwrap(), "SELECT CAST(1 AS INTEGER) AS \"?column?\"");
        assert_eq!(rewrite("SELECT 1 AS one", "u").unwrap(), "SELECT CAST(1 AS INTEGER) AS one");
        assert_eq!(rewrite("SELECT 10000000000 AS big", "u"), None);
    }

    #[test]
    fn set_returning_array_functions() {
        let out =
            rewrite("SELECT unnest(i.indkey) AS attnum, generate_subscripts(i.indkey, 1) AS ord FROM pg_index i", "u");
        assert_eq!(
            out.unwrap(),
            "SELECT unnest(i.indkey) AS attnum, unnest(range(1, CAST(cardinality(i.indkey) AS BIGINT) + 1)) AS ord FROM pg_index i"
        );
        let out = rewrite(
            "SELECT (information_schema._pg_expandarray(i.indkey)).n AS k, information_schema._pg_expandarray(i.indkey) AS keys FROM pg_index i",
            "u",
        )
        .unwrap();
        assert_eq!(
            out,
            "SELECT unnest(range(1, CAST(cardinality(i.indkey) AS BIGINT) + 1)) AS k, unnest(pg_expandarray(i.indkey)) AS keys FROM pg_index i"
        );
        assert_eq!(
            rewrite("SELECT r.a FROM r WHERE r.a = (r.keys).x", "u").unwrap(),
            "SELECT r.a FROM r WHERE r.a = get_field(r.keys, 'x')"
        );
    }
}
