//! Flink's window table functions in FROM:
//!
//! ```text
//! TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND [, offset]))
//! TABLE(HOP(DATA => TABLE t, TIMECOL => DESCRIPTOR(ts), SLIDE => .., SIZE => ..))
//! TABLE(SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '5' SECOND))
//! ```
//!
//! DataFusion has no table functions that take a table, so each call is replaced in the
//! AST by a reference to a generated table name (`__window_tvf_N`), and the call's
//! arguments are kept in the [`EddyContext`]. When DataFusion asks the context for that
//! table, it gets the [`WindowTableFunction`] logical node over the input table's plan,
//! which DataFusion's `InlineTableScan` rule splices into the query.

use std::ops::ControlFlow;

use datafusion::common::{DFSchema, DataFusionError, Diagnostic, ScalarValue, Span};
use datafusion::logical_expr::Expr as DfExpr;
use datafusion::sql::planner::PlannerContext;
use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgOperator, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Query, Spanned, TableFactor, VisitMut, VisitorMut,
};

use super::context::EddyContext;
use super::query::sql_to_rel;
use crate::dialect::TABLE_ARGUMENT;
use crate::plan::WindowKind;

/// Prefix of the generated table names that stand for window table function calls.
pub(crate) const WINDOW_TVF_PREFIX: &str = "__window_tvf_";

/// One window table function call, with its arguments checked.
#[derive(Debug, Clone)]
pub(crate) struct WindowTvfCall {
    /// `TUMBLE`, `HOP`, `CUMULATE` or `SESSION`.
    pub function: String,
    /// The input table or view.
    pub table: String,
    /// `PARTITION BY` keys (SESSION only).
    pub partition_by: Vec<String>,
    /// The `DESCRIPTOR` column.
    pub time_column: String,
    /// The window.
    pub window: WindowKind,
    /// Where the call starts (for errors found later).
    pub span: Option<Span>,
    /// Where the DESCRIPTOR column is.
    pub time_span: Option<Span>,
}

/// Replace every window table function call of `q` by a generated table name registered in
/// `ctx`.
pub(crate) fn rewrite_window_tvfs(q: &mut Query, ctx: &EddyContext<'_>) -> Result<(), DataFusionError> {
    let mut v = Rewriter { ctx };
    match q.visit(&mut v) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Rewriter<'a, 'b> {
    ctx: &'a EddyContext<'b>,
}

impl VisitorMut for Rewriter<'_, '_> {
    type Break = DataFusionError;

    fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<DataFusionError> {
        let TableFactor::TableFunction { expr: Expr::Function(f), alias } = t else {
            return ControlFlow::Continue(());
        };
        let name = f.name.to_string().to_ascii_uppercase();
        if !matches!(name.as_str(), "TUMBLE" | "HOP" | "CUMULATE" | "SESSION") {
            return ControlFlow::Continue(());
        }
        let call = match parse_call(&name, f, self.ctx) {
            Ok(c) => c,
            Err(e) => return ControlFlow::Break(e),
        };
        let span = f.span();
        let alias = alias.take();
        *t = register_call(self.ctx, call, span, alias);
        ControlFlow::Continue(())
    }
}

/// Keep `call` in the context and return the table reference that stands for it (named after
/// the call's place, so errors about the reference point at the call).
pub(crate) fn register_call(
    ctx: &EddyContext<'_>,
    call: WindowTvfCall,
    span: sqlparser::tokenizer::Span,
    alias: Option<sqlparser::ast::TableAlias>,
) -> TableFactor {
    let table = format!("{WINDOW_TVF_PREFIX}{}", ctx.window_calls.borrow().len());
    ctx.window_calls.borrow_mut().push(call);
    TableFactor::Table {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::with_span(span, table))]),
        alias,
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    }
}

/// Parameter names in positional order (Flink's `DATA`, `TIMECOL`, ...).
fn parameters(function: &str) -> &'static [&'static str] {
    match function {
        "TUMBLE" => &["DATA", "TIMECOL", "SIZE", "OFFSET"],
        "HOP" => &["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"],
        "CUMULATE" => &["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"],
        _ => &["DATA", "TIMECOL", "GAP"],
    }
}

fn signature(function: &str) -> String {
    match function {
        "TUMBLE" => "TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])".into(),
        "HOP" => "HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])".into(),
        "CUMULATE" => "CUMULATE(TABLE t, DESCRIPTOR(ts), step, size [, offset])".into(),
        _ => "SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap)".into(),
    }
}

fn err(message: impl Into<String>, span: sqlparser::tokenizer::Span, hint: Option<String>) -> DataFusionError {
    let message = message.into();
    let mut d = Diagnostic::new_error(message.clone(), Span::try_from_sqlparser_span(span));
    if let Some(h) = hint {
        d = d.with_help(h, None);
    }
    DataFusionError::Plan(message).with_diagnostic(d)
}

