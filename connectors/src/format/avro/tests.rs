//! Tests of the `avro` and `avro-confluent` formats. The `avro-confluent` ones run against
//! `tests/support/schema_registry.py`, a small real registry server (needs `python3`).

use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use apache_avro::types::Value;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int32Builder, Int64Array, Int64Builder, Int8Array, ListBuilder, MapBuilder, MapFieldNames,
    StringArray, StringBuilder, StructArray, Time32MillisecondArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields, Int32Type, IntervalUnit, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{decoder, encoder, validate};
use crate::format::record::{BadRecord, DecodedRecords};
use crate::Options;

fn options(pairs: &[(&str, &str)]) -> Options {
    Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

/// Encode `batch` as records, one byte vector per row.
fn encode(options: &Options, batch: &RecordBatch, confluent: bool, subject: &str) -> Vec<Vec<u8>> {
    let mut enc = encoder("t", options, batch.schema(), confluent, subject).unwrap();
    let mut out = Vec::new();
    let mut rows: Vec<Range<usize>> = Vec::new();
    enc.encode(batch, &mut out, &mut rows).unwrap();
    assert_eq!(rows.len(), batch.num_rows());
    rows.into_iter().map(|r| out[r].to_vec()).collect()
}

fn decode(options: &Options, schema: &SchemaRef, confluent: bool, records: &[Vec<u8>]) -> DecodedRecords {
    let mut dec = decoder("t", options, schema.clone(), confluent, "").unwrap();
    let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    dec.decode(&slices).unwrap()
}

fn option_error(options: &Options, schema: &SchemaRef, confluent: bool) -> String {
    validate("t", options, schema, confluent).unwrap_err().to_string()
}

fn schema_of(columns: &[(&str, ArrayRef, bool)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a, nullable)| Field::new(*name, a.data_type().clone(), *nullable))
            .collect::<Vec<_>>(),
    ))
}

fn batch_of(columns: Vec<(&str, ArrayRef, bool)>) -> RecordBatch {
    let schema = schema_of(&columns);
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a, _)| a).collect()).unwrap()
}

/// Rows with every supported type; row 1 is all NULL where the column allows it.
fn every_type() -> RecordBatch {
    let utc = Some(Arc::<str>::from("UTC"));
    let mut list = ListBuilder::new(Int32Builder::new()).with_field(Field::new("element", DataType::Int32, true));
    list.values().append_value(1);
    list.values().append_null();
    list.values().append_value(-3);
    list.append(true);
    list.append(false);
    list.append(true); // empty
    let names = MapFieldNames { entry: "entries".into(), key: "key".into(), value: "value".into() };
    let mut map = MapBuilder::new(Some(names), StringBuilder::new(), Int64Builder::new());
    map.keys().append_value("a");
    map.values().append_value(i64::MIN);
    map.keys().append_value("b");
    map.values().append_null();
    map.append(true).unwrap();
    map.append(false).unwrap();
    map.keys().append_value("z");
    map.values().append_value(7);
    map.append(true).unwrap();
    let inner = StructArray::try_new(
        Fields::from(vec![Field::new("c", DataType::Utf8, true)]),
        vec![Arc::new(StringArray::from(vec![Some("deep"), None, None])) as ArrayRef],
        None,
    )
    .unwrap();
    let row = StructArray::try_new(
        Fields::from(vec![Field::new("a", DataType::Int32, false), Field::new("b", inner.data_type().clone(), true)]),
        vec![Arc::new(Int32Array::from(vec![5, 0, 6])) as ArrayRef, Arc::new(inner)],
        Some(NullBuffer::from(vec![true, false, true])),
    )
    .unwrap();
    let decimal = Decimal128Array::from(vec![
        Some(123_456_789_012_345_678_901_234_567_890_123_456_i128),
        None,
        Some(-99_999_999_999_999_999_999_999_999_999_999_999_999_i128),
    ])
    .with_precision_and_scale(38, 10)
    .unwrap();
    batch_of(vec![
        ("id", Arc::new(Int32Array::from(vec![1, 2, 3])), false),
        ("b", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])), true),
        ("i8", Arc::new(Int8Array::from(vec![Some(-128), None, Some(127)])), true),
        ("i16", Arc::new(Int16Array::from(vec![Some(-32768), None, Some(32767)])), true),
        ("i32", Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(i32::MAX)])), true),
        ("i64", Arc::new(Int64Array::from(vec![Some(i64::MIN), None, Some(i64::MAX)])), true),
        ("f32", Arc::new(Float32Array::from(vec![Some(1.5), None, Some(f32::NEG_INFINITY)])), true),
        ("f64", Arc::new(Float64Array::from(vec![Some(-0.1), None, Some(1e300)])), true),
        ("s", Arc::new(StringArray::from(vec![Some("héllo"), None, Some("")])), true),
        ("bin", Arc::new(BinaryArray::from(vec![Some(&[0u8, 255][..]), None, Some(&[][..])])), true),
        ("dec", Arc::new(decimal), true),
        ("d", Arc::new(Date32Array::from(vec![Some(-1), None, Some(19_000)])), true),
        ("t", Arc::new(Time32MillisecondArray::from(vec![Some(0), None, Some(86_399_999)])), true),
        ("t6", Arc::new(Time64MicrosecondArray::from(vec![Some(1), None, Some(86_399_999_999)])), true),
        ("ts", Arc::new(TimestampMillisecondArray::from(vec![Some(-1), None, Some(1_700_000_000_123)])), true),
        (
            "ltz",
            Arc::new(
                TimestampMillisecondArray::from(vec![Some(1_700_000_000_123), None, Some(-86_400_001)])
                    .with_timezone_opt(utc),
            ),
            true,
        ),
        ("ts6", Arc::new(TimestampMicrosecondArray::from(vec![Some(-1), None, Some(1_700_000_000_123_456)])), true),
        ("list", Arc::new(list.finish()), true),
        ("map", Arc::new(map.finish()), true),
        ("row", Arc::new(row), true),
    ])
}

