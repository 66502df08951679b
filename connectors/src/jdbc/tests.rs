//! The jdbc sink: options, literals, and writes into the machine's real PostgreSQL
//! (127.0.0.1:5432, database `test`) and MariaDB (127.0.0.1:3306, database `test`).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, Int8Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use super::literal::{quote, render_column};
use super::*;
use crate::test_util::table;
use crate::RowKind;

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]
}

fn jdbc_table(url: &str, target: &str, key: bool, extra: &[(&str, &str)]) -> ConnectorTable {
    let mut options = vec![("connector", "jdbc"), ("url", url), ("table-name", target)];
    options.extend_from_slice(extra);
    let mut t = table(fields(), &options);
    if key {
        t.primary_key = vec!["id".into()];
    }
    t
}

fn batch(rows: &[(i64, Option<&str>, f64, i64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(fields()));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
        Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn kinds(k: &[RowKind]) -> Int8Array {
    Int8Array::from(k.iter().map(|k| k.code()).collect::<Vec<_>>())
}

#[test]
fn urls_and_options_are_checked() {
    let t = jdbc_table("jdbc:postgresql://db.local/shop?user=u&password=p&sslmode=disable", "public.orders", true, &[]);
    let c = Config::from_table(&t).unwrap();
    assert_eq!(
        (c.dialect, c.host.as_str(), c.port, c.database.as_str()),
        (Dialect::Postgres, "db.local", 5432, "shop")
    );
    assert_eq!((c.user.as_deref(), c.password.as_deref()), (Some("u"), Some("p")));
    assert_eq!(c.table_name, vec!["public", "orders"]);
    assert_eq!((c.max_rows, c.interval, c.max_retries), (100, Some(std::time::Duration::from_secs(1)), 3));
    let c = Config::from_table(&jdbc_table("jdbc:mariadb://127.0.0.1:3307/test", "t", false, &[])).unwrap();
    assert_eq!((c.dialect, c.port), (Dialect::MySql, 3307));
    let err = |url: &str, extra: &[(&str, &str)]| {
        Config::from_table(&jdbc_table(url, "t", false, extra)).unwrap_err().to_string()
    };
    assert!(err("postgresql://h/db", &[]).contains("does not start with 'jdbc:'"));
    assert!(err("jdbc:oracle://h/db", &[]).contains("'oracle'"));
    assert!(err("jdbc:mysql://h:x/db", &[]).contains("port 'x'"));
    assert!(err("jdbc:mysql://h/db", &[("scan.fetch-size", "10")]).contains("scans come later"));
    assert!(Config::from_table(&jdbc_table("jdbc:mysql://h/db", "t", false, &[("lookup.cache", "PARTIAL")])).is_ok());
    assert!(err("jdbc:mysql://h/db", &[("sink.max-retries", "many")]).contains("sink.max-retries"));
    assert!(accepts_updates(&jdbc_table("jdbc:mysql://h/db", "t", true, &[])));
    assert!(!accepts_updates(&jdbc_table("jdbc:mysql://h/db", "t", false, &[])));
}

#[test]
fn values_become_literals_no_value_can_escape() {
    assert_eq!(quote("it's", Dialect::Postgres), "'it''s'");
    assert_eq!(quote("a\\'b", Dialect::Postgres), "'a\\''b'");
    assert_eq!(quote("a\\'b", Dialect::MySql), "'a\\\\''b'");
    let b = batch(&[(1, Some("x'); DROP TABLE t; --"), f64::NAN, 1_709_287_200_123)]);
    let names = render_column(b.column(1), Dialect::Postgres).unwrap();
    assert_eq!(names, vec!["'x''); DROP TABLE t; --'"]);
    assert_eq!(render_column(b.column(2), Dialect::Postgres).unwrap(), vec!["'NaN'"]);
    assert_eq!(render_column(b.column(2), Dialect::MySql).unwrap(), vec!["NULL"]);
    assert_eq!(render_column(b.column(3), Dialect::MySql).unwrap(), vec!["'2024-03-01 10:00:00.123'"]);
}

/// What a sink writes, as the database reads it back: (id, name, price, ts as text).
type Row = (i64, Option<String>, Option<f64>, String);

async fn write_changes(t: &ConnectorTable) {
    let mut sink = create_sink(t, crate::Split { index: 0, count: 1 }).unwrap();
    sink.write_batch(&batch(&[(1, Some("apple"), 1.5, 1_709_287_200_000), (2, Some("pear"), 2.0, 0)]), None)
        .await
        .unwrap();
    assert!(sink.pre_commit(1).await.unwrap().is_none());
    let changes = batch(&[
        (1, Some("apple"), 1.5, 1_709_287_200_000),
        (1, Some("green apple"), 1.75, 1_709_287_200_123),
        (2, Some("pear"), 2.0, 0),
        (3, Some("it's a \\ 'quote'"), -0.5, 86_400_000),
        (4, None, 0.0, 0),
    ]);
    let k = kinds(&[RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete, RowKind::Insert, RowKind::Insert]);
    sink.write_batch(&changes, Some(&k)).await.unwrap();
    sink.finish().await.unwrap();
}

fn expected() -> Vec<Row> {
    vec![
        (1, Some("green apple".into()), Some(1.75), "2024-03-01 10:00:00.123".into()),
        (3, Some("it's a \\ 'quote'".into()), Some(-0.5), "1970-01-02 00:00:00".into()),
        (4, None, Some(0.0), "1970-01-01 00:00:00".into()),
    ]
}

#[tokio::test]
async fn upserts_and_deletes_reach_postgresql() {
    let (client, connection) =
        tokio_postgres::connect("host=127.0.0.1 port=5432 dbname=test user=postgres", tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let name = format!("eddy_sink_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id INT PRIMARY KEY, name TEXT, price REAL, ts TIMESTAMP(3))"
        ))
        .await
        .unwrap();
    let t = jdbc_table("jdbc:postgresql://127.0.0.1:5432/test", &name, true, &[("username", "postgres")]);
    write_changes(&t).await;
    let rows = client
        .query(
            &format!("SELECT id, name, price::float8, to_char(ts, 'YYYY-MM-DD HH24:MI:SS.MS') FROM {name} ORDER BY id"),
            &[],
        )
        .await
        .unwrap();
    let got: Vec<Row> = rows
        .iter()
        .map(|r| {
            let ts: String = r.get(3);
            let ts = ts.strip_suffix(".000").map(str::to_string).unwrap_or(ts);
            (i64::from(r.get::<_, i32>(0)), r.get(1), r.get(2), ts)
        })
        .collect();
    assert_eq!(got, expected());
    client.batch_execute(&format!("DROP TABLE {name}")).await.unwrap();
}

#[tokio::test]
async fn upserts_and_deletes_reach_mariadb() {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .db_name(Some("test"));
    let mut conn = mysql_async::Conn::new(opts).await.unwrap();
    let name = format!("eddy_sink_{}", std::process::id());
    conn.query_drop(format!("DROP TABLE IF EXISTS {name}")).await.unwrap();
    conn.query_drop(format!("CREATE TABLE {name} (id INT PRIMARY KEY, name TEXT, price DOUBLE, ts DATETIME(3))"))
        .await
        .unwrap();
    let t = jdbc_table("jdbc:mysql://127.0.0.1:3306/test?user=root", &name, true, &[]);
    write_changes(&t).await;
    let rows: Vec<(i64, Option<String>, Option<f64>, String)> = conn
        .query(format!("SELECT id, name, price, DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f') FROM {name} ORDER BY id"))
        .await
        .unwrap();
    let got: Vec<Row> = rows
        .into_iter()
        .map(|(id, n, p, ts)| {
            // DATETIME(3) prints six digits; trim to what the table keeps.
            let ts = ts.strip_suffix("000").unwrap_or(&ts).to_string();
            let ts = ts.strip_suffix(".000").map(str::to_string).unwrap_or(ts);
            (id, n, p, ts)
        })
        .collect();
    assert_eq!(got, expected());
    conn.query_drop(format!("DROP TABLE {name}")).await.unwrap();
}

#[tokio::test]
async fn an_append_sink_inserts_in_order_and_refuses_deletes() {
    let (client, connection) =
        tokio_postgres::connect("host=127.0.0.1 port=5432 dbname=test user=postgres", tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let name = format!("eddy_append_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id BIGINT, name VARCHAR(20), price NUMERIC(10,2), ts TIMESTAMPTZ)"
        ))
        .await
        .unwrap();
    let t = jdbc_table(
        "jdbc:postgresql://127.0.0.1/test?user=postgres",
        &name,
        false,
        &[("sink.buffer-flush.max-rows", "2"), ("sink.buffer-flush.interval", "0")],
    );
    let mut sink = create_sink(&t, crate::Split { index: 0, count: 1 }).unwrap();
    // Three rows with max-rows 2: two are written at once, the third waits for finish.
    sink.write_batch(&batch(&[(7, Some("a"), 1.25, 0), (7, Some("a"), 1.25, 0), (8, Some("b"), 3.0, 0)]), None)
        .await
        .unwrap();
    let written: i64 = client.query_one(&format!("SELECT count(*) FROM {name}"), &[]).await.unwrap().get(0);
    assert_eq!(written, 3, "the buffer reached max-rows and was written");
    sink.finish().await.unwrap();
    let rows = client.query(&format!("SELECT id, price::text FROM {name} ORDER BY id"), &[]).await.unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(7, "1.25".into()), (7, "1.25".into()), (8, "3.00".into())], "duplicates are kept");
    let err = sink.write_batch(&batch(&[(7, Some("a"), 1.25, 0)]), Some(&kinds(&[RowKind::Delete]))).await.unwrap_err();
    assert!(err.to_string().contains("declare the table's PRIMARY KEY"), "{err}");
    client.batch_execute(&format!("DROP TABLE {name}")).await.unwrap();
}

