//! Parser tests: every Flink statement shape, and errors that point at the right place.

use super::parse_sql;
use crate::ast::{ColumnKind, DistributionKind, DropObject, Statement};
use crate::types::TypeKind;

fn one(sql: &str) -> Statement {
    let mut v = parse_sql(sql).unwrap_or_else(|e| panic!("{}", e.render("t.sql", sql)));
    assert_eq!(v.len(), 1);
    v.remove(0).node
}

#[test]
fn create_table_with_everything() {
    let sql = "CREATE TEMPORARY TABLE IF NOT EXISTS `my table` (
        id BIGINT NOT NULL PRIMARY KEY NOT ENFORCED COMMENT 'the id',
        name STRING,
        price DECIMAL(10, 2),
        tags ARRAY<ROW<k STRING, v MAP<STRING, BIGINT>>>,
        ts TIMESTAMP(3),
        ltz TIMESTAMP_LTZ(3),
        ts2 AS ts + INTERVAL '1' SECOND,
        part INT METADATA FROM 'partition' VIRTUAL,
        `offset` BIGINT METADATA VIRTUAL,
        WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
      ) COMMENT 'trades'
      PARTITIONED BY (name)
      DISTRIBUTED BY HASH (id) INTO 4 BUCKETS
      WITH ('connector' = 'datagen', 'rows-per-second' = '5')";
    let Statement::CreateTable(t) = one(sql) else { panic!() };
    assert_eq!(t.name.to_string(), "`my table`");
    assert!(t.temporary && t.if_not_exists);
    assert_eq!(t.columns.len(), 9);
    assert_eq!(t.primary_key, Some(vec!["id".to_string()]));
    assert!(matches!(&t.columns[0].kind, ColumnKind::Physical(ft) if !ft.nullable && ft.kind == TypeKind::BigInt));
    assert_eq!(t.columns[0].comment.as_deref(), Some("the id"));
    assert!(matches!(&t.columns[2].kind, ColumnKind::Physical(ft) if ft.kind == TypeKind::Decimal(10, 2)));
    let ColumnKind::Physical(tags) = &t.columns[3].kind else { panic!() };
    assert_eq!(tags.to_string(), "ARRAY<ROW<`k` STRING, `v` MAP<STRING, BIGINT>>>");
    assert!(matches!(&t.columns[6].kind, ColumnKind::Computed(_)));
    assert!(
        matches!(&t.columns[7].kind, ColumnKind::Metadata { key: Some(k), virtual_: true, .. } if k == "partition")
    );
    assert!(matches!(&t.columns[8].kind, ColumnKind::Metadata { key: None, virtual_: true, .. }));
    let wm = t.watermark.as_ref().unwrap();
    assert_eq!(wm.column, "ts");
    assert_eq!(wm.expr.to_string(), "ts - INTERVAL '5' SECOND");
    let d = t.distribution.as_ref().unwrap();
    assert_eq!((d.kind, d.columns.clone(), d.buckets), (Some(DistributionKind::Hash), vec!["id".to_string()], Some(4)));
    assert_eq!(t.partitioned_by, vec!["name".to_string()]);
    assert_eq!(t.comment.as_deref(), Some("trades"));
    assert_eq!(t.options.len(), 2);
}

#[test]
fn distributed_into_and_table_level_key() {
    let Statement::CreateTable(t) = one(
        "CREATE TABLE q (s STRING, p DOUBLE, CONSTRAINT pk PRIMARY KEY (s) NOT ENFORCED) DISTRIBUTED INTO 1 BUCKETS WITH ('connector'='kafka')",
    ) else {
        panic!()
    };
    assert_eq!(t.distribution.as_ref().and_then(|d| d.buckets), Some(1));
    assert!(t.distribution.as_ref().map(|d| d.columns.is_empty()).unwrap_or(false));
    assert_eq!(t.primary_key, Some(vec!["s".to_string()]));
}

