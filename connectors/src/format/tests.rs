use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::*;
use arrow::record_batch::RecordBatch;

use super::*;
use crate::Options;

fn options(pairs: &[(&str, &str)]) -> Options {
    Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]))
}

fn decoder(format: Format, pairs: &[(&str, &str)]) -> Box<dyn Decoder> {
    format.decoder("t", &options(pairs), schema(), "data/file.jsonl".into()).unwrap()
}

/// Decode all of `input` as one file.
fn decode_all(d: &mut dyn Decoder, input: &[u8]) -> crate::Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let (batch, used) = d.decode(&input[pos..], true)?;
        pos += used;
        match batch {
            Some(b) => out.push(b),
            None if pos >= input.len() => return Ok(out),
            None => {}
        }
    }
}

fn ids(batches: &[RecordBatch]) -> Vec<Option<i64>> {
    batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().iter().collect::<Vec<_>>()).collect()
}

#[test]
fn json_decodes_a_chunk_into_arrow() {
    let input = b"{\"id\": 1, \"name\": \"a\", \"price\": 1.5, \"ts\": \"2024-03-01 10:00:00.199\"}\n\
                  \n\
                  {\"id\": 2, \"name\": 42, \"extra\": [1]}\r\n\
                  {\"id\": 3, \"name\": null, \"price\": 3, \"ts\": \"2024-03-01T10:00:01\"}";
    let mut d = decoder(Format::Json, &[]);
    let batches = decode_all(d.as_mut(), input).unwrap();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(ids(&batches), vec![Some(1), Some(2), Some(3)]);
    // A number read into a STRING column is its text (as in Flink); missing fields are NULL.
    assert_eq!(b.column(1).as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("a"), Some("42"), None]);
    assert!(b.column(2).is_null(1));
    let ts = b.column(3).as_primitive::<TimestampMillisecondType>();
    assert_eq!(ts.value(0), 1709287200199);
    assert_eq!(ts.value(2), 1709287201000);
}

#[test]
fn json_keeps_an_unfinished_line_for_later() {
    let mut d = decoder(Format::Json, &[]);
    let (batch, used) = d.decode(b"{\"id\": 1}\n{\"id\": 2}\n{\"id\"", false).unwrap();
    assert_eq!(batch.unwrap().num_rows(), 2);
    assert_eq!(used, 20);
    let (batch, used) = d.decode(b"{\"id\": 3}", false).unwrap();
    assert!(batch.is_none() && used == 0);
}

#[test]
fn json_bad_line_is_named() {
    let input = b"{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3, oops}\n{\"id\": 4}\n";
    let err = decode_all(decoder(Format::Json, &[]).as_mut(), input).unwrap_err().to_string();
    assert!(err.starts_with("data/file.jsonl:3: cannot parse JSON '{\"id\": 3, oops}'"), "{err}");

    // A type error is a bad line too (unless errors are ignored).
    let input = b"{\"id\": 1}\n\n{\"id\": \"x\"}\n";
    let err = decode_all(decoder(Format::Json, &[]).as_mut(), input).unwrap_err().to_string();
    assert!(err.starts_with("data/file.jsonl:3:"), "{err}");
}

#[test]
fn json_ignore_parse_errors_skips_and_counts() {
    let input = b"{\"id\": 1}\n{\"id\": 2\n{\"id\": \"x\"}\n[1]\n{\"id\": 5}\n";
    let mut d = decoder(Format::Json, &[("json.ignore-parse-errors", "true")]);
    let batches = decode_all(d.as_mut(), input).unwrap();
    // Broken lines are skipped; a value of the wrong type becomes NULL (Flink's behaviour).
    assert_eq!(ids(&batches), vec![Some(1), None, Some(5)]);
    assert_eq!(d.skipped(), 2);
}

#[test]
fn json_fail_on_missing_field() {
    let pairs = [("json.fail-on-missing-field", "true")];
    let input =
        b"{\"id\": 1, \"name\": null, \"price\": 1, \"ts\": null}\n{\"id\": 2, \"name\": \"b\", \"price\": 2}\n";
    let err = decode_all(decoder(Format::Json, &pairs).as_mut(), input).unwrap_err().to_string();
    assert!(err.contains("data/file.jsonl:2") && err.contains("'ts'"), "{err}");
    let both = options(&[("json.fail-on-missing-field", "true"), ("json.ignore-parse-errors", "true")]);
    assert!(Format::Json.validate("t", &both, &schema()).is_err());
}

fn sample_batch() -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(vec![Some(1), None])),
            Arc::new(StringArray::from(vec![Some("plain"), Some("a,\"b\"\nc")])),
            Arc::new(Float64Array::from(vec![Some(0.1), Some(1e10)])),
            Arc::new(TimestampMillisecondArray::from(vec![Some(1709287200123), Some(1709287200000)])),
        ],
    )
    .unwrap()
}

