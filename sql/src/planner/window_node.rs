//! The logical node of a window table function: its input's columns plus `window_start`,
//! `window_end` and `window_time`. DataFusion's optimizer passes it through untouched
//! (filters on the input's columns are pushed below it); [`super::convert`] turns it into a
//! window assigner, or folds it into the window aggregation that groups by its columns.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::{DFSchema, DFSchemaRef, Result as DfResult};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

use crate::plan::WindowKind;

/// Output column names, in order.
pub(crate) const WINDOW_COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];

/// `TABLE(TUMBLE|HOP|CUMULATE|SESSION(TABLE input, DESCRIPTOR(time_column), ..))`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct WindowTableFunction {
    pub input: LogicalPlan,
    pub window: WindowKind,
    /// Index of the time attribute in the input.
    pub time_column: usize,
    /// `PARTITION BY` keys (SESSION).
    pub partition_by: Vec<String>,
    schema: DFSchemaRef,
}

impl WindowTableFunction {
    pub(crate) fn try_new(
        input: LogicalPlan,
        window: WindowKind,
        time_column: usize,
        partition_by: Vec<String>,
    ) -> DfResult<Self> {
        let in_schema = input.schema();
        let time_type = in_schema.field(time_column).data_type().clone();
        // window_start/window_end are TIMESTAMP(3); window_time keeps the time attribute's
        // type (TIMESTAMP(3) or TIMESTAMP_LTZ(3)), as in Flink.
        let plain = DataType::Timestamp(TimeUnit::Millisecond, None);
        let mut fields: Vec<(Option<datafusion::common::TableReference>, Arc<Field>)> =
            in_schema.iter().map(|(q, f)| (q.cloned(), f.clone())).collect();
        fields.push((None, Arc::new(Field::new(WINDOW_COLUMNS[0], plain.clone(), false))));
        fields.push((None, Arc::new(Field::new(WINDOW_COLUMNS[1], plain, false))));
        fields.push((None, Arc::new(Field::new(WINDOW_COLUMNS[2], time_type, false))));
        let schema = DFSchema::new_with_metadata(fields, in_schema.metadata().clone())?;
        Ok(Self { input, window, time_column, partition_by, schema: Arc::new(schema) })
    }

    /// Number of input columns (the window columns follow them).
    pub(crate) fn input_width(&self) -> usize {
        self.input.schema().fields().len()
    }
}

impl PartialOrd for WindowTableFunction {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        // Only needed to satisfy the trait; plans are compared for equality.
        (self.time_column, &self.partition_by).partial_cmp(&(other.time_column, &other.partition_by))
    }
}

impl UserDefinedLogicalNodeCore for WindowTableFunction {
    fn name(&self) -> &str {
        "WindowTableFunction"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        // Predicates on the input's columns filter rows before windows are assigned, which
        // is the same; predicates on the window columns must stay above.
        WINDOW_COLUMNS.iter().map(|c| c.to_string()).collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WindowTableFunction: {:?}, time=#{}", self.window, self.time_column)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let input = inputs.pop().unwrap_or_else(|| self.input.clone());
        // The optimizer may rewrite the input (pushed filters) but keeps its columns.
        let time_name = self.input.schema().field(self.time_column).name().clone();
        let time_column = input.schema().index_of_column_by_name(None, &time_name).unwrap_or(self.time_column);
        Self::try_new(input, self.window, time_column, self.partition_by.clone())
    }
}