#[test]
fn ctas_and_views_and_inserts() {
    let Statement::CreateTable(t) = one("CREATE TABLE t2 WITH ('connector'='print') AS SELECT * FROM t") else {
        panic!()
    };
    assert!(t.as_query.is_some());
    assert!(matches!(one("CREATE TEMPORARY VIEW v AS SELECT a FROM t"), Statement::CreateView(_)));
    let Statement::Insert(i) = one("INSERT INTO `result` (a, b) SELECT a, b FROM t") else { panic!() };
    assert_eq!(i.columns, vec!["a", "b"]);
    let Statement::Insert(i) = one("INSERT INTO r (SELECT a FROM t)") else { panic!() };
    assert!(i.columns.is_empty());
    assert!(matches!(one("INSERT INTO r VALUES (1, 'a'), (2, 'b')"), Statement::Insert(_)));
}

#[test]
fn statement_sets_both_forms() {
    let sql = "EXECUTE STATEMENT SET BEGIN
        INSERT INTO a SELECT * FROM t;
        INSERT INTO b SELECT * FROM t;
      END;";
    let Statement::StatementSet(s) = one(sql) else { panic!() };
    assert_eq!(s.len(), 2);
    let sql = "BEGIN STATEMENT SET;\nINSERT INTO a SELECT * FROM t;\nINSERT INTO b SELECT * FROM t;\nEND;";
    let Statement::StatementSet(s) = one(sql) else { panic!() };
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].location.line, 3);
}

#[test]
fn set_reset_show_describe_explain_drop() {
    let sql = "SET 'parallelism.default' = '2';\nSET table.exec.x = 5;\nSET;\nRESET 'a.b';\nRESET;\n\
               SHOW TABLES;\nDESCRIBE t;\nDESC t;\nEXPLAIN SELECT 1;\nEXPLAIN PLAN FOR INSERT INTO a SELECT 1;\n\
               DROP TABLE IF EXISTS t;\nDROP TEMPORARY VIEW v;";
    let v = parse_sql(sql).unwrap();
    assert_eq!(v.len(), 12);
    assert!(
        matches!(&v[0].node, Statement::Set { key: Some(k), value: Some(val) } if k == "parallelism.default" && val == "2")
    );
    assert!(
        matches!(&v[1].node, Statement::Set { key: Some(k), value: Some(val) } if k == "table.exec.x" && val == "5")
    );
    assert!(matches!(&v[2].node, Statement::Set { key: None, .. }));
    assert!(matches!(&v[4].node, Statement::Reset { key: None }));
    assert!(matches!(&v[8].node, Statement::Explain(_)));
    assert_eq!(v[11].location.line, 12);
}

#[test]
fn comments_and_backticks() {
    let sql = "-- a comment\n/* block\n comment */ SELECT `select`, x -- trailing\nFROM `result`;";
    let v = parse_sql(sql).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].location.line, 3);
}

#[test]
fn errors_point_at_line_and_column() {
    let sql = "CREATE TABLE t (a INT) WITH ('connector' = 'datagen');\nSELEC a FROM t;";
    let e = parse_sql(sql).unwrap_err();
    assert_eq!((e.location.line, e.location.column), (2, 1));
    assert!(e.hint.as_deref().unwrap_or("").contains("SELECT"), "{e:?}");

    let sql = "CREATE TABLE t (\n  a INT,\n  b STRNG\n) WITH ('connector' = 'datagen')";
    let e = parse_sql(sql).unwrap_err();
    assert_eq!((e.location.line, e.location.column), (3, 5), "{e:?}");
    assert!(e.message.contains("STRNG"));

    let sql = "CREATE TABLE t (a INT, PRIMARY KEY (a)) WITH ('connector' = 'datagen')";
    let e = parse_sql(sql).unwrap_err();
    assert!(e.hint.as_deref().unwrap_or("").contains("NOT ENFORCED"));

    let sql = "CREATE TABLE t (a INT) WITH ('connector' = 'datagen' 'x' = 'y')";
    let e = parse_sql(sql).unwrap_err();
    assert_eq!(e.location.column, 54, "{e:?}");

    let sql = "SELECT a FROM t WHERE a = 'unterminated";
    let e = parse_sql(sql).unwrap_err();
    assert!(e.location.is_known(), "{e:?}");

    let sql = "SELECT a FROM t WHERE";
    assert!(parse_sql(sql).is_err());
}

