//! DataFusion's view of Eddy's catalog: the `ContextProvider` that resolves table names to
//! schemas (views to their plans) and function names to DataFusion's built-ins plus Eddy's
//! Flink functions.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{plan_err, Result as DfResult, TableReference};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::planner::{ContextProvider, ExprPlanner};
use datafusion::logical_expr::HigherOrderUDF;
use datafusion::logical_expr::{AggregateUDF, LogicalPlan, ScalarUDF, TableSource, WindowUDF};

use crate::catalog::{Catalog, CatalogEntry};
use crate::planner::query::plan_view;

/// A table or view as DataFusion's planner sees it.
#[derive(Debug)]
pub struct EddyTableSource {
    /// Catalog name.
    pub name: String,
    schema: SchemaRef,
    /// The view's plan (DataFusion's `InlineTableScan` rule splices it in).
    view_plan: Option<LogicalPlan>,
}

impl EddyTableSource {
    /// Whether this is a view.
    pub fn is_view(&self) -> bool {
        self.view_plan.is_some()
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
}

impl<'a> EddyContext<'a> {
    /// A context over a catalog and DataFusion session state.
    pub fn new(catalog: &'a Catalog, state: &'a SessionState) -> Self {
        Self { catalog, state, expanding: Default::default() }
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
        match self.catalog.get(&key) {
            Some(CatalogEntry::Table(t)) => {
                Ok(Arc::new(EddyTableSource { name: key, schema: t.schema(), view_plan: None }))
            }
            Some(CatalogEntry::View(v)) => {
                if self.expanding.borrow().contains(&key) {
                    return plan_err!("view '{key}' refers to itself");
                }
                self.expanding.borrow_mut().push(key.clone());
                let plan = plan_view(self, &v);
                self.expanding.borrow_mut().pop();
                let plan = plan?;
                Ok(Arc::new(EddyTableSource { name: key, schema: v.schema.clone(), view_plan: Some(plan) }))
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
