//! The `print` sink: every row on stdout (or stderr) in Flink's exact text form.
//!
//! Why: `print` is how Flink users look at a pipeline's output, and they compare it line by
//! line with Flink's: `+I[1, foo, 2024-03-01T22:30:07.885]`, prefixed `ident> ` with
//! `print-identifier`, and `<subtask>> ` / `ident:<subtask>> ` when the sink runs in
//! parallel (as Flink's `PrintSinkOutputWriter`). Each batch is written with one locked
//! write, so lines of parallel subtasks never interleave mid-line.

use std::io::Write;

use arrow::array::{Array, Int8Array};
use arrow::record_batch::RecordBatch;

use crate::text::{self, Style};
use crate::{ConnectorError, ConnectorTable, Result, RowKind, Sink, Split};

/// Options of the print connector.
const OPTIONS: &[&str] = &["connector", "print-identifier", "standard-error", "sink.parallelism"];

struct Config {
    identifier: String,
    stderr: bool,
}

fn parse(table: &ConnectorTable) -> Result<Config> {
    let name = table.name.as_str();
    if let Some(key) = table.options.keys().find(|k| !OPTIONS.contains(k)) {
        return Err(ConnectorError::options(
            name,
            format!("unsupported option '{key}' for connector 'print'; supported: {}", OPTIONS.join(", ")),
        ));
    }
    table.options.parse::<usize>(name, "sink.parallelism")?;
    for field in table.schema.fields() {
        if !text::supports(field.data_type(), Style::Java) {
            return Err(ConnectorError::options(
                name,
                format!("print cannot show column '{}' of type {}", field.name(), field.data_type()),
            ));
        }
    }
    Ok(Config {
        identifier: table.options.get("print-identifier").unwrap_or_default().to_string(),
        stderr: table.options.bool_or(name, "standard-error", false)?,
    })
}

/// Check the options.
pub(crate) fn validate(table: &ConnectorTable) -> Result<()> {
    parse(table).map(|_| ())
}

/// Build one subtask of the sink.
pub(crate) fn create_sink(table: &ConnectorTable, split: Split) -> Result<Box<dyn Sink>> {
    let config = parse(table)?;
    Ok(Box::new(PrintSink { prefix: prefix(&config.identifier, split), stderr: config.stderr }))
}

/// Flink's line prefix for this subtask.
fn prefix(identifier: &str, split: Split) -> String {
    let mut p = if split.count > 1 {
        if identifier.is_empty() {
            (split.index + 1).to_string()
        } else {
            format!("{identifier}:{}", split.index + 1)
        }
    } else {
        identifier.to_string()
    };
    if !p.is_empty() {
        p.push_str("> ");
    }
    p
}

/// One subtask of a print sink.
struct PrintSink {
    prefix: String,
    stderr: bool,
}

