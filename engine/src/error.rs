//! Runtime errors, naming the operator or table they come from.

use thiserror::Error;

/// An error while building or running a job.
#[derive(Debug, Error)]
pub enum EngineError {
    /// A connector failed (bad options, unreadable file, malformed record...).
    #[error("{0}")]
    Connector(#[from] eddy_connectors::ConnectorError),
    /// Evaluating an expression failed inside an operator.
    #[error("{operator}: {source}")]
    Expression {
        /// The operator (as EXPLAIN names it).
        operator: String,
        /// DataFusion's error.
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// An Arrow kernel failed inside an operator.
    #[error("{operator}: {source}")]
    Arrow {
        /// The operator.
        operator: String,
        /// Arrow's error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// A plan the runtime cannot execute (a bug in the planner, or a feature not built).
    #[error("cannot run this plan: {0}")]
    Plan(String),
    /// An upstream task went away without ending its stream: the consequence of another
    /// task's failure, which is the error to report.
    #[error("internal error: an upstream task stopped without finishing")]
    UpstreamStopped,
    /// A job's state outgrew `eddy.state.memory-limit`.
    #[error("{0}")]
    StateLimit(String),
    /// Writing or reading a checkpoint failed, or a checkpoint cannot be used.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A task ended abnormally (a panic is a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of the runtime.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
