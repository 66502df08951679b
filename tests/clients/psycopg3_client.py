"""psycopg 3: server-side parameters through the extended protocol (unnamed statements),
text or binary results, named prepared statements (prepare=True, or automatically after
prepare_threshold executions), pipeline mode."""

import datetime

from common import DB, HOST, PER_BIDDER, PORT, ROWS, SUM_ID, TS_42, USER, Checks, eq, is_float, main_guard

import psycopg

C = Checks("psycopg3")


def connect(**kw):
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DB, connect_timeout=10, **kw)


def query(sql, params=None, **kw):
    with connect() as conn:
        cur = conn.execute(sql, params, **kw)
        return cur.fetchall(), cur.description


def check_connect():
    with connect() as conn:
        eq(conn.info.encoding, "utf-8", "encoding")
        if conn.info.server_version < 90000:
            raise AssertionError(f"server_version {conn.info.server_version}")


def check_point_lookup_by_key():
    # A prepared lookup by the whole primary key (Eddy answers it from the key index), text
    # and binary, a key that is there, one that is not, and a NULL key.
    with connect() as conn:
        for binary in (False, True):
            for bidder, want in ((2, [(PER_BIDDER[2][2], PER_BIDDER[2][1])]), (7, []), (None, [])):
                rows = conn.execute("SELECT bids, window_start FROM per_bidder WHERE bidder = %s", (bidder,),
                                    prepare=True, binary=binary).fetchall()
                eq(rows, want, "bidder %s binary %s" % (bidder, binary))


def check_simple_query():
    # No parameters: psycopg 3 still uses the extended protocol, text results.
    rows, _ = query("SELECT count(*), sum(id) FROM all_bids")
    eq(rows, [(ROWS, SUM_ID)])


def check_params():
    rows, _ = query("SELECT id, price FROM all_bids WHERE id = %s", (42,))
    eq(rows, [(42, 420.0)])
    is_float(rows[0][1], 420.0, "price")


def check_params_binary_results():
    rows, _ = query("SELECT id, price FROM all_bids WHERE id = %s", (42,), binary=True)
    eq(rows, [(42, 420.0)])
    is_float(rows[0][1], 420.0, "price")


def check_binary_param():
    # %b: the parameter itself travels in binary.
    rows, _ = query("SELECT id, price FROM all_bids WHERE id = %b", (42,))
    eq(rows, [(42, 420.0)])


def check_timestamp_param():
    rows, _ = query("SELECT id FROM all_bids WHERE ts = %s", (TS_42,))
    eq(rows, [(42,)])


def check_timestamp_text():
    rows, _ = query("SELECT ts FROM all_bids WHERE id = %s", (42,))
    eq(rows, [(TS_42,)])
    eq(type(rows[0][0]), datetime.datetime)


def check_timestamp_binary():
    rows, _ = query("SELECT ts FROM all_bids WHERE id = %s", (42,), binary=True)
    eq(rows, [(TS_42,)])


def check_per_bidder_binary():
    rows, _ = query("SELECT bidder, window_start, bids FROM per_bidder ORDER BY bidder", binary=True)
    eq(rows, PER_BIDDER)


def check_description_types():
    _, desc = query("SELECT id, bidder, price, ts FROM all_bids WHERE id = %s", (1,))
    eq([(d.name, d.type_code) for d in desc], [("id", 20), ("bidder", 23), ("price", 701), ("ts", 1114)])


def check_prepare_true():
    with connect() as conn:
        for i in (5, 6, 7):
            cur = conn.execute("SELECT id, price FROM all_bids WHERE id = %s", (i,), prepare=True)
            eq(cur.fetchall(), [(i, i * 10.0)], f"id {i}")


def check_prepare_binary():
    with connect() as conn:
        for i in (8, 9):
            cur = conn.execute("SELECT id, ts FROM all_bids WHERE id = %s", (i,), prepare=True, binary=True)
            eq(cur.fetchall(), [(i, datetime.datetime(1970, 1, 1, 0, 0, i))], f"id {i}")


def check_auto_prepare():
    # After prepare_threshold (5) executions psycopg switches to a named prepared statement.
    with connect() as conn:
        for i in range(1, 9):
            cur = conn.execute("SELECT price FROM all_bids WHERE id = %s", (i,))
            eq(cur.fetchall(), [(i * 10.0,)], f"execution {i}")


def check_pipeline():
    with connect() as conn:
        with conn.pipeline():
            c1 = conn.execute("SELECT count(*) FROM all_bids")
            c2 = conn.execute("SELECT price FROM all_bids WHERE id = %s", (3,))
            c3 = conn.execute("SELECT count(*) FROM per_bidder")
        eq((c1.fetchone(), c2.fetchone(), c3.fetchone()), ((ROWS,), (30.0,), (4,)))


def check_server_cursor():
    with connect() as conn:
        with conn.cursor(name="eddy_cur3") as cur:
            cur.itersize = 250
            cur.execute("SELECT id FROM all_bids WHERE id > %s ORDER BY id", (0,))
            ids = [r[0] for r in cur]
        eq((len(ids), sum(ids)), (ROWS, SUM_ID))


def check_server_cursor_no_params():
    with connect() as conn:
        with conn.cursor(name="eddy_cur4") as cur:
            cur.execute("SELECT id, price FROM all_bids ORDER BY id")
            eq([d.name for d in cur.description], ["id", "price"])
            rows = cur.fetchmany(3)
        eq(rows, [(1, 10.0), (2, 20.0), (3, 30.0)])


def check_stream():
    with connect() as conn:
        ids = [r[0] for r in conn.cursor().stream("SELECT id FROM all_bids ORDER BY id")]
        eq((len(ids), sum(ids)), (ROWS, SUM_ID))


def main():
    C.run("connect", check_connect)
    C.run("simple_query", check_simple_query)
    C.run("params", check_params)
    C.run("params_binary_results", check_params_binary_results)
    C.run("binary_param", check_binary_param)
    C.run("timestamp_param", check_timestamp_param)
    C.run("timestamp_text", check_timestamp_text)
    C.run("timestamp_binary", check_timestamp_binary)
    C.run("per_bidder_binary", check_per_bidder_binary)
    C.run("description_types", check_description_types)
    C.run("prepare_true", check_prepare_true)
    C.run("prepare_binary", check_prepare_binary)
    C.run("auto_prepare", check_auto_prepare)
    C.run("pipeline", check_pipeline)
    C.run("server_cursor", check_server_cursor)
    C.run("server_cursor_no_params", check_server_cursor_no_params)
    C.run("stream", check_stream)
    C.run("point_lookup_by_key", check_point_lookup_by_key)


if __name__ == "__main__":
    main_guard("psycopg3", main)
