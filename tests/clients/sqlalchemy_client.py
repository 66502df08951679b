"""SQLAlchemy 2 over psycopg2: the dialect's first-connect queries (hstore lookup,
pg_catalog.version(), current_schema(), SHOW ...), the inspector's pg_catalog queries,
Core selects with bound parameters.

`connect` is the path every user takes. So that the inspector and Core checks report on
their own queries even while `connect` fails, they run on an engine whose dialect is told
the server version instead of parsing version() (the only thing that differs)."""

import datetime

from common import DB, HOST, PORT, TS_42, USER, Checks, eq, main_guard

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

C = Checks("sqlalchemy")
URL = f"postgresql+psycopg2://{USER}@{HOST}:{PORT}/{DB}"


def plain_engine():
    return sa.create_engine(URL, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 10})


def engine():
    e = plain_engine()
    e.dialect._get_server_version_info = lambda conn: (16, 0)
    return e


def check_connect():
    e = plain_engine()
    with e.connect() as conn:
        eq(conn.execute(sa.text("SELECT count(*) FROM all_bids")).scalar(), 1000)
    if e.dialect.server_version_info < (9,):
        raise AssertionError(f"server_version_info {e.dialect.server_version_info}")


def check_table_names():
    names = sa.inspect(engine()).get_table_names()
    for t in ("all_bids", "per_bidder"):
        if t not in names:
            raise AssertionError(f"{t} not in get_table_names(): {names}")


def check_get_columns():
    cols = sa.inspect(engine()).get_columns("all_bids")
    got = [(c["name"], type(c["type"]).__name__) for c in cols]
    eq(got, [("id", "BIGINT"), ("bidder", "INTEGER"), ("price", "DOUBLE_PRECISION"), ("ts", "TIMESTAMP")])


def check_has_table():
    insp = sa.inspect(engine())
    eq((insp.has_table("all_bids"), insp.has_table("no_such_table")), (True, False))


def check_pk_constraint():
    pk = sa.inspect(engine()).get_pk_constraint("per_bidder")
    eq(pk["constrained_columns"], ["bidder"])


def all_bids_table():
    md = sa.MetaData()
    return sa.Table(
        "all_bids",
        md,
        sa.Column("id", sa.BigInteger),
        sa.Column("bidder", sa.Integer),
        sa.Column("price", postgresql.DOUBLE_PRECISION),
        sa.Column("ts", sa.DateTime),
    )


def check_core_select():
    t = all_bids_table()
    with engine().connect() as conn:
        rows = conn.execute(sa.select(t.c.id, t.c.price).where(t.c.id == 42)).all()
    eq([tuple(r) for r in rows], [(42, 420.0)])


def check_core_aggregate():
    t = all_bids_table()
    with engine().connect() as conn:
        row = conn.execute(sa.select(sa.func.count(), sa.func.sum(t.c.id), sa.func.max(t.c.ts))).one()
    eq(tuple(row), (1000, 500500, datetime.datetime(1970, 1, 1, 0, 16, 40)))


def check_reflected_select():
    md = sa.MetaData()
    t = sa.Table("all_bids", md, autoload_with=engine())
    with engine().connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.ts == TS_42)).one()
    eq(tuple(row), (42, 2, 420.0, TS_42))


def check_text_params():
    with engine().connect() as conn:
        rows = conn.execute(
            sa.text("SELECT bidder, bids FROM per_bidder WHERE bidder >= :b ORDER BY bidder"), {"b": 2}
        ).all()
    eq([tuple(r) for r in rows], [(2, 25), (3, 25)])


def main():
    C.run("connect", check_connect)
    C.run("get_table_names", check_table_names)
    C.run("get_columns", check_get_columns)
    C.run("has_table", check_has_table)
    C.run("pk_constraint", check_pk_constraint)
    C.run("core_select", check_core_select)
    C.run("core_aggregate", check_core_aggregate)
    C.run("reflected_select", check_reflected_select)
    C.run("text_params", check_text_params)


if __name__ == "__main__":
    main_guard("sqlalchemy", main)
