"""psycopg2 (Debian's python3-psycopg2): the simple protocol only, parameters bound on the
client side, a transaction (BEGIN) around each statement unless autocommit."""

import datetime

from common import DB, HOST, PER_BIDDER, PORT, ROWS, SUM_ID, TS_42, USER, Checks, eq, is_float, main_guard

import psycopg2
import psycopg2.extras

C = Checks("psycopg2")


def connect(**kw):
    return psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB, connect_timeout=10, **kw)


def query(sql, params=None, autocommit=False):
    with connect() as conn:
        conn.autocommit = autocommit
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall(), cur.description


def check_connect():
    conn = connect()
    # What psycopg2 reads from the startup parameters instead of querying.
    eq(conn.encoding, "UTF8", "client encoding")
    eq(conn.get_parameter_status("DateStyle").split(",")[0], "ISO", "DateStyle")
    eq(conn.get_parameter_status("standard_conforming_strings"), "on", "standard_conforming_strings")
    if conn.server_version < 90000:
        raise AssertionError(f"server_version {conn.server_version} from {conn.get_parameter_status('server_version')!r}")
    conn.close()


def check_count_sum():
    rows, _ = query("SELECT count(*), sum(id) FROM all_bids")
    eq(rows, [(ROWS, SUM_ID)])


def check_autocommit():
    rows, _ = query("SELECT count(*) FROM all_bids", autocommit=True)
    eq(rows, [(ROWS,)])


def check_per_bidder():
    rows, _ = query("SELECT bidder, window_start, bids FROM per_bidder ORDER BY bidder")
    eq(rows, PER_BIDDER)


def check_params():
    rows, _ = query("SELECT id, price FROM all_bids WHERE id = %s", (42,))
    eq(rows, [(42, 420.0)])
    is_float(rows[0][1], 420.0, "price")


def check_named_params():
    rows, _ = query(
        "SELECT id FROM all_bids WHERE bidder = %(b)s AND price > %(p)s ORDER BY id LIMIT 2", {"b": 2, "p": 9970.0}
    )
    eq(rows, [(998,)])


def check_timestamp_param():
    rows, _ = query("SELECT id FROM all_bids WHERE ts = %s", (TS_42,))
    eq(rows, [(42,)])


def check_repeated_params():
    # psycopg2 prepares nothing on the server: each execute is a new simple query.
    with connect() as conn, conn.cursor() as cur:
        for i in (1, 7, 500, 1000):
            cur.execute("SELECT id, price FROM all_bids WHERE id = %s", (i,))
            eq(cur.fetchall(), [(i, i * 10.0)], f"id {i}")


def check_timestamp():
    rows, _ = query("SELECT ts FROM all_bids WHERE id = 42")
    eq(rows, [(TS_42,)])
    eq(type(rows[0][0]), datetime.datetime)


def check_description_types():
    _, desc = query("SELECT id, bidder, price, ts FROM all_bids WHERE id = 1")
    eq([d.name for d in desc], ["id", "bidder", "price", "ts"])
    # int8, int4, float8, timestamp
    eq([d.type_code for d in desc], [20, 23, 701, 1114])


def check_column_names():
    # Postgres names an unaliased aggregate after the function: clients look rows up by it.
    _, desc = query("SELECT count(*), sum(id) FROM all_bids")
    eq([d.name for d in desc], ["count", "sum"])


def check_dict_cursor():
    with connect() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT id, price FROM all_bids WHERE id = %s", (3,))
        eq(cur.fetchall(), [{"id": 3, "price": 30.0}])


def check_fetchmany():
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM all_bids ORDER BY id")
        eq(cur.rowcount, ROWS, "rowcount")
        eq([r[0] for r in cur.fetchmany(3)], [1, 2, 3])


def check_named_cursor():
    # A server-side cursor (DECLARE ... CURSOR / FETCH), as pandas' chunked reads use.
    with connect() as conn:
        with conn.cursor(name="eddy_cur") as cur:
            cur.itersize = 300
            cur.execute("SELECT id FROM all_bids ORDER BY id")
            ids = [r[0] for r in cur]
        eq((len(ids), sum(ids)), (ROWS, SUM_ID))


def check_current_database():
    rows, _ = query("SELECT current_database(), current_user, current_schema()")
    eq(rows, [(DB, USER, "public")])


def check_show_isolation():
    rows, _ = query("SHOW TRANSACTION ISOLATION LEVEL")
    eq(rows, [("read committed",)])


def check_show_server_version():
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version")
        eq(cur.fetchone()[0], conn.get_parameter_status("server_version"), "SHOW server_version")


def check_show_settings():
    # SHOW of the settings clients read (SQLAlchemy: standard_conforming_strings; Grafana:
    # server_version_num); each answers as Postgres does.
    want = {
        "standard_conforming_strings": lambda v: v == "on",
        "server_version_num": lambda v: v.isdigit() and int(v) >= 90000,
        "client_encoding": lambda v: v == "UTF8",
        "DateStyle": lambda v: v.startswith("ISO"),
        "TimeZone": lambda v: v != "",
    }
    wrong = []
    with connect() as conn:
        conn.autocommit = True
        for name, ok in want.items():
            with conn.cursor() as cur:
                try:
                    cur.execute(f"SHOW {name}")
                    got = cur.fetchone()[0]
                except psycopg2.Error as e:
                    wrong.append(f"SHOW {name}: {' '.join(str(e).split())}")
                    continue
            if not ok(got):
                wrong.append(f"SHOW {name} = {got!r}")
    if wrong:
        raise AssertionError("; ".join(wrong))


def check_version():
    rows, _ = query("SELECT version()")
    if not rows[0][0].startswith("PostgreSQL "):
        raise AssertionError(f"version() = {rows[0][0]!r}, want 'PostgreSQL ...'")


def check_set_session():
    with connect() as conn:
        conn.set_session(readonly=True, autocommit=True)  # SET default_transaction_read_only
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute("SELECT count(*) FROM per_bidder")
            eq(cur.fetchone(), (4,))


def check_information_schema():
    rows, _ = query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'all_bids' ORDER BY ordinal_position"
    )
    eq(
        rows,
        [("id", "bigint"), ("bidder", "integer"), ("price", "double precision"), ("ts", "timestamp without time zone")],
    )
    rows, _ = query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
    )
    names = [r[0] for r in rows]
    for t in ("all_bids", "per_bidder"):
        if t not in names:
            raise AssertionError(f"{t} not in information_schema.tables: {names}")


def main():
    C.run("connect", check_connect)
    C.run("count_sum", check_count_sum)
    C.run("autocommit", check_autocommit)
    C.run("per_bidder", check_per_bidder)
    C.run("params", check_params)
    C.run("named_params", check_named_params)
    C.run("timestamp_param", check_timestamp_param)
    C.run("repeated_params", check_repeated_params)
    C.run("timestamp", check_timestamp)
    C.run("description_types", check_description_types)
    C.run("column_names", check_column_names)
    C.run("dict_cursor", check_dict_cursor)
    C.run("fetchmany", check_fetchmany)
    C.run("named_cursor", check_named_cursor)
    C.run("current_database", check_current_database)
    C.run("show_isolation", check_show_isolation)
    C.run("show_server_version", check_show_server_version)
    C.run("show_settings", check_show_settings)
    C.run("version", check_version)
    C.run("set_session", check_set_session)
    C.run("information_schema", check_information_schema)


if __name__ == "__main__":
    main_guard("psycopg2", main)
