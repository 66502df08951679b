#!/usr/bin/env python3
"""Benchmark: HOP window aggregation over 1 M bids (the filter_project.py input file).

    SELECT auction, window_start, window_end, COUNT(*), MAX(price)
    FROM TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
    GROUP BY auction, window_start, window_end

Eddy:   `eddy run` (parallelism 2) from the JSON-lines file into a filesystem CSV sink,
        timed as a whole process, peak RSS from rusage.
DuckDB: the equivalent batch query in the same run (each row expanded into its windows with
        range(0, size/slide)), COPY'd to a CSV file, timed as a whole process.
Flink:  when ~/.cache/eddy-bench/flink-venv holds PyFlink (pip install apache-flink), the same
        SQL in streaming mode on a local mini-cluster, whole process.

Also printed, Eddy only:
  * slicing: the same query with size 60 s (same 2 s slide), once keyed by auction (the output
    grows with the number of windows per row) and once by channel (6 keys: the output stays
    the same size, so the ratio shows the per-row cost alone);
  * state: peak RSS with ~1 M (key, window) groups open at once (TUMBLE of 1 day keyed by
    auction and bidder, into a blackhole sink).

Usage: python3 benches/hop_window.py [--rows 1000000] [--runs 3] [--no-build]
"""
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filter_project import CACHE, setup, timed  # noqa: E402

TABLE = """
SET 'parallelism.default' = '2';
CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  ts AS date_time,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json');
"""

HOP_SQL = TABLE + """
CREATE TABLE out_csv ({key} {key_type}, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, max_price BIGINT)
WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv');
INSERT INTO out_csv
SELECT {key}, window_start, window_end, COUNT(*), MAX(price)
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '{size}' SECOND))
GROUP BY {key}, window_start, window_end;
"""

OPEN_GROUPS_SQL = TABLE + """
CREATE TABLE sink (auction BIGINT, bidder BIGINT, window_start TIMESTAMP(3), bids BIGINT, max_price BIGINT)
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT auction, bidder, window_start, COUNT(*), MAX(price)
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '1' DAY))
GROUP BY auction, bidder, window_start, window_end;
"""

DUCKDB_SCRIPT = """
import sys, time, duckdb
t = time.perf_counter()
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute("SET enable_progress_bar = false")
rows = con.execute(sys.argv[1]).fetchall()[0][0]
print(rows, time.perf_counter() - t)
"""

DUCKDB_QUERY = """
COPY (
  SELECT auction, window_start, window_start + INTERVAL {size} SECOND AS window_end, count(*), max(price)
  FROM (
    SELECT auction, price, time_bucket(INTERVAL 2 SECOND, date_time) - to_seconds(2 * r) AS window_start
    FROM read_json('{path}', format = 'newline_delimited', columns = {{
      'auction': 'BIGINT', 'bidder': 'BIGINT', 'price': 'BIGINT', 'channel': 'VARCHAR',
      'url': 'VARCHAR', 'date_time': 'TIMESTAMP', 'extra': 'VARCHAR'}}),
      range(0, {windows}) AS w(r)
  )
  GROUP BY ALL
) TO '{out}' (HEADER false)
"""

FLINK_SCRIPT = """
import sys, time
from pyflink.table import EnvironmentSettings, TableEnvironment
t = time.perf_counter()
env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
env.get_config().set("parallelism.default", "2")
env.get_config().set("table.local-time-zone", "UTC")
for stmt in sys.argv[1].split(";"):
    if stmt.strip() and not stmt.strip().upper().startswith("SET"):
        r = env.execute_sql(stmt)
r.wait()
print(time.perf_counter() - t)
"""

EDDY_CHILD = (
    "import resource,subprocess,sys,time;t=time.perf_counter();"
    "r=subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL,stderr=subprocess.PIPE,text=True);"
    "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
    "r.stderr.split(' rows out')[0].split()[-1].replace(',',''))"
)


