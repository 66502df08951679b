#!/usr/bin/env python3
"""Benchmark: checkpoints (issue 6).

1. State of 1 M keys: a TUMBLE(1 day) COUNT/MAX keyed by 1 M distinct keys (3 M generated
   rows at 1 M rows/s, so the state holds every key for the last two seconds), checkpoints
   every second. Prints the longest checkpoint (trigger -> manifest) and the size of the
   last one, as `eddy run` reports them.
2. Recovery: the same job killed (SIGKILL) after two complete checkpoints and started again
   with the same command: time to read the checkpoint back, and from the start of the
   restarted job to its first processed row.
3. Throughput: HOP(2 s, 10 s) COUNT/MAX per auction over 15 M generated bids, parallelism 2,
   with checkpoints every 1 s (and every 200 ms) against none, in the same run.

Usage: python3 benches/checkpoint.py [--no-build] [--runs 3]
"""
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/eddy-target"))
EDDY = os.path.join(TARGET, "release", "eddy")

KEYS_SQL = """
{checkpointing}
CREATE TABLE t (
  id BIGINT,
  k AS id % 1000000,
  v AS (id * 37) % 1000,
  ts AS TO_TIMESTAMP_LTZ(id, 3),
  WATERMARK FOR ts AS ts
) WITH ('connector' = 'datagen', 'rows-per-second' = '1000000', 'number-of-rows' = '3000000',
        'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '3000000');
CREATE TABLE sink (k BIGINT, window_start TIMESTAMP(3), n BIGINT, top BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT k, window_start, COUNT(*), MAX(v)
FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' DAY))
GROUP BY k, window_start, window_end;
"""

HOP_SQL = """
SET 'parallelism.default' = '2';
{checkpointing}
CREATE TABLE bid (
  id BIGINT,
  auction AS id % 10000,
  price AS (id * 37) % 1000,
  ts AS TO_TIMESTAMP_LTZ(id * 2, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'datagen', 'number-of-rows' = '15000000', 'rows-per-second' = '1000000000',
        'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '15000000');
CREATE TABLE sink (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, top BIGINT)
  WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT auction, window_start, window_end, COUNT(*), MAX(price)
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
"""


def checkpointing(interval):
    return f"SET 'execution.checkpointing.interval' = '{interval}';" if interval else ""


def run(workdir, sql, state="state", extra=()):
    path = os.path.join(workdir, "job.sql")
    with open(path, "w") as f:
        f.write(sql)
    t = time.perf_counter()
    out = subprocess.run([EDDY, "run", "--quiet", "--state-dir", state, *extra, "job.sql"], cwd=workdir,
                         capture_output=True, text=True)
    took = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"eddy run failed:\n{out.stderr}")
    return took, out.stderr.strip().splitlines()[-1]


def summary_number(line, pattern):
    m = re.search(pattern, line)
    return float(m.group(1).replace(",", "")) if m else None


def manifests(state):
    root = os.path.join(state, "checkpoints")
    n = 0
    for dirpath, _, files in os.walk(root):
        n += "_manifest.json" in files
    return n


def main():
    runs = 3
    if "--runs" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1])
    if "--no-build" not in sys.argv:
        subprocess.run(["cargo", "build", "--release", "-p", "eddy"], cwd=ROOT, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    work = tempfile.mkdtemp(prefix="eddy-chk-bench-")
    try:
        # 1. 1 M keys, checkpoints every second.
        longest, sizes = [], []
        for _ in range(runs):
            shutil.rmtree(os.path.join(work, "state"), ignore_errors=True)
            _, line = run(work, KEYS_SQL.format(checkpointing=checkpointing("1 s")))
            longest.append(summary_number(line, r"longest ([\d,]+) ms"))
            sizes.append(summary_number(line, r"last ([\d.]+) MB"))
        print(f"1 M keys: longest checkpoint {statistics.median(longest):.0f} ms (target <= 1000 ms), "
              f"size {statistics.median(sizes):.1f} MB  [runs: {longest} ms]")

        # 2. Recovery after SIGKILL.
        reads, firsts = [], []
        for _ in range(runs):
            state = os.path.join(work, "state")
            shutil.rmtree(state, ignore_errors=True)
            with open(os.path.join(work, "job.sql"), "w") as f:
                f.write(KEYS_SQL.format(checkpointing=checkpointing("1 s")))
            p = subprocess.Popen([EDDY, "run", "--quiet", "--state-dir", "state", "job.sql"], cwd=work,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 60
            while manifests(state) < 2 and p.poll() is None and time.time() < deadline:
                time.sleep(0.01)
            if p.poll() is not None:
                sys.exit("the job ended before two checkpoints completed")
            p.send_signal(signal.SIGKILL)
            p.wait()
            t = time.perf_counter()
            _, line = run(work, KEYS_SQL.format(checkpointing=checkpointing("1 s")))
            reads.append(summary_number(line, r"read in ([\d,]+) ms"))
            firsts.append(summary_number(line, r"first row after ([\d,]+) ms"))
        print(f"recovery: checkpoint read in {statistics.median(reads):.0f} ms, first processed row "
              f"{statistics.median(firsts):.0f} ms after the start (target <= 5000 ms)  [runs: {firsts} ms]")

        # 3. HOP throughput with and without checkpoints.
        times = {}
        for label, interval in [("none", None), ("1 s", "1 s"), ("200 ms", "200 ms")]:
            ts = []
            for _ in range(runs):
                shutil.rmtree(os.path.join(work, "state"), ignore_errors=True)
                took, line = run(work, HOP_SQL.format(checkpointing=checkpointing(interval)))
                ts.append(took)
            times[label] = statistics.median(ts)
            print(f"HOP 15 M bids, checkpoints {label:>6}: {times[label]:.2f} s, "
                  f"{15_000_000 / times[label]:,.0f} rows/s   ({line})")
        for label in ("1 s", "200 ms"):
            print(f"throughput with checkpoints every {label}: {100 * times['none'] / times[label]:.0f} % "
                  f"of none (target >= 90 %)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
