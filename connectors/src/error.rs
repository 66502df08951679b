//! Errors of connectors, sorted by who is at fault.

use thiserror::Error;

/// An error from building or running a connector.
#[derive(Debug, Error)]
pub enum ConnectorError {
    /// The table's options are wrong (the user's fault); the message names the option.
    #[error("table '{table}': {message}")]
    Options {
        /// Table name.
        table: String,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// A record could not be decoded; `location` names the place (`file:line`, later
    /// `topic/partition/offset`).
    #[error("{location}: {message}")]
    BadRecord {
        /// Where the record is.
        location: String,
        /// What is wrong with it.
        message: String,
    },
    /// The Kafka broker refused or did not answer (unreachable, topic problems, delivery
    /// failures); the message names the table and the bootstrap servers.
    #[error("table '{table}': {message}")]
    Kafka {
        /// Table name.
        table: String,
        /// What failed, with librdkafka's reason.
        message: String,
    },
    /// A database (the jdbc connector) refused a write or could not be reached; the
    /// message names the table, the database and the statement's error.
    #[error("table '{table}': {message}")]
    Database {
        /// Table name.
        table: String,
        /// What failed, with the database's reason.
        message: String,
    },
    /// A checkpoint's saved source position or sink state cannot be used here: it is
    /// malformed, or was taken with another table definition or parallelism (the job's
    /// fault or a bug, not the data's).
    #[error("table '{table}': cannot resume from the checkpoint: {message}")]
    Checkpoint {
        /// Table name.
        table: String,
        /// What does not fit.
        message: String,
    },
    /// An I/O error, with the path or address it concerns.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (usually the path).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An Arrow error while building or writing batches.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// A Parquet error while writing files.
    #[error("{context}: {source}")]
    Parquet {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: parquet::errors::ParquetError,
    },
}

impl ConnectorError {
    /// Shorthand for an [`ConnectorError::Options`] error.
    pub fn options(table: &str, message: impl Into<String>) -> Self {
        Self::Options { table: table.to_string(), message: message.into() }
    }

    /// Shorthand for a [`ConnectorError::Checkpoint`] error.
    pub fn checkpoint(table: &str, message: impl Into<String>) -> Self {
        Self::Checkpoint { table: table.to_string(), message: message.into() }
    }

    /// Shorthand for an [`ConnectorError::Io`] error.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    /// Shorthand for an [`ConnectorError::Parquet`] error.
    pub fn parquet(context: impl Into<String>, source: parquet::errors::ParquetError) -> Self {
        Self::Parquet { context: context.into(), source }
    }

    /// Shorthand for an [`ConnectorError::BadRecord`] error.
    pub fn bad_record(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRecord { location: location.into(), message: message.into() }
    }

    /// Shorthand for an [`ConnectorError::Arrow`] error.
    pub fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        Self::Arrow { context: context.into(), source }
    }
}
