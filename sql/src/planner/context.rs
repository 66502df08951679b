//! DataFusion's view of Eddy's catalog: the `ContextProvider` that resolves table names to
//! schemas (views to their plans) and function names to DataFusion's built-ins plus Eddy's
//! Flink functions.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{plan_err, DataFusionError, Diagnostic, Result as DfResult, Span, TableReference};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::planner::{ContextProvider, ExprPlanner};
use datafusion::logical_expr::HigherOrderUDF;
use datafusion::logical_expr::{
    AggregateUDF, Extension, LogicalPlan, LogicalPlanBuilder, ScalarUDF, TableSource, WindowUDF,
};

use crate::catalog::{Catalog, CatalogEntry};
use crate::planner::query::plan_view;
use crate::planner::time_attr::rowtime_columns;
use crate::planner::window_node::{WindowTableFunction, WINDOW_COLUMNS};
use crate::planner::window_tvf::{WindowTvfCall, WINDOW_TVF_PREFIX};
use crate::types::FlinkType;

/// A table or view as DataFusion's planner sees it.
#[derive(Debug)]
pub struct EddyTableSource {
    /// Catalog name.
    pub name: String,
    schema: SchemaRef,
    /// The plan of a view or window table function call (DataFusion's `InlineTableScan`
    /// rule splices it in).
    view_plan: Option<LogicalPlan>,
    /// Read `FOR SYSTEM_TIME AS OF` the other side's time: the right side of a temporal
    /// join (see `planner::temporal`).
    pub versioned: bool,
}

impl EddyTableSource {
    /// Whether this is a view (or window table function call) rather than a table.
    pub fn is_view(&self) -> bool {
        self.view_plan.is_some()
    }

    /// The plan that replaces a scan of this source, for views.
    pub(crate) fn inlined_plan(&self) -> Option<&LogicalPlan> {
        self.view_plan.as_ref()
    }
}

impl TableSource for EddyTableSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn get_logical_plan(&'_ self) -> Option<Cow<'_, LogicalPlan>> {
        self.view_plan.as_ref().map(Cow::Borrowed)
    }
}

/// Resolves names for DataFusion's SQL planner.
pub struct EddyContext<'a> {
    pub(crate) catalog: &'a Catalog,
    pub(crate) state: &'a SessionState,
    /// Views being expanded, to detect a view that refers to itself.
    pub(crate) expanding: std::cell::RefCell<Vec<String>>,
    /// Window table function calls of the queries planned so far, by generated name
    /// (`__window_tvf_<index>`, see [`super::window_tvf`]).
    pub(crate) window_calls: std::cell::RefCell<Vec<WindowTvfCall>>,
}

impl<'a> EddyContext<'a> {
    /// A context over a catalog and DataFusion session state.
    pub fn new(catalog: &'a Catalog, state: &'a SessionState) -> Self {
        Self { catalog, state, expanding: Default::default(), window_calls: Default::default() }
    }
}

impl EddyContext<'_> {
    /// The logical plan of a window table function call: its node over the input's plan.
    fn window_plan(&self, call: &WindowTvfCall) -> DfResult<LogicalPlan> {
        let located = |message: String, span: Option<Span>, hint: String| {
            DataFusionError::Plan(message.clone())
                .with_diagnostic(Diagnostic::new_error(message, span).with_help(hint, None))
        };
        let source = self.get_table_source(TableReference::bare(call.table.as_str())).map_err(|e| {
            located(
                format!("{}: table or view '{}' not found", call.function, call.table),
                call.span,
                "create it first with CREATE TABLE or CREATE VIEW".into(),
            )
            .context(e.to_string())
        })?;
        let input = match source.get_logical_plan() {
            Some(plan) => plan.into_owned(),
            None => LogicalPlanBuilder::scan(call.table.as_str(), source, None)?.build()?,
        };
        let fields = input.schema().fields();
        let Some(time_column) = fields.iter().position(|f| f.name() == &call.time_column) else {
            let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
            return Err(located(
                format!("column '{}' of DESCRIPTOR not found in '{}'", call.time_column, call.table),
                call.time_span,
                format!("its columns are {}", names.join(", ")),
            ));
        };
        if !rowtime_columns(&input, self.catalog).contains(&time_column) {
            let t = FlinkType::from_arrow(fields[time_column].data_type(), true);
            return Err(located(
                format!(
                    "The window function requires the timecol to be a time attribute type, but '{}' is {t}.",
                    call.time_column
                ),
                call.time_span,
                format!(
                    "declare WATERMARK FOR {} AS ... on table '{}' (a time attribute stays one only when \
                     passed through unchanged)",
                    call.time_column, call.table
                ),
            ));
        }
        for w in WINDOW_COLUMNS {
            if fields.iter().any(|f| f.name() == w) {
                return Err(located(
                    format!("'{}' already has a column named '{w}', which {} adds", call.table, call.function),
                    call.span,
                    format!("rename it in the input, e.g. {w} AS prev_{w}"),
                ));
            }
        }
        for k in &call.partition_by {
            if !fields.iter().any(|f| f.name() == k) {
                return Err(located(
                    format!("PARTITION BY column '{k}' not found in '{}'", call.table),
                    call.span,
                    "partition by columns of the input table".into(),
                ));
            }
        }
        let node = WindowTableFunction::try_new(input, call.window, time_column, call.partition_by.clone())?;
        Ok(LogicalPlan::Extension(Extension { node: Arc::new(node) }))
    }
}

