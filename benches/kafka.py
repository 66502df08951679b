#!/usr/bin/env python3
"""Benchmark: Kafka in and out — 1 M JSON bids (the filter_project.py input file) in a
4-partition topic on a private test broker (Tansu, in memory, ../shared/scripts/kafka-up).

Throughput, in the same run:
  (a) the broker's ceiling: a bare librdkafka consumer (cli/examples/kafka_bench.rs `drain`:
      one BaseConsumer, librdkafka's default fetch settings, as Eddy's source has them)
      reading the 4 partitions from their beginning; events/s = records / (process start to
      the last record). It reads on to every end-of-partition notice, which comes a fetch
      round later (the broker holds a fetch at the log's end up to fetch.wait.max.ms), so
      the whole-process time is printed too.
  (b) `eddy run` of
          SELECT auction, window_start, window_end, COUNT(*), MAX(price)
          FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
          GROUP BY auction, window_start, window_end
      from that topic ('earliest-offset' .. 'latest-offset', WATERMARK date_time - 5 s) into a
      'kafka' sink topic of 4 partitions, parallelism 2, timed as a whole process; the job's
      own "Job finished: ... (N/s)" figure too. (b) / (a) is the figure of merit (target
      >= 80 %). Each job's CPU time (user + sys) and peak RSS are its own (os.wait4).
  Where (b)'s time goes, one run each: at parallelism 1; with a sink producer that is not
  idempotent (Eddy's is by default; this broker takes ~0.5 s to hand out a producer id);
  into a blackhole sink; the source alone (every column decoded, into a blackhole); the
  same query from the JSON-lines file (the engine without Kafka). The Kafka jobs run twice: as configured by default, and with
  the source's 'properties.fetch.queue.backoff.ms' = '10' (librdkafka stops fetching a
  partition for that long, 1 s by default, once a consumer holds 100 k unread records of it).

Latency: `kafka_bench latency` produces bids stamped with their send time (sent_us) at a
fixed rate (default 50 k/s for 20 s) while reading the output topic, and prints p50/p99/max
of (time read back - sent_us) and how many records were lost. Measured straight through
one topic (the floor of broker and clients, no Eddy), then through an unbounded `eddy run`
of SELECT ... WHERE channel <> 'Google' (source 'latest-offset') into a Kafka sink, as
configured by default and with the source's 'properties.fetch.wait.max.ms' = '100' (this
broker holds a fetch at the log's end for part of fetch.wait.max.ms, 500 ms by default,
even when records arrive meanwhile; Kafka answers as soon as there are records).

Usage: python3 benches/kafka.py [--rows 1000000] [--runs 3] [--no-build]
                                [--port 19094] [--rate 50000] [--seconds 20] [--no-latency]

The broker is started on --port (a private one, so parallel tests on 19092 do not disturb
the figures) and stopped at the end if this script started it.
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filter_project import ROOT, TARGET, setup  # noqa: E402

SCRIPTS = os.path.join(ROOT, "..", "shared", "scripts")

BIDS = """
SET 'parallelism.default' = '{par}';
CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '5' SECOND
) WITH ({source});
"""

KAFKA_SOURCE = """'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{broker}',
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json'{extra}"""

FILE_SOURCE = "'connector' = 'filesystem', 'path' = '{path}', 'format' = 'json'"

KAFKA_SINK = """DISTRIBUTED INTO {partitions} BUCKETS
WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{broker}', 'format' = 'json'{sink_extra})"""

NOT_IDEMPOTENT = ", 'properties.enable.idempotence' = 'false'"

BLACKHOLE = "WITH ('connector' = 'blackhole')"

TUMBLE = """
CREATE TABLE out (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, max_price BIGINT)
{sink};
INSERT INTO out
SELECT auction, window_start, window_end, COUNT(*), MAX(price)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
"""

SOURCE_ONLY = """
CREATE TABLE out (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT auction, bidder, price, channel, url, date_time, extra FROM bids;
"""

