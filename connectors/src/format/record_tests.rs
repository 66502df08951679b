//! Record-level formats (Kafka): the decoders and encoders of `format::record`, per format.

use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::*;
use arrow::record_batch::RecordBatch;

use super::record::{DecodedRecords, RecordDecoder};
use super::*;
use crate::{Options, RowKind};

fn options(pairs: &[(&str, &str)]) -> Options {
    Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

/// `id BIGINT, name STRING`.
fn id_name() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("name", DataType::Utf8, true)]))
}

fn decoder(format: Format, pairs: &[(&str, &str)], schema: SchemaRef) -> Box<dyn RecordDecoder> {
    format.record_decoder("t", &options(pairs), schema, "t-value").unwrap()
}

fn decode(d: &mut dyn RecordDecoder, records: &[&str]) -> DecodedRecords {
    let records: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
    d.decode(&records).unwrap()
}

fn ids(b: &RecordBatch) -> Vec<Option<i64>> {
    b.column(0).as_primitive::<Int64Type>().iter().collect()
}

fn names(b: &RecordBatch) -> Vec<Option<&str>> {
    b.column(1).as_string::<i32>().iter().collect()
}

fn bad(d: &DecodedRecords) -> Vec<(usize, &str)> {
    d.bad.iter().map(|b| (b.index, b.message.as_str())).collect()
}

/// Encode `batch` with the format's record encoder; the text of each record.
fn encode(format: Format, pairs: &[(&str, &str)], batch: &RecordBatch) -> Vec<String> {
    let mut enc = format.record_encoder("t", &options(pairs), batch.schema(), "t-value").unwrap();
    let (mut out, mut rows) = (b"prefix".to_vec(), Vec::new());
    enc.encode(batch, &mut out, &mut rows).unwrap();
    assert_eq!(rows.len(), batch.num_rows());
    assert_eq!(rows.first().map(|r| r.start), Some(6), "rows start where `out` ended");
    rows.into_iter().map(|r| String::from_utf8(out[r].to_vec()).unwrap()).collect()
}

fn id_name_batch(ids: Vec<Option<i64>>, names: Vec<Option<&str>>) -> RecordBatch {
    RecordBatch::try_new(id_name(), vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(names))]).unwrap()
}

