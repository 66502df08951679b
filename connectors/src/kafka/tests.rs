//! Option checks of the Kafka connectors (no broker needed; the end-to-end tests with a
//! real broker are in tests/kafka.rs).

use arrow::datatypes::{DataType, Field};

use super::*;
use crate::test_util::table;
use crate::Distribution;

fn t(options: &[(&str, &str)]) -> ConnectorTable {
    let mut all = vec![("connector", "kafka"), ("topic", "t"), ("properties.bootstrap.servers", "localhost:9092")];
    all.extend_from_slice(options);
    table(
        vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into())), true),
        ],
        &all,
    )
}

fn error(table: &ConnectorTable) -> String {
    match Config::parse(table) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn specific_offsets_are_parsed_as_flink_writes_them() {
    assert_eq!(
        parse_specific_offsets("t", "k", "partition:0,offset:42;partition:1,offset:300").unwrap(),
        [(0, 42), (1, 300)]
    );
    let e = parse_specific_offsets("t", "k", "partition:0;offset:1").unwrap_err().to_string();
    assert!(e.contains("expected 'partition:0,offset:42"), "{e}");
}

#[test]
fn modes_and_partitioners() {
    let c = Config::parse(&t(&[
        ("format", "json"),
        ("scan.startup.mode", "timestamp"),
        ("scan.startup.timestamp-millis", "1700000000000"),
        ("scan.bounded.mode", "latest-offset"),
        ("sink.partitioner", "round-robin"),
    ]))
    .unwrap();
    assert_eq!(c.startup, Startup::Timestamp(1_700_000_000_000));
    assert_eq!(c.bounded, Bounded::Latest);
    assert_eq!(c.partitioner, Partitioner::RoundRobin);
    assert!(c.layout.key.is_none());
    assert_eq!(c.layout.value.columns, [0, 1, 2]);

    let e = validate(&t(&[("format", "json")]), true, false).unwrap_err().to_string();
    assert!(e.contains("group-offsets") && e.contains("properties.group.id"), "{e}");
    assert!(validate(&t(&[("format", "json")]), false, true).is_ok());
    let e = error(&t(&[("format", "json"), ("scan.startup.mode", "earliest-offset"), ("sink.partitioner", "com.x.P")]));
    assert!(e.contains("custom partitioner classes are not supported"), "{e}");
    let e = error(&t(&[("format", "json"), ("scan.startup.mode", "earliest")]));
    assert!(e.contains("'scan.startup.mode' = 'earliest' must be one of"), "{e}");
}

#[test]
fn unknown_options_are_named_and_format_options_are_known() {
    let base = [("format", "json"), ("scan.startup.mode", "earliest-offset")];
    let mut o = base.to_vec();
    o.push(("json.ignore-parse-errors", "true"));
    o.push(("properties.fetch.min.bytes", "1"));
    assert!(Config::parse(&t(&o)).is_ok());
    let mut o = base.to_vec();
    o.push(("scan.startup.offsets", "x"));
    let e = error(&t(&o));
    assert!(e.contains("unsupported option 'scan.startup.offsets' for connector 'kafka'"), "{e}");
    // With value.format, the format's options carry the value. prefix.
    let c = Config::parse(&t(&[
        ("value.format", "json"),
        ("value.json.fail-on-missing-field", "true"),
        ("scan.startup.mode", "earliest-offset"),
    ]))
    .unwrap();
    assert_eq!(c.layout.value.options.get("json.fail-on-missing-field"), Some("true"));
}

#[test]
fn key_fields_prefix_and_fields_include() {
    let c = Config::parse(&t(&[
        ("key.format", "json"),
        ("key.fields", "id"),
        ("value.format", "json"),
        ("value.fields-include", "EXCEPT_KEY"),
        ("scan.startup.mode", "earliest-offset"),
    ]))
    .unwrap();
    assert_eq!(c.layout.key.as_ref().map(|k| k.columns.clone()), Some(vec![0]));
    assert_eq!(c.layout.value.columns, [1, 2]);
    let e = error(&t(&[("key.format", "json"), ("value.format", "json"), ("scan.startup.mode", "earliest-offset")]));
    assert!(e.contains("requires the declaration of one or more of key fields"), "{e}");
    let e = error(&t(&[
        ("key.format", "json"),
        ("key.fields", "id"),
        ("key.fields-prefix", "k_"),
        ("value.format", "json"),
        ("scan.startup.mode", "earliest-offset"),
    ]));
    assert!(e.contains("A key prefix is not allowed"), "{e}");
    let e = error(&t(&[("key.fields", "nope"), ("key.format", "json"), ("format", "json")]));
    assert!(e.contains("key field 'nope'"), "{e}");
}

#[test]
fn upsert_kafka_needs_a_primary_key_and_both_formats() {
    let mut table = t(&[("key.format", "json"), ("value.format", "json")]);
    table.options = crate::Options::new(
        table
            .options
            .iter()
            .map(|(k, v)| (k.to_string(), if k == "connector" { "upsert-kafka" } else { v }.to_string())),
    );
    let e = error(&table);
    assert!(e.contains("'upsert-kafka' tables require to define a PRIMARY KEY"), "{e}");
    table.primary_key = vec!["id".into()];
    let c = Config::parse(&table).unwrap();
    assert_eq!(c.flavor, Flavor::Upsert);
    assert_eq!(c.layout.key.as_ref().map(|k| k.columns.clone()), Some(vec![0]));
    assert!(accepts_updates_of(&table));
}

#[test]
fn primary_key_columns_are_not_null_in_avro_parts() {
    let upsert = |format: &str| {
        let url = "http://localhost:8081";
        let mut options = vec![("key.format", format), ("value.format", format)];
        if format == "avro-confluent" {
            options.extend([("key.avro-confluent.url", url), ("value.avro-confluent.url", url)]);
        }
        let mut table = t(&options);
        table.options = crate::Options::new(
            table
                .options
                .iter()
                .map(|(k, v)| (k.to_string(), if k == "connector" { "upsert-kafka" } else { v }.to_string())),
        );
        table.primary_key = vec!["id".into()];
        Config::parse(&table).unwrap().layout
    };
    let nullable = |part: &layout::Part| part.schema.fields().iter().map(|f| f.is_nullable()).collect::<Vec<_>>();
    for format in ["avro", "avro-confluent"] {
        let layout = upsert(format);
        assert_eq!(nullable(layout.key.as_ref().unwrap()), [false], "{format}");
        assert_eq!(nullable(&layout.value), [false, true, true], "{format}");
    }
    // Formats without a schema keep the table's nullability.
    let layout = upsert("json");
    assert_eq!(nullable(layout.key.as_ref().unwrap()), [true]);
    assert_eq!(nullable(&layout.value), [true, true, true]);
}

fn accepts_updates_of(table: &ConnectorTable) -> bool {
    crate::registry::accepts_updates(table).unwrap()
}

#[test]
fn distributed_by_makes_the_key_and_buckets_the_topic() {
    let mut table = t(&[("format", "json"), ("scan.startup.mode", "earliest-offset")]);
    table.distribution = Some(Distribution { columns: vec!["name".into()], buckets: Some(4) });
    let c = Config::parse(&table).unwrap();
    assert_eq!(c.buckets, Some(4));
    let key = c.layout.key.as_ref().unwrap();
    assert_eq!((key.columns.clone(), key.format.name()), (vec![1], "json"));
    // DISTRIBUTED INTO without BY spreads records round-robin.
    table.distribution = Some(Distribution { columns: vec![], buckets: Some(2) });
    let c = Config::parse(&table).unwrap();
    assert_eq!(c.partitioner, Partitioner::RoundRobin);
    assert!(c.layout.key.is_none());
}

#[test]
fn metadata_keys_are_checked_for_reading_and_writing() {
    let mut table = t(&[("format", "json"), ("scan.startup.mode", "earliest-offset")]);
    table.metadata = vec![(2, "timestamp".into())];
    let c = Config::parse(&table).unwrap();
    assert_eq!(c.layout.value.columns, [0, 1]);
    assert!(c.layout.check_sink(&c).is_ok());
    table.metadata = vec![(2, "offset".into())];
    let c = Config::parse(&table).unwrap();
    let e = c.layout.check_sink(&c).unwrap_err().to_string();
    assert!(e.contains("metadata key 'offset'") && e.contains("VIRTUAL"), "{e}");
    table.metadata = vec![(2, "offsets".into())];
    let e = error(&table);
    assert!(e.contains("unknown metadata key 'offsets'") && e.contains("leader-epoch"), "{e}");
}

#[test]
fn exactly_once_needs_a_transactional_id_prefix_and_only_it_takes_one() {
    let json = ("format", "json");
    let exactly_once = ("sink.delivery-guarantee", "exactly-once");
    let e = error(&t(&[json, exactly_once]));
    assert!(e.contains("needs option 'sink.transactional-id-prefix'"), "{e}");
    let e = error(&t(&[json, exactly_once, ("sink.transactional-id-prefix", " ")]));
    assert!(e.contains("'sink.transactional-id-prefix' must not be empty"), "{e}");
    let c = Config::parse(&t(&[json, exactly_once, ("sink.transactional-id-prefix", "orders")])).unwrap();
    assert_eq!((c.delivery, c.transactional_id_prefix.as_deref()), (Delivery::ExactlyOnce, Some("orders")));
    // Flink's older spelling.
    let c =
        Config::parse(&t(&[json, ("sink.semantic", "exactly_once"), ("sink.transactional-id-prefix", "o")])).unwrap();
    assert_eq!(c.delivery, Delivery::ExactlyOnce);
    for other in ["at-least-once", "none"] {
        let e = error(&t(&[json, ("sink.delivery-guarantee", other), ("sink.transactional-id-prefix", "orders")]));
        assert!(e.contains("'sink.transactional-id-prefix' needs 'sink.delivery-guarantee' = 'exactly-once'"), "{e}");
    }
    // upsert-kafka too, as in Flink.
    let mut upsert = t(&[
        ("key.format", "json"),
        ("value.format", "json"),
        exactly_once,
        ("sink.transactional-id-prefix", "orders"),
    ]);
    upsert.options = crate::Options::new(
        upsert
            .options
            .iter()
            .map(|(k, v)| (k.to_string(), if k == "connector" { "upsert-kafka" } else { v }.to_string())),
    );
    upsert.primary_key = vec!["id".into()];
    assert_eq!(Config::parse(&upsert).unwrap().delivery, Delivery::ExactlyOnce);
}

#[test]
fn base64_is_rfc_4648() {
    use super::transaction::{base64_decode, base64_encode};
    for (plain, coded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64_encode(plain.as_bytes()), coded);
        assert_eq!(base64_decode(coded).as_deref(), Some(plain.as_bytes()), "{coded}");
    }
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(base64_decode(&base64_encode(&all)), Some(all));
    for bad in ["Zg=", "Zg==Zg==", "Z===", "Zm9*", "Zm9v\n"] {
        assert_eq!(base64_decode(bad), None, "{bad}");
    }
}

