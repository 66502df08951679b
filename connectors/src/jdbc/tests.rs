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

/// A client of the machine's PostgreSQL, database `test`.
async fn postgres() -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect("host=127.0.0.1 port=5432 dbname=test user=postgres", tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
}

/// A connection to the machine's MariaDB, database `test`.
async fn mariadb() -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .db_name(Some("test"));
    mysql_async::Conn::new(opts).await.unwrap()
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
    assert!(err("jdbc:mysql://h/db", &[("scan.fetch-sizes", "10")]).contains("unknown option 'scan.fetch-sizes'"));
    assert!(Config::from_table(&jdbc_table("jdbc:mysql://h/db", "t", false, &[("scan.fetch-size", "10")])).is_ok());
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
    let client = postgres().await;
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
    let mut conn = mariadb().await;
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
    let client = postgres().await;
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

/// The scan source's options: all four partition options or none, an integer column.
#[test]
fn scan_options_are_checked() {
    let err = |extra: &[(&str, &str)]| {
        crate::validate(&jdbc_table("jdbc:mysql://h/db", "t", false, extra), true, false).unwrap_err().to_string()
    };
    assert!(err(&[("scan.partition.column", "id")]).contains("must all be set, or none"));
    let split = |column: &'static str| {
        [
            ("scan.partition.column", column),
            ("scan.partition.num", "2"),
            ("scan.partition.lower-bound", "1"),
            ("scan.partition.upper-bound", "0"),
        ]
    };
    assert!(err(&split("name")).contains("must be an integer column"), "{}", err(&split("name")));
    assert!(err(&split("nope")).contains("'nope' is not a column"));
    assert!(err(&split("id")).contains("'scan.partition.lower-bound' <= 'scan.partition.upper-bound'"));
    assert!(crate::is_bounded(&jdbc_table("jdbc:mysql://h/db", "t", false, &[])).unwrap());
}

/// Scan rows of a jdbc table, all splits, sorted by id: each column as text.
async fn scan(t: &ConnectorTable, splits: usize) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for index in 0..splits {
        let mut source = crate::create_source(t, crate::Split { index, count: splits }).unwrap();
        while let Some(b) = source.next_batch().await.unwrap() {
            assert!(b.batch.num_rows() <= 3, "scan.fetch-size is 3");
            let formatted = arrow::util::display::ArrayFormatter::try_new;
            let options = arrow::util::display::FormatOptions::default().with_null("NULL");
            let columns: Vec<_> = b.batch.columns().iter().map(|c| formatted(c.as_ref(), &options).unwrap()).collect();
            for r in 0..b.batch.num_rows() {
                rows.push(columns.iter().map(|c| c.value(r).to_string()).collect::<Vec<_>>());
            }
        }
    }
    rows.sort_by_key(|r| r[0].parse::<i64>().unwrap());
    rows
}

