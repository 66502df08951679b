#!/usr/bin/env python3
"""Benchmark: Nexmark q0-q22 (tests/nexmark/qN.sql) on the nexmark source, events/s per query.

Eddy:   `eddy run` (release build, parallelism 2) of ddl_gen.sql + ddl_views.sql + qN.sql with
        N events (default 10 M) at 'first-event.rate' = 10 M/s (the nexmark project's setting;
        the source paces to event time, so no query can go faster than that), the sink pointed
        at 'blackhole' (q10 keeps its partitioned filesystem sink, writing into a scratch
        folder). events/s = N / the job's run time from eddy's closing summary (process start-up
        and planning excluded). A query Eddy rejects prints as unsupported, with the reason.
Flink:  when ~/.cache/eddy-bench/flink-venv holds PyFlink (pip install apache-flink), the same
        queries in streaming mode on a local mini-cluster at parallelism 2, timed from the
        INSERT's submission to the job's end. PyFlink has no nexmark connector (it is built from
        the nexmark project's sources), so both engines then also read the same events from a
        file: the nexmark table (event_type, person, auction, bid rows) dumped once by Eddy as
        JSON lines, declared with the same columns, computed `dateTime` and watermark. The
        comparison is eddy (file) against flink (file); eddy (nexmark) is the suite's figure.
        The dump is cached in ~/.cache/eddy-bench (about 330 bytes per event: 3.3 GB for 10 M)
        and read through once before each engine's run, so both read it from the page cache.
        Without PyFlink the Flink columns are left out and the reason printed.

        --flink-events N runs that comparison (both engines over the file) on N events instead,
        as Flink takes minutes per query at 10 M and the dump would be 3.3 GB.

        --runs N runs each engine N times per query over the file and prints the median. On a
        virtual machine the queries whose state grows to gigabytes vary by up to 2x from run
        to run (the kernel zeroing fresh memory), so one run can mislead either way.

Usage: python3 benches/nexmark.py [--events 10000000] [--flink-events 1000000] [--queries q0,q5]
                                  [--tps 10000000] [--runs 1] [--no-build]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filter_project import CACHE, ROOT, TARGET  # noqa: E402

SUITE = os.path.join(ROOT, "tests", "nexmark")
QUERIES = ["q%d" % i for i in range(23)]
# Updating results (q4, q6, q9, q15-q19) go to blackhole too: it takes a changelog.
BLACKHOLE = "WITH ('connector' = 'blackhole')"

FLINK_SCRIPT = """
import sys, time
from pyflink.table import EnvironmentSettings, TableEnvironment
env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
conf = env.get_config()
conf.set("parallelism.default", "2")
conf.set("table.local-time-zone", "UTC")
stmts = [s for s in sys.argv[1].split(";\\n") if s.strip()]
for s in stmts[:-1]:
    if not s.strip().upper().startswith("SET"):
        env.execute_sql(s)
