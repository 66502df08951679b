"""The Grafana PostgreSQL data source, replayed: the exact statements it sends (captured from
a real Grafana against a real PostgreSQL, ../shared/pgwire-clients/), as simple queries with
no transaction around them, as Grafana's driver sends them. Macros such as $__timeFilter
reach the server already expanded; a time series needs a column named `time` and a
command tag starting with SELECT."""

import datetime

from common import DB, HOST, PORT, USER, Checks, eq, main_guard

import psycopg
import psycopg2

C = Checks("grafana")


def connect():
    conn = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB, connect_timeout=10)
    conn.autocommit = True
    return conn


def run(sql):
    with connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall() if cur.description else None
        return rows, cur.description, cur.statusmessage


def ping(sql):
    # Grafana's driver looks at the result status; psycopg2 would raise on an empty query
    # even against Postgres, so the status is read with libpq through psycopg 3.
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DB, connect_timeout=10, autocommit=True) as conn:
        res = conn.pgconn.exec_(sql.encode())
        eq((res.status, res.error_message), (psycopg.pq.ExecStatus.EMPTY_QUERY, b""))


def check_ping_comment():
    # pgx's ping: a comment alone, answered with EmptyQueryResponse.
    ping("-- ping")


def check_ping_semicolon():
    # lib/pq's ping.
    ping(";")


def check_version():
    rows, _, _ = run("SELECT current_setting('server_version_num')::int/100 as version")
    v = rows[0][0]
    if not isinstance(v, int) or v < 90:
        raise AssertionError(f"version {v!r}, want an int like 160")


def check_timescaledb():
    rows, _, _ = run("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    eq(rows, [])


def check_time_series():
    # $__timeFilter(ts) over 00:00 .. 00:10 (ts = id seconds): ids 1..600.
    rows, desc, tag = run(
        "SELECT ts AS \"time\", price FROM all_bids "
        "WHERE ts BETWEEN '1970-01-01T00:00:00Z' AND '1970-01-01T00:10:00Z' ORDER BY 1"
    )
    eq([d.name for d in desc], ["time", "price"], "columns")
    eq(len(rows), 600, "rows")
    eq((rows[0], rows[-1]), ((datetime.datetime(1970, 1, 1, 0, 0, 1), 10.0), (datetime.datetime(1970, 1, 1, 0, 10), 6000.0)))
    if not tag.startswith("SELECT"):
        raise AssertionError(f"command tag {tag!r}")


def check_time_series_millis():
    # The range's end with milliseconds, as Grafana sends a dashboard's "now".
    rows, _, _ = run(
        "SELECT ts AS \"time\", price AS value, CAST(bidder AS TEXT) AS metric FROM all_bids "
        "WHERE ts BETWEEN '1970-01-01T00:00:00Z' AND '1970-01-01T00:00:03.123Z' ORDER BY 1"
    )
    eq(rows, [(datetime.datetime(1970, 1, 1, 0, 0, i), i * 10.0, str(i)) for i in (1, 2, 3)])


def check_time_group():
    # $__timeGroupAlias(ts, 1m): epoch seconds of each minute.
    rows, _, _ = run("SELECT floor(extract(epoch from ts)/60)*60 AS \"time\", avg(price) FROM all_bids GROUP BY 1 ORDER BY 1")
    eq(len(rows), 17, "minutes")
    got = [(float(t), float(a)) for t, a in (rows[0], rows[-1])]
    # minute 0: ids 1..59, minute 16: ids 960..1000
    eq(got, [(0.0, 300.0), (960.0, 9800.0)])


def check_table_query():
    # A table panel: several columns, no time.
    rows, _, tag = run("SELECT bidder, bids FROM per_bidder ORDER BY bidder")
    eq(rows, [(0, 1), (1, 25), (2, 25), (3, 25)])
    if not tag.startswith("SELECT"):
        raise AssertionError(f"command tag {tag!r}")


def main():
    C.run("ping_comment", check_ping_comment)
    C.run("ping_semicolon", check_ping_semicolon)
    C.run("version", check_version)
    C.run("timescaledb", check_timescaledb)
    C.run("time_series", check_time_series)
    C.run("time_series_millis", check_time_series_millis)
    C.run("time_group", check_time_group)
    C.run("table_query", check_table_query)


if __name__ == "__main__":
    main_guard("grafana", main)
