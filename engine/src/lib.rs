//! eddy-engine: Eddy's runtime.
//!
//! Takes a [`eddy_sql::plan::StreamPlan`] and runs it: sources (through the connectors'
//! traits) feed chains of operators over Arrow `RecordBatch`es on tokio tasks, connected by
//! bounded channels so a slow sink slows the sources down (backpressure). Every node runs
//! as `parallelism` subtasks; nodes that can be fused (one input, same parallelism, no
//! fan-out) run in one task, as Flink chains operators. The engine never sees SQL text.
//!
//! The core vocabulary is in [`message`]: a stream carries data batches, watermarks and
//! an end-of-data marker.

pub mod checkpoint;
pub mod error;
pub mod job;
pub mod message;
pub mod metrics;
pub mod operators;
pub mod result_table;

pub use error::EngineError;
pub use job::{Job, JobSummary, StateLimits, StopHandle};
pub use metrics::JobMetrics;
