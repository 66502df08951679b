//! The Kafka record formats end to end against a real broker: `avro-confluent` with a real
//! schema registry (`tests/support/schema_registry.py`), plain `avro`, and `debezium-json`
//! read as a changelog. Rows are written and read by `eddy run`; the bytes on the topics are
//! checked against Avro datums encoded here by hand (so Eddy's encoder and decoder are not
//! only checked against each other), and records written here in the Confluent wire format
//! with another writer schema are read through schema resolution.
//!
//! Every test uses its own topics and its own registry process, so they run in parallel on
//! the shared broker (see `kafka.rs`).

mod kafka_util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use kafka_util::*;
use serde_json::Value as Json;

fn run_sql(dir: &Path, sql: &str) -> Output {
    std::fs::write(dir.join("job.sql"), sql).unwrap();
    eddy(&["run", "job.sql"], dir)
}

/// The job's stdout lines; panics with its stderr when it failed.
fn ok_lines(out: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "eddy failed:\n{stderr}\nstdout:\n{stdout}");
    stdout.lines().map(str::to_string).collect()
}

/// The job's stderr; panics when it succeeded.
fn failed(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(
        out.status.code(),
        Some(0),
        "eddy should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

// ---------------------------------------------------------------------------------------
// The schema registry

/// `tests/support/schema_registry.py` on a free port, killed when dropped.
struct Registry {
    child: Child,
    url: String,
}

impl Registry {
    fn start() -> Self {
        let script = repo().join("tests/support/schema_registry.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/support/schema_registry.py (needs python3)");
        let mut lines = BufReader::new(child.stdout.take().expect("registry stdout")).lines();
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.expect("registry stdout");
            if let Some(u) = line.strip_prefix("listening on ") {
                url = Some(u.trim().to_string());
            }
            if line.trim() == "ready" {
                break;
            }
        }
        let url = url.unwrap_or_else(|| {
            let _ = child.kill();
            panic!("the schema registry did not say where it listens")
        });
        Self { child, url }
    }

    /// `method path` with a JSON `body`; the status and the parsed answer.
    fn call(&self, method: &str, path: &str, body: Option<&Json>) -> (u16, Json) {
        let authority = self.url.strip_prefix("http://").expect("http url");
        let mut s = TcpStream::connect(authority).expect("connect to the registry");
        let body = body.map(Json::to_string).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send to the registry");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read the registry's answer");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("an HTTP status");
        (status, serde_json::from_str(body).unwrap_or(Json::Null))
    }

    /// The latest version of `subject`: its schema id and schema (parsed).
    fn latest(&self, subject: &str) -> (u32, Json) {
        let (status, answer) = self.call("GET", &format!("/subjects/{subject}/versions/latest"), None);
        assert_eq!(status, 200, "GET latest of {subject}: {answer}");
        let id = answer["id"].as_u64().expect("id") as u32;
        let schema = serde_json::from_str(answer["schema"].as_str().expect("schema")).expect("schema JSON");
        (id, schema)
    }

    /// Register `schema` under `subject`; its id.
    fn register(&self, subject: &str, schema: &Json) -> u32 {
        let body = serde_json::json!({ "schema": schema.to_string() });
        let (status, answer) = self.call("POST", &format!("/subjects/{subject}/versions"), Some(&body));
        assert_eq!(status, 200, "register under {subject}: {answer}");
        answer["id"].as_u64().expect("id") as u32
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Avro binary encoding, by hand (the Avro specification's "Binary Encoding")

/// `int` and `long`: zig-zag, then a base-128 varint.
fn long(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn bytes(b: &[u8]) -> Vec<u8> {
    let mut out = long(b.len() as i64);
    out.extend_from_slice(b);
    out
}

fn string(s: &str) -> Vec<u8> {
    bytes(s.as_bytes())
}

fn double(f: f64) -> Vec<u8> {
    f.to_le_bytes().to_vec()
}

fn boolean(b: bool) -> Vec<u8> {
    vec![b as u8]
}

/// A `decimal` logical type on `bytes`: the unscaled value, big-endian two's complement in
/// the fewest bytes (Java's `BigInteger.toByteArray`).
fn decimal(unscaled: i128) -> Vec<u8> {
    let be = unscaled.to_be_bytes();
    let mut start = 0;
    while start < be.len() - 1 {
        let (b, next) = (be[start], be[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes(&be[start..])
}

/// Branch 1 (the value) of a `["null", T]` union.
fn some(datum: Vec<u8>) -> Vec<u8> {
    let mut out = long(1);
    out.extend(datum);
    out
}

/// Branch 0 (`null`) of a `["null", T]` union.
fn null() -> Vec<u8> {
    long(0)
}

/// An array of one block holding `items`, then the empty block that ends it.
fn array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = long(items.len() as i64);
    for item in items {
        out.extend_from_slice(item);
    }
    out.extend(long(0));
    out
}

fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// A record's key and value.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

fn keys_and_values(records: Vec<BinRec>) -> Vec<KeyValue> {
    records.into_iter().map(|r| (r.key, r.value)).collect()
}

/// The Confluent wire format: magic byte 0, the schema id (4 bytes, big-endian), the datum.
fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

// ---------------------------------------------------------------------------------------
// avro-confluent

/// The table of the `avro-confluent` tests; `with` adds options.
fn users_table(name: &str, topic: &str, registry: &str, with: &str) -> String {
    format!(
        "CREATE TABLE {name} (id BIGINT NOT NULL, name STRING, price DECIMAL(10, 2), score DOUBLE, ts TIMESTAMP(3))
WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{b}',
  'key.format' = 'avro-confluent', 'key.avro-confluent.url' = '{registry}', 'key.fields' = 'id',
  'value.format' = 'avro-confluent', 'value.avro-confluent.url' = '{registry}'{with});
",
        b = broker()
    )
}

const BOUNDED: &str = ", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'";

/// Flink's `AvroSchemaConverter` schema of the `users` columns.
fn users_value_schema() -> Json {
    serde_json::json!({
        "type": "record", "name": "record", "namespace": "org.apache.flink.avro.generated",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": ["null", "string"], "default": null},
            {"name": "price", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}], "default": null},
            {"name": "score", "type": ["null", "double"], "default": null},
            {"name": "ts", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null}
        ]
    })
}

#[test]
fn avro_confluent_round_trip_registers_schemas_and_resolves_other_writers() {
    let b = broker();
    let registry = Registry::start();
    let topic = unique("avro-cf");
    create_topic(b, &topic, 1);
    let dir = tempfile::tempdir().unwrap();

    // Write three rows with Eddy.
    let sql = format!(
        "{}INSERT INTO users VALUES
  (1, 'ann', 10.50, 1.5, TIMESTAMP '2024-03-01 10:00:00.123'),
  (2, CAST(NULL AS STRING), -3.25, -0.125, TIMESTAMP '1969-12-31 23:59:59.999'),
  (3, 'bob', CAST(NULL AS DECIMAL(10, 2)), CAST(NULL AS DOUBLE), CAST(NULL AS TIMESTAMP(3)));
",
        users_table("users", &topic, &registry.url, "")
    );
    ok_lines(&run_sql(dir.path(), &sql));

    // The sink registered the table's schemas under '<topic>-value' and '<topic>-key'.
    let (value_id, value_schema) = registry.latest(&format!("{topic}-value"));
    assert_eq!(value_schema, users_value_schema());
    let (key_id, key_schema) = registry.latest(&format!("{topic}-key"));
    assert_eq!(
        key_schema,
        serde_json::json!({"type": "record", "name": "record", "namespace": "org.apache.flink.avro.generated",
            "fields": [{"name": "id", "type": "long"}]})
    );
    assert_ne!(key_id, value_id);

    // Each value starts with the magic byte 0 and the id of the schema under '<topic>-value';
    // the records are those ids and the datums of the rows, byte for byte.
    let records = consume_all_bytes(b, &topic);
    for r in &records {
        let v = r.value.as_deref().unwrap_or_default();
        assert!(v.len() > 5 && v[0] == 0, "{v:?}");
        assert_eq!(u32::from_be_bytes([v[1], v[2], v[3], v[4]]), value_id);
    }
    let got = keys_and_values(records);
    let key = |id: i64| Some(framed(key_id, &long(id)));
    let value = |datum: Vec<u8>| Some(framed(value_id, &datum));
    assert_eq!(
        got,
        [
            (
                key(1),
                value(concat(&[
                    long(1),
                    some(string("ann")),
                    some(decimal(1050)),
                    some(double(1.5)),
                    some(long(1_709_287_200_123))
                ]))
            ),
            (key(2), value(concat(&[long(2), null(), some(decimal(-325)), some(double(-0.125)), some(long(-1))]))),
            (key(3), value(concat(&[long(3), some(string("bob")), null(), null(), null()]))),
        ]
    );

    // A producer with another, compatible schema under the same subject: a record of another
    // name, fields in another order, an extra field, `id` as an int, no `score`, and `ts` and
    // `price` not nullable. Its decimal takes the fewest bytes, as Java writes it (999.99 in
    // 3 bytes, which apache-avro's resolution alone refuses for precision 10).
    let writer = serde_json::json!({
        "type": "record", "name": "User", "namespace": "com.example",
        "fields": [
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "extra", "type": "string"},
            {"name": "name", "type": ["null", "string"], "default": null},
            {"name": "id", "type": "int"},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}}
        ]
    });
    let writer_id = registry.register(&format!("{topic}-value"), &writer);
    assert!(writer_id != value_id && writer_id != key_id);
    let datum = concat(&[long(1_709_251_140_000), string("ignored"), some(string("dora")), long(4), decimal(99_999)]);
    produce_bytes(b, &topic, &[BinRec::value(&framed(writer_id, &datum)).key(&framed(key_id, &long(4))).partition(0)]);

    // Read everything back with Eddy.
    let sql = format!("{}SELECT * FROM users;\n", users_table("users", &topic, &registry.url, BOUNDED));
    assert_eq!(
        ok_lines(&run_sql(dir.path(), &sql)),
        [
            "+I[1, ann, 10.50, 1.5, 2024-03-01T10:00:00.123]",
            "+I[2, null, -3.25, -0.125, 1969-12-31T23:59:59.999]",
            "+I[3, bob, null, null, null]",
            "+I[4, dora, 999.99, null, 2024-02-29T23:59]",
        ]
    );
}