impl ContextProvider for EddyContext<'_> {
    fn get_table_source(&self, name: TableReference) -> DfResult<Arc<dyn TableSource>> {
        let key = match &name {
            TableReference::Bare { table } => table.to_string(),
            TableReference::Partial { schema, table } if schema.as_ref() == "default_database" => table.to_string(),
            TableReference::Full { catalog, schema, table }
                if catalog.as_ref() == "default_catalog" && schema.as_ref() == "default_database" =>
            {
                table.to_string()
            }
            other => return plan_err!("Object '{other}' not found"),
        };
        if let Some(n) = key.strip_prefix(WINDOW_TVF_PREFIX).and_then(|n| n.parse::<usize>().ok()) {
            let call = self.window_calls.borrow().get(n).cloned();
            if let Some(call) = call {
                let plan = self.window_plan(&call)?;
                let schema = Arc::new(plan.schema().as_arrow().clone());
                return Ok(Arc::new(EddyTableSource { name: key, schema, view_plan: Some(plan), versioned: false }));
            }
        }
        if let Some(name) = key.strip_prefix(super::temporal::VERSIONED_PREFIX) {
            return match self.catalog.get(name) {
                Some(CatalogEntry::Table(t)) => Ok(Arc::new(EddyTableSource {
                    name: name.to_string(),
                    schema: t.schema(),
                    view_plan: None,
                    versioned: true,
                })),
                Some(CatalogEntry::View(_)) => plan_err!(
                    "FOR SYSTEM_TIME AS OF a view ('{name}') is not supported yet in this version of Eddy: \
                     join a table with a PRIMARY KEY and a WATERMARK"
                ),
                None => plan_err!("Object '{name}' not found"),
            };
        }
        match self.catalog.get(&key) {
            Some(CatalogEntry::Table(t)) => {
                Ok(Arc::new(EddyTableSource { name: key, schema: t.schema(), view_plan: None, versioned: false }))
            }
            Some(CatalogEntry::View(v)) => {
                if self.expanding.borrow().contains(&key) {
                    return plan_err!("view '{key}' refers to itself");
                }
                self.expanding.borrow_mut().push(key.clone());
                let plan = plan_view(self, &v);
                self.expanding.borrow_mut().pop();
                let plan = plan?;
                Ok(Arc::new(EddyTableSource {
                    name: key,
                    schema: v.schema.clone(),
                    view_plan: Some(plan),
                    versioned: false,
                }))
            }
            None => plan_err!("Object '{key}' not found"),
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        self.state.expr_planners()
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        // Flink function names are case-insensitive even though identifiers are not.
        let funcs = self.state.scalar_functions();
        funcs.get(name).or_else(|| funcs.get(&name.to_ascii_lowercase())).cloned()
    }

    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        let funcs = self.state.higher_order_functions();
        funcs.get(name).or_else(|| funcs.get(&name.to_ascii_lowercase())).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        let funcs = self.state.aggregate_functions();
        funcs.get(name).or_else(|| funcs.get(&name.to_ascii_lowercase())).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        let funcs = self.state.window_functions();
        funcs.get(name).or_else(|| funcs.get(&name.to_ascii_lowercase())).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        self.state.config_options()
    }

    fn udf_names(&self) -> Vec<String> {
        self.state.scalar_functions().keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.state.higher_order_functions().keys().cloned().collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.state.aggregate_functions().keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.state.window_functions().keys().cloned().collect()
    }
}