#[test]
fn derived_schema_is_flinks() {
    let batch = batch_of(vec![
        ("id", Arc::new(Int32Array::from(vec![1])), false),
        ("name", Arc::new(StringArray::from(vec!["a"])), true),
        ("amount", Arc::new(Decimal128Array::from(vec![1]).with_precision_and_scale(10, 2).unwrap()), false),
        ("ts", Arc::new(TimestampMillisecondArray::from(vec![1])), true),
    ]);
    let nested = Fields::from(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Struct(Fields::from(vec![Field::new("c", DataType::Date32, false)])), true),
    ]);
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("r", DataType::Struct(nested.clone()), false));
    fields.push(Field::new(
        "rows",
        DataType::List(Arc::new(Field::new("element", DataType::Struct(nested), true))),
        true,
    ));
    let text = super::schema::derive(&Fields::from(fields), true).unwrap();
    let expected = concat!(
        r#"{"type":"record","name":"record","namespace":"org.apache.flink.avro.generated","fields":["#,
        r#"{"name":"id","type":"int"},"#,
        r#"{"name":"name","type":["null","string"],"default":null},"#,
        r#"{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},"#,
        r#"{"name":"ts","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},"#,
        r#"{"name":"r","type":{"type":"record","name":"record_r","fields":["#,
        r#"{"name":"a","type":["null","int"],"default":null},"#,
        r#"{"name":"b","type":["null",{"type":"record","name":"record_r_b","fields":["#,
        r#"{"name":"c","type":{"type":"int","logicalType":"date"}}]}],"default":null}]}},"#,
        r#"{"name":"rows","type":["null",{"type":"array","items":["null",{"type":"record","name":"record_rows","fields":["#,
        r#"{"name":"a","type":["null","int"],"default":null},"#,
        r#"{"name":"b","type":["null",{"type":"record","name":"record_rows_b","fields":["#,
        r#"{"name":"c","type":{"type":"int","logicalType":"date"}}]}],"default":null}]}]}],"default":null}]}"#,
    );
    assert_eq!(text, expected);
    apache_avro::Schema::parse_str(&text).unwrap();
}

