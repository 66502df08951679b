//! The fast JSON path against arrow-json: whatever it decodes, it decodes to arrow-json's
//! values; and it does decode the plain JSON a file or topic is made of.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Fields, Float32Type, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::json::ReaderBuilder;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::json_direct::{quote_or_backslash, DirectDecoder, Key};

fn schema() -> SchemaRef {
    let inner = Fields::from(vec![Field::new("w", DataType::Float32, true)]);
    let row = Fields::from(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("y", DataType::Utf8, true),
        Field::new("z", DataType::Struct(inner), true),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Int32, true),
        Field::new("c", DataType::Float64, true),
        Field::new("d", DataType::Utf8, true),
        Field::new("e", DataType::Boolean, true),
        Field::new("f", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("g", DataType::Struct(row), true),
        Field::new("h", DataType::UInt8, true),
    ]))
}

/// arrow-json as `JsonRows` configures it.
fn arrow_json(schema: &SchemaRef, lines: &[&[u8]]) -> Option<RecordBatch> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(lines.len())
        .with_coerce_primitive(true)
        .build_decoder()
        .ok()?;
    let mut text = Vec::new();
    for line in lines {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    let mut used = 0;
    while used < text.len() {
        match decoder.decode(&text[used..]).ok()? {
            0 => break,
            n => used += n,
        }
    }
    decoder.flush().ok()?.filter(|b| b.num_rows() == lines.len())
}

fn direct(schema: &SchemaRef, lines: &[&str]) -> Option<RecordBatch> {
    let decoder = DirectDecoder::new(schema.clone()).expect("every type of the schema is built directly");
    decoder.decode(lines.iter().map(|l| l.as_bytes())).ok()
}

#[test]
fn decodes_plain_lines_to_the_values_written() {
    let schema = schema();
    let lines = [
        r#"{"a": 1, "b": -2, "c": 2.5, "d": "text", "e": true, "f": "2024-03-02 00:00:00.123", "g": {"x": 7, "y": "in", "z": {"w": 0.5}}, "h": 255}"#,
        r#"{"h":0,"g":null,"f":1709337600000,"e":false,"d":"esc\"aped\\ \u00e9 \ud83d\ude00 \n","c":-1e3,"b":2147483647,"a":-9223372036854775808}"#,
        r#"  {"unknown": {"deep": [1, {"x": [true, null, "s"]}], "n": -0.5e-3}, "d": "", "g": {"z": null}}  "#,
        r#"{}"#,
    ];
    let batch = direct(&schema, &lines).expect("plain JSON is decoded directly");
    assert_eq!(batch.num_rows(), 4);
    let a = batch.column(0).as_primitive::<Int64Type>();
    assert_eq!((a.value(0), a.value(1), a.is_null(2), a.is_null(3)), (1, i64::MIN, true, true));
    assert_eq!(batch.column(1).as_primitive::<Int32Type>().value(1), i32::MAX);
    let d = batch.column(3).as_string::<i32>();
    assert_eq!((d.value(0), d.value(1), d.value(2)), ("text", "esc\"aped\\ é 😀 \n", ""));
    let f = batch.column(5).as_primitive::<arrow::datatypes::TimestampMillisecondType>();
    assert_eq!((f.value(0), f.value(1)), (1_709_337_600_123, 1_709_337_600_000));
    let g = batch.column(6).as_struct();
    assert_eq!((g.is_null(0), g.is_null(1), g.is_null(2), g.is_null(3)), (false, true, false, true));
    assert_eq!(g.column(1).as_string::<i32>().value(0), "in");
    let z = g.column(2).as_struct();
    assert_eq!(z.column(0).as_primitive::<Float32Type>().value(0), 0.5);
    assert!(z.is_null(2));
    // And all of it exactly as arrow-json makes it.
    let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    assert_eq!(Some(batch), arrow_json(&schema, &bytes));
}

