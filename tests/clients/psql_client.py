"""psql's meta-commands: the catalog queries behind \\d, \\dt, \\d+, \\l, \\dn (see
../shared/pgwire-clients/psql-meta-commands.txt), expanded display, and \\copy, which
sends COPY (query) TO STDOUT."""

import os
import re
import subprocess

from common import DB, HOST, PORT, USER, Checks, eq, main_guard

C = Checks("psql")


def psql(*commands):
    args = ["psql", "-h", HOST, "-p", str(PORT), "-U", USER, "-d", DB, "-X", "-v", "ON_ERROR_STOP=1"]
    for c in commands:
        args += ["-c", c]
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    if out.returncode != 0 or out.stderr.strip():
        raise AssertionError(f"exit {out.returncode}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def row_of(out, first):
    """The cells of the aligned-output row whose first cell is `first`."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{out}")


def check_select():
    out = psql("SELECT count(*) AS n FROM all_bids")
    eq(row_of(out, "1000"), ["1000"])


def check_dt():
    out = psql("\\dt")
    eq(row_of(out, "public")[:3], ["public", "all_bids", "table"])
    if not re.search(r"public\s*\|\s*per_bidder\s*\|\s*table", out):
        raise AssertionError(f"no per_bidder in:\n{out}")


def check_d():
    out = psql("\\d")
    for t in ("all_bids", "per_bidder"):
        if not re.search(rf"public\s*\|\s*{t}\s*\|\s*table", out):
            raise AssertionError(f"no {t} in:\n{out}")


def columns(out):
    return {c: row_of(out, c)[1] for c in ("id", "bidder", "price", "ts")}


WANT_COLUMNS = {
    "id": "bigint",
    "bidder": "integer",
    "price": "double precision",
    "ts": "timestamp(3) without time zone",
}


def check_d_table():
    out = psql("\\d all_bids")
    if 'Table "public.all_bids"' not in out:
        raise AssertionError(f"no title in:\n{out}")
    got = columns(out)
    # TIMESTAMP(3): Postgres shows the precision; accept it without too.
    if got.get("ts") == "timestamp without time zone":
        got["ts"] = WANT_COLUMNS["ts"]
    eq(got, WANT_COLUMNS)


def check_d_plus_table():
    out = psql("\\d+ all_bids")
    got = columns(out)
    if got.get("ts") == "timestamp without time zone":
        got["ts"] = WANT_COLUMNS["ts"]
    eq(got, WANT_COLUMNS)


def check_d_primary_key():
    # per_bidder's PRIMARY KEY (bidder) NOT ENFORCED, as an index line under the columns.
    out = psql("\\d per_bidder")
    if not re.search(r"PRIMARY KEY.*\(bidder\)", out):
        raise AssertionError(f"no primary key in:\n{out}")


def check_l():
    out = psql("\\l")
    eq(row_of(out, DB)[0], DB)


def check_dn():
    out = psql("\\dn")
    eq(row_of(out, "public")[0], "public")


def check_x():
    out = psql("\\x on", "SELECT id, price, ts FROM all_bids WHERE id = 42")
    if "-[ RECORD 1 ]" not in out:
        raise AssertionError(f"not expanded:\n{out}")
    eq((row_of(out, "id")[1], float(row_of(out, "price")[1])), ("42", 420.0))
    if not row_of(out, "ts")[1].startswith("1970-01-01 00:00:42"):
        raise AssertionError(f"ts in:\n{out}")


def check_copy_to_stdout():
    out = psql("\\copy (SELECT id, price FROM all_bids WHERE id <= 3 ORDER BY id) TO STDOUT")
    rows = [line.split("\t") for line in out.splitlines()]
    eq([(int(i), float(p)) for i, p in rows], [(1, 10.0), (2, 20.0), (3, 30.0)])


def check_copy_csv():
    out = psql("\\copy (SELECT id, ts FROM all_bids WHERE id = 42) TO STDOUT WITH (FORMAT csv, HEADER)")
    lines = out.splitlines()
    eq(lines[0], "id,ts")
    if not lines[1].startswith("42,1970-01-01 00:00:42"):
        raise AssertionError(f"csv row {lines[1]!r}")


def main():
    C.run("select", check_select)
    C.run("dt", check_dt)
    C.run("d", check_d)
    C.run("d_table", check_d_table)
    C.run("d_plus_table", check_d_plus_table)
    C.run("d_primary_key", check_d_primary_key)
    C.run("l", check_l)
    C.run("dn", check_dn)
    C.run("x", check_x)
    C.run("copy_to_stdout", check_copy_to_stdout)
    C.run("copy_csv", check_copy_csv)


if __name__ == "__main__":
    main_guard("psql", main)
