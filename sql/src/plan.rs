//! The StreamPlan: the operator graph the runtime executes.
//!
//! A plan is a DAG of [`PlanNode`]s stored in topological order (a node's inputs have smaller
//! ids). Each node says what it computes ([`Operator`]), the Arrow schema of the batches it
//! emits, its parallelism, and whether its output is an updating changelog. Expressions are
//! DataFusion `PhysicalExpr`s, ready to evaluate against the input's batches; this is data,
//! not code: the runtime decides how to run it.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

/// Index of a node in [`StreamPlan::nodes`].
pub type NodeId = usize;

/// The operator graph of a job.
#[derive(Debug, Clone, Default)]
pub struct StreamPlan {
    /// Nodes in topological order.
    pub nodes: Vec<PlanNode>,
}

/// One operator of the graph.
#[derive(Debug, Clone)]
pub struct PlanNode {
    /// What the node computes.
    pub operator: Operator,
    /// Input nodes (one, except for Union; none for sources).
    pub inputs: Vec<NodeId>,
    /// Schema of the batches the node emits.
    pub schema: SchemaRef,
    /// Number of parallel tasks.
    pub parallelism: usize,
    /// Whether the output is an updating changelog (carries row kinds).
    pub updating: bool,
}

/// What a node computes.
#[derive(Debug, Clone)]
pub enum Operator {
    /// Reads a connector table.
    Source(TableSpec),
    /// Literal rows (`VALUES`, or a query with no FROM).
    Values(Vec<RecordBatch>),
    /// Evaluates one expression per output column.
    Project(Vec<ProjectExpr>),
    /// Keeps rows where the predicate is true.
    Filter(ExprSpec),
    /// Generates watermarks from the rowtime column.
    Watermark(WatermarkSpec),
    /// Expands a list column into one row per element (`CROSS JOIN UNNEST`).
    Unnest(UnnestSpec),
    /// Merges its inputs (`UNION ALL`).
    Union,
    /// Writes to a connector table.
    Sink(TableSpec),
}

/// A physical expression and how EXPLAIN shows it.
#[derive(Debug, Clone)]
pub struct ExprSpec {
    /// The evaluable expression.
    pub expr: Arc<dyn PhysicalExpr>,
    /// Its SQL-ish text.
    pub display: String,
}

/// One output column of a projection.
#[derive(Debug, Clone)]
pub struct ProjectExpr {
    /// The expression.
    pub expr: ExprSpec,
    /// The output column name.
    pub name: String,
}

/// How watermarks are generated.
#[derive(Debug, Clone)]
pub struct WatermarkSpec {
    /// Index of the rowtime column in the input.
    pub rowtime_column: usize,
    /// The watermark expression (`ts - INTERVAL '5' SECOND`), evaluated per row.
    pub expr: ExprSpec,
    /// `pipeline.auto-watermark-interval` in ms (0 = after every row that advances it).
    pub interval_ms: u64,
    /// `table.exec.source.idle-timeout` in ms (0 = never idle).
    pub idle_timeout_ms: u64,
}

/// How a list column is expanded (one output row per element; NULL or empty lists give
/// no rows, as a CROSS JOIN does).
#[derive(Debug, Clone)]
pub struct UnnestSpec {
    /// Index of the list column in the input.
    pub list_column: usize,
    /// For each output column, the input column it comes from; the list column's position
    /// yields the element.
    pub output_sources: Vec<usize>,
}

/// A connector table as a source or sink sees it.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Table name (for messages and metrics).
    pub name: String,
    /// For a source: the columns it produces. For a sink: the columns it receives.
    pub schema: SchemaRef,
    /// Metadata columns: (index into `schema`, key).
    pub metadata: Vec<(usize, String)>,
    /// `PRIMARY KEY` column names.
    pub primary_key: Vec<String>,
    /// `PARTITIONED BY` column names.
    pub partition_keys: Vec<String>,
    /// `WITH` options.
    pub options: Vec<(String, String)>,
}

impl TableSpec {
    /// The `connector` option.
    pub fn connector(&self) -> &str {
        self.options.iter().find(|(k, _)| k == "connector").map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

impl StreamPlan {
    /// Append a node, returning its id.
    pub fn add(&mut self, node: PlanNode) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Ids of the nodes that read `id`'s output.
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        (0..self.nodes.len()).filter(|n| self.nodes[*n].inputs.contains(&id)).collect()
    }

    /// Ids of the sink nodes.
    pub fn sinks(&self) -> Vec<NodeId> {
        (0..self.nodes.len()).filter(|n| matches!(self.nodes[*n].operator, Operator::Sink(_))).collect()
    }
}