#[test]
fn gives_up_on_what_arrow_json_is_to_decide() {
    let schema = schema();
    for line in [
        r#"{"a": "1"}"#,           // a string for a number: arrow-json parses it
        r#"{"d": 12}"#,            // a number for a string: arrow-json keeps its text
        r#"{"a": 1.0}"#,           // not an integer
        r#"{"b": 2147483648}"#,    // out of INT's range
        r#"{"h": -1}"#,            // out of TINYINT UNSIGNED's
        r#"{"a": 1, "a": 2}"#,     // a key twice
        r#"{"a\u0062": 1}"#,       // an escape in a key
        r#"{"a": 01}"#,            // not JSON
        r#"{"a": 1,}"#,            // not JSON, though arrow-json takes it
        r#"{"a": 1} {"a": 2}"#,    // two objects
        r#"null"#,                 // not an object
        r#"{"d": "\ud83d"}"#,      // half a surrogate pair
        r#"{"f": "yesterday"}"#,   // not a time
        r#"{"g": [1, 2]}"#,        // a list for a ROW
        r#"{"x": "unterminated}"#, // not JSON
    ] {
        assert!(direct(&schema, &[line]).is_none(), "{line}");
    }
    // Invalid UTF-8 anywhere, also in a field nobody reads.
    let decoder = DirectDecoder::new(schema).expect("built directly");
    assert!(decoder.decode([&b"{\"other\": \"\xff\"}"[..]].into_iter()).is_err());
}