#[test]
fn avro_confluent_value_only_with_raw_key_and_except_key() {
    // Flink's documented layout: a raw UTF-8 key column, the other columns in the value.
    let b = broker();
    let registry = Registry::start();
    let topic = unique("avro-cf-raw-key");
    create_topic(b, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let table = |with: &str| {
        format!(
            "CREATE TABLE t (k STRING, id INT, name STRING)
WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{b}',
  'key.format' = 'raw', 'key.fields' = 'k', 'value.fields-include' = 'EXCEPT_KEY',
  'value.format' = 'avro-confluent', 'value.avro-confluent.url' = '{}'{with});
",
            registry.url
        )
    };
    ok_lines(&run_sql(
        dir.path(),
        &format!("{}INSERT INTO t VALUES ('a', 1, 'x'), ('b', 2, CAST(NULL AS STRING));\n", table("")),
    ));
    let (id, schema) = registry.latest(&format!("{topic}-value"));
    assert_eq!(
        schema,
        serde_json::json!({"type": "record", "name": "record", "namespace": "org.apache.flink.avro.generated",
            "fields": [{"name": "id", "type": ["null", "int"], "default": null},
                       {"name": "name", "type": ["null", "string"], "default": null}]})
    );
    let got = keys_and_values(consume_all_bytes(b, &topic));
    assert_eq!(
        got,
        [
            (Some(b"a".to_vec()), Some(framed(id, &concat(&[some(long(1)), some(string("x"))])))),
            (Some(b"b".to_vec()), Some(framed(id, &concat(&[some(long(2)), null()])))),
        ]
    );
    let lines = ok_lines(&run_sql(dir.path(), &format!("{}SELECT * FROM t;\n", table(BOUNDED))));
    assert_eq!(lines, ["+I[a, 1, x]", "+I[b, 2, null]"]);
}