#[test]
fn timestamp_mappings() {
    let fields = Fields::from(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("ltz", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("ts6", DataType::Timestamp(TimeUnit::Microsecond, None), false),
    ]);
    let legacy = super::schema::derive(&fields, true).unwrap();
    assert!(legacy.contains(r#""name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}"#), "{legacy}");
    assert!(legacy.contains(r#""name":"ltz","type":{"type":"long","logicalType":"timestamp-millis"}"#), "{legacy}");
    assert!(legacy.contains(r#""name":"ts6","type":{"type":"long","logicalType":"timestamp-micros"}"#), "{legacy}");
    let standard = super::schema::derive(&fields, false).unwrap();
    assert!(standard.contains(r#""name":"ts","type":{"type":"long","logicalType":"local-timestamp-millis"}"#));
    assert!(standard.contains(r#""name":"ltz","type":{"type":"long","logicalType":"timestamp-millis"}"#));
    assert!(standard.contains(r#""name":"ts6","type":{"type":"long","logicalType":"local-timestamp-micros"}"#));
}

#[test]
fn plain_round_trip_of_every_type_with_nulls() {
    let batch = every_type();
    for legacy in ["true", "false"] {
        let o = options(&[("avro.timestamp_mapping.legacy", legacy)]);
        validate("t", &o, &batch.schema(), false).unwrap();
        let records = encode(&o, &batch, false, "");
        // apache-avro reads what we write as valid datums of the derived schema.
        let text = super::schema::derive(batch.schema().fields(), legacy == "true").unwrap();
        let avro = apache_avro::Schema::parse_str(&text).unwrap();
        for record in &records {
            let value = apache_avro::from_avro_datum(&avro, &mut record.as_slice(), None).unwrap();
            assert!(value.validate(&avro), "{value:?}");
        }
        let decoded = decode(&o, &batch.schema(), false, &records);
        assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
        assert_eq!(decoded.batch, batch, "legacy = {legacy}");
    }
}

#[test]
fn plain_datum_has_no_header() {
    let batch = batch_of(vec![
        ("id", Arc::new(Int32Array::from(vec![-2])), false),
        ("name", Arc::new(StringArray::from(vec![Some("ab")])), true),
        ("price", Arc::new(Decimal128Array::from(vec![-1]).with_precision_and_scale(5, 2).unwrap()), false),
    ]);
    let records = encode(&Options::default(), &batch, false, "");
    // int -2 = zigzag 3; union branch 1, string of 2; decimal bytes [0xFF] (-0.01)
    assert_eq!(records, vec![vec![3, 2, 4, b'a', b'b', 2, 0xFF]]);
}

#[test]
fn bad_plain_records_are_reported_with_their_index() {
    let batch = batch_of(vec![
        ("id", Arc::new(Int32Array::from(vec![1, 2])), false),
        ("name", Arc::new(StringArray::from(vec![Some("a long enough name"), None])), true),
    ]);
    let o = Options::default();
    let mut records = encode(&o, &batch, false, "");
    let truncated = records[0][..6].to_vec();
    records.insert(1, truncated);
    records.insert(2, vec![2, 9]); // union branch 9 does not exist
    records.insert(3, vec![]);
    // Cut before the nullable field: must not read as NULL (apache-avro's reader would).
    records.insert(4, records[0][..1].to_vec());
    let decoded = decode(&o, &batch.schema(), false, &records);
    assert_eq!(decoded.bad.iter().map(|b| b.index).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert!(decoded.bad.iter().all(|b| b.message.starts_with("invalid Avro")), "{:?}", decoded.bad);
    assert_eq!(decoded.batch, batch);
}

#[test]
fn unsupported_columns_and_options_are_options_errors() {
    let interval = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("span", DataType::Interval(IntervalUnit::YearMonth), true),
    ]));
    let e = option_error(&Options::default(), &interval, false);
    assert!(e.contains("format 'avro'") && e.contains("column 'span'"), "{e}");

    let nested = Arc::new(Schema::new(vec![Field::new(
        "m",
        DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Int32, false),
                    Field::new("value", DataType::Utf8, true),
                ])),
                false,
            )),
            false,
        ),
        true,
    )]));
    let e = option_error(&Options::default(), &nested, false);
    assert!(e.contains("column 'm'") && e.contains("key type must be STRING"), "{e}");

    let dashed = Arc::new(Schema::new(vec![Field::new("my-col", DataType::Int32, true)]));
    let e = option_error(&Options::default(), &dashed, false);
    assert!(e.contains("'my-col' is not a valid Avro field name"), "{e}");

    let ok = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)]));
    let e = option_error(&options(&[("avro.encoding", "json")]), &ok, false);
    assert!(e.contains("'avro.encoding' = 'json'"), "{e}");
    let e = option_error(&options(&[("avro.codec", "lz4")]), &ok, false);
    assert!(e.contains("avro.codec"), "{e}");
    validate("t", &options(&[("avro.codec", "snappy"), ("avro.encoding", "BINARY")]), &ok, false).unwrap();

    let e = option_error(&Options::default(), &ok, true);
    assert!(e.contains("missing required option 'avro-confluent.url'"), "{e}");
    let e = option_error(&options(&[("avro-confluent.url", "https://sr:8081")]), &ok, true);
    assert!(e.contains("https is not supported"), "{e}");
    let e = option_error(
        &options(&[
            ("avro-confluent.url", "http://sr:8081"),
            ("avro-confluent.basic-auth.credentials-source", "USER_INFO"),
        ]),
        &ok,
        true,
    );
    assert!(e.contains("avro-confluent.basic-auth.user-info"), "{e}");
    let e = option_error(
        &options(&[("avro-confluent.url", "http://sr:8081"), ("avro-confluent.ssl.truststore.location", "/x")]),
        &ok,
        true,
    );
    assert!(e.contains("ssl.truststore.location"), "{e}");
    validate("t", &options(&[("avro-confluent.schema-registry.url", "http://sr:8081/")]), &ok, true).unwrap();

    let e = encoder("t", &options(&[("avro-confluent.url", "http://sr:8081")]), ok.clone(), true, "")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("avro-confluent.subject"), "{e}");
}