t = time.perf_counter()
env.execute_sql(stmts[-1]).wait()
print(time.perf_counter() - t)
"""


def strip_comments(sql):
    return re.sub(r"--[^\n]*", "", sql)


def prelude(events, tps, events_file=None):
    """The nexmark table and the views; with events_file, the table reads that JSON-lines dump."""
    with open(os.path.join(SUITE, "ddl_gen.sql")) as f:
        ddl = strip_comments(f.read())
    with open(os.path.join(SUITE, "ddl_views.sql")) as f:
        views = f.read()
    for k, v in {"TPS": tps, "EVENTS_NUM": events, "PERSON_PROPORTION": 1, "AUCTION_PROPORTION": 3,
                 "BID_PROPORTION": 46, "BASE_TIME": 1_709_337_585_000}.items():
        ddl = ddl.replace("${%s}" % k, str(v))
    if events_file:
        ddl = ddl[:ddl.rindex(") WITH (")] + ") WITH ('connector' = 'filesystem', 'path' = '%s', 'format' = 'json');\n" % (
            events_file)
    return "SET 'parallelism.default' = '2';\n\n" + ddl + "\n" + strip_comments(
        views.replace("${NEXMARK_TABLE}", "datagen")) + "\n"


def dump_events(eddy, events, tps, work):
    """The nexmark table as JSON lines (cached per events and rate), for Flink."""
    path = os.path.join(CACHE, "nexmark_%d_events_%d_tps" % (events, tps))
    if os.path.isdir(path):
        return path
    ddl = prelude(events, tps)
    rows = ddl[ddl.index("CREATE TABLE datagen (") + len("CREATE TABLE datagen ("):ddl.index("`dateTime` AS")]
    sql = ddl + "CREATE TABLE dump (%s) WITH ('connector' = 'filesystem', 'path' = '%s', 'format' = 'json');\n" % (
        rows.strip().rstrip(","), path + ".tmp")
    sql += "INSERT INTO dump SELECT event_type, person, auction, bid FROM datagen;\n"
    script = os.path.join(work, "dump.sql")
    with open(script, "w") as f:
        f.write(sql)
    print("dumping %d events into %s ..." % (events, path), flush=True)
    subprocess.run([eddy, "run", "--quiet", "--state-dir", os.path.join(work, "state-dump"), script], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    os.replace(path + ".tmp", path)
    return path


def bench_sql(q, events, tps, scratch, events_file=None):
    """The query with its sink pointed at blackhole (q10: at a scratch folder)."""
    with open(os.path.join(SUITE, q + ".sql")) as f:
        sql = strip_comments(f.read())
    out = os.path.join(scratch, q)
    sql = sql.replace("${OUTPUT}", out).replace("${SIDE_INPUT}", os.path.join(scratch, "side_input.csv"))
    if q != "q10":
        sink = re.search(r"INSERT\s+INTO\s+(\w+)", sql, re.I).group(1)
        create = re.search(r"CREATE\s+TABLE\s+%s\b" % sink, sql, re.I)
        with_at = sql.index("WITH", create.end())
        i, depth = sql.index("(", with_at) + 1, 1
        while depth:
            depth += {"(": 1, ")": -1}.get(sql[i], 0)
            i += 1
        sql = sql[:with_at] + BLACKHOLE + sql[i:]
    return prelude(events, tps, events_file) + sql


def warm(path):
    """Read the dump once, so both engines read it from the page cache (on a machine whose
    cache lost it, the first reader would pay for the disk)."""
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            while f.read(1 << 24):
                pass


def run_eddy(eddy, work, q, sql):
    """(events/s, None) or (None, why not)."""
    path = os.path.join(work, q + ".sql")
    with open(path, "w") as f:
        f.write(sql)
    # A fresh start: a run resumes from the checkpoints in its state directory.
    state = os.path.join(work, "state-" + q)
    shutil.rmtree(state, ignore_errors=True)
    r = subprocess.run([eddy, "run", "--quiet", "--state-dir", state, path],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=work)
    if r.returncode == 2:
        return None, "unsupported: " + first_line(r.stderr)
    if r.returncode != 0:
        return None, "failed: " + first_line(r.stderr)
    m = re.search(r"([\d,]+) rows in, [\d,]+ rows out in ([\d.]+)s", r.stderr)
    if not m:
        return None, "no summary line in eddy's output"
    rows, secs = int(m.group(1).replace(",", "")), float(m.group(2))
    return (rows / secs if secs > 0 else float("inf")), None


def first_line(text):
    """The first line of an error, without the list of supported options it may end with."""
    return next((l.strip() for l in text.splitlines() if l.strip()), "").split("; supported: ")[0]


def flink_python():
    """The venv's python with PyFlink, or (None, why not)."""
    py = os.path.join(CACHE, "flink-venv", "bin", "python")
    if not os.path.exists(py) or subprocess.run([py, "-c", "import pyflink"], capture_output=True).returncode:
        return None, "not available (no PyFlink in %s)" % os.path.dirname(os.path.dirname(py))
    return py, None