#[tokio::test]
async fn a_refused_write_fails_with_the_database_reason() {
    let t = jdbc_table(
        "jdbc:postgresql://127.0.0.1:5432/test?user=postgres",
        "no_such_table_for_eddy",
        true,
        &[("sink.max-retries", "1"), ("sink.buffer-flush.interval", "0")],
    );
    let mut sink = create_sink(&t, crate::Split { index: 0, count: 1 }).unwrap();
    sink.write_batch(&batch(&[(1, Some("x"), 1.0, 0)]), None).await.unwrap();
    let err = sink.finish().await.unwrap_err().to_string();
    assert!(err.contains("no_such_table_for_eddy") && err.contains("42P01"), "{err}");
    assert!(err.contains("after 1 retries"), "{err}");
}

/// The lookup cache options, Flink's current and older names.
#[test]
fn lookup_cache_options() {
    use super::lookup::tests_support::cache_of;
    let t = |extra: &[(&str, &str)]| cache_of(&jdbc_table("jdbc:mysql://h/db", "t", false, extra));
    assert_eq!(t(&[]).unwrap(), None, "no cache by default");
    assert_eq!(t(&[("lookup.cache", "NONE")]).unwrap(), None);
    let partial = t(&[
        ("lookup.cache", "partial"),
        ("lookup.partial-cache.max-rows", "10"),
        ("lookup.partial-cache.expire-after-write", "1 min"),
        ("lookup.partial-cache.cache-missing-key", "false"),
    ])
    .unwrap()
    .expect("a cache");
    assert_eq!(partial, (10, Some(std::time::Duration::from_secs(60)), None, false));
    // The older names: a cache when both max-rows and ttl are set.
    assert_eq!(t(&[("lookup.cache.max-rows", "5")]).unwrap(), None);
    let legacy = t(&[("lookup.cache.max-rows", "5"), ("lookup.cache.ttl", "10 s")]).unwrap().expect("a cache");
    assert_eq!(legacy, (5, Some(std::time::Duration::from_secs(10)), None, true));
    assert!(t(&[("lookup.cache", "FULL")]).unwrap_err().to_string().contains("'FULL' is not supported yet"));
    assert!(t(&[("lookup.cache", "SOME")]).unwrap_err().to_string().contains("none of NONE, PARTIAL, FULL"));
}