#[test]
fn a_user_schema_must_match_the_table() {
    let schema =
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false), Field::new("name", DataType::Utf8, true)]));
    let user =
        r#"{"type":"record","name":"User","fields":[{"name":"id","type":"int"},{"name":"nick","type":"string"}]}"#;
    let o = options(&[("avro-confluent.url", "http://sr:8081"), ("avro-confluent.schema", user)]);
    let e = option_error(&o, &schema, true);
    assert!(e.contains("does not match option 'avro-confluent.schema'") && e.contains("'name'"), "{e}");
    let o = options(&[("avro-confluent.url", "http://sr:8081"), ("avro-confluent.schema", "{not json")]);
    assert!(option_error(&o, &schema, true).contains("not a valid Avro schema"));
}

// ---- avro-confluent, against a real (small) registry ----

/// `tests/support/schema_registry.py` on a free port, stopped when dropped.
struct TestRegistry {
    child: Child,
    url: String,
}

impl TestRegistry {
    fn start(args: &[&str]) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/support/schema_registry.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs tests/support/schema_registry.py");
        let mut url = None;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(u) = line.strip_prefix("listening on ") {
                url = Some(u.to_string());
            }
            if line == "ready" {
                break;
            }
        }
        Self { child, url: url.expect("the registry prints its address") }
    }

    fn options(&self, more: &[(&str, &str)]) -> Options {
        let mut pairs = vec![("avro-confluent.url", self.url.as_str())];
        pairs.extend_from_slice(more);
        options(&pairs)
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let body = ureq::get(&format!("{}{path}", self.url)).call().unwrap().body_mut().read_to_string().unwrap();
        serde_json::from_str(&body).unwrap()
    }

    fn register(&self, subject: &str, schema: &str) -> u32 {
        let body = serde_json::json!({ "schema": schema }).to_string();
        let answer = ureq::post(&format!("{}/subjects/{subject}/versions", self.url))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .send(body.as_str())
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()["id"].as_u64().unwrap() as u32
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut record = vec![0];
    record.extend_from_slice(&id.to_be_bytes());
    record.extend_from_slice(datum);
    record
}

