//! End-to-end checks through DataFusion's SQL planner: the functions are registered over
//! DataFusion's built-ins (as the planner does), so these verify that same-named
//! built-ins are replaced and that argument coercion works from SQL literals and columns.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use arrow::util::display::array_value_to_string;
use datafusion::prelude::SessionContext;

use super::flink_functions;

/// Drives a future to completion on this thread; the plans used here never wait on I/O.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    for f in flink_functions() {
        ctx.register_udf((*f).clone());
    }
    ctx
}

/// Runs `sql` and returns every cell as display text, row by row.
fn query(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let df = block_on(ctx.sql(sql)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches = block_on(df.collect()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| if c.is_null(r) { "NULL".to_string() } else { array_value_to_string(c, r).unwrap() })
                    .collect(),
            );
        }
    }
    rows
}

fn single_row(sql: &str) -> Vec<String> {
    let rows = query(&context(), sql);
    assert_eq!(rows.len(), 1, "{sql}");
    rows.into_iter().next().unwrap_or_default()
}

#[test]
fn names_are_unique_and_lower_case() {
    let fns = flink_functions();
    let names: std::collections::HashSet<String> = fns.iter().map(|f| f.name().to_string()).collect();
    assert_eq!(names.len(), fns.len());
    assert!(names.iter().all(|n| n.chars().all(|c| !c.is_ascii_uppercase())));
}

#[test]
fn oracle_examples() {
    assert_eq!(
        single_row(
            "SELECT date_format(TIMESTAMP '2024-03-01 22:30:07.885', 'yyyy-MM-dd HH:mm'), \
             round(1.15, 1), round(2.25, 1), round(-2.25, 1), round(2.675, 2), \
             timestampdiff('SECOND', TIMESTAMP '2024-03-01 22:30:07.885', TIMESTAMP '2024-03-01 22:30:06.900'), \
             split_index('a;b;c', ';', 1), split_index('a;b;c', ';', 5), \
             regexp_extract('charlie.364@example.com', '([a-zA-Z0-9._]+)@([a-zA-Z0-9.]+)', 2), \
             regexp_extract('nothing here', '([a-z]+)@([a-z]+)', 1)"
        ),
        ["2024-03-01 22:30", "1.2", "2.3", "-2.3", "2.68", "0", "b", "NULL", "example.com", "NULL"]
    );
}

#[test]
fn replaced_builtins_follow_flink() {
    assert_eq!(
        single_row(
            "SELECT concat('a', NULL, 'b'), concat('a', 'b'), regexp_replace('aXbX', 'X', '$1'), \
             from_unixtime(44), to_timestamp('2024-03-01 10:00:00'), to_timestamp('bad'), \
             to_date('2024-03-01'), initcap('hello wORLD'), date_format('2024-03-01 22:30:07', 'MM/dd')"
        ),
        [
            "NULL",
            "ab",
            "a$1b$1",
            "1970-01-01 00:00:44",
            "2024-03-01T10:00:00",
            "NULL",
            "2024-03-01",
            "Hello World",
            "03/01"
        ]
    );
}

#[test]
fn temporal_functions_from_sql() {
    assert_eq!(
        single_row(
            "SELECT floor_ts('MINUTE', TIMESTAMP '2024-03-01 22:30:07.885'), ceil_ts('WEEK', DATE '2024-03-01'), \
             to_timestamp_ltz(1709332207885, 3), to_timestamp_ltz(1709332207, 0), unix_timestamp('2024-03-01 22:30:07'), \
             timestampdiff('MONTH', DATE '2024-01-31', DATE '2024-02-29'), \
             convert_tz('1970-01-01 00:00:00', 'UTC', 'America/Los_Angeles')"
        ),
        [
            "2024-03-01T22:30:00",
            "2024-03-03",
            "2024-03-01T22:30:07.885Z",
            "2024-03-01T22:30:07Z",
            "1709332207",
            "1",
            "1969-12-31 16:00:00",
        ]
    );
    let ts = "TIMESTAMP '1994-09-27 13:14:15'";
    assert_eq!(
        single_row(&format!(
            "SELECT year({ts}), quarter({ts}), month({ts}), week({ts}), dayofyear({ts}), dayofmonth({ts}), \
             dayofweek({ts}), hour({ts}), minute({ts}), second({ts})"
        )),
        ["1994", "3", "9", "39", "270", "27", "3", "13", "14", "15"]
    );
    let now: i64 = single_row("SELECT unix_timestamp()")[0].parse().unwrap_or(0);
    assert!(now > 1_700_000_000);
}

#[test]
fn other_functions_from_sql() {
    assert_eq!(
        single_row(
            "SELECT mod(-7, 3), locate('b', 'abcb', 3), hash_code('hello'), is_alpha('abc'), is_digit('12a'), \
             is_decimal('1.5e3'), to_base64('hello world'), from_base64('aGk='), str_to_map('a=1,b=2'), \
             json_value('{\"a\": {\"b\": [1, 2.50]}}', '$.a.b[1]')"
        ),
        ["-1", "4", "99162322", "true", "false", "true", "aGVsbG8gd29ybGQ=", "hi", "{a: 1, b: 2}", "2.5"]
    );
}

#[test]
fn columns_with_nulls() {
    let rows = query(
        &context(),
        "SELECT round(x, 1), round(CAST(x AS DECIMAL(10, 3)), 2), date_format(t, 'HH:mm:ss.SSS'), \
         timestampdiff('MILLISECOND', t, TIMESTAMP '1970-01-01 00:00:01') \
         FROM (VALUES (1.15, TIMESTAMP '2024-03-01 22:30:07.885'), (NULL, NULL), \
                      (-2.25, TIMESTAMP '1970-01-01 00:00:00')) AS v(x, t)",
    );
    let expected = [
        ["1.2", "1.15", "22:30:07.885", "64776923"], // Java's (int) cast wraps
        ["NULL", "NULL", "NULL", "NULL"],
        ["-2.3", "-2.25", "00:00:00.000", "1000"],
    ];
    assert_eq!(rows, expected.map(|r| r.map(String::from).to_vec()).to_vec());
}
