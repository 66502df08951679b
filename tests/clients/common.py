"""What every Python client program shares: where the server is, and how a check reports.

A check is a function that raises on a wrong answer. `Checks.run` prints
`PASS <client> <check>` or `FAIL <client> <check>: <error on one line>`; the programs
always exit 0 and leave the verdict to run_clients.py.
"""

import asyncio
import datetime
import os
import sys

HOST = os.environ.get("EDDY_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("EDDY_PG_PORT", "5433"))
USER = "eddy"
DB = "eddy"

# What the example pipeline leaves in the result tables (run_clients.py waits for it).
ROWS = 1000
SUM_ID = 500500
# per_bidder: the last 100 s window of each bidder (ts = id seconds, bidder = id % 4).
PER_BIDDER = [
    (0, datetime.datetime(1970, 1, 1, 0, 16, 40), 1),
    (1, datetime.datetime(1970, 1, 1, 0, 15, 0), 25),
    (2, datetime.datetime(1970, 1, 1, 0, 15, 0), 25),
    (3, datetime.datetime(1970, 1, 1, 0, 15, 0), 25),
]
TS_42 = datetime.datetime(1970, 1, 1, 0, 0, 42)


def one_line(e):
    text = f"{type(e).__name__}: {e}" if not isinstance(e, AssertionError) else str(e)
    return " ".join(text.split())[:600]


def eq(got, want, what=""):
    if got != want:
        raise AssertionError(f"{what + ': ' if what else ''}got {got!r}, want {want!r}")


def is_float(v, want, what=""):
    if not isinstance(v, float):
        raise AssertionError(f"{what + ': ' if what else ''}got {type(v).__name__} {v!r}, want float {want!r}")
    eq(v, want, what)


class Checks:
    def __init__(self, client):
        self.client = client

    def run(self, name, fn):
        try:
            fn()
            print(f"PASS {self.client} {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is a report line
            print(f"FAIL {self.client} {name}: {one_line(e)}", flush=True)

    def run_async(self, name, coro_fn, timeout=20):
        async def guarded():
            return await asyncio.wait_for(coro_fn(), timeout)

        try:
            asyncio.run(guarded())
            print(f"PASS {self.client} {name}", flush=True)
        except Exception as e:  # noqa: BLE001
            if isinstance(e, asyncio.TimeoutError):
                e = TimeoutError(f"no answer in {timeout} s")
            print(f"FAIL {self.client} {name}: {one_line(e)}", flush=True)


def main_guard(client, fn):
    """Run a program's checks; a crash outside a check is one FAIL line, never a traceback exit."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        print(f"FAIL {client} program: {one_line(e)}", flush=True)
    sys.exit(0)