#[test]
fn never_panics_on_garbage() {
    for sql in [
        "(",
        ")",
        "CREATE",
        "CREATE TABLE",
        "CREATE TABLE t (",
        "INSERT INTO",
        "SET 'a' =",
        "EXECUTE STATEMENT SET BEGIN",
        "BEGIN STATEMENT SET;",
        "WATERMARK",
        "CREATE TABLE t (a ARRAY<INT) WITH ()",
        "CREATE TABLE t (a ROW<b ARRAY<INT>>) WITH ()",
        "\u{0}",
        "'",
        "`",
    ] {
        let _ = parse_sql(sql);
    }
    assert!(parse_sql("CREATE TABLE t (a ROW<b ARRAY<INT>>) WITH ()").is_ok());
}

#[test]
fn window_table_function_arguments_parse() {
    // `TABLE t [PARTITION BY ..]` is an argument only inside a call; the rest is plain SQL.
    for (sql, expected) in [
        ("SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND))", "TABLE(t)"),
        ("SELECT * FROM TABLE(SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' SECOND))", "TABLE(t, k)"),
        ("SELECT * FROM TABLE(SESSION(TABLE t PARTITION BY (a, b), DESCRIPTOR(ts), INTERVAL '1' SECOND))", "TABLE(t, a, b)"),
        (
            "SELECT * FROM TABLE(SESSION(DATA => TABLE db.t PARTITION BY a, b, TIMECOL => DESCRIPTOR(ts), GAP => INTERVAL '1' SECOND))",
            "DATA => TABLE(db.t, a, b), TIMECOL => DESCRIPTOR(ts)",
        ),
    ] {
        let parsed = parse_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let Statement::Query(q) = &parsed[0].node else { panic!("{sql}: not a query") };
        assert!(q.to_string().contains(expected), "{sql}: {q}");
    }
    let e = parse_sql("SELECT * FROM TABLE(TUMBLE(TABLE t PARTITION BY, DESCRIPTOR(ts)))").unwrap_err();
    assert_eq!(e.kind, crate::error::SqlErrorKind::Syntax, "{e:?}");
    assert_eq!((e.location.line, e.location.column), (1, 48));
}

#[test]
fn materialized_view_is_a_result_table_with_its_query() {
    let Statement::CreateTable(t) =
        one("CREATE MATERIALIZED VIEW IF NOT EXISTS mv WITH ('retention' = '1 h') AS SELECT a FROM t")
    else {
        panic!("not a table")
    };
    assert!(t.if_not_exists && t.as_query.is_some() && t.columns.is_empty());
    assert_eq!(t.options, vec![("retention".to_string(), "1 h".to_string())]);
    assert!(matches!(one("DROP MATERIALIZED VIEW mv"), Statement::Drop { object: DropObject::Table, .. }));
    let err = parse_sql("CREATE MATERIALIZED VIEW mv WITH ('connector' = 'kafka') AS SELECT 1").unwrap_err();
    assert!(err.message.contains("kept by Eddy"), "{}", err.message);
}

#[test]
fn statement_texts_split_at_each_start() {
    let text = "CREATE TABLE a (x INT);\nCREATE TABLE b (y INT) WITH ('connector' = 'blackhole');\n";
    let statements = parse_sql(text).unwrap();
    assert_eq!(super::statement_text(text, &statements, 0).trim(), "CREATE TABLE a (x INT);");
    assert_eq!(
        super::statement_text(text, &statements, 1).trim(),
        "CREATE TABLE b (y INT) WITH ('connector' = 'blackhole');"
    );
}
