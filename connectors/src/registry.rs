//! Maps `'connector' = '...'` to an implementation, and says which connectors exist.
//!
//! One place lists every connector with what it can be (source, sink), so `validate` can
//! reject a source-only connector used as a sink before anything runs, and an unknown name
//! gets a message listing the ones that exist.

use std::sync::Arc;

use arrow::array::ArrayRef;

use crate::*;

/// A connector Eddy knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connector {
    Datagen,
    Nexmark,
    Filesystem,
    Print,
    Blackhole,
    Kafka,
    UpsertKafka,
    Jdbc,
}

impl Connector {
    const ALL: [Connector; 8] = [
        Self::Datagen,
        Self::Nexmark,
        Self::Filesystem,
        Self::Print,
        Self::Blackhole,
        Self::Kafka,
        Self::UpsertKafka,
        Self::Jdbc,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Datagen => "datagen",
            Self::Nexmark => "nexmark",
            Self::Filesystem => "filesystem",
            Self::Print => "print",
            Self::Blackhole => "blackhole",
            Self::Kafka => "kafka",
            Self::UpsertKafka => "upsert-kafka",
            Self::Jdbc => "jdbc",
        }
    }

    fn is_source(self) -> bool {
        matches!(self, Self::Datagen | Self::Nexmark | Self::Filesystem | Self::Kafka | Self::UpsertKafka | Self::Jdbc)
    }

    fn is_sink(self) -> bool {
        matches!(self, Self::Filesystem | Self::Print | Self::Blackhole | Self::Kafka | Self::UpsertKafka | Self::Jdbc)
    }

    /// Whether the sink consumes a changelog (`-U`/`+U`/`-D`); append-only sinks do not.
    fn accepts_updates(self) -> bool {
        matches!(self, Self::Print | Self::Blackhole | Self::UpsertKafka)
    }

    /// The table's connector, or an error naming what exists.
    fn of(table: &ConnectorTable) -> Result<Self> {
        let name = table.options.required(&table.name, "connector")?;
        if let Some(c) = Self::ALL.iter().find(|c| c.name() == name) {
            return Ok(*c);
        }
        let supported: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
        let message = match name {
            "elasticsearch-7" | "elasticsearch-6" | "hbase-2.2" | "mongodb" | "opensearch" | "dynamodb" | "kinesis"
            | "pulsar" => format!(
                "connector '{name}' is not supported yet in this version of Eddy; supported connectors: {}",
                supported.join(", ")
            ),
            _ => format!("unknown connector '{name}'; supported connectors: {}", supported.join(", ")),
        };
        Err(ConnectorError::options(&table.name, message))
    }

    fn not_a(self, table: &ConnectorTable, role: &str) -> ConnectorError {
        if role == "lookup table" {
            return ConnectorError::options(
                &table.name,
                format!(
                    "connector '{}' cannot be a lookup table; lookup table connectors: jdbc, filesystem",
                    self.name()
                ),
            );
        }
        let others: Vec<&str> = Self::ALL
            .iter()
            .filter(|c| if role == "source" { c.is_source() } else { c.is_sink() })
            .map(|c| c.name())
            .collect();
        ConnectorError::options(
            &table.name,
            format!("connector '{}' cannot be used as a {role}; {role} connectors: {}", self.name(), others.join(", ")),
        )
    }
}

pub(crate) fn create_source(
    table: &ConnectorTable,
    split: Split,
    position: Option<&serde_json::Value>,
) -> Result<Box<dyn Source>> {
    match Connector::of(table)? {
        Connector::Datagen => datagen::create_source(table, split, position),
        Connector::Nexmark => nexmark::create_source(table, split, position),
        Connector::Filesystem => filesystem::create_source(table, split, position),
        Connector::Kafka | Connector::UpsertKafka => kafka::create_source(table, split, position),
        Connector::Jdbc => jdbc::create_source(table, split, position),
        c => Err(c.not_a(table, "source")),
    }
}

pub(crate) fn create_sink(table: &ConnectorTable, split: Split) -> Result<Box<dyn Sink>> {
    match Connector::of(table)? {
        Connector::Filesystem => filesystem::create_sink(table, split),
        Connector::Print => print::create_sink(table, split),
        Connector::Blackhole => blackhole::create_sink(table),
        Connector::Kafka | Connector::UpsertKafka => kafka::create_sink(table, split),
        Connector::Jdbc => jdbc::create_sink(table, split),
        c => Err(c.not_a(table, "sink")),
    }
}

/// The lookup side of a lookup join (`JOIN t FOR SYSTEM_TIME AS OF o.proctime`): a jdbc
/// table read per key from its database, or a filesystem table read whole into memory.
pub struct LookupTable(LookupBackend);

enum LookupBackend {
    Jdbc(jdbc::lookup::JdbcLookup),
    File(filesystem::lookup::FileLookup),
}

