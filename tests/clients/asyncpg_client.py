"""asyncpg: named prepared statements for everything, binary results, type introspection
over pg_type for types it has no codec for, a pool that resets connections on release."""

import datetime

from common import DB, HOST, PER_BIDDER, PORT, ROWS, SUM_ID, TS_42, USER, Checks, eq, is_float, main_guard

import asyncpg

C = Checks("asyncpg")


async def connect():
    return await asyncpg.connect(host=HOST, port=PORT, user=USER, database=DB, timeout=10)


def with_conn(fn):
    async def run():
        conn = await connect()
        try:
            await fn(conn)
        finally:
            await conn.close(timeout=5)

    return run


@with_conn
async def check_connect(conn):
    v = conn.get_server_version()
    if v.major < 9:
        raise AssertionError(f"server version {v}")


@with_conn
async def check_fetch(conn):
    rows = await conn.fetch("SELECT id, price, ts FROM all_bids WHERE id <= 3 ORDER BY id")
    eq([tuple(r) for r in rows], [(i, i * 10.0, datetime.datetime(1970, 1, 1, 0, 0, i)) for i in (1, 2, 3)])


@with_conn
async def check_count_sum(conn):
    eq(tuple(await conn.fetchrow("SELECT count(*), sum(id) FROM all_bids")), (ROWS, SUM_ID))


@with_conn
async def check_fetchval_param(conn):
    v = await conn.fetchval("SELECT price FROM all_bids WHERE id = $1", 42)
    is_float(v, 420.0, "price")


@with_conn
async def check_fetchrow_param(conn):
    r = await conn.fetchrow("SELECT id, price FROM all_bids WHERE id = $1", 42)
    eq(tuple(r), (42, 420.0))


@with_conn
async def check_timestamp(conn):
    eq(await conn.fetchval("SELECT ts FROM all_bids WHERE id = $1", 42), TS_42)


@with_conn
async def check_timestamp_param(conn):
    eq(await conn.fetchval("SELECT id FROM all_bids WHERE ts = $1", TS_42), 42)


@with_conn
async def check_per_bidder(conn):
    rows = await conn.fetch("SELECT bidder, window_start, bids FROM per_bidder ORDER BY bidder")
    eq([tuple(r) for r in rows], PER_BIDDER)


@with_conn
async def check_prepared(conn):
    stmt = await conn.prepare("SELECT id, price FROM all_bids WHERE id = $1")
    eq([(a.name, a.type.name) for a in stmt.get_attributes()], [("id", "int8"), ("price", "float8")])
    eq([t.name for t in stmt.get_parameters()], ["int8"])
    for i in (7, 8, 9):
        eq(tuple(await stmt.fetchrow(i)), (i, i * 10.0), f"id {i}")


@with_conn
async def check_introspection(conn):
    # An int4[] result makes asyncpg introspect the type: current_setting('jit'),
    # set_config('jit', 'off', false), then the recursive pg_type/pg_range query.
    eq(await conn.fetchval("SELECT ARRAY[1, 2] AS a"), [1, 2])


@with_conn
async def check_introspection_query(conn):
    # The same without the jit settings (as asyncpg does for servers without jit): only
    # its recursive pg_type/pg_range/pg_attribute query, for int4[] (1007).
    conn._server_caps = conn._server_caps._replace(jit=False)
    try:
        eq(await conn.fetchval("SELECT ARRAY[1, 2] AS a"), [1, 2])
    except RecursionError:
        raise AssertionError(
            "RecursionError: asyncpg introspected without end; the server's Describe of its pg_type "
            "query gives a parameter or column a type asyncpg has no codec for (in Postgres $1 is oid[], 1028)"
        ) from None


@with_conn
async def check_cursor(conn):
    # A portal read in pieces (Execute with a row limit) inside a transaction.
    async with conn.transaction():
        ids = [r["id"] async for r in conn.cursor("SELECT id FROM all_bids ORDER BY id", prefetch=300)]
    eq((len(ids), sum(ids)), (ROWS, SUM_ID))


@with_conn
async def check_execute_script(conn):
    # Several statements in one simple query, as asyncpg's execute() without args sends.
    await conn.execute("SELECT 1; SELECT count(*) FROM per_bidder;")


async def check_pool():
    # Release runs the reset: SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;
    pool = await asyncpg.create_pool(host=HOST, port=PORT, user=USER, database=DB, min_size=1, max_size=1, timeout=10)
    try:
        for i in (1, 2, 3):
            async with pool.acquire() as conn:
                eq(await conn.fetchval("SELECT price FROM all_bids WHERE id = $1", i), i * 10.0, f"round {i}")
    finally:
        await pool.close()


def main():
    C.run_async("connect", check_connect)
    C.run_async("fetch", check_fetch)
    C.run_async("count_sum", check_count_sum)
    C.run_async("fetchval_param", check_fetchval_param)
    C.run_async("fetchrow_param", check_fetchrow_param)
    C.run_async("timestamp", check_timestamp)
    C.run_async("timestamp_param", check_timestamp_param)
    C.run_async("per_bidder", check_per_bidder)
    C.run_async("prepared", check_prepared)
    C.run_async("introspection", check_introspection)
    C.run_async("introspection_query", check_introspection_query)
    C.run_async("cursor", check_cursor)
    C.run_async("execute_script", check_execute_script)
    C.run_async("pool", check_pool)


if __name__ == "__main__":
    main_guard("asyncpg", main)