def run_eddy(eddy, work, sql_text, name):
    """One eddy run in its own child process: (seconds, peak RSS MB, rows out)."""
    sql = os.path.join(work, name + ".sql")
    with open(sql, "w") as f:
        f.write(sql_text)
    _, _, out = timed(["python3", "-c", EDDY_CHILD, eddy, "run", "--quiet", sql])
    secs, rss, rows = out.stdout.split()
    return float(secs), int(rss) / 1024.0, int(rows)


def fresh_dir(work, name):
    path = os.path.join(work, name)
    subprocess.run(["rm", "-rf", path], check=True)
    return path


def main():
    a, data, eddy, py = setup()
    flink_py = os.path.join(CACHE, "flink-venv", "bin", "python")
    has_flink = os.path.exists(flink_py) and subprocess.run(
        [flink_py, "-c", "import pyflink"], capture_output=True).returncode == 0

    work = tempfile.mkdtemp(prefix="eddy-bench-hop-")

    def hop(key, key_type, size, name):
        out = fresh_dir(work, name)
        return run_eddy(eddy, work, HOP_SQL.format(path=data, out=out, size=size, key=key, key_type=key_type), name)

    eddy_runs, duck_runs = [], []
    for _ in range(a.runs):
        eddy_runs.append(hop("auction", "BIGINT", 10, "eddy10"))
        out = os.path.join(work, "duck.csv")
        w, rss, res = timed([py, "-c", DUCKDB_SCRIPT, DUCKDB_QUERY.format(path=data, out=out, size=10, windows=5)])
        rows, _ = res.stdout.split()[-2:]
        duck_runs.append((w, rss, int(rows)))
    flink = None
    if has_flink:
        out = fresh_dir(work, "flink")
        sql = HOP_SQL.format(path=data, out=out, size=10, key="auction", key_type="BIGINT")
        w, rss, _ = timed([flink_py, "-c", FLINK_SCRIPT, sql])
        flink_rows = sum(sum(1 for _ in open(os.path.join(d, f))) for d, _, fs in os.walk(out) for f in fs
                         if not f.startswith("."))
        flink = (w, rss, flink_rows)

    e = statistics.median(r[0] for r in eddy_runs)
    d = statistics.median(r[0] for r in duck_runs)
    print("input: %d bids (%s)" % (a.rows, data))
    print("HOP(slide 2 s, size 10 s) by auction into CSV, median of %d runs:" % a.runs)
    print("  eddy    %.3f s  peak RSS %.0f MB  rows %d" % (e, max(r[1] for r in eddy_runs), eddy_runs[0][2]))
    print("  duckdb  %.3f s  peak RSS %.0f MB  rows %d" % (d, max(r[1] for r in duck_runs), duck_runs[0][2]))
    if flink:
        print("  flink   %.3f s  peak RSS %.0f MB  rows %d  (one run)" % flink)
    else:
        print("  flink   not measured (no PyFlink in %s)" % os.path.dirname(os.path.dirname(flink_py)))
    same = eddy_runs[0][2] == duck_runs[0][2] and (flink is None or flink[2] == eddy_runs[0][2])
    print("  row counts %s" % ("identical" if same else "DIFFER"))
    print("  ratio eddy/duckdb %.2fx (target <= 1.5x)%s" % (
        e / d, "; flink/eddy %.1fx (target >= 20x)" % (flink[0] / e) if flink else ""))

    # Slicing: does the cost follow the rows, not size/slide?
    for key, key_type in (("auction", "BIGINT"), ("channel", "STRING")):
        short = statistics.median(hop(key, key_type, 10, "s10")[0] for _ in range(a.runs))
        long_run = [hop(key, key_type, 60, "s60") for _ in range(a.runs)]
        longer = statistics.median(r[0] for r in long_run)
        print("HOP by %s: size 10 s %.3f s, size 60 s %.3f s (%d rows out): %.2fx (target < 1.3x)" % (
            key, short, longer, long_run[0][2], longer / short))

    secs, rss, rows = run_eddy(eddy, work, OPEN_GROUPS_SQL.format(path=data), "open_groups")
    print("1 day TUMBLE by (auction, bidder): %d groups open at the end, %.3f s, peak RSS %.0f MB (target <= 200 MB)" % (
        rows, secs, rss))


if __name__ == "__main__":
    main()