#[test]
fn the_transaction_tag_names_writer_epoch_and_record() {
    use super::transaction::{parse_tag, tag};
    let t = tag("job:a-3", 18_446_744_073_709_551_615, 7);
    assert_eq!(t, "job:a-3:18446744073709551615:7");
    assert_eq!(parse_tag(t.as_bytes()), Some(("job:a-3", u64::MAX, 7)));
    assert_eq!(parse_tag(b"x:1"), None);
    assert_eq!(parse_tag(b"x:one:1"), None);
}

#[test]
fn the_final_epoch_survives_its_trip_through_an_offset() {
    use super::transaction::{epoch_offset, offset_epoch};
    for epoch in [0, 1, 42, u64::MAX] {
        assert_eq!(offset_epoch(epoch_offset(epoch)), epoch);
    }
    assert_eq!(epoch_offset(u64::MAX), i64::MAX);
}

#[test]
fn the_exactly_once_state_keeps_records_byte_for_byte() {
    use super::transaction::{Bytes, HeldRecord, SavedState};
    let full = HeldRecord {
        key: Some(Bytes(vec![0, 255, 10])),
        value: Some(Bytes(b"{\"n\": 1}".to_vec())),
        partition: Some(2),
        timestamp: Some(-5),
        headers: vec![("h".into(), Some(Bytes(vec![1]))), ("empty".into(), None)],
    };
    let tombstone =
        HeldRecord { key: Some(Bytes(b"k".to_vec())), value: None, partition: None, timestamp: None, headers: vec![] };
    let state = serde_json::json!({
        "transactional_id": "p-0",
        "epochs": [
            { "epoch": 3, "records": [serde_json::to_value(&full).unwrap(), serde_json::to_value(&tombstone).unwrap()] },
            { "epoch": u64::MAX, "records": [] },
        ],
    });
    assert_eq!(state["epochs"][0]["records"][0]["key"], "AP8K");
    assert_eq!(state["epochs"][0]["records"][1], serde_json::json!({ "key": "aw==" }));
    let saved = SavedState::parse("t", state.clone(), "p-0").unwrap();
    assert_eq!(saved.epochs[0].records, [full, tombstone]);
    assert_eq!(saved.epochs[1].epoch, u64::MAX);

    let e = SavedState::parse("t", state, "p-1").unwrap_err().to_string();
    assert!(e.contains("transactional id 'p-0'") && e.contains("'p-1'"), "{e}");
    let e = SavedState::parse(
        "t",
        serde_json::json!({ "transactional_id": "p-0", "epochs": [{ "epoch": 1, "records": [{ "key": "%" }] }] }),
        "p-0",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot resume from the checkpoint") && e.contains("not base64"), "{e}");
}

#[test]
fn the_sink_is_idempotent_unless_its_properties_forbid_it() {
    let fits = |properties: &[(&str, &str)]| {
        let mut options = vec![("format", "json")];
        options.extend_from_slice(properties);
        super::sink::idempotence_fits(&Config::parse(&t(&options)).unwrap().client)
    };
    assert!(fits(&[]));
    assert!(fits(&[("properties.acks", "all"), ("properties.max.in.flight.requests.per.connection", "5")]));
    assert!(fits(&[("properties.acks", "-1"), ("properties.retries", "3")]));
    // As the Java client: what an idempotent producer cannot do turns it off.
    assert!(!fits(&[("properties.acks", "1")]));
    assert!(!fits(&[("properties.request.required.acks", "0")]));
    assert!(!fits(&[("properties.max.in.flight.requests.per.connection", "10")]));
    assert!(!fits(&[("properties.retries", "0")]));
}

#[test]
fn partition_discovery_defaults_to_flinks_five_minutes_and_is_off_when_bounded_or_zero() {
    let interval = |o: &[(&str, &str)]| Config::parse(&t(o)).unwrap().discovery_interval;
    let json = ("format", "json");
    assert_eq!(interval(&[json]), Some(Duration::from_secs(300)));
    assert_eq!(interval(&[json, ("scan.topic-partition-discovery.interval", "10 s")]), Some(Duration::from_secs(10)));
    assert_eq!(interval(&[json, ("scan.topic-partition-discovery.interval", "0")]), None);
    assert_eq!(interval(&[json, ("scan.bounded.mode", "latest-offset")]), None);
    let e = error(&t(&[json, ("scan.topic-partition-discovery.interval", "often")]));
    assert!(e.contains("'scan.topic-partition-discovery.interval' = 'often' is not a duration"), "{e}");
}