impl PrintSink {
    /// All lines of a batch, each ending in `\n`.
    fn format(&self, batch: &RecordBatch, row_kinds: Option<&Int8Array>) -> Result<String> {
        let mut out = String::with_capacity(batch.num_rows() * 32);
        for row in 0..batch.num_rows() {
            let kind = match row_kinds {
                Some(k) if k.is_valid(row) => RowKind::from_code(k.value(row)).ok_or_else(|| {
                    ConnectorError::bad_record("print", format!("unknown row kind code {}", k.value(row)))
                })?,
                _ => RowKind::Insert,
            };
            out.push_str(&self.prefix);
            out.push_str(kind.short_string());
            out.push('[');
            for (n, column) in batch.columns().iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                text::write_value(&mut out, column.as_ref(), row, Style::Java)?;
            }
            out.push_str("]\n");
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Sink for PrintSink {
    async fn write_batch(&mut self, batch: &RecordBatch, row_kinds: Option<&Int8Array>) -> Result<()> {
        let lines = self.format(batch, row_kinds)?;
        let result = if self.stderr {
            std::io::stderr().lock().write_all(lines.as_bytes())
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(lines.as_bytes()).and_then(|()| out.flush())
        };
        result.map_err(|e| ConnectorError::io("print sink: writing to standard output", e))
    }

    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::*;
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::*;

    use super::*;
    use crate::test_util::table;

    fn sink(identifier: &str, split: Split) -> PrintSink {
        PrintSink { prefix: prefix(identifier, split), stderr: false }
    }

    #[test]
    fn flink_line_format_for_each_type() {
        let row_type =
            Fields::from(vec![Field::new("a", DataType::Int32, true), Field::new("b", DataType::Utf8, true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("d", DataType::Float64, true),
            Field::new("dec", DataType::Decimal128(10, 2), true),
            Field::new("b", DataType::Boolean, true),
            Field::new("day", DataType::Date32, true),
            Field::new("ltz", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
            Field::new("r", DataType::Struct(row_type.clone()), true),
            Field::new("l", DataType::List(Arc::new(Field::new("item", DataType::Int32, true))), true),
            Field::new("bytes", DataType::Binary, true),
        ]));
        let ts = 1709332207885i64; // 2024-03-01T22:30:07.885
        let row = StructArray::new(
            row_type,
            vec![Arc::new(Int32Array::from(vec![Some(7), None])), Arc::new(StringArray::from(vec![Some("x"), None]))],
            Some(vec![true, false].into()),
        );
        let list = ListArray::new(
            Arc::new(Field::new("item", DataType::Int32, true)),
            OffsetBuffer::from_lengths([2, 0]),
            Arc::new(Int32Array::from(vec![Some(1), None])),
            None,
        );
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("foo"), None])),
                Arc::new(TimestampMillisecondArray::from(vec![Some(ts), Some(1709332200000)])),
                Arc::new(Float64Array::from(vec![Some(1e10), Some(0.1)])),
                Arc::new(Decimal128Array::from(vec![Some(12345), Some(-5)]).with_precision_and_scale(10, 2).unwrap()),
                Arc::new(BooleanArray::from(vec![Some(true), Some(false)])),
                Arc::new(Date32Array::from(vec![Some(19783), None])),
                Arc::new(TimestampMillisecondArray::from(vec![Some(ts), None]).with_timezone("UTC")),
                Arc::new(row),
                Arc::new(list),
                Arc::new(BinaryArray::from(vec![Some(&[1u8, 255][..]), None])),
            ],
        )
        .unwrap();
        let kinds = Int8Array::from(vec![RowKind::Insert.code(), RowKind::UpdateBefore.code()]);
        let text = sink("", Split { index: 0, count: 1 }).format(&batch, Some(&kinds)).unwrap();
        assert_eq!(
            text,
            "+I[1, foo, 2024-03-01T22:30:07.885, 1.0E10, 123.45, true, 2024-03-01, 2024-03-01T22:30:07.885Z, \
             +I[7, x], [1, null], [1, -1]]\n\
             -U[null, null, 2024-03-01T22:30, 0.1, -0.05, false, null, null, null, [], null]\n"
        );
    }

    #[test]
    fn prefixes_like_flink() {
        assert_eq!(prefix("", Split { index: 0, count: 1 }), "");
        assert_eq!(prefix("out", Split { index: 0, count: 1 }), "out> ");
        assert_eq!(prefix("", Split { index: 1, count: 4 }), "2> ");
        assert_eq!(prefix("out", Split { index: 3, count: 4 }), "out:4> ");
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![5]))]).unwrap();
        assert_eq!(sink("out", Split { index: 1, count: 2 }).format(&batch, None).unwrap(), "out:2> +I[5]\n");
    }

    #[test]
    fn options_are_checked() {
        let f = vec![Field::new("x", DataType::Int32, true)];
        assert!(validate(&table(f.clone(), &[("connector", "print"), ("print-identifier", "a")])).is_ok());
        let e = validate(&table(f.clone(), &[("connector", "print"), ("standard-error", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("standard-error"), "{e}");
        let e = validate(&table(f, &[("connector", "print"), ("colour", "red")])).unwrap_err();
        assert!(e.to_string().contains("'colour'"), "{e}");
    }
}