fn encode(format: Format, pairs: &[(&str, &str)], batch: &RecordBatch) -> (String, Vec<usize>) {
    let mut enc = format.encoder("t", &options(pairs)).unwrap().unwrap();
    let (mut out, mut ends) = (Vec::new(), Vec::new());
    enc.encode(batch, &mut out, &mut ends).unwrap();
    (String::from_utf8(out).unwrap(), ends)
}

#[test]
fn json_writer_is_flink_style() {
    let (text, ends) = encode(Format::Json, &[], &sample_batch());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], r#"{"id":1,"name":"plain","price":0.1,"ts":"2024-03-01 10:00:00.123"}"#);
    assert!(lines[1].starts_with(r#"{"id":null,"name":"a,\"b\"\nc","price":"#), "{}", lines[1]);
    assert!(lines[1].ends_with(r#","ts":"2024-03-01 10:00:00"}"#), "{}", lines[1]);
    assert_eq!(ends, vec![lines[0].len() + 1, text.len()]);
    let (iso, _) = encode(Format::Json, &[("json.timestamp-format.standard", "ISO-8601")], &sample_batch());
    assert!(iso.contains(r#""ts":"2024-03-01T10:00:00.123""#), "{iso}");
    // What is written reads back.
    let mut d = decoder(Format::Json, &[]);
    assert_eq!(decode_all(d.as_mut(), text.as_bytes()).unwrap(), vec![sample_batch()]);
}

#[test]
fn csv_reads_quotes_nulls_comments_and_delimiters() {
    let input = b"1,plain,1.5,2024-03-01 10:00:00.199\n# a comment\n2,\"multi\nline, \"\"quoted\"\"\",,\n3,,-2, \n";
    let mut d = decoder(Format::Csv, &[("csv.allow-comments", "true")]);
    let batches = decode_all(d.as_mut(), input).unwrap();
    let b = &batches[0];
    assert_eq!(ids(&batches), vec![Some(1), Some(2), Some(3)]);
    let names = b.column(1).as_string::<i32>();
    assert_eq!(names.value(1), "multi\nline, \"quoted\"");
    // An empty STRING is "", an empty number or timestamp is NULL.
    assert_eq!(names.value(2), "");
    assert!(b.column(2).is_null(1) && b.column(3).is_null(2));
    assert_eq!(b.column(3).as_primitive::<TimestampMillisecondType>().value(0), 1709287200199);

    let mut d = decoder(Format::Csv, &[("csv.field-delimiter", "\\t"), ("csv.null-literal", "NULL")]);
    let batches = decode_all(d.as_mut(), b"7\tNULL\t2\tNULL\n").unwrap();
    assert_eq!(ids(&batches), vec![Some(7)]);
    assert!(batches[0].column(1).is_null(0) && batches[0].column(3).is_null(0));
}

#[test]
fn csv_bad_value_is_named_or_skipped() {
    let input = b"1,a,1,\n2,b,x,\n3,c\n4,d,4,\n";
    let err = decode_all(decoder(Format::Csv, &[]).as_mut(), input).unwrap_err().to_string();
    assert!(err.starts_with("data/file.jsonl:2:") && err.contains("'x'") && err.contains("'price'"), "{err}");
    let err = decode_all(decoder(Format::Csv, &[]).as_mut(), b"1,a,1,\n3,c\n").unwrap_err().to_string();
    assert!(err.starts_with("data/file.jsonl:2: row length mismatch"), "{err}");

    let mut d = decoder(Format::Csv, &[("csv.ignore-parse-errors", "true")]);
    let batches = decode_all(d.as_mut(), input).unwrap();
    // Line 2 is dropped; line 3 is short and padded with NULLs (as Flink does).
    assert_eq!(ids(&batches), vec![Some(1), Some(3), Some(4)]);
    assert_eq!(d.skipped(), 1);
}

#[test]
fn csv_writer_quotes_as_jackson_and_round_trips() {
    // Jackson's quick check, as Flink writes: text with a character below ',' (a space) is
    // quoted, numbers never are.
    let (text, ends) = encode(Format::Csv, &[], &sample_batch());
    assert_eq!(text, "1,plain,0.1,\"2024-03-01 10:00:00.123\"\n,\"a,\"\"b\"\"\nc\",1.0E10,\"2024-03-01 10:00:00\"\n");
    assert_eq!(ends, vec![38, text.len()]);
    let mut d = decoder(Format::Csv, &[]);
    assert_eq!(decode_all(d.as_mut(), text.as_bytes()).unwrap(), vec![sample_batch()]);
}

/// Jackson quotes text longer than 24 UTF-16 code units: 24 two-byte characters are not
/// long, 13 four-byte ones (26 units in 52 bytes) are; every quote inside is doubled.
#[test]
fn csv_writer_counts_length_in_utf16_and_doubles_every_quote() {
    let names = [
        "é".repeat(24),
        "😀".repeat(13),
        "😀".repeat(12),
        "a".repeat(25),
        "\"x\"\"y".to_string() + &"z".repeat(30) + "\"",
    ];
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(vec![1; 5])),
            Arc::new(StringArray::from(names.iter().map(String::as_str).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(vec![1.5; 5])),
            Arc::new(TimestampMillisecondArray::from(vec![None; 5])),
        ],
    )
    .unwrap();
    let (text, _) = encode(Format::Csv, &[], &batch);
    let fields: Vec<&str> =
        text.lines().map(|l| l.split_once(',').unwrap().1.rsplitn(3, ',').nth(2).unwrap()).collect();
    let quoted = format!("\"\"\"x\"\"\"\"y{}\"\"\"", "z".repeat(30));
    let want = [names[0].clone(), format!("\"{}\"", names[1]), names[2].clone(), format!("\"{}\"", names[3]), quoted];
    assert_eq!(fields, want.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn format_options_are_checked() {
    let e = Format::of("t", &options(&[("format", "protobuf")])).unwrap_err().to_string();
    assert!(e.contains("unknown format 'protobuf'"), "{e}");
    let e = Format::Csv.validate("t", &options(&[("csv.field-delimiter", ";;")]), &schema()).unwrap_err();
    assert!(e.to_string().contains("csv.field-delimiter"), "{e}");
    let nested = Arc::new(Schema::new(vec![Field::new(
        "l",
        DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
        true,
    )]));
    let e = Format::Csv.validate("t", &Options::default(), &nested).unwrap_err().to_string();
    assert!(e.contains("column 'l'"), "{e}");
    assert!(Format::Parquet.validate("t", &Options::default(), &schema()).is_ok());
}

#[test]
fn json_nested_decimal_and_dates() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("dec", DataType::Decimal128(10, 2), true),
        Field::new("day", DataType::Date32, true),
        Field::new("t", DataType::Time32(TimeUnit::Millisecond), true),
        Field::new("ok", DataType::Boolean, true),
        Field::new(
            "r",
            DataType::Struct(
                vec![Field::new("a", DataType::Int32, true), Field::new("b", DataType::Utf8, true)].into(),
            ),
            true,
        ),
        Field::new("l", DataType::List(Arc::new(Field::new("item", DataType::Int64, true))), true),
        Field::new(
            "m",
            DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(
                        vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Int32, true)]
                            .into(),
                    ),
                    false,
                )),
                false,
            ),
            true,
        ),
    ]));
    let mut d = Format::Json.decoder("t", &options(&[]), schema.clone(), "f".into()).unwrap();
    let line = br#"{"dec": 12.345, "day": "2024-03-01", "t": "22:30:07.885", "ok": true, "r": {"a": 1, "b": "x"}, "l": [1, 2], "m": {"k": 5}}"#;
    let (batch, _) = d.decode(line, true).unwrap();
    let b = batch.unwrap();
    assert_eq!(b.column(0).as_primitive::<Decimal128Type>().value(0), 1234);
    assert_eq!(b.column(1).as_primitive::<Date32Type>().value(0), 19783);
    assert_eq!(b.column(2).as_primitive::<Time32MillisecondType>().value(0), 81_007_885);
    assert_eq!(b.column(4).as_struct().column(1).as_string::<i32>().value(0), "x");
    assert_eq!(b.column(5).as_list::<i32>().value(0).len(), 2);
    assert_eq!(b.column(6).as_map().value(0).len(), 1);
    // And back out again, one object per line.
    let (text, _) = encode(Format::Json, &[], &b);
    assert_eq!(
        text,
        "{\"dec\":12.34,\"day\":\"2024-03-01\",\"t\":\"22:30:07.885\",\"ok\":true,\"r\":{\"a\":1,\"b\":\"x\"},\"l\":[1,2],\"m\":{\"k\":5}}\n"
    );
}