#[test]
fn avro_confluent_bad_records_fail_with_their_place_or_go_to_the_dead_letter_topic() {
    let b = broker();
    let registry = Registry::start();
    let topic = unique("avro-cf-bad");
    let dlq = unique("avro-cf-dlq");
    create_topic(b, &topic, 1);
    create_topic(b, &dlq, 1);
    let schema = users_value_schema();
    let id = registry.register(&format!("{topic}-value"), &schema);
    let key_id = registry.register(
        &format!("{topic}-key"),
        &serde_json::json!({"type": "record", "name": "record", "fields": [{"name": "id", "type": "long"}]}),
    );
    let row = |n: i64, name: &str| concat(&[long(n), some(string(name)), null(), null(), null()]);
    let unknown_id = 4242;
    let records = [
        (0, framed(id, &row(1, "ann"))),
        // An id the registry does not know.
        (1, framed(unknown_id, &row(2, "bob"))),
        // Not the Confluent framing: magic byte 1.
        (2, {
            let mut r = framed(id, &row(3, "cy"));
            r[0] = 1;
            r
        }),
        // Too short for the framing.
        (3, vec![0, 0, 1]),
        // The datum ends early: a string of 9 bytes with 2 present.
        (4, framed(id, &concat(&[long(5), long(1), long(9), b"ab".to_vec()]))),
        (5, framed(id, &row(6, "fay"))),
    ];
    let produced: Vec<BinRec> = records
        .iter()
        .map(|(n, value)| BinRec::value(value).key(&framed(key_id, &long(*n as i64 + 1))).partition(0))
        .collect();
    produce_bytes(b, &topic, &produced);
    let dir = tempfile::tempdir().unwrap();
    let read = |with: &str| {
        run_sql(dir.path(), &format!("{}SELECT id, name FROM t;\n", users_table("t", &topic, &registry.url, with)))
    };

    // Without a dead-letter topic the first bad record fails the job, naming its place.
    let e = failed(&read(BOUNDED));
    assert!(e.contains(&format!("topic '{topic}' partition 0 offset 1")), "{e}");
    assert!(e.contains(&format!("schema id {unknown_id} is not in the schema registry")), "{e}");
    assert!(e.contains("avro-confluent"), "{e}");

    // Flink's Avro formats have no 'ignore-parse-errors': the option is refused by name.
    let e = failed(&read(&format!("{BOUNDED}, 'value.avro-confluent.ignore-parse-errors' = 'true'")));
    assert!(e.contains("unsupported option 'value.avro-confluent.ignore-parse-errors'"), "{e}");

    // With a dead-letter topic the good rows go on, the bad records land there unchanged.
    let lines = ok_lines(&read(&format!("{BOUNDED}, 'eddy.dead-letter-topic' = '{dlq}'")));
    assert_eq!(lines, ["+I[1, ann]", "+I[6, fay]"]);
    let dead = consume_all_bytes(b, &dlq);
    let bad: Vec<&(i32, Vec<u8>)> = records[1..5].iter().collect();
    assert_eq!(dead.len(), bad.len(), "{dead:?}");
    for (d, (n, value)) in dead.iter().zip(bad) {
        assert_eq!(d.value.as_ref(), Some(value));
        assert_eq!(d.key, Some(framed(key_id, &long(*n as i64 + 1))));
        assert_eq!(d.header("eddy.topic").as_deref(), Some(topic.as_str()));
        assert_eq!(d.header("eddy.partition").as_deref(), Some("0"));
        assert_eq!(d.header("eddy.offset"), Some(n.to_string()));
        assert_eq!(d.header("eddy.table").as_deref(), Some("t"));
        let error = d.header("eddy.error").unwrap_or_default();
        assert!(error.contains(&format!("topic '{topic}' partition 0 offset {n}")), "{error}");
    }
    let error = |i: usize| dead[i].header("eddy.error").unwrap_or_default();
    assert!(error(0).contains(&format!("schema id {unknown_id} is not in the schema registry")), "{}", error(0));
    assert!(error(1).contains("magic byte 1"), "{}", error(1));
    assert!(error(2).contains("too short"), "{}", error(2));
    assert!(error(3).contains("the datum ends early"), "{}", error(3));
}

