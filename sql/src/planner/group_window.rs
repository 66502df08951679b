//! Flink's legacy group windows, rewritten into window table functions:
//!
//! ```text
//! SELECT k, TUMBLE_START(ts, INTERVAL '1' MINUTE), COUNT(*) FROM t
//! GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE), k
//!   => SELECT k, window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) AS t
//!      GROUP BY window_start, window_end, window_time, k
//! ```
//! `HOP(ts, slide, size)` and `SESSION(ts, gap)` likewise (a legacy session window is per
//! grouping key, so the keys become the SESSION's PARTITION BY); `*_START`, `*_END` and
//! `*_ROWTIME` become `window_start`, `window_end` and `window_time`. Both forms then share
//! one planner and one runtime, with the same lateness rule (a window closes when the
//! watermark reaches its end - 1 ms).

use std::ops::ControlFlow;

use datafusion::common::{DataFusionError, Diagnostic, Span};
use sqlparser::ast::{
    visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Query, Select,
    SetExpr, Spanned, TableAlias, TableFactor,
};

use super::context::EddyContext;
use super::window_tvf::{interval_millis, register_call, WindowTvfCall};
use crate::plan::WindowKind;

/// Rewrite every legacy group window of `q` (and of its subqueries in FROM).
pub(crate) fn rewrite_group_windows(q: &mut Query, ctx: &EddyContext<'_>) -> Result<(), DataFusionError> {
    rewrite_set_expr(&mut q.body, ctx)
}

fn rewrite_set_expr(s: &mut SetExpr, ctx: &EddyContext<'_>) -> Result<(), DataFusionError> {
    match s {
        SetExpr::Select(sel) => rewrite_select(sel, ctx),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left, ctx)?;
            rewrite_set_expr(right, ctx)
        }
        SetExpr::Query(q) => rewrite_group_windows(q, ctx),
        _ => Ok(()),
    }
}

fn err(message: impl Into<String>, span: sqlparser::tokenizer::Span, hint: &str) -> DataFusionError {
    let message = message.into();
    let d = Diagnostic::new_error(message.clone(), Span::try_from_sqlparser_span(span)).with_help(hint, None);
    DataFusionError::Plan(message).with_diagnostic(d)
}

fn group_window_name(e: &Expr) -> Option<String> {
    let Expr::Function(f) = e else { return None };
    let name = f.name.to_string().to_ascii_uppercase();
    matches!(name.as_str(), "TUMBLE" | "HOP" | "SESSION").then_some(name)
}

/// The column name of a plain (possibly qualified) column reference.
fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.clone()),
        _ => None,
    }
}

fn rewrite_select(sel: &mut Select, ctx: &EddyContext<'_>) -> Result<(), DataFusionError> {
    for twj in &mut sel.from {
        for factor in std::iter::once(&mut twj.relation).chain(twj.joins.iter_mut().map(|j| &mut j.relation)) {
            if let TableFactor::Derived { subquery, .. } = factor {
                rewrite_group_windows(subquery, ctx)?;
            }
        }
    }
    let GroupByExpr::Expressions(group, _) = &mut sel.group_by else {
        return Ok(());
    };
    let windows: Vec<usize> = (0..group.len()).filter(|i| group_window_name(&group[*i]).is_some()).collect();
    let [pos] = windows.as_slice() else {
        if windows.len() > 1 {
            return Err(err("a GROUP BY can have only one group window", group[windows[1]].span(), "remove one"));
        }
        return Ok(());
    };
    let window_expr = group.remove(*pos);
    let Expr::Function(f) = &window_expr else {
        return Ok(());
    };
    let function = f.name.to_string().to_ascii_uppercase();
    let span = window_expr.span();
    let usage = match function.as_str() {
        "TUMBLE" => "TUMBLE(time_attr, size)",
        "HOP" => "HOP(time_attr, slide, size)",
        _ => "SESSION(time_attr, gap)",
    };
    let args: Vec<&Expr> = match &f.args {
        FunctionArguments::List(l) => l
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    let expected = if function == "HOP" { 3 } else { 2 };
    if args.len() != expected {
        return Err(err(format!("{function} takes {expected} arguments"), span, usage));
    }
    let Some(time_column) = column_name(args[0]) else {
        return Err(err(format!("the first argument of {function} must be the time attribute column"), span, usage));
    };
    let positive = |e: &Expr| -> Result<i64, DataFusionError> {
        let ms = interval_millis(e, ctx)?;
        if ms <= 0 {
            return Err(err("the interval must be positive", e.span(), usage));
        }
        Ok(ms)
    };
    let window = match function.as_str() {
        "TUMBLE" => WindowKind::Tumble { size: positive(args[1])?, offset: 0 },
        "HOP" => WindowKind::Hop { slide: positive(args[1])?, size: positive(args[2])?, offset: 0 },
        _ => WindowKind::Session { gap: positive(args[1])? },
    };
    // The input: one table or view.
    let relation = match sel.from.as_mut_slice() {
        [twj] if twj.joins.is_empty() => Some(&mut twj.relation),
        _ => None,
    };
    let Some(relation) = relation else {
        return Err(not_single(&function, span));
    };
    let TableFactor::Table { name, alias, args: None, .. } = relation else {
        return Err(not_single(&function, span));
    };
    let table = name.0.iter().filter_map(|p| p.as_ident().map(|i| i.value.clone())).collect::<Vec<_>>().join(".");
    let alias = alias.take().unwrap_or_else(|| TableAlias {
        at: None,
        explicit: false,
        name: name.0.last().and_then(|p| p.as_ident().cloned()).unwrap_or_else(|| Ident::new(&table)),
        columns: vec![],
    });
    let partition_by = if function == "SESSION" { group.iter().filter_map(column_name).collect() } else { vec![] };
    let call = WindowTvfCall {
        function: function.clone(),
        table,
        partition_by,
        time_column,
        window,
        span: Span::try_from_sqlparser_span(span),
        time_span: Span::try_from_sqlparser_span(args[0].span()),
    };
    *relation = register_call(ctx, call, span, Some(alias));
    for (i, c) in ["window_start", "window_end", "window_time"].iter().enumerate() {
        group.insert(pos + i, Expr::Identifier(Ident::new(*c)));
    }
    // TUMBLE_START(..) and friends.
    let mut failure = None;
    let mut replace = |e: &mut Expr| {
        if let Expr::Function(f) = e {
            let name = f.name.to_string().to_ascii_uppercase();
            if let Some(suffix) = name.strip_prefix(&format!("{function}_")) {
                let column = match suffix {
                    "START" => "window_start",
                    "END" => "window_end",
                    "ROWTIME" => "window_time",
                    _ => {
                        failure = Some(err(
                            format!("{name} is not supported"),
                            e.span(),
                            "use the _START, _END or _ROWTIME auxiliary functions",
                        ));
                        return ControlFlow::Break(());
                    }
                };
                *e = Expr::Identifier(Ident::new(column));
            }
        }
        ControlFlow::Continue(())
    };
    for item in &mut sel.projection {
        let _ = visit_expressions_mut(item, &mut replace);
    }
    if let Some(h) = &mut sel.having {
        let _ = visit_expressions_mut(h, &mut replace);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn not_single(function: &str, span: sqlparser::tokenizer::Span) -> DataFusionError {
    err(
        format!("a {function} group window needs a single table or view in FROM"),
        span,
        "write it as a window table function: FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), ..))",
    )
}