#[test]
fn confluent_round_trip_registers_the_derived_schema() {
    let registry = TestRegistry::start(&[]);
    let batch = every_type();
    let o = registry.options(&[]);
    validate("t", &o, &batch.schema(), true).unwrap();
    let records = encode(&o, &batch, true, "orders-value");
    assert_eq!(registry.get("/subjects"), serde_json::json!(["orders-value"]));
    let latest = registry.get("/subjects/orders-value/versions/latest");
    let id = latest["id"].as_u64().unwrap() as u32;
    let registered = latest["schema"].as_str().unwrap();
    assert_eq!(registered, super::schema::derive(batch.schema().fields(), true).unwrap());
    for record in &records {
        assert_eq!(record[0], 0);
        assert_eq!(u32::from_be_bytes(record[1..5].try_into().unwrap()), id);
    }
    let decoded = decode(&o, &batch.schema(), true, &records);
    assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
    assert_eq!(decoded.batch, batch);

    // A second sink with the same schema gets the same id; a subject option overrides the default.
    let o2 = registry.options(&[("avro-confluent.subject", "custom")]);
    let again = encode(&o2, &batch, true, "orders-value");
    assert_eq!(again, records);
    assert_eq!(registry.get("/subjects"), serde_json::json!(["custom", "orders-value"]));
}

#[test]
fn confluent_reads_a_compatible_writer_schema() {
    let registry = TestRegistry::start(&[]);
    // The producer's schema: another name, an extra field, another order, `int` for the
    // `BIGINT` column `qty` (promoted), and no `note` (a nullable column: read as NULL).
    let writer_text = r#"{"type":"record","name":"Order","namespace":"com.example","fields":[
        {"name":"extra","type":"string"},
        {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
        {"name":"name","type":["null","string"],"default":null},
        {"name":"id","type":"int"},
        {"name":"qty","type":"int"}]}"#;
    let id = registry.register("orders-value", writer_text);
    let writer = apache_avro::Schema::parse_str(writer_text).unwrap();
    let minimal = |n: i64| {
        let be = n.to_be_bytes();
        let skip = (0..7).take_while(|&i| matches!((be[i], be[i + 1] & 0x80), (0, 0) | (0xFF, 0x80))).count();
        be[skip..].to_vec()
    };
    let encode_row = |extra: &str, amount: i64, name: Option<&str>, row_id: i32, qty: i32| {
        let value = Value::Record(vec![
            ("extra".into(), Value::String(extra.into())),
            // The fewest bytes, as Java's `BigInteger.toByteArray` (12_345: 2 bytes, which
            // apache-avro's resolution alone refuses for precision 10).
            ("amount".into(), Value::Decimal(apache_avro::Decimal::from(minimal(amount)))),
            (
                "name".into(),
                match name {
                    Some(n) => Value::Union(1, Box::new(Value::String(n.into()))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
            ("id".into(), Value::Int(row_id)),
            ("qty".into(), Value::Int(qty)),
        ]);
        framed(id, &apache_avro::to_avro_datum(&writer, value).unwrap())
    };
    let records = vec![encode_row("x", 12_345, Some("ann"), 1, 3), encode_row("y", -1, None, 2, 4)];

    let expected = batch_of(vec![
        ("id", Arc::new(Int32Array::from(vec![1, 2])), false),
        ("name", Arc::new(StringArray::from(vec![Some("ann"), None])), true),
        ("note", Arc::new(StringArray::from(vec![None::<&str>, None])), true),
        ("qty", Arc::new(Int64Array::from(vec![3, 4])), false),
        ("amount", Arc::new(Decimal128Array::from(vec![12_345, -1]).with_precision_and_scale(10, 2).unwrap()), false),
    ]);
    let decoded = decode(&registry.options(&[]), &expected.schema(), true, &records);
    assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
    assert_eq!(decoded.batch, expected);
}

#[test]
fn confluent_bad_records_are_reported_one_by_one() {
    let registry = TestRegistry::start(&[]);
    let batch = batch_of(vec![
        ("id", Arc::new(Int32Array::from(vec![1, 2])), false),
        ("name", Arc::new(StringArray::from(vec![Some("a"), Some("b")])), true),
    ]);
    let o = registry.options(&[]);
    let good = encode(&o, &batch, true, "t-value");
    let mut wrong_magic = good[0].clone();
    wrong_magic[0] = 1;
    let unknown_id = framed(4242, &good[0][5..]);
    let mut truncated = good[1].clone();
    truncated.truncate(truncated.len() - 1);
    let records = vec![good[0].clone(), wrong_magic, vec![0, 0, 0], unknown_id, truncated, good[1].clone()];
    let decoded = decode(&o, &batch.schema(), true, &records);
    let bad: Vec<(usize, &str)> = decoded.bad.iter().map(|b| (b.index, b.message.as_str())).collect();
    assert_eq!(bad.len(), 4, "{bad:?}");
    assert_eq!(bad[0].0, 1);
    assert!(bad[0].1.contains("magic byte 1"), "{bad:?}");
    assert_eq!(bad[1].0, 2);
    assert!(bad[1].1.contains("too short"), "{bad:?}");
    assert_eq!(bad[2].0, 3);
    assert!(bad[2].1.contains("schema id 4242 is not in the schema registry"), "{bad:?}");
    assert_eq!(bad[3].0, 4);
    assert!(bad[3].1.starts_with("invalid Avro"), "{bad:?}");
    assert_eq!(decoded.batch, batch);
}

#[test]
fn an_unreachable_registry_is_an_error_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
    let o = options(&[("avro-confluent.url", &url)]);
    let mut dec = decoder("t", &o, schema.clone(), true, "").unwrap();
    let record = framed(1, &[2]);
    let e = dec.decode(&[&record]).unwrap_err().to_string();
    assert!(e.contains(&url), "{e}");
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![1]))]).unwrap();
    let mut enc = encoder("t", &o, schema, true, "t-value").unwrap();
    let e = enc.encode(&batch, &mut Vec::new(), &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains(&url), "{e}");
}