impl LookupTable {
    /// A lookup of `columns` (names, in this order) of `table` by equality on `keys`.
    pub fn new(table: &ConnectorTable, columns: &[String], keys: &[String]) -> Result<Self> {
        Ok(Self(match Connector::of(table)? {
            Connector::Jdbc => LookupBackend::Jdbc(jdbc::lookup::JdbcLookup::new(table, columns, keys)?),
            Connector::Filesystem => LookupBackend::File(filesystem::lookup::FileLookup::new(table, columns, keys)?),
            c => return Err(c.not_a(table, "lookup table")),
        }))
    }

    /// The rows of each key: `keys` are the key columns, `rows` the indices of the keys to
    /// look up (no NULLs among them); each row as the text of `columns`.
    pub fn lookup(&mut self, keys: &[ArrayRef], rows: &[usize]) -> Result<Vec<Arc<Vec<TextRow>>>> {
        match &mut self.0 {
            LookupBackend::Jdbc(t) => t.lookup(keys, rows),
            LookupBackend::File(t) => t.lookup(keys, rows),
        }
    }
}

pub(crate) fn validate(table: &ConnectorTable, as_source: bool, as_sink: bool) -> Result<()> {
    let connector = Connector::of(table)?;
    if as_source && !connector.is_source() {
        return Err(connector.not_a(table, "source"));
    }
    if as_sink && !connector.is_sink() {
        return Err(connector.not_a(table, "sink"));
    }
    match connector {
        Connector::Datagen => datagen::validate(table),
        Connector::Nexmark => nexmark::validate(table),
        Connector::Filesystem => filesystem::validate(table, as_source, as_sink),
        Connector::Print => print::validate(table),
        Connector::Blackhole => blackhole::validate(table),
        Connector::Kafka | Connector::UpsertKafka => kafka::validate(table, as_source, as_sink),
        Connector::Jdbc => jdbc::validate(table, as_source),
    }
}

pub(crate) fn is_bounded(table: &ConnectorTable) -> Result<bool> {
    match Connector::of(table)? {
        Connector::Datagen => datagen::is_bounded(table),
        Connector::Nexmark => nexmark::is_bounded(table),
        // The files present at start are read once (directory monitoring is not supported);
        // a database table is read once, as in Flink.
        Connector::Filesystem | Connector::Jdbc => Ok(true),
        Connector::Kafka | Connector::UpsertKafka => kafka::is_bounded(table),
        c => Err(c.not_a(table, "source")),
    }
}

pub(crate) fn accepts_updates(table: &ConnectorTable) -> Result<bool> {
    Ok(match Connector::of(table)? {
        Connector::Jdbc => jdbc::accepts_updates(table),
        c => c.accepts_updates(),
    })
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field};

    use super::*;
    use crate::test_util::table;

    fn t(options: &[(&str, &str)]) -> ConnectorTable {
        table(vec![Field::new("a", DataType::Int64, true)], options)
    }

    #[test]
    fn unknown_and_unsupported_connectors() {
        let e = validate(&t(&[("connector", "mongodb")]), true, false).unwrap_err().to_string();
        assert!(e.contains("'mongodb' is not supported yet in this version of Eddy") && e.contains("kafka"), "{e}");
        let e = validate(&t(&[("connector", "jdbc")]), true, false).unwrap_err().to_string();
        assert!(e.contains("'url'"), "{e}");
        let e = validate(&t(&[("connector", "foo")]), true, false).unwrap_err().to_string();
        assert!(e.contains("unknown connector 'foo'") && e.contains("filesystem"), "{e}");
        let e = validate(&t(&[]), true, false).unwrap_err().to_string();
        assert!(e.contains("'connector'"), "{e}");
    }

    #[test]
    fn roles_are_checked() {
        let e = validate(&t(&[("connector", "datagen")]), false, true).unwrap_err().to_string();
        assert!(e.contains("'datagen' cannot be used as a sink") && e.contains("print"), "{e}");
        assert!(create_sink(&t(&[("connector", "nexmark")]), Split { index: 0, count: 1 }).is_err());
        let e = validate(&t(&[("connector", "print")]), true, false).unwrap_err().to_string();
        assert!(e.contains("cannot be used as a source"), "{e}");
        assert!(validate(&t(&[("connector", "blackhole")]), false, true).is_ok());
        assert!(validate(&t(&[("connector", "filesystem"), ("path", "/nonexistent"), ("format", "csv")]), true, true)
            .is_ok());
        let e = validate(&t(&[("connector", "filesystem"), ("format", "csv")]), true, false).unwrap_err().to_string();
        assert!(e.contains("'path'"), "{e}");
    }

    #[test]
    fn boundedness() {
        assert!(is_bounded(&t(&[("connector", "filesystem"), ("path", "x"), ("format", "json")])).unwrap());
        assert!(!is_bounded(&t(&[("connector", "datagen")])).unwrap());
        assert!(is_bounded(&t(&[("connector", "datagen"), ("number-of-rows", "5")])).unwrap());
        assert!(is_bounded(&t(&[("connector", "nexmark"), ("events.num", "5")])).unwrap());
        assert!(is_bounded(&t(&[("connector", "print")])).is_err());
    }
}
