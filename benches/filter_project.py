#!/usr/bin/env python3
"""Benchmark: 1 M Nexmark-like bids as JSON lines -> filter + projection.

Eddy:   `eddy run` of a filesystem source -> WHERE + SELECT -> blackhole sink, timed as a
        whole process (wall time and peak RSS from /usr/bin/time-like rusage).
DuckDB: the same filter and projection over the same file, in the same run, through the
        duckdb Python package (installed into a private venv for this benchmark only);
        timed both as the query alone and as a whole `python -c` process.

The input is generated once with a fixed seed and reused by every run, so figures compare
run to run. Usage:

    python3 benches/filter_project.py [--rows 1000000] [--runs 3] [--no-build]

Prints one line per measurement and a closing ratio line.
"""
import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "eddy-bench")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.expanduser("~"), ".cache", "eddy-target"))
CHANNELS = ["Google", "Facebook", "Baidu", "Apple", "channel-7", "channel-42"]


def generate(path, rows, seed=42):
    """Nexmark-like bids, deterministic for (rows, seed)."""
    rng = random.Random(seed)
    base_ms = 1_700_000_000_000
    with open(path + ".tmp", "w") as f:
        for i in range(rows):
            ts = base_ms + i * 10 + rng.randint(0, 2000)
            secs, ms = divmod(ts, 1000)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + ".%03d" % ms
            rec = {
                "auction": 1000 + rng.randint(0, 9999),
                "bidder": 2000 + rng.randint(0, 49999),
                "price": rng.randint(100, 10_000_000),
                "channel": rng.choice(CHANNELS),
                "url": "https://www.nexmark.com/%s/item.htm?query=%d" % (rng.choice(["a", "b", "c"]), rng.randint(0, 999)),
                "date_time": stamp,
                "extra": "x" * rng.randint(0, 20),
            }
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    os.replace(path + ".tmp", path)


EDDY_SQL = """
-- Two tasks, as DuckDB uses both cores of this machine.
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json');
CREATE TABLE sink (auction BIGINT, bidder BIGINT, price_eur DOUBLE, channel STRING, date_time TIMESTAMP(3))
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT auction, bidder, price * 0.908, UPPER(channel), date_time
FROM bids
WHERE price > 5000000 AND channel <> 'Google';
"""

DUCKDB_QUERY = """
SELECT auction, bidder, price * 0.908 AS price_eur, upper(channel) AS channel, date_time
FROM read_json('{path}', format = 'newline_delimited', columns = {{
  'auction': 'BIGINT', 'bidder': 'BIGINT', 'price': 'BIGINT', 'channel': 'VARCHAR',
  'url': 'VARCHAR', 'date_time': 'TIMESTAMP', 'extra': 'VARCHAR'}})
WHERE price > 5000000 AND channel <> 'Google'
"""

DUCKDB_SCRIPT = """
import sys, time, duckdb
t = time.perf_counter()
con = duckdb.connect()
rows = 0
reader = con.sql(sys.argv[1]).fetch_arrow_reader(1 << 16)
for batch in reader:
    rows += batch.num_rows
print(rows, time.perf_counter() - t)
"""


def timed(cmd, **kw):
    """Run cmd; return (wall seconds, peak RSS MB of the child, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024.0, out


def setup(ap=None, duckdb=True):
    """Shared by the benchmarks: arguments (`ap` may bring a bench's own), the cached input,
    the release binary and, unless `duckdb` is False, a Python with DuckDB.
    Returns (args, data path, eddy binary, venv python or None)."""
    ap = ap or argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()

    os.makedirs(CACHE, exist_ok=True)
    data = os.path.join(CACHE, "bids_%d_seed42.jsonl" % a.rows)
    if not os.path.exists(data):
        print("generating %s ..." % data, flush=True)
        generate(data, a.rows)

    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "eddy"], cwd=ROOT, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    eddy = os.path.join(TARGET, "release", "eddy")

    if not duckdb:
        return a, data, eddy, None
    venv = os.path.join(CACHE, "venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    if subprocess.run([py, "-c", "import duckdb, pyarrow"], capture_output=True).returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "duckdb", "pyarrow"], check=True)
    return a, data, eddy, py


def main():
    a, data, eddy, py = setup()
    size_mb = os.path.getsize(data) / 1e6

    work = tempfile.mkdtemp(prefix="eddy-bench-")
    sql = os.path.join(work, "bench.sql")
    with open(sql, "w") as f:
        f.write(EDDY_SQL.format(path=data))
    query = DUCKDB_QUERY.format(path=data)

    eddy_walls, eddy_rss, duck_walls, duck_query, duck_rss = [], [], [], [], []
    for _ in range(a.runs):
        # Each measurement in its own child, so peak RSS is per process.
        w, _, out = timed(["python3", "-c",
                           "import resource,subprocess,sys,time;t=time.perf_counter();"
                           "r=subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL,stderr=subprocess.PIPE,text=True);"
                           "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
                           "r.stderr.split(' rows out')[0].split()[-1].replace(',',''))",
                           eddy, "run", "--quiet", sql])
        secs, rss, eddy_rows = out.stdout.split()
        eddy_walls.append(float(secs))
        eddy_rss.append(int(rss) / 1024.0)
        w, rss, out = timed([py, "-c", DUCKDB_SCRIPT, query])
        rows, qsecs = out.stdout.split()
        duck_walls.append(w)
        duck_query.append(float(qsecs))
        duck_rss.append(rss)

    e, d, dq = statistics.median(eddy_walls), statistics.median(duck_walls), statistics.median(duck_query)
    print("input: %d bids, %.0f MB of JSON lines (%s)" % (a.rows, size_mb, data))
    print("filter+projection rows out: eddy %s, duckdb %s%s" % (eddy_rows, rows, "" if eddy_rows == rows else "  MISMATCH"))
    print("eddy   run, whole process: %.3f s median of %d  (%.0f k rows/s)  peak RSS %.0f MB" % (e, a.runs, a.rows / e / 1e3, max(eddy_rss)))
    print("duckdb python, whole process: %.3f s median of %d  peak RSS %.0f MB" % (d, a.runs, max(duck_rss)))
    print("duckdb query alone: %.3f s median of %d" % (dq, a.runs))
    print("ratio eddy/duckdb: %.2fx whole process, %.2fx vs query alone (target <= 1.5x)" % (e / d, e / dq))


if __name__ == "__main__":
    main()