#[test]
fn a_non_nullable_column_left_null_is_given_up() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("r", DataType::Struct(vec![Field::new("k", DataType::Utf8, false)].into()), true),
    ]));
    assert!(direct(&schema, &[r#"{"id": 1, "r": {"k": "a"}}"#, r#"{"id": 2, "r": null}"#]).is_some());
    assert!(direct(&schema, &[r#"{"r": null}"#]).is_none());
    assert!(direct(&schema, &[r#"{"id": null}"#]).is_none());
    assert!(direct(&schema, &[r#"{"id": 3, "r": {}}"#]).is_none());
}

#[test]
fn types_it_does_not_build_are_not_tried() {
    for data_type in [DataType::Date32, DataType::Decimal128(10, 2), DataType::LargeUtf8, DataType::Utf8View] {
        let schema = Arc::new(Schema::new(vec![Field::new("v", data_type, true)]));
        assert!(DirectDecoder::new(schema).is_none());
    }
    // Names that JSON writes with escapes: compared in place, they would not match.
    for name in ["say \"hi\"", "back\\slash"] {
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, true)]));
        assert!(DirectDecoder::new(schema).is_none(), "{name}");
    }
}

/// Random lines, most plain JSON, some with the surprises above: every batch the fast path
/// decodes equals arrow-json's, and it decodes most of them.
#[test]
fn decodes_random_lines_as_arrow_json_does() {
    let schema = schema();
    let decoder = DirectDecoder::new(schema.clone()).expect("built directly");
    let mut rng = SmallRng::seed_from_u64(7);
    let (mut direct_batches, mut batches) = (0, 0);
    for _ in 0..400 {
        let lines: Vec<String> = (0..rng.random_range(1..6)).map(|_| random_object(&mut rng)).collect();
        let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        batches += 1;
        if let Ok(batch) = decoder.decode(bytes.iter().copied()) {
            direct_batches += 1;
            assert_eq!(Some(batch), arrow_json(&schema, &bytes), "{lines:#?}");
        }
    }
    assert!(direct_batches * 4 > batches, "the fast path decoded only {direct_batches} of {batches} batches");
}

fn random_object(rng: &mut SmallRng) -> String {
    let mut members = Vec::new();
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h", "other"];
    for key in keys {
        if rng.random_bool(0.2) {
            continue;
        }
        let value = if rng.random_bool(0.1) { "null".to_string() } else { random_value(rng, key) };
        members.push(format!("\"{key}\"{}:{}{value}", space(rng), space(rng)));
    }
    if rng.random_bool(0.5) {
        members.reverse();
    }
    format!("{}{{{}}}{}", space(rng), members.join(","), space(rng))
}

fn random_value(rng: &mut SmallRng, key: &str) -> String {
    // Now and then a value of another type, for any column.
    let key = if rng.random_bool(0.03) { ["a", "d", "e", "g"][rng.random_range(0..4)] } else { key };
    match key {
        "a" => rng.random::<i64>().to_string(),
        "b" => (rng.random::<i32>() as i64 * if rng.random_bool(0.05) { 3 } else { 1 }).to_string(),
        "c" => match rng.random_range(0..4) {
            0 => rng.random::<f64>().to_string(),
            1 => format!("{}e{}", rng.random_range(-99..99), rng.random_range(-30..30)),
            2 => rng.random_range(-1000..1000).to_string(),
            _ => format!("{:.3}", rng.random::<f64>() * 1e6),
        },
        "d" | "other" => random_string(rng),
        "e" => rng.random_bool(0.5).to_string(),
        "f" => match rng.random_bool(0.7) {
            true => format!(
                "\"2024-03-0{} 1{}:00:0{}.{:03}\"",
                rng.random_range(1..10),
                rng.random_range(0..10),
                rng.random_range(0..10),
                rng.random_range(0..1000)
            ),
            false => rng.random_range(0..2_000_000_000_000i64).to_string(),
        },
        "g" => {
            let z = match rng.random_range(0..3) {
                0 => "null".to_string(),
                1 => format!("{{\"w\": {}}}", rng.random::<f32>()),
                _ => "{}".to_string(),
            };
            format!("{{\"y\": {}, \"x\": {}, \"z\": {z}}}", random_string(rng), rng.random::<i32>())
        }
        _ => rng.random_range(0..300).to_string(),
    }
}

fn random_string(rng: &mut SmallRng) -> String {
    let pieces = ["plain", " ", "\\\"", "\\\\", "\\n", "\\u00e9", "\\ud83d\\ude00", "é", "\\/", "\\t"];
    let text: String = (0..rng.random_range(0..6)).map(|_| pieces[rng.random_range(0..pieces.len())]).collect();
    format!("\"{text}\"")
}

fn space(rng: &mut SmallRng) -> &'static str {
    [" ", "", "", "\t", "  "][rng.random_range(0..5)]
}

#[test]
fn finds_the_first_quote_or_backslash_at_any_offset() {
    for len in 0..80 {
        let plain = vec![b'a'; len];
        assert_eq!(quote_or_backslash(&plain), None);
        for at in 0..len {
            for (first, second) in [(b'"', b'\\'), (b'\\', b'"'), (b'"', b'"')] {
                let mut text = plain.clone();
                text[at] = first;
                // A later one, and bytes that differ from both by one bit, change nothing.
                if at + 3 < len {
                    text[at + 3] = second;
                }
                if at > 0 {
                    text[at - 1] = b'"' ^ 0x80;
                }
                assert_eq!(quote_or_backslash(&text), Some(at), "{:?}", String::from_utf8_lossy(&text));
            }
        }
    }
}

/// A key is found in place exactly when the text starts with its name and a quote: names
/// shorter and longer than the two words compared, texts shorter than them, a name that
/// is a prefix of the key, a key that is a prefix of the name.
#[test]
fn keys_are_found_in_place_exactly() {
    let names = [
        "",
        "a",
        "id",
        "auction",
        "dateTime",
        "description",
        "emailAddress_x1",
        "emailAddress_x12",
        "a_long_name_over_words",
    ];
    for name in names {
        let key = Key::new(name.as_bytes());
        for text in names.iter().flat_map(|n| [n.to_string(), format!("{n}x")]) {
            for tail in ["\"", "\":1,\"other\":\"long enough text\"}", "x\":", ""] {
                let t = format!("{text}{tail}");
                let want = t.as_bytes().starts_with(format!("{name}\"").as_bytes());
                assert_eq!(key.starts(t.as_bytes()), want, "name {name:?} in {t:?}");
            }
        }
    }
}