#[test]
fn confluent_basic_auth() {
    let registry = TestRegistry::start(&["--user", "eddy:s3cret"]);
    let batch = batch_of(vec![("id", Arc::new(Int32Array::from(vec![7])), false)]);
    let anonymous = registry.options(&[]);
    let mut enc = encoder("t", &anonymous, batch.schema(), true, "t-value").unwrap();
    let e = enc.encode(&batch, &mut Vec::new(), &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("401") && e.contains(&registry.url), "{e}");

    let o = registry.options(&[
        ("avro-confluent.basic-auth.credentials-source", "USER_INFO"),
        ("avro-confluent.basic-auth.user-info", "eddy:s3cret"),
    ]);
    let records = encode(&o, &batch, true, "t-value");
    assert_eq!(decode(&o, &batch.schema(), true, &records).batch, batch);

    // Credentials in the URL (Confluent's default source).
    let in_url = registry.url.replacen("http://", "http://eddy:s3cret@", 1);
    let o = options(&[("avro-confluent.url", &in_url)]);
    assert_eq!(decode(&o, &batch.schema(), true, &records).batch, batch);
}

#[test]
fn confluent_with_a_user_schema() {
    let registry = TestRegistry::start(&[]);
    // The user's schema: an enum for a STRING column, a union with null last, a long for INT.
    let user = r#"{"type":"record","name":"Event","namespace":"com.example","fields":[
        {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["CLICK","VIEW"]}},
        {"name":"page","type":["string","null"]},
        {"name":"n","type":"long"}]}"#;
    let batch = batch_of(vec![
        ("kind", Arc::new(StringArray::from(vec!["VIEW", "CLICK"])), false),
        ("page", Arc::new(StringArray::from(vec![Some("/a"), None])), true),
        ("n", Arc::new(Int32Array::from(vec![1, -1])), false),
    ]);
    let o = registry.options(&[("avro-confluent.schema", user)]);
    validate("t", &o, &batch.schema(), true).unwrap();
    let records = encode(&o, &batch, true, "events-value");
    assert_eq!(registry.get("/subjects/events-value/versions/latest")["schema"], user);
    // kind: enum index 1; page: branch 0, "/a"; n: long -1... for row 0: n = 1
    assert_eq!(records[0][5..], [2, 0, 4, b'/', b'a', 2]);
    let decoded = decode(&o, &batch.schema(), true, &records);
    assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
    assert_eq!(decoded.batch, batch);

    let unknown = batch_of(vec![
        ("kind", Arc::new(StringArray::from(vec!["BUY"])), false),
        ("page", Arc::new(StringArray::from(vec![None::<&str>])), true),
        ("n", Arc::new(Int32Array::from(vec![1])), false),
    ]);
    let mut enc = encoder("t", &o, unknown.schema(), true, "events-value").unwrap();
    let e = enc.encode(&unknown, &mut Vec::new(), &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("column 'kind'") && e.contains("'BUY' is not a symbol"), "{e}");
}