LATENCY = """
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  seq BIGINT, sent_us BIGINT, auction BIGINT, bidder BIGINT, price BIGINT, channel STRING,
  url STRING, date_time TIMESTAMP(3), extra STRING
) WITH ('connector' = 'kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{broker}',
  'scan.startup.mode' = 'latest-offset', 'format' = 'json'{extra});
CREATE TABLE out (seq BIGINT, sent_us BIGINT, auction BIGINT, price BIGINT, channel STRING)
WITH ('connector' = 'kafka', 'topic' = '{output}', 'properties.bootstrap.servers' = '{broker}', 'format' = 'json');
INSERT INTO out SELECT seq, sent_us, auction, price, channel FROM bids WHERE channel <> 'Google';
"""

# The source options of the two columns of the throughput table.
AS_IS = ""
BACKOFF = ",\n  'properties.fetch.queue.backoff.ms' = '10'"

SUMMARY = re.compile(r"Job (?:finished|stopped): ([\d,]+) rows in, ([\d,]+) rows out in ([\d.]+)s \(([\d,]+)/s\)")


def measured(cmd, cwd=None, stdout=subprocess.PIPE):
    """Run cmd; (wall s, its own CPU s, its own peak RSS MB, stdout, stderr). Like
    filter_project.timed, but with the child's own rusage (os.wait4), so each figure is
    this process's alone."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=out if stdout else subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        stdout_text, stderr_text = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("%s failed:\n%s" % (" ".join(map(str, cmd)), stderr_text[-3000:]))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, stdout_text, stderr_text


def fields(text):
    """`name: k=v k=v ...` (kafka_bench's summary line, its last) as a dict."""
    lines = text.strip().splitlines()
    return dict(kv.split("=", 1) for kv in lines[-1].split()[1:]) if lines else {}


def bench_tool(tool, broker, *args):
    """Run kafka_bench; (whole-process wall s, its CPU s, its summary fields)."""
    wall, cpu, _, out, _ = measured([tool, "--bootstrap", broker] + [str(a) for a in args])
    return wall, cpu, fields(out)


def job_summary(stderr):
    """(rows in, rows out, seconds, rows/s) from eddy's closing line."""
    m = SUMMARY.search(stderr)
    if not m:
        raise SystemExit("eddy printed no summary line:\n" + stderr[-3000:])
    n = lambda s: int(s.replace(",", ""))  # noqa: E731
    return n(m.group(1)), n(m.group(2)), float(m.group(3)), n(m.group(4))


def run_eddy(eddy, work, name, sql):
    """One bounded `eddy run`: (whole-process s, CPU s, peak RSS MB, job summary)."""
    path = os.path.join(work, name + ".sql")
    with open(path, "w") as f:
        f.write(sql)
    wall, cpu, rss, _, err = measured([eddy, "run", "--quiet", path], cwd=work, stdout=None)
    return wall, cpu, rss, job_summary(err)


def alive(pidfile):
    """Whether the broker of that pid file runs (kafka-up reuses it; then it is not ours)."""
    try:
        os.kill(int(open(pidfile).read().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=19094)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--rate", type=int, default=50_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--no-latency", action="store_true", help="throughput only")
    a, data, eddy, _ = setup(ap, duckdb=False)
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "eddy", "--example", "kafka_bench"], cwd=ROOT,
                       check=True, env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    tool = os.path.join(TARGET, "release", "examples", "kafka_bench")

    pidfile = os.path.join(os.environ.get("EDDY_TOOLS", os.path.expanduser("~/.cache/eddy-tools")),
                           "run", "kafka-%d.pid" % a.port)
    ours = not alive(pidfile)
    broker = subprocess.run([os.path.join(SCRIPTS, "kafka-up"), str(a.port)], check=True,
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    try:
        bench(a, data, eddy, tool, broker)
    finally:
        if ours:
            subprocess.run([os.path.join(SCRIPTS, "kafka-down"), str(a.port)], check=False)


def throughput(a, data, eddy, tool, broker, work, tag):
    topic = "bench-bids-" + tag
    parts = a.partitions
    _, _, prod = bench_tool(tool, broker, "produce", "--topic", topic, "--partitions", parts,
                         "--file", data, "--rows", a.rows)
    print("input: %s bids, %.0f MB of JSON in topic %s (%d partitions), produced at %s records/s" % (
        prod["records"], int(prod["bytes"]) / 1e6, topic, parts, prod["events_per_s"]), flush=True)

    def source(extra):
        return KAFKA_SOURCE.format(topic=topic, broker=broker, extra=extra)

    outputs = []  # (topic, rows the job wrote), read back at the end

    def to_kafka(par, extra, name, sink_extra=""):
        out_topic = "bench-out-%s-%s" % (name, tag)
        sink = KAFKA_SINK.format(partitions=parts, topic=out_topic, broker=broker, sink_extra=sink_extra)
        sql = BIDS.format(par=par, source=source(extra)) + TUMBLE.format(sink=sink)
        r = run_eddy(eddy, work, name, sql)
        outputs.append((out_topic, r[3][1]))
        return r, out_topic

    drains, jobs, tuned = [], [], []
    for i in range(a.runs):
        # Interleaved, so that no variant gets a warmer (or fuller) broker.
        drains.append(bench_tool(tool, broker, "drain", "--topic", topic))
        jobs.append(to_kafka(2, AS_IS, "tumble-p2-%d" % i))
        tuned.append(to_kafka(2, BACKOFF, "tumble-p2-backoff-%d" % i))

    rows = int(drains[0][2]["records"])
    a_last = statistics.median(float(d["seconds"]) for _, _, d in drains)
    a_eof = statistics.median(w for w, _, _ in drains)
    a_cpu = statistics.median(c for _, c, _ in drains)

    def median_job(runs):
        return tuple(statistics.median(r[0][k] for r in runs) for k in range(3)) + (runs[0][0][3],)

    b, b_tuned = median_job(jobs), median_job(tuned)
    breakdown = []
    for label, make in (
            ("    same, parallelism 1", lambda x, n: to_kafka(1, x, n)[0]),
            ("    same, sink 'properties.enable.idempotence' = 'false'", lambda x, n: to_kafka(2, x, n, NOT_IDEMPOTENT)[0]),
            ("    same, blackhole sink",
             lambda x, n: run_eddy(eddy, work, n, BIDS.format(par=2, source=source(x)) + TUMBLE.format(sink=BLACKHOLE))),
            ("    kafka source alone (all columns) -> blackhole",
             lambda x, n: run_eddy(eddy, work, n, BIDS.format(par=2, source=source(x)) + SOURCE_ONLY))):
        breakdown.append((label, make(AS_IS, "bd-%d" % len(breakdown)), make(BACKOFF, "bd-%d-b" % len(breakdown))))
    from_file = run_eddy(eddy, work, "tumble-file", BIDS.format(par=2, source=FILE_SOURCE.format(path=data))
                         + TUMBLE.format(sink=BLACKHOLE))

    head = "%-58s %8s %10s %6s %6s | %8s %10s %6s %6s"
    row = "%-58s %8.3f %10.0f %6.1f %6.0f | %8s %10s %6s %6s"

    def cols(r):
        return r[0], rows / r[0], r[1], r[2]

    def tuned_cols(r):
        return ("%.3f" % r[0], "%.0f" % (rows / r[0]), "%.1f" % r[1], "%.0f" % r[2]) if r else ("",) * 4

    print()
    print("%d bids, %d partitions; right: source 'properties.fetch.queue.backoff.ms' = '10'" % (rows, parts))
    print(head % ("", "seconds", "events/s", "CPU s", "RSS MB", "seconds", "events/s", "CPU s", "RSS MB"))
    print("%-58s %8.3f %10.0f" % ("(a) bare consumer, to the last record (median of %d)" % a.runs, a_last, rows / a_last))
    print("%-58s %8.3f %10.0f %6.1f" % ("    whole process, to every end-of-partition", a_eof, rows / a_eof, a_cpu))
    print(row % (("(b) eddy TUMBLE 10 s -> kafka, p=2 (median of %d)" % a.runs,) + cols(b) + tuned_cols(b_tuned)))
    b_job = statistics.median(r[0][3][2] for r in jobs)
    b_tuned_job = statistics.median(r[0][3][2] for r in tuned)
    print("%-58s %8.3f %10.0f %6s %6s | %8.3f %10.0f" % (
        "    the job's own line (Job finished ...)", b_job, rows / b_job, "", "", b_tuned_job, rows / b_tuned_job))
    for label, r, rt in breakdown:
        print(row % ((label,) + cols(r) + tuned_cols(rt)))
    print(row % (("    TUMBLE from the JSON file -> blackhole (no kafka)",) + cols(from_file) + tuned_cols(None)))
    # Every Kafka sink's topic read back: it holds every row its job wrote.
    held = [(t, n, int(bench_tool(tool, broker, "drain", "--topic", t)[2]["records"])) for t, n in outputs]
    wrong = ["%s: job wrote %d, topic holds %d" % (t, n, h) for t, n, h in held if n != h]
    ins = sorted({r[0][3][0] for r in jobs + tuned})
    print("rows: drained %d; jobs read %s, wrote %s; %d output topics read back: %s" % (
        rows, "/".join(map(str, ins)), "/".join(sorted({str(n) for _, n in outputs})), len(held),
        "all complete" if not wrong else "MISMATCH " + "; ".join(wrong)))
    # The job writes nearly a record per bid (auctions are many, windows short), so it must also
    # produce: on one machine whose two cores serve the broker too, reading (a) and producing
    # that many records (at the rate the input was produced) bound (b) from below.
    out_rows = jobs[0][0][3][1]
    produce_s = out_rows / float(prod["events_per_s"])
    print("floor of (b) here: (a) %.3f s + producing its %d output records at the input's produce rate %.3f s "
          "= %.3f s, i.e. (b)/(a) <= %.0f %%; (b) reaches %.0f %% of that floor" % (
              a_last, out_rows, produce_s, a_last + produce_s, 100 * a_last / (a_last + produce_s),
              100 * (a_last + produce_s) / b[0]))
    print("ratio (b)/(a): %.0f %% whole process, %.0f %% by the job's own line; with the backoff at 10 ms "
          "%.0f %% and %.0f %% (target >= 80 %%)" % (
              100 * a_last / b[0], 100 * a_last / b_job, 100 * a_last / b_tuned[0], 100 * a_last / b_tuned_job))


def latency(a, eddy, tool, broker, work, tag):
    parts = a.partitions
    lat_args = ["--rate", a.rate, "--seconds", a.seconds]
    floor_topic = "bench-floor-" + tag
    bench_tool(tool, broker, "create", "--topic", floor_topic, "--partitions", parts)
    _, _, floor = bench_tool(tool, broker, "latency", "--in", floor_topic, "--out", floor_topic,
                          "--drop-channel", "", *lat_args)
    results = [("broker floor: one topic, no eddy", floor)]
    for label, name, extra in (("eddy SELECT ... WHERE -> kafka", "default", ""),
                               ("  same, source fetch.wait.max.ms = 100", "wait100",
                                ",\n  'properties.fetch.wait.max.ms' = '100'")):
        lat_in, lat_out = "bench-lat-in-%s-%s" % (name, tag), "bench-lat-out-%s-%s" % (name, tag)
        for t in (lat_in, lat_out):
            bench_tool(tool, broker, "create", "--topic", t, "--partitions", parts)
        sql = os.path.join(work, "latency-%s.sql" % name)
        with open(sql, "w") as f:
            f.write(LATENCY.format(input=lat_in, output=lat_out, broker=broker, extra=extra))
        with open(os.path.join(work, "latency-%s.log" % name), "w+") as log:
            job = subprocess.Popen([eddy, "run", "--quiet", sql], cwd=work, stdout=subprocess.DEVNULL, stderr=log)
            try:
                _, _, lat = bench_tool(tool, broker, "latency", "--in", lat_in, "--out", lat_out, *lat_args)
            finally:
                job.send_signal(signal.SIGINT)
                job.wait(timeout=60)
            log.seek(0)
            job_summary(log.read())
        results.append((label, lat))

    print()
    print("produce-to-emit latency at %d events/s for %d s (ms):" % (a.rate, a.seconds))
    for label, r in results:
        print("  %-38s p50 %7s  p99 %7s  max %8s   sent %s at %s/s, received %s of %s, lost %s" % (
            label, r["p50_ms"], r["p99_ms"], r["max_ms"], r["sent"], r["produced_per_s"], r["received"],
            r["expected"], r["lost"]))


def bench(a, data, eddy, tool, broker):
    work = tempfile.mkdtemp(prefix="eddy-bench-kafka-")
    tag = "%d-%d" % (os.getpid(), int(time.time()))
    throughput(a, data, eddy, tool, broker, work, tag)
    if not a.no_latency:
        latency(a, eddy, tool, broker, work, tag)


if __name__ == "__main__":
    main()