// ---------------------------------------------------------------------------------------
// avro

#[test]
fn avro_round_trip_without_a_registry() {
    let b = broker();
    let topic = unique("avro");
    create_topic(b, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let table = |with: &str| {
        format!(
            "CREATE TABLE t (id INT NOT NULL, name STRING, ok BOOLEAN, born DATE, ts TIMESTAMP(3), amount DECIMAL(5, 1),
  tags ARRAY<STRING>)
WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{b}', 'format' = 'avro'{with});
"
        )
    };
    let sql = format!(
        "{}INSERT INTO t VALUES
  (1, 'ann', TRUE, DATE '2024-03-01', TIMESTAMP '2024-03-01 10:00:00.120', 12.5, ARRAY['a', 'b']),
  (2, CAST(NULL AS STRING), FALSE, DATE '1969-12-31', TIMESTAMP '1969-12-31 23:59:59.999', -0.1, ARRAY['c']);
",
        table("")
    );
    ok_lines(&run_sql(dir.path(), &sql));
    // Bare datums: no magic byte, no schema id.
    let values: Vec<Option<Vec<u8>>> = consume_all_bytes(b, &topic).into_iter().map(|r| r.value).collect();
    assert_eq!(
        values,
        [
            Some(concat(&[
                long(1),
                some(string("ann")),
                some(boolean(true)),
                some(long(19_783)),
                some(long(1_709_287_200_120)),
                some(decimal(125)),
                some(array(&[some(string("a")), some(string("b"))])),
            ])),
            Some(concat(&[
                long(2),
                null(),
                some(boolean(false)),
                some(long(-1)),
                some(long(-1)),
                some(decimal(-1)),
                some(array(&[some(string("c"))])),
            ])),
        ]
    );
    let lines = ok_lines(&run_sql(dir.path(), &format!("{}SELECT * FROM t;\n", table(BOUNDED))));
    assert_eq!(
        lines,
        [
            "+I[1, ann, true, 2024-03-01, 2024-03-01T10:00:00.120, 12.5, [a, b]]",
            "+I[2, null, false, 1969-12-31, 1969-12-31T23:59:59.999, -0.1, [c]]",
        ]
    );

    // A record that is not a datum of the table's schema fails the job with its place.
    produce_bytes(b, &topic, &[BinRec::value(&[0x02, 0x02, 0x10, b'x']).partition(0)]);
    let e = failed(&run_sql(dir.path(), &format!("{}SELECT id FROM t;\n", table(BOUNDED))));
    assert!(e.contains(&format!("topic '{topic}' partition 0 offset 2")), "{e}");
    assert!(e.contains("(avro)") && e.contains("the datum ends early"), "{e}");
}