#[test]
fn json_records_report_bad_ones_and_keep_the_good_rows() {
    let mut d = decoder(Format::Json, &[], id_name());
    let out = decode(
        d.as_mut(),
        &[
            r#"{"id": 1, "name": "a"}"#,
            r#"{"id": 2, oops}"#,
            // A raw line break is whitespace between tokens.
            "{\"id\": 3,\n\"name\":\r\n\"c\"}",
            "  ",
            r#"{"id": "x"}"#,
            r#"{"id": 6, "name": 42, "extra": [1]}"#,
            r#"{"id": 7} {"id": 8}"#,
        ],
    );
    assert_eq!(ids(&out.batch), vec![Some(1), Some(3), Some(6)]);
    // A number read into a STRING column is its text, as in Flink.
    assert_eq!(names(&out.batch), vec![Some("a"), Some("c"), Some("42")]);
    let bad = bad(&out);
    assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1, 3, 4, 6]);
    assert!(bad[0].1.starts_with(r#"cannot parse JSON '{"id": 2, oops}': "#), "{}", bad[0].1);
    assert_eq!(bad[1].1, "the record is empty");
    assert!(bad[2].1.starts_with(r#"cannot parse JSON '{"id": "x"}': "#), "{}", bad[2].1);
    assert!(bad[3].1.contains("more than one JSON value"), "{}", bad[3].1);
    assert!(out.row_kinds.is_none() && out.source_records.is_none());
    assert_eq!(out.record_of_rows(7), vec![0, 2, 5]);

    // All good: the fast path, one row per record.
    let out = decode(d.as_mut(), &[r#"{"id": 1}"#, r#"{"name": "b", "id": 2}"#]);
    assert_eq!(ids(&out.batch), vec![Some(1), Some(2)]);
    assert_eq!(names(&out.batch), vec![None, Some("b")]);
    assert!(out.bad.is_empty());
    assert_eq!(d.skipped(), 0);
}

#[test]
fn json_records_ignore_parse_errors_nulls_conflicts_and_skips_broken_ones() {
    let mut d = decoder(Format::Json, &[("json.ignore-parse-errors", "true")], id_name());
    let out = decode(d.as_mut(), &[r#"{"id": "x", "name": "a"}"#, r#"{"id": 2"#, r#"{"id": 3}"#]);
    // A value of the wrong type becomes NULL (Flink); a broken record is skipped, not reported.
    assert_eq!(ids(&out.batch), vec![None, Some(3)]);
    assert_eq!(names(&out.batch), vec![Some("a"), None]);
    assert!(out.bad.is_empty());
    assert_eq!(out.source_records, Some(vec![0, 2]));
    assert_eq!(out.record_of_rows(3), vec![0, 2]);
    assert_eq!(d.skipped(), 1);
}

#[test]
fn json_records_fail_on_missing_field() {
    let mut d = decoder(Format::Json, &[("json.fail-on-missing-field", "true")], id_name());
    let out = decode(d.as_mut(), &[r#"{"id": 1, "name": null}"#, r#"{"id": 2}"#, r#"{"id": 3, "name": "c"}"#, "{"]);
    assert_eq!(ids(&out.batch), vec![Some(1), Some(3)]);
    let bad = bad(&out);
    assert_eq!(bad[0], (1, "could not find field with name 'name' (json.fail-on-missing-field is true)"));
    assert_eq!(bad[1].0, 3);
    assert!(bad[1].1.starts_with("cannot parse JSON '{': "), "{}", bad[1].1);
}

#[test]
fn json_record_encoder_writes_one_object_per_record() {
    let batch = id_name_batch(vec![Some(1), None], vec![Some("a"), Some("x\ny")]);
    assert_eq!(encode(Format::Json, &[], &batch), vec![r#"{"id":1,"name":"a"}"#, r#"{"id":null,"name":"x\ny"}"#]);
    let skip_nulls = [("json.encode.ignore-null-fields", "true")];
    assert_eq!(encode(Format::Json, &skip_nulls, &batch), vec![r#"{"id":1,"name":"a"}"#, r#"{"name":"x\ny"}"#]);
}

/// `id BIGINT, name STRING, price DOUBLE`.
fn id_name_price() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
    ]))
}

#[test]
fn csv_records_are_one_row_each() {
    let mut d = decoder(Format::Csv, &[], id_name_price());
    let out = decode(
        d.as_mut(),
        &["1,\"a, b\",1.5", "2,\"multi\nline \"\"q\"\"\",2\r\n", "3,c", "4,d,x", "5,,", "6,f,6\n7,g,7", "8,h,8,extra"],
    );
    assert_eq!(ids(&out.batch), vec![Some(1), Some(2), Some(5), Some(8)]);
    assert_eq!(names(&out.batch), vec![Some("a, b"), Some("multi\nline \"q\""), Some(""), Some("h")]);
    let prices: Vec<Option<f64>> = out.batch.column(2).as_primitive::<Float64Type>().iter().collect();
    assert_eq!(prices, vec![Some(1.5), Some(2.0), None, Some(8.0)]);
    assert_eq!(
        bad(&out),
        vec![
            (2, "row length mismatch: 3 fields expected but was 2"),
            (3, "cannot parse 'x' as Float64 for column 'price'"),
            (5, "more than one CSV row in the record"),
        ]
    );
    assert_eq!(out.record_of_rows(7), vec![0, 1, 4, 6]);

    // With csv.ignore-parse-errors a short row is padded, a bad value skipped and counted.
    let mut d = decoder(Format::Csv, &[("csv.ignore-parse-errors", "true")], id_name_price());
    let out = decode(d.as_mut(), &["3,c", "4,d,x", "5,e,5"]);
    assert_eq!(ids(&out.batch), vec![Some(3), Some(5)]);
    assert!(out.batch.column(2).is_null(0) && out.bad.is_empty());
    assert_eq!(out.source_records, Some(vec![0, 2]));
    assert_eq!(d.skipped(), 1);

    // Options apply as for files; a comment record gives no row.
    let pairs = [("csv.field-delimiter", ";"), ("csv.null-literal", "N"), ("csv.allow-comments", "true")];
    let mut d = decoder(Format::Csv, &pairs, id_name_price());
    let out = decode(d.as_mut(), &["1;N;2", "# note", "3;c;N"]);
    assert_eq!(ids(&out.batch), vec![Some(1), Some(3)]);
    assert_eq!(names(&out.batch), vec![None, Some("c")]);
    assert!(out.bad.is_empty(), "{:?}", out.bad);
    assert_eq!(out.source_records, Some(vec![0, 2]));
}

#[test]
fn csv_record_encoder_quotes_only_when_needed() {
    let batch = id_name_batch(vec![Some(1), None], vec![Some("a,b"), Some("plain")]);
    assert_eq!(encode(Format::Csv, &[], &batch), vec!["1,\"a,b\"", ",plain"]);
}

fn one_column(data_type: DataType) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", data_type, true)]))
}

#[test]
fn raw_reads_strings_and_bytes() {
    let records: &[&[u8]] = &[b"hello", b"", b"caf\xc3\xa9", b"\xff\xfe"];
    let mut d = decoder(Format::Raw, &[("raw.charset", "UTF-8")], one_column(DataType::Utf8));
    let out = d.decode(records).unwrap();
    let strings: Vec<Option<&str>> = out.batch.column(0).as_string::<i32>().iter().collect();
    assert_eq!(strings, vec![Some("hello"), Some(""), Some("café")]);
    assert_eq!(out.bad.len(), 1);
    assert_eq!(out.bad[0].index, 3);
    assert!(out.bad[0].message.starts_with("the record is not valid UTF-8"), "{}", out.bad[0].message);

    let mut d = decoder(Format::Raw, &[("raw.endianness", "little-endian")], one_column(DataType::Binary));
    let out = d.decode(records).unwrap();
    let bytes: Vec<Option<&[u8]>> = out.batch.column(0).as_binary::<i32>().iter().collect();
    assert_eq!(bytes, records.iter().map(|r| Some(*r)).collect::<Vec<_>>());
    assert!(out.bad.is_empty());
}

#[test]
fn raw_writes_the_value_bytes() {
    let strings = RecordBatch::try_new(
        one_column(DataType::Utf8),
        vec![Arc::new(StringArray::from(vec![Some("a b"), None, Some("")]))],
    )
    .unwrap();
    // A NULL value is an empty range (the connector may write a null record for it).
    assert_eq!(encode(Format::Raw, &[], &strings), vec!["a b", "", ""]);
    let bytes = RecordBatch::try_new(
        one_column(DataType::LargeBinary),
        vec![Arc::new(LargeBinaryArray::from(vec![Some(&b"xy"[..]), Some(b"z")]))],
    )
    .unwrap();
    assert_eq!(encode(Format::Raw, &[], &bytes), vec!["xy", "z"]);
}

#[test]
fn raw_checks_its_column_and_options() {
    let err = |pairs: &[(&str, &str)], schema: SchemaRef| {
        Format::Raw.validate("t", &options(pairs), &schema).unwrap_err().to_string()
    };
    let e = err(&[], id_name());
    assert_eq!(e, "table 't': format 'raw' supports one STRING or BYTES column in Eddy; the table has 2 columns");
    let e = err(&[], one_column(DataType::Int32));
    assert!(e.contains("supports one STRING or BYTES column in Eddy; column 'v' is of type Int32"), "{e}");
    let e = err(&[("raw.charset", "ISO-8859-1")], one_column(DataType::Utf8));
    assert!(e.contains("'raw.charset' = 'ISO-8859-1' is not supported in Eddy; only UTF-8"), "{e}");
    let e = err(&[("raw.endianness", "middle")], one_column(DataType::Utf8));
    assert!(e.contains("'big-endian' or 'little-endian'"), "{e}");
    assert!(Format::Raw.record_encoder("t", &Options::default(), id_name(), "t-value").is_err());
    assert!(Format::Raw.validate("t", &options(&[("raw.charset", "utf8")]), &one_column(DataType::Utf8)).is_ok());
}

/// Rows as `(kind, id, name)`.
fn changes(out: &DecodedRecords) -> Vec<(&'static str, Option<i64>, Option<&str>)> {
    let kinds = out.row_kinds.as_ref().unwrap();
    let kinds = kinds.iter().map(|k| RowKind::from_code(k.unwrap()).unwrap().short_string());
    kinds.zip(ids(&out.batch)).zip(names(&out.batch)).map(|((k, i), n)| (k, i, n)).collect()
}

const EVENTS: &[&str] = &[
    r#"{"before": null, "after": {"id": 1, "name": "a"}, "op": "c", "source": {"db": "x"}, "ts_ms": 1}"#,
    r#"{"before": {"id": 1, "name": "a"}, "after": {"id": 1, "name": "b"}, "op": "u"}"#,
    r#"{"before": {"id": 1, "name": "b"}, "after": null, "op": "d"}"#,
    r#"{"after": {"id": 2, "name": "x"}, "op": "r"}"#,
];

#[test]
fn debezium_events_become_a_changelog() {
    let mut d = decoder(Format::DebeziumJson, &[], id_name());
    let out = decode(d.as_mut(), EVENTS);
    assert_eq!(
        changes(&out),
        vec![
            ("+I", Some(1), Some("a")),
            ("-U", Some(1), Some("a")),
            ("+U", Some(1), Some("b")),
            ("-D", Some(1), Some("b")),
            ("+I", Some(2), Some("x")),
        ]
    );
    assert_eq!(out.source_records, Some(vec![0, 1, 1, 2, 3]));
    assert!(out.bad.is_empty());
    assert!(Format::DebeziumJson.is_changelog() && !Format::Json.is_changelog());
}

#[test]
fn debezium_schema_envelope() {
    let wrapped: Vec<String> =
        EVENTS.iter().map(|e| format!(r#"{{"schema": {{"type": "struct", "fields": []}}, "payload": {e}}}"#)).collect();
    let wrapped: Vec<&str> = wrapped.iter().map(String::as_str).collect();
    let mut d = decoder(Format::DebeziumJson, &[("debezium-json.schema-include", "true")], id_name());
    let out = decode(d.as_mut(), &wrapped);
    assert_eq!(changes(&out).iter().map(|c| c.0).collect::<Vec<_>>(), vec!["+I", "-U", "+U", "-D", "+I"]);
    assert_eq!(ids(&out.batch), vec![Some(1), Some(1), Some(1), Some(1), Some(2)]);
    assert!(out.bad.is_empty());

    // Read without schema-include, an envelope says which option to set; and the reverse.
    let mut d = decoder(Format::DebeziumJson, &[], id_name());
    let out = decode(d.as_mut(), &wrapped[..1]);
    assert_eq!(out.batch.num_rows(), 0);
    assert!(out.bad[0].message.contains("set 'debezium-json.schema-include' = 'true'"), "{}", out.bad[0].message);
    let mut d = decoder(Format::DebeziumJson, &[("debezium-json.schema-include", "true")], id_name());
    let out = decode(d.as_mut(), &EVENTS[..1]);
    assert!(out.bad[0].message.contains("has no \"payload\""), "{}", out.bad[0].message);
}

#[test]
fn debezium_bad_events() {
    let mut d = decoder(Format::DebeziumJson, &[], id_name());
    let out = decode(
        d.as_mut(),
        &[
            EVENTS[0],
            r#"{"before": null, "after": {"id": 1, "name": "b"}, "op": "u"}"#,
            "",
            r#"{"before": {"id": 5, "name": "e"}, "after": {"id": "oops"}, "op": "u"}"#,
            r#"{"before": null, "after": null, "op": "t"}"#,
            r#"{"op": "c", "after": "#,
            EVENTS[2],
        ],
    );
    // The update with a bad "after" gives neither of its rows; the empty record gives none.
    assert_eq!(changes(&out), vec![("+I", Some(1), Some("a")), ("-D", Some(1), Some("b"))]);
    assert_eq!(out.source_records, Some(vec![0, 6]));
    let bad = bad(&out);
    assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1, 3, 4, 5]);
    assert_eq!(
        bad[0].1,
        "The \"before\" field of UPDATE message is null, if you are using Debezium Postgres Connector, please \
         check the Postgres table has been set REPLICA IDENTITY to FULL level."
    );
    assert!(bad[1].1.starts_with(r#""after": cannot parse JSON '{"id": "oops"}': "#), "{}", bad[1].1);
    assert!(bad[2].1.starts_with(r#"unknown "op" value "t""#), "{}", bad[2].1);
    assert!(bad[3].1.starts_with("corrupt Debezium JSON message"), "{}", bad[3].1);

    // With ignore-parse-errors they are skipped, and a wrong-typed value is NULL.
    let mut d = decoder(Format::DebeziumJson, &[("debezium-json.ignore-parse-errors", "true")], id_name());
    let out = decode(
        d.as_mut(),
        &[r#"{"before": null, "after": {"id": "oops", "name": "n"}, "op": "c"}"#, r#"{"op": "u"}"#, EVENTS[3]],
    );
    assert_eq!(changes(&out), vec![("+I", None, Some("n")), ("+I", Some(2), Some("x"))]);
    assert!(out.bad.is_empty());
    assert_eq!(d.skipped(), 1);
}

#[test]
fn record_formats_are_checked() {
    let o = Options::default();
    for (name, format) in [
        ("raw", Format::Raw),
        ("debezium-json", Format::DebeziumJson),
        ("avro", Format::Avro),
        ("avro-confluent", Format::AvroConfluent),
    ] {
        assert_eq!(Format::of("t", &options(&[("format", name)])).unwrap(), format);
        assert_eq!(format.name(), name);
        assert!(!format.is_file_format());
        let e = format.for_files("t").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "table 't': format '{name}' cannot be used with the filesystem connector in Eddy; use json, csv or parquet"
            )
        );
        let e = format.decoder("t", &o, id_name(), "f".into()).err().unwrap().to_string();
        assert!(e.contains("cannot be used with the filesystem connector"), "{e}");
    }
    let e = Format::of("t", &options(&[("format", "protobuf")])).unwrap_err().to_string();
    assert!(e.contains("unknown format 'protobuf'; supported formats: json, csv, parquet, raw, debezium-json"), "{e}");
    let e = Format::DebeziumJson.record_encoder("t", &o, id_name(), "t-value").err().unwrap().to_string();
    assert_eq!(e, "table 't': format 'debezium-json' can only be used to read in Eddy");
    assert!(Format::Parquet.record_decoder("t", &o, id_name(), "t-value").is_err());
    let e = Format::DebeziumJson
        .validate("t", &options(&[("debezium-json.map-null-key.mode", "KEEP")]), &id_name())
        .unwrap_err();
    assert!(e.to_string().contains("debezium-json.map-null-key.mode"), "{e}");
    assert!(Format::DebeziumJson.knows("debezium-json.schema-include") && Format::Raw.knows("raw.charset"));
}

#[test]
fn filesystem_rejects_record_formats_when_validating() {
    let fields = vec![Field::new("v", DataType::Utf8, true)];
    for format in ["raw", "debezium-json"] {
        let t = crate::test_util::table(
            fields.clone(),
            &[("connector", "filesystem"), ("path", "/tmp/x"), ("format", format)],
        );
        for (source, sink) in [(true, false), (false, true)] {
            let e = crate::validate(&t, source, sink).unwrap_err().to_string();
            assert!(e.contains(&format!("format '{format}' cannot be used with the filesystem connector")), "{e}");
        }
    }
}
