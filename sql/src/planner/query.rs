//! Planning queries with DataFusion: AST (after Flink rewrites) -> DataFusion LogicalPlan,
//! analysed and optimised, and DataFusion errors turned into located [`SqlError`]s.

use datafusion::common::{DataFusionError, Diagnostic};
use datafusion::logical_expr::{col, LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::planner::{ParserOptions, SqlToRel};
use sqlparser::ast::{Query, Statement as SqlStatement};

use super::context::EddyContext;
use super::group_window::rewrite_group_windows;
use super::rewrite::rewrite_flink_syntax;
use super::unnest::rewrite_unnest;
use super::window_tvf::rewrite_window_tvfs;
use crate::catalog::ViewDef;
use crate::error::{Location, SqlError};

/// DataFusion's SQL planner configured for Flink: case-sensitive identifiers, strings as
/// Utf8, float literals as DOUBLE, spans collected for error locations.
pub(crate) fn sql_to_rel<'a>(ctx: &'a EddyContext<'a>) -> SqlToRel<'a, EddyContext<'a>> {
    let mut options = ParserOptions::new();
    options.enable_ident_normalization = false;
    options.map_string_types_to_utf8view = false;
    options.parse_float_as_decimal = false;
    options.collect_spans = true;
    SqlToRel::new_with_options(ctx, options)
}

/// The (unoptimised) logical plan of a query.
pub(crate) fn plan_query(ctx: &EddyContext<'_>, query: &Query) -> Result<LogicalPlan, DataFusionError> {
    let mut q = query.clone();
    rewrite_unnest(&mut q).map_err(DataFusionError::NotImplemented)?;
    rewrite_flink_syntax(&mut q);
    super::temporal::rewrite_versioned_tables(&mut q, ctx);
    rewrite_group_windows(&mut q, ctx)?;
    rewrite_window_tvfs(&mut q, ctx)?;
    let plan = sql_to_rel(ctx).sql_statement_to_plan(SqlStatement::Query(Box::new(q)))?;
    name_field_accesses(plan)
}

/// Flink names a selected field of a ROW column (`SELECT bid.auction`) by the field
/// (`auction`); DataFusion by the whole access (`t.bid[auction]`). The query's own output
/// columns get Flink's names (where no other output column has that name already), so that
/// views such as Nexmark's (`CREATE VIEW bid AS SELECT bid.auction, ...`) expose the columns
/// their users select.
fn name_field_accesses(plan: LogicalPlan) -> Result<LogicalPlan, DataFusionError> {
    use datafusion::logical_expr::{Expr, Projection};
    let LogicalPlan::Projection(p) = &plan else { return Ok(plan) };
    let field_name = |e: &Expr| match e {
        Expr::ScalarFunction(f) if f.name() == "get_field" => match f.args.get(1) {
            Some(Expr::Literal(datafusion::common::ScalarValue::Utf8(Some(name)), _)) => Some(name.clone()),
            _ => None,
        },
        _ => None,
    };
    let names: Vec<String> = p.schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut renamed = false;
    let exprs: Vec<Expr> = p
        .expr
        .iter()
        .map(|e| match field_name(e) {
            Some(name)
                if !names.contains(&name)
                    && p.expr.iter().filter(|x| field_name(x).as_ref() == Some(&name)).count() == 1 =>
            {
                renamed = true;
                e.clone().alias(name)
            }
            _ => e.clone(),
        })
        .collect();
    if !renamed {
        return Ok(plan);
    }
    Ok(LogicalPlan::Projection(Projection::try_new(exprs, p.input.clone())?))
}

/// The plan of a view, with its declared column names and its name as alias.
pub(crate) fn plan_view(ctx: &EddyContext<'_>, view: &ViewDef) -> Result<LogicalPlan, DataFusionError> {
    let plan = plan_query(ctx, &view.query)?;
    let mut builder = LogicalPlanBuilder::from(plan);
    if !view.columns.is_empty() {
        let exprs: Vec<_> =
            builder.schema().columns().into_iter().zip(&view.columns).map(|(c, name)| col(c).alias(name)).collect();
        builder = builder.project(exprs)?;
    }
    builder.alias(view.name.as_str())?.build()
}

/// A DataFusion error as a located SQL error: the diagnostic's span when DataFusion gives
/// one, else `fallback` (the statement's start).
pub(crate) fn df_error(e: DataFusionError, fallback: Location) -> SqlError {
    // The innermost diagnostic with a place is the most precise (DataFusion wraps errors of
    // table lookups in a diagnostic of its own).
    let diagnostics = diagnostics(&e);
    let located = diagnostics
        .iter()
        .rev()
        .find_map(|d| d.span.map(|s| (Location::new(s.start.line, s.start.column), *d)))
        .filter(|(l, _)| l.is_known());
    let location = located.map(|(l, _)| l).unwrap_or(fallback);
    let help = located.map(|(_, d)| d).or(diagnostics.first().copied()).and_then(|d| d.helps.first());
    let root = e.find_root();
    let (kind_unsupported, message) = match root {
        DataFusionError::NotImplemented(m) => (true, m.clone()),
        DataFusionError::Plan(m) => (false, m.clone()),
        DataFusionError::SchemaError(s, _) => (false, s.to_string()),
        other => (false, other.to_string()),
    };
    let message = clean_message(&message);
    let mut err =
        if kind_unsupported { SqlError::unsupported(location, message) } else { SqlError::plan(location, message) };
    if let Some(help) = help {
        err = err.with_hint(help.message.clone());
    }
    err
}

/// The diagnostics of an error and of the errors it wraps, outermost first.
fn diagnostics(e: &DataFusionError) -> Vec<&Diagnostic> {
    let mut out = Vec::new();
    let mut current = e;
    loop {
        match current {
            DataFusionError::Diagnostic(d, source) => {
                out.push(d.as_ref());
                current = source;
            }
            DataFusionError::Context(_, source) => current = source,
            DataFusionError::Collection(errs) if !errs.is_empty() => current = &errs[0],
            _ => return out,
        }
    }
}

fn clean_message(m: &str) -> String {
    let m = m.trim();
    let m = m.strip_prefix("Error during planning: ").unwrap_or(m);
    // DataFusion suggests `Valid fields are ...` with qualified names; keep it, it helps.
    m.to_string()
}