// ---------------------------------------------------------------------------------------
// debezium-json

/// A Debezium change event as Debezium's JSON converter writes it without schemas.
fn change(op: &str, before: Option<&str>, after: Option<&str>) -> String {
    format!(
        r#"{{"before":{},"after":{},"source":{{"version":"2.5.0.Final","connector":"postgresql","name":"pg","db":"shop","schema":"public","table":"users"}},"op":"{op}","ts_ms":1709287200000,"transaction":null}}"#,
        before.unwrap_or("null"),
        after.unwrap_or("null")
    )
}

/// The events of the debezium tests: a snapshot row, an insert, an update, a delete and its
/// tombstone (a null value, which is no change).
fn produce_changes(b: &str, topic: &str, wrap: impl Fn(String) -> String) {
    let ann = r#"{"id":1,"name":"ann","score":1.5}"#;
    let anna = r#"{"id":1,"name":"anna","score":2.5}"#;
    let bob = r#"{"id":2,"name":"bob","score":null}"#;
    let events = [
        Rec::value(&wrap(change("r", None, Some(ann)))).key(r#"{"id":1}"#),
        Rec::value(&wrap(change("c", None, Some(bob)))).key(r#"{"id":2}"#),
        Rec::value(&wrap(change("u", Some(ann), Some(anna)))).key(r#"{"id":1}"#),
        Rec::value(&wrap(change("d", Some(bob), None))).key(r#"{"id":2}"#),
        Rec::tombstone(r#"{"id":2}"#),
    ];
    let events: Vec<Rec> = events.into_iter().map(|r| r.partition(0)).collect();
    produce(b, topic, &events);
}

const CHANGELOG: [&str; 5] =
    ["+I[1, ann, 1.5]", "+I[2, bob, null]", "-U[1, ann, 1.5]", "+U[1, anna, 2.5]", "-D[2, bob, null]"];

#[test]
fn debezium_json_is_read_as_a_changelog_and_written_to_upsert_kafka() {
    let b = broker();
    let registry = Registry::start();
    let input = unique("dbz");
    let output = unique("dbz-upsert");
    let output_avro = unique("dbz-upsert-avro");
    for topic in [&input, &output, &output_avro] {
        create_topic(b, topic, 1);
    }
    produce_changes(b, &input, |event| event);
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE users (id INT, name STRING, score DOUBLE)
WITH ('connector' = 'kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{b}',
  'format' = 'debezium-json'{BOUNDED});
CREATE TABLE latest (id INT, name STRING, score DOUBLE, PRIMARY KEY (id) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = '{output}', 'properties.bootstrap.servers' = '{b}',
  'key.format' = 'json', 'value.format' = 'json');
CREATE TABLE latest_avro (id INT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = '{output_avro}', 'properties.bootstrap.servers' = '{b}',
  'key.format' = 'avro-confluent', 'key.avro-confluent.url' = '{r}',
  'value.format' = 'avro-confluent', 'value.avro-confluent.url' = '{r}');
INSERT INTO latest SELECT id, UPPER(name), score * 2 FROM users;
INSERT INTO latest_avro SELECT id, name FROM users;
SELECT * FROM users;
",
        r = registry.url
    );
    assert_eq!(ok_lines(&run_sql(dir.path(), &sql)), CHANGELOG);
    // The upsert sink: a value per insert and update (no -U), a tombstone per delete.
    let got: Vec<(Option<String>, Option<String>)> =
        consume_all(b, &output).into_iter().map(|r| (r.key, r.value)).collect();
    assert_eq!(
        got,
        [
            (Some(r#"{"id":1}"#.into()), Some(r#"{"id":1,"name":"ANN","score":3.0}"#.into())),
            (Some(r#"{"id":2}"#.into()), Some(r#"{"id":2,"name":"BOB","score":null}"#.into())),
            (Some(r#"{"id":1}"#.into()), Some(r#"{"id":1,"name":"ANNA","score":5.0}"#.into())),
            (Some(r#"{"id":2}"#.into()), None),
        ]
    );
    // The same in avro-confluent: the PRIMARY KEY column is NOT NULL, as in Flink.
    let (key_id, key_schema) = registry.latest(&format!("{output_avro}-key"));
    assert_eq!(
        key_schema,
        serde_json::json!({"type": "record", "name": "record", "namespace": "org.apache.flink.avro.generated",
            "fields": [{"name": "id", "type": "int"}]})
    );
    let (value_id, value_schema) = registry.latest(&format!("{output_avro}-value"));
    assert_eq!(
        value_schema,
        serde_json::json!({"type": "record", "name": "record", "namespace": "org.apache.flink.avro.generated",
            "fields": [{"name": "id", "type": "int"}, {"name": "name", "type": ["null", "string"], "default": null}]})
    );
    let got = keys_and_values(consume_all_bytes(b, &output_avro));
    let key = |id: i64| Some(framed(key_id, &long(id)));
    let value = |id: i64, name: &str| Some(framed(value_id, &concat(&[long(id), some(string(name))])));
    assert_eq!(got, [(key(1), value(1, "ann")), (key(2), value(2, "bob")), (key(1), value(1, "anna")), (key(2), None)]);
}

#[test]
fn debezium_json_with_the_schema_envelope() {
    let b = broker();
    let topic = unique("dbz-schema");
    create_topic(b, &topic, 1);
    // Kafka Connect's JsonConverter with 'schemas.enable': {"schema": ..., "payload": <event>}.
    let schema = r#"{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"},{"type":"double","optional":true,"field":"score"}],"optional":true,"name":"pg.public.users.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"},{"type":"double","optional":true,"field":"score"}],"optional":true,"name":"pg.public.users.Value","field":"after"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}],"optional":false,"name":"pg.public.users.Envelope"}"#;
    produce_changes(b, &topic, |event| format!(r#"{{"schema":{schema},"payload":{event}}}"#));
    let dir = tempfile::tempdir().unwrap();
    let read = |with: &str| {
        run_sql(
            dir.path(),
            &format!(
                "CREATE TABLE users (id INT, name STRING, score DOUBLE)
WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{b}',
  'format' = 'debezium-json'{BOUNDED}{with});
SELECT * FROM users;
"
            ),
        )
    };
    assert_eq!(ok_lines(&read(", 'debezium-json.schema-include' = 'true'")), CHANGELOG);
    // Without the option the envelope is a bad record, and the error says what to set.
    let e = failed(&read(""));
    assert!(e.contains(&format!("topic '{topic}' partition 0 offset 0")), "{e}");
    assert!(e.contains("'debezium-json.schema-include' = 'true'"), "{e}");
}
