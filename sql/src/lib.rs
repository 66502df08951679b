//! eddy-sql: Eddy's SQL front end.
//!
//! Turns the text of a Flink SQL file into [`ast::Statement`]s ([`parser`]), keeps the
//! tables, views and settings those statements declare ([`catalog`]), and plans queries into
//! a [`plan::StreamPlan`] — the operator graph the runtime executes ([`planner`]).
//! DataFusion plans the relational parts and every scalar expression; Flink-specific syntax
//! (CREATE TABLE with WATERMARK/DISTRIBUTED, statement sets, Flink built-in functions) is
//! Eddy's own. This crate knows nothing about the runtime: its output is data.

pub mod ast;
pub mod catalog;
pub mod dialect;
pub mod error;
pub mod explain;
pub mod functions;
pub mod parser;
pub mod plan;
pub mod planner;
pub mod types;

pub use error::{SqlError, SqlErrorKind};
pub use parser::{parse_sql, statement_text};