#[test]
fn json_leaves_unread_columns_and_row_fields_null() {
    let row = DataType::Struct(
        vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Utf8, false),
        ]
        .into(),
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("r", row, true),
        Field::new("k", DataType::Int64, false),
    ]));
    // name and r.b are never read; r.c and k are NOT NULL, so they are decoded anyway.
    let unread = [(1, None), (2, Some("b".to_string())), (2, Some("c".to_string())), (3, None)];
    let mut d = Format::Json.decoder_reading("t", &options(&[]), schema.clone(), "f".into(), &unread).unwrap();
    let input = b"{\"id\": 1, \"name\": \"x\", \"r\": {\"a\": 5, \"b\": \"y\", \"c\": \"z\"}, \"k\": 7}\n{\"id\": 2, \"k\": 8}\n";
    let b = arrow::compute::concat_batches(&schema, &decode_all(d.as_mut(), input).unwrap()).unwrap();
    assert_eq!(b.schema(), schema);
    assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
    assert_eq!(b.column(1).null_count(), 2);
    let r = b.column(2).as_struct();
    assert!(r.is_valid(0) && r.is_null(1));
    assert_eq!(r.column(0).as_primitive::<Int64Type>().value(0), 5);
    assert!(r.column(1).is_null(0));
    assert_eq!(r.column(2).as_string::<i32>().value(0), "z");
    assert_eq!(b.column(3).as_primitive::<Int64Type>().values(), &[7, 8]);
}