def run_flink(py, sql, events):
    """(events/s, None) or (None, why not)."""
    sql = "\n".join(l for l in sql.splitlines() if not l.startswith("SET "))
    r = subprocess.run([py, "-c", FLINK_SCRIPT, sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        lines = [l.strip() for l in r.stderr.splitlines() if "Exception:" in l or "Error:" in l]
        return None, "failed: " + (lines[-1] if lines else first_line(r.stderr))[:160]
    secs = float(r.stdout.split()[-1])
    return events / secs, None


def median_of(runs, run, events_file):
    """The median rate of `runs` runs, each after reading the dump through once; or the
    first failure."""
    rates = []
    for _ in range(max(1, runs)):
        warm(events_file)
        rate, why = run()
        if why:
            return None, why
        rates.append(rate)
    rates.sort()
    return rates[len(rates) // 2], None


def cell(rate, why, width=16):
    return ("%*.0f" % (width, rate)) if rate else ("%*s" % (width, "-"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--flink-events", type=int, default=None,
                    help="events of the file comparison (default: --events)")
    ap.add_argument("--tps", type=int, default=10_000_000)
    ap.add_argument("--queries", default=",".join(QUERIES))
    ap.add_argument("--runs", type=int, default=1, help="runs per engine over the file (the median is shown)")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "eddy"], cwd=ROOT, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    eddy = os.path.join(TARGET, "release", "eddy")
    flink, flink_missing = flink_python()

    work = tempfile.mkdtemp(prefix="eddy-bench-nexmark-")
    with open(os.path.join(work, "side_input.csv"), "w") as f:
        f.writelines("%d,v%d\n" % (k, k) for k in range(0, 10_000, 2))
    print("nexmark: %d events per query at %d/s of event time, parallelism 2, eddy release build" % (
        a.events, a.tps))
    events_file = None
    file_events = a.flink_events or a.events
    if flink:
        events_file = dump_events(eddy, file_events, a.tps, work)
        print("eddy (file) and flink (file): %d events from %s" % (file_events, events_file))
        print("%-5s %16s %16s %16s %8s" % ("query", "eddy (nexmark)", "eddy (file)", "flink (file)", "ratio"))
    else:
        print("flink: %s" % flink_missing)
        print("%-5s %16s" % ("query", "eddy events/s"))
    started = time.perf_counter()
    notes = []
    for q in a.queries.split(","):
        rate, why = run_eddy(eddy, work, q, bench_sql(q, a.events, a.tps, work))
        if why:
            notes.append("%s eddy: %s" % (q, why))
        if not flink:
            print("%-5s %16s" % (q, cell(rate, why) if rate else why.split(":")[0]), flush=True)
        else:
            sql = bench_sql(q, file_events, a.tps, work, events_file)
            frate_eddy, fwhy_eddy = median_of(a.runs, lambda: run_eddy(eddy, work, q, sql), events_file)
            frate, fwhy = median_of(a.runs, lambda: run_flink(flink, sql, file_events), events_file)
            if fwhy:
                notes.append("%s flink: %s" % (q, fwhy))
            ratio = "%7.1fx" % (frate_eddy / frate) if frate_eddy and frate else ""
            print("%-5s %s %s %s %8s" % (q, cell(rate, why) if rate else "%16s" % why.split(":")[0],
                                         cell(frate_eddy, fwhy_eddy), cell(frate, fwhy), ratio), flush=True)
        # Scratch output (q10's files) and state go after each query.
        for d in os.listdir(work):
            if d.startswith(("state-", "q")) and os.path.isdir(os.path.join(work, d)):
                shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    print("(%.0f s in all)" % (time.perf_counter() - started))
    for n in notes:
        print("  " + n)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