fn parse_call(function: &str, f: &Function, ctx: &EddyContext<'_>) -> Result<WindowTvfCall, DataFusionError> {
    let call_span = f.span();
    let params = parameters(function);
    let usage = || Some(format!("the call is {}", signature(function)));
    let FunctionArguments::List(list) = &f.args else {
        return Err(err(format!("{function} needs arguments"), call_span, usage()));
    };
    // Match named and positional arguments to parameters, as Calcite does: positional
    // ones first, in order.
    let mut values: Vec<Option<&Expr>> = vec![None; params.len()];
    for (i, arg) in list.args.iter().enumerate() {
        let (slot, e) = match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (i, e),
            FunctionArg::Named { name, arg: FunctionArgExpr::Expr(e), operator: FunctionArgOperator::RightArrow } => {
                let upper = name.value.to_ascii_uppercase();
                match params.iter().position(|p| *p == upper) {
                    Some(p) => (p, e),
                    None => {
                        return Err(err(
                            format!("{function} has no parameter named '{}'", name.value),
                            name.span,
                            Some(format!("its parameters are {}", params.join(", "))),
                        ))
                    }
                }
            }
            other => {
                return Err(err(format!("unexpected argument '{other}' of {function}"), call_span, usage()));
            }
        };
        if slot >= params.len() {
            return Err(err(format!("too many arguments for {function}"), e.span(), usage()));
        }
        if values[slot].is_some() {
            return Err(err(format!("{function}'s {} is given twice", params[slot]), e.span(), usage()));
        }
        values[slot] = Some(e);
    }
    let required = if params.last() == Some(&"OFFSET") { params.len() - 1 } else { params.len() };
    for (p, v) in params.iter().zip(&values).take(required) {
        if v.is_none() {
            return Err(err(format!("{function} is missing its {p} argument"), call_span, usage()));
        }
    }
    let arg = |i: usize| values[i].ok_or_else(|| err("missing argument", call_span, usage()));

    // DATA: `TABLE t [PARTITION BY k]`, which the dialect parses as the call TABLE(t, k..).
    let data = arg(0)?;
    let (table, partition_by) = match data {
        Expr::Function(t) if t.name.to_string() == TABLE_ARGUMENT => {
            let FunctionArguments::List(l) = &t.args else {
                return Err(err("expected TABLE name", data.span(), usage()));
            };
            let mut names = l.args.iter().map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::CompoundIdentifier(parts))) => {
                    Some(parts.iter().map(|p| p.value.clone()).collect::<Vec<_>>().join("."))
                }
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(i))) => Some(i.value.clone()),
                _ => None,
            });
            let table = names.next().flatten().ok_or_else(|| err("expected TABLE name", data.span(), usage()))?;
            let keys: Vec<String> = names.flatten().collect();
            (table, keys)
        }
        other => {
            return Err(err(
                format!("the first argument of {function} must be a table, written TABLE name"),
                other.span(),
                usage(),
            ))
        }
    };
    if !partition_by.is_empty() && function != "SESSION" {
        return Err(err(format!("{function} does not take PARTITION BY"), data.span(), usage()));
    }

    // TIMECOL: DESCRIPTOR(col).
    let timecol = arg(1)?;
    let (time_column, time_span) = match timecol {
        Expr::Function(d) if d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => match &d.args {
            FunctionArguments::List(l) if l.args.len() == 1 => match &l.args[0] {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(i))) => (i.value.clone(), i.span),
                _ => return Err(err("DESCRIPTOR takes one column name", timecol.span(), usage())),
            },
            _ => return Err(err("DESCRIPTOR takes one column name", timecol.span(), usage())),
        },
        other => {
            return Err(err(
                format!("the time column of {function} must be written DESCRIPTOR(column)"),
                other.span(),
                usage(),
            ))
        }
    };

    let duration = |i: usize| -> Result<i64, DataFusionError> {
        let e = arg(i)?;
        let ms = interval_millis(e, ctx)?;
        if ms <= 0 {
            return Err(err(format!("{function}'s {} must be a positive interval", params[i]), e.span(), None));
        }
        Ok(ms)
    };
    let offset = |i: usize| -> Result<i64, DataFusionError> {
        match values.get(i).copied().flatten() {
            Some(e) => interval_millis(e, ctx),
            None => Ok(0),
        }
    };
    let window = match function {
        "TUMBLE" => WindowKind::Tumble { size: duration(2)?, offset: offset(3)? },
        "HOP" => {
            let (slide, size) = (duration(2)?, duration(3)?);
            WindowKind::Hop { slide, size, offset: offset(4)? }
        }
        "CUMULATE" => {
            let (step, size) = (duration(2)?, duration(3)?);
            if size % step != 0 {
                return Err(err(
                    "CUMULATE requires the max size to be an integral multiple of the step",
                    arg(3)?.span(),
                    None,
                ));
            }
            WindowKind::Cumulate { step, size, offset: offset(4)? }
        }
        _ => WindowKind::Session { gap: duration(2)? },
    };
    Ok(WindowTvfCall {
        function: function.to_string(),
        table,
        partition_by,
        time_column,
        window,
        span: Span::try_from_sqlparser_span(call_span),
        time_span: Span::try_from_sqlparser_span(time_span),
    })
}

/// A constant day-time interval in milliseconds.
pub(crate) fn interval_millis(e: &Expr, ctx: &EddyContext<'_>) -> Result<i64, DataFusionError> {
    let not_interval = || {
        err(
            format!("expected a constant interval such as INTERVAL '10' SECOND, found '{e}'"),
            e.span(),
            Some("window sizes are day-time intervals: SECOND, MINUTE, HOUR or DAY".into()),
        )
    };
    let planned = sql_to_rel(ctx).sql_to_expr(e.clone(), &DFSchema::empty(), &mut PlannerContext::new())?;
    let DfExpr::Literal(value, _) = planned else {
        return Err(not_interval());
    };
    match value {
        ScalarValue::IntervalDayTime(Some(v)) => Ok(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds)),
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Ok(i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        ScalarValue::DurationMillisecond(Some(v)) => Ok(v),
        ScalarValue::DurationSecond(Some(v)) => Ok(v * 1000),
        _ => Err(not_interval()),
    }
}