#[test]
fn confluent_without_auto_register_looks_the_schema_up() {
    let registry = TestRegistry::start(&[]);
    let batch = batch_of(vec![("id", Arc::new(Int32Array::from(vec![7])), false)]);
    let o = registry.options(&[("avro-confluent.auto.register.schemas", "false")]);
    let mut enc = encoder("t", &o, batch.schema(), true, "t-value").unwrap();
    let e = enc.encode(&batch, &mut Vec::new(), &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("not registered under subject 't-value'"), "{e}");

    let id = registry.register("t-value", &super::schema::derive(batch.schema().fields(), true).unwrap());
    let records = encode(&o, &batch, true, "t-value");
    assert_eq!(records, vec![framed(id, &[14])]);
}

#[test]
fn null_in_a_not_null_column_is_a_bad_record() {
    // The user's schema lets `id` be null; the table's column is NOT NULL.
    let text = r#"{"type":"record","name":"r","fields":[{"name":"id","type":["null","int"]}]}"#;
    let writer = apache_avro::Schema::parse_str(text).unwrap();
    let registry = TestRegistry::start(&[]);
    let id = registry.register("x", text);
    let datum =
        |v: Value| framed(id, &apache_avro::to_avro_datum(&writer, Value::Record(vec![("id".into(), v)])).unwrap());
    let records = vec![datum(Value::Union(1, Box::new(Value::Int(5)))), datum(Value::Union(0, Box::new(Value::Null)))];
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
    let decoded = decode(&registry.options(&[("avro-confluent.schema", text)]), &schema, true, &records);
    assert_eq!(decoded.bad, vec![BadRecord { index: 1, message: "column 'id': NULL in a NOT NULL column".into() }]);
    assert_eq!(decoded.batch.column(0).as_primitive::<Int32Type>().values().as_ref(), &[5]);

    // Without the user's schema the writer's union is resolved to the table's `int`: also bad.
    let decoded = decode(&registry.options(&[]), &schema, true, &records);
    assert_eq!(decoded.bad.iter().map(|b| b.index).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn value_errors_name_the_nested_column() {
    // An enum symbol the schema lacks, inside an array inside a row.
    let user = r#"{"type":"record","name":"r","fields":[{"name":"o","type":{"type":"record","name":"o","fields":[
        {"name":"tags","type":{"type":"array","items":{"type":"enum","name":"T","symbols":["A"]}}}]}}]}"#;
    let mut tags = ListBuilder::new(StringBuilder::new()).with_field(Field::new("element", DataType::Utf8, false));
    tags.values().append_value("A");
    tags.values().append_value("B");
    tags.append(true);
    let tags = tags.finish();
    let o = StructArray::try_new(
        Fields::from(vec![Field::new("tags", tags.data_type().clone(), false)]),
        vec![Arc::new(tags) as ArrayRef],
        None,
    )
    .unwrap();
    let batch = batch_of(vec![("o", Arc::new(o), false)]);
    let opts = options(&[("avro-confluent.url", "http://127.0.0.1:9"), ("avro-confluent.schema", user)]);
    let rows = super::table_schema("t", &batch.schema(), Some(user), true, true).unwrap().rows;
    let e = rows.write(&batch, 0, &mut Vec::new()).unwrap_err().to_string();
    assert_eq!(e, "column 'o.tags[1]': 'B' is not a symbol of the Avro enum");
    validate("t", &opts, &batch.schema(), true).unwrap();
}

#[test]
fn twos_complement_of_any_length() {
    use super::rows::from_twos_complement as f;
    assert_eq!(f(&[]), Some(0));
    assert_eq!(f(&[0xFF]), Some(-1));
    assert_eq!(f(&[0x00, 0x80]), Some(128));
    assert_eq!(f(&[0xFF, 0x7F]), Some(-129));
    let mut wide = vec![0xFF; 4];
    wide.extend_from_slice(&i128::MIN.to_be_bytes());
    assert_eq!(f(&wide), Some(i128::MIN));
    let mut too_wide = vec![0x00; 4];
    too_wide.extend_from_slice(&i128::MIN.to_be_bytes());
    assert_eq!(f(&too_wide), None);
    assert_eq!(f(&[1; 17]), None);
}