fn scan_table(url: &str, name: &str, extra: &[(&str, &str)]) -> ConnectorTable {
    let mut options = vec![("connector", "jdbc"), ("url", url), ("table-name", name), ("scan.fetch-size", "3")];
    options.extend_from_slice(extra);
    table(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("day", DataType::Date32, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("ltz", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
        ],
        &options,
    )
}

/// 10 rows: id 1..=10; row 4 all NULL but the id; one name with a quote and a newline.
fn scan_expected() -> Vec<Vec<String>> {
    (1..=10)
        .map(|i: i64| {
            if i == 4 {
                return [i.to_string()].into_iter().chain(std::iter::repeat_n("NULL".to_string(), 6)).collect();
            }
            vec![
                i.to_string(),
                if i == 7 { "it's\nhere".to_string() } else { format!("n{i}") },
                format!("{i}.25"),
                (i % 2 == 0).to_string(),
                format!("2024-03-{i:02}"),
                format!("2024-03-{i:02}T10:00:00.125"),
                format!("2024-03-{i:02}T23:30:00Z"),
            ]
        })
        .collect()
}

const SCAN_SPLIT: [(&str, &str); 4] = [
    ("scan.partition.column", "id"),
    ("scan.partition.num", "3"),
    ("scan.partition.lower-bound", "1"),
    ("scan.partition.upper-bound", "10"),
];

#[tokio::test]
async fn a_postgresql_table_is_scanned_whole_and_in_ranges() {
    let client = postgres().await;
    let name = format!("eddy_scan_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {name}; \
             CREATE TABLE {name} (id INT, name TEXT, price NUMERIC(10,2), ok BOOLEAN, day DATE, ts TIMESTAMP(3), \
                                  ltz TIMESTAMPTZ); \
             SET TIME ZONE 'Asia/Shanghai'; \
             INSERT INTO {name} SELECT i, CASE WHEN i = 7 THEN E'it''s\\nhere' ELSE 'n' || i END, i + 0.25, \
                    i % 2 = 0, DATE '2024-02-29' + i, TIMESTAMP '2024-02-29 10:00:00.125' + i * INTERVAL '1 day', \
                    TIMESTAMPTZ '2024-02-29 23:30:00+00' + i * INTERVAL '1 day' \
             FROM generate_series(1, 10) AS i WHERE i <> 4; \
             INSERT INTO {name} (id) VALUES (4), (11);"
        ))
        .await
        .unwrap();
    let url = "jdbc:postgresql://127.0.0.1:5432/test?user=postgres";
    let mut expected = scan_expected();
    let mut eleven = vec!["11".to_string()];
    eleven.extend(std::iter::repeat_n("NULL".to_string(), 6));
    expected.push(eleven);
    assert_eq!(scan(&scan_table(url, &name, &[]), 2).await, expected, "whole table, read by split 0");
    // In ranges, as Flink: only ids within the bounds (11 is not read).
    expected.pop();
    assert_eq!(scan(&scan_table(url, &name, &SCAN_SPLIT), 2).await, expected);

    // Positions: between ranges only; a split resumed there reads the ranges after it.
    let t = scan_table(url, &name, &SCAN_SPLIT);
    let split = crate::Split { index: 0, count: 1 };
    let mut source = crate::create_source(&t, split).unwrap();
    assert_eq!(source.position(), Some(serde_json::json!({"ranges_done": 0})));
    let mut first_range = 0;
    loop {
        first_range += source.next_batch().await.unwrap().unwrap().batch.num_rows();
        if let Some(p) = source.position() {
            // Ids 1..=4 are range 0: three rows in the first batch, then one.
            assert_eq!(p, serde_json::json!({"ranges_done": 0}), "positions only between ranges");
        }
        if first_range == 4 {
            break;
        }
    }
    // The next call finds the range's end, then returns range 1's first rows.
    let b = source.next_batch().await.unwrap().unwrap();
    assert_eq!(b.batch.column(0).as_ref(), &Int64Array::from(vec![5, 6, 7]) as &dyn arrow::array::Array);
    let mut resumed = crate::create_source_at(&t, split, Some(&serde_json::json!({"ranges_done": 2}))).unwrap();
    let b = resumed.next_batch().await.unwrap().unwrap();
    assert_eq!(b.batch.column(0).as_ref(), &Int64Array::from(vec![8, 9, 10]) as &dyn arrow::array::Array);
    assert!(resumed.next_batch().await.unwrap().is_none());
    assert_eq!(resumed.position(), Some(serde_json::json!({"ranges_done": 3})));

    // A value that is not the declared type names the column and the value.
    client.batch_execute(&format!("UPDATE {name} SET name = 'x' WHERE id = 2")).await.unwrap();
    let mut wrong = scan_table(url, &name, &[]);
    let mut fields: Vec<Field> = wrong.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[1] = Field::new("name", DataType::Int32, true);
    wrong.schema = Arc::new(Schema::new(fields));
    let mut source = crate::create_source(&wrong, split).unwrap();
    let e = source.next_batch().await.unwrap_err().to_string();
    assert!(e.contains("column 'name' does not read as Int32 (value 'n1')"), "{e}");
    client.batch_execute(&format!("DROP TABLE {name}")).await.unwrap();
}

#[tokio::test]
async fn a_mariadb_table_is_scanned_in_ranges() {
    use mysql_async::prelude::Queryable;
    let mut conn = mariadb().await;
    let name = format!("eddy_scan_{}", std::process::id());
    conn.query_drop(format!("DROP TABLE IF EXISTS {name}")).await.unwrap();
    conn.query_drop(format!(
        "CREATE TABLE {name} (id INT, name TEXT, price DECIMAL(10,2), ok BOOLEAN, day DATE, ts DATETIME(3), \
                              ltz TIMESTAMP NULL)"
    ))
    .await
    .unwrap();
    conn.query_drop("SET time_zone = '+08:00'").await.unwrap();
    for i in 1..=10 {
        let row = if i == 4 {
            "(4, NULL, NULL, NULL, NULL, NULL, NULL)".to_string()
        } else {
            let n = if i == 7 { "'it\\'s\\nhere'".to_string() } else { format!("'n{i}'") };
            format!(
                "({i}, {n}, {i}.25, {}, '2024-03-{i:02}', '2024-03-{i:02} 10:00:00.125', \
                 CONVERT_TZ('2024-03-{i:02} 23:30:00', '+00:00', '+08:00'))",
                i % 2 == 0
            )
        };
        conn.query_drop(format!("INSERT INTO {name} VALUES {row}")).await.unwrap();
    }
    let url = "jdbc:mysql://127.0.0.1:3306/test?user=root";
    assert_eq!(scan(&scan_table(url, &name, &SCAN_SPLIT), 2).await, scan_expected());
    assert_eq!(scan(&scan_table(url, &name, &[]), 1).await, scan_expected());
    conn.query_drop(format!("DROP TABLE {name}")).await.unwrap();
}
