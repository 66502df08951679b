#!/usr/bin/env python3
"""Benchmark: `eddy serve` answering Postgres clients while a job keeps writing the table.

Set-up: a private `eddy serve` (free port, temporary state directory) with an upsert result
table

    kv (k BIGINT, v BIGINT, ts TIMESTAMP(3), PRIMARY KEY (k) NOT ENFORCED)

filled with --keys rows (1 M) by a bounded datagen sequence job (waited for with count(*)),
and the same table in the machine's PostgreSQL (127.0.0.1:5432, database test, user postgres
or root; table eddy_bench_kv, dropped at the end) as the reference in the same run.

Measured:
  point lookups  `SELECT v FROM kv WHERE k = $1`, random keys, --clients (32) connections for
                 --seconds (10) each, by two clients: asyncpg (prepared statement, uvloop,
                 spread over --procs Python processes) and pgbench (C, libpq, -M prepared);
                 queries/s, p50/p99/max latency, CPU cores used by the client (a client
                 process near 100 % of a core is the bottleneck, not the server), by the
                 server (Eddy's process; PostgreSQL's processes) and by every other process of
                 the machine (a build running beside the benchmark shows here), and the ingest
                 rate the updater kept up meanwhile (rows_out of SHOW JOBS).
                 Eddy idle (asyncpg only), Eddy while ingesting, PostgreSQL (no ingest; Eddy's
                 jobs are stopped by then, so the two do not share the cores).
  ingest         an unbounded datagen job updating random keys of kv at --rate (100 k/s),
                 started after the idle lookups; its achieved rate is printed per window.
  full scan      `SELECT * FROM kv`, all rows to one client: psycopg 3 binary and text
                 (execute + fetchall into Python tuples) and pgbench (libpq, text, no
                 conversion: the protocol and the server alone), --runs (3) each, median;
                 Eddy while ingesting, and PostgreSQL.
  visibility     a second job writes one reserved key (k = keys - 1, which the updater never
                 touches) ten times a second through datagen, its ts stamped by datagen with
                 the wall clock when the row is generated (a random TIMESTAMP with no
                 'max-past' is the generation time); one more connection polls that key with
                 the point query back to back (at most every 2 ms) during the whole ingest
                 phase. Each new (v, ts) seen gives (time the answer arrived - ts): emitted ->
                 visible to a query, including that query's own time under the load (the
                 poll's round trip is printed beside it).

Targets (issue 5): lookups >= 5 k q/s and p99 <= 20 ms while ingesting 100 k events/s into a
1 M-row upsert table; full scan of 1 M rows to a client <= 1.5 s; emitted -> visible p99
<= 100 ms. Judged on the Eddy-while-ingesting rows: lookups on the client that got more
queries through, the scan on the fastest client.

Usage: python3 benches/pgwire.py [--keys 1000000] [--seconds 10] [--clients 32] [--rate 100000]
                                 [--procs 2] [--runs 3] [--no-build] [--eddy PATH]
                                 [--no-postgres] [--no-pgbench] [--keep]

--eddy PATH runs that binary and builds nothing; otherwise the release binary is built first
(cargo build --release -p eddy) unless --no-build.

The Python clients (psycopg 3, asyncpg, uvloop) live in a venv of this benchmark's own,
~/.cache/eddy-tools/pgwire-venv, made on first use; the script runs itself again with it.
"""
import argparse
import glob
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from datetime import timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filter_project import ROOT, TARGET  # noqa: E402

TOOLS = os.environ.get("EDDY_TOOLS", os.path.expanduser("~/.cache/eddy-tools"))
VENV = os.path.join(TOOLS, "pgwire-venv")
PACKAGES = ["psycopg[binary]", "asyncpg", "uvloop"]
PG_TABLE = "eddy_bench_kv"
LOOKUP = "SELECT v FROM {table} WHERE k = $1"
TARGET_QPS, TARGET_P99_MS, TARGET_SCAN_S, TARGET_VISIBLE_P99_MS = 5000, 20.0, 1.5, 100.0


def ensure_venv():
    """Run this script with the venv's Python (made and filled on first use)."""
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    if subprocess.run([py, "-c", "import psycopg, asyncpg, uvloop"], capture_output=True).returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q"] + PACKAGES, check=True)
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def run_child(cmd, **kw):
    """Run cmd to its end: (exit code, wall s, its own CPU s, stdout, stderr)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        child = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err, text=True, **kw)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        return os.waitstatus_to_exitcode(status), wall, usage.ru_utime + usage.ru_stime, out.read(), err.read()


# ---------------------------------------------------------------------------------------------
# Servers

def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name, as numbers ([0], the state, as 0):
    [1] is the parent pid, [11:13] utime and stime, [13:15] cutime and cstime, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return [0] + [int(x) for x in parts[1:15]]


def is_postgres(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip() == "postgres"
    except OSError:
        return False


class Target:
    """Where a client connects: host, port, user, database, and the table's name there."""

    def __init__(self, name, port, user, db, table, pid=None):
        self.name, self.port, self.user, self.db, self.table, self.pid = name, port, user, db, table, pid

    def psycopg(self, **kw):
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=self.db, autocommit=True, **kw)

    def asyncpg_kwargs(self):
        return dict(host="127.0.0.1", port=self.port, user=self.user, database=self.db)

    def cpu(self):
        """The server's CPU seconds so far: Eddy's process; for PostgreSQL every `postgres`
        process plus what the postmaster reaped of ended backends (cutime, cstime)."""
        ticks = os.sysconf("SC_CLK_TCK")
        if self.pid is not None:
            return sum(proc_stat(self.pid)[11:13]) / ticks
        total, seen = 0, False
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() != "postgres":
                        continue
                st = proc_stat(int(d))
            except (OSError, ValueError):
                continue
            seen = True
            total += st[11] + st[12]
            if st[1] == 1 or not is_postgres(st[1]):  # the postmaster: its reaped children too
                total += st[13] + st[14]
        return total / ticks if seen else None

    def rss_mb(self):
        if self.pid is None:
            return None
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        return None


class EddyServer:
    def __init__(self, eddy, work):
        self.work = work
        self.port = free_port()
        self.log = open(os.path.join(work, "serve.log"), "w+")
        self.proc = subprocess.Popen(
            [eddy, "serve", "--state-dir", os.path.join(work, "state"), "--pg-listen", "127.0.0.1:%d" % self.port,
             "--http-listen", "off"], stdout=self.log, stderr=subprocess.STDOUT, cwd=work)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("eddy serve exited:\n" + self.tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("eddy serve did not listen within 60 s:\n" + self.tail())
                time.sleep(0.1)
        self.target = Target("eddy", self.port, "eddy", "eddy", "kv", self.proc.pid)

    def tail(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def postgres_target():
    """The machine's PostgreSQL as user postgres or root, database test; None if neither works."""
    import psycopg
    for user in ("postgres", "root"):
        t = Target("postgres", 5432, user, "test", PG_TABLE)
        try:
            t.psycopg(connect_timeout=5).close()
            return t
        except psycopg.Error:
            continue
    return None


def load_postgres(pg, keys):
    with pg.psycopg() as c:
        c.execute("DROP TABLE IF EXISTS %s" % PG_TABLE)
        c.execute("CREATE TABLE %s (k BIGINT PRIMARY KEY, v BIGINT, ts TIMESTAMP(3))" % PG_TABLE)
        c.execute("INSERT INTO %s SELECT g, (random() * 1000000)::bigint, localtimestamp "
                  "FROM generate_series(0, %d) g" % (PG_TABLE, keys - 1))
        c.execute("VACUUM ANALYZE %s" % PG_TABLE)
        version = c.execute("SHOW server_version").fetchone()[0]
    return version


def drop_postgres(pg):
    with pg.psycopg() as c:
        c.execute("DROP TABLE IF EXISTS %s" % PG_TABLE)


# ---------------------------------------------------------------------------------------------
# Eddy's tables and jobs

def eddy_setup(conn, keys, rate):
    """Create kv and its sources, fill kv with `keys` rows; (seconds to fill, source DDL kept
    for the jobs started later)."""
    conn.execute("CREATE TABLE kv (k BIGINT, v BIGINT, ts TIMESTAMP(3), PRIMARY KEY (k) NOT ENFORCED)")
    conn.execute("""CREATE TABLE seed (k BIGINT, v BIGINT, ts TIMESTAMP(3)) WITH (
      'connector' = 'datagen', 'rows-per-second' = '1000000000',
      'fields.k.kind' = 'sequence', 'fields.k.start' = '0', 'fields.k.end' = '%d',
      'fields.v.min' = '0', 'fields.v.max' = '1000000')""" % (keys - 1))
    # The updater never touches the last key: that one is the visibility probe's.
    conn.execute("""CREATE TABLE updates (k BIGINT, v BIGINT, ts TIMESTAMP(3)) WITH (
      'connector' = 'datagen', 'rows-per-second' = '%d',
      'fields.k.kind' = 'random', 'fields.k.min' = '0', 'fields.k.max' = '%d',
      'fields.v.min' = '0', 'fields.v.max' = '1000000')""" % (rate, keys - 2))
    # Ten batches a second (datagen's batch is a tenth of the rate); ts = generation time.
    conn.execute("""CREATE TABLE probe (v BIGINT, ts TIMESTAMP(3)) WITH (
      'connector' = 'datagen', 'rows-per-second' = '10',
      'fields.v.min' = '0', 'fields.v.max' = '1000000000000')""")
    t = time.perf_counter()
    job = conn.execute("INSERT INTO kv SELECT k, v, ts FROM seed").fetchone()[0]
    n = 0
    while time.perf_counter() - t < 600:
        n = conn.execute("SELECT count(*) FROM kv").fetchone()[0]
        if n >= keys:
            break
        status = job_row(conn, job)
        if status and status[0] == "FAILED":
            raise SystemExit("the preload job failed: %s" % status[3])
        time.sleep(0.05)
    if n != keys:
        raise SystemExit("kv holds %d rows, expected %d" % (n, keys))
    return time.perf_counter() - t


def job_row(conn, job_id):
    """(status, rows_in, rows_out, error) of a job, from SHOW JOBS."""
    for r in conn.execute("SHOW JOBS").fetchall():
        if r[0] == job_id:
            return r[2], r[3], r[4], r[5]
    return None


def point_plan(conn, table):
    """The logical plan of the point query (with a parameter, as the clients send it)."""
    rows = conn.execute("EXPLAIN SELECT v FROM %s WHERE k = %%s" % table, (7,)).fetchall()
    return next((r[1] for r in rows if r[0] == "logical_plan"), "")


# ---------------------------------------------------------------------------------------------
# Load

def _asyncpg_worker(kwargs, sql, conns, keys, seconds, ready, go, begin_wall, out):
    """One client process: `conns` asyncpg connections, each running the prepared point query
    with random keys back to back. Once connected it says so on `ready` and waits for `go`;
    the window starts at `begin_wall` (set by then). Latencies of queries started in the
    window go to `out`."""
    import asyncio
    import resource

    import asyncpg
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def main():
        try:
            cs = [await asyncpg.connect(**kwargs) for _ in range(conns)]
            stmts = [await c.prepare(sql) for c in cs]
        except Exception as e:  # noqa: BLE001 - the parent reports it
            ready.put(repr(e))
            raise
        ready.put(None)
        go.wait()  # nothing else runs on this loop yet
        begin = time.perf_counter() + (begin_wall.value - time.time())
        end = begin + seconds
        lat = array("d")
        state = {"errors": 0, "first_error": None}
        rng = random.Random()

        async def client(st):
            while True:
                t = time.perf_counter()
                if t >= end:
                    return
                try:
                    await st.fetchval(rng.randrange(keys))
                except Exception as e:  # noqa: BLE001 - counted and reported
                    state["errors"] += 1
                    state["first_error"] = state["first_error"] or repr(e)
                    continue
                if t >= begin:
                    lat.append(time.perf_counter() - t)

        async def cpu_at_begin():
            await asyncio.sleep(max(0.0, begin - time.perf_counter()))
            r = resource.getrusage(resource.RUSAGE_SELF)
            return r.ru_utime + r.ru_stime

        cpu_task = asyncio.ensure_future(cpu_at_begin())
        await asyncio.gather(*(client(s) for s in stmts))
        r = resource.getrusage(resource.RUSAGE_SELF)
        cpu = r.ru_utime + r.ru_stime - await cpu_task
        wall = time.perf_counter() - begin
        for c in cs:
            await c.close()
        return lat, state, cpu, wall

    try:
        lat, state, cpu, wall = asyncio.run(main())
        out.put((lat.tobytes(), state["errors"], state["first_error"], cpu, wall))
    except Exception as e:  # noqa: BLE001 - the parent reports it
        out.put((b"", 1, repr(e), 0.0, 1.0))


def asyncpg_lookups(target, keys, clients, procs, seconds, window):
    """`clients` connections over `procs` processes; `window` (a Window) is entered when every
    connection is open and prepared, and left when the last process has reported."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    out, ready, go, begin_wall = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    ps = [ctx.Process(target=_asyncpg_worker,
                      args=(target.asyncpg_kwargs(), LOOKUP.format(table=target.table), n, keys, seconds,
                            ready, go, begin_wall, out)) for n in shares if n]
    for p in ps:
        p.start()
    failed = [e for e in (ready.get(timeout=180) for _ in ps) if e]
    window.__enter__()
    begin_wall.value = time.time() + 0.1
    go.set()
    results = [out.get(timeout=seconds + 120) for _ in ps]
    window.__exit__(None, None, None)
    for p in ps:
        p.join()
    lat = array("d")
    errors, first_error, cpus = 0, (failed[0] if failed else None), []
    for raw, e, fe, cpu, wall in results:
        lat.frombytes(raw)
        errors += e
        first_error = first_error or fe
        cpus.append(cpu / wall)
    lat = sorted(x * 1000 for x in lat)
    return {"client": "asyncpg (%d procs)" % len(ps), "qps": len(lat) / seconds, "p50": pct(lat, 0.5),
            "p99": pct(lat, 0.99), "max": lat[-1] if lat else float("nan"), "errors": errors,
            "first_error": first_error, "client_cores": sum(cpus), "busiest_proc": max(cpus),
            "client_limit": 1.0}


def pgbench_lookups(target, keys, clients, seconds, work, tag):
    script = os.path.join(work, "lookup-%s.sql" % tag)
    with open(script, "w") as f:
        f.write("\\set k random(0, %d)\nSELECT v FROM %s WHERE k = :k;\n" % (keys - 1, target.table))
    prefix = os.path.join(work, "pgbench-%s" % tag)
    code, wall, cpu, out, err = run_child(
        ["pgbench", "-h", "127.0.0.1", "-p", target.port, "-U", target.user, "-n", "-M", "prepared",
         "-c", clients, "-j", 2, "-T", seconds, "-f", script, "-l", "--log-prefix", prefix, target.db])
    lat, errors = [], 0
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 3 and p[2].isdigit():
                    lat.append(int(p[2]) / 1000.0)
                else:
                    errors += 1
        os.remove(path)
    lat.sort()
    tps = next((float(line.split()[2]) for line in out.splitlines() if line.startswith("tps =")), len(lat) / seconds)
    first_error = None
    if code != 0:
        errors += 1
        first_error = (err or out).strip().splitlines()[-1] if (err or out).strip() else "exit %d" % code
    return {"client": "pgbench -j 2 (C)", "qps": tps, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
            "max": lat[-1] if lat else float("nan"), "errors": errors, "first_error": first_error,
            "client_cores": cpu / wall, "busiest_proc": cpu / wall, "client_limit": 2.0}


def machine_busy():
    """CPU seconds the whole machine has been busy (every core, /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / os.sysconf("SC_CLK_TCK")


class Window:
    """A measurement window: the server's CPU, the machine's and the updater's rows_out at
    both ends."""

    def __init__(self, target, admin=None, job=None):
        self.target, self.admin, self.job = target, admin, job

    def __enter__(self):
        self.t = time.perf_counter()
        self.cpu = self.target.cpu()
        self.machine = machine_busy()
        self.rows = job_row(self.admin, self.job)[2] if self.job else None
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False
        self.wall = time.perf_counter() - self.t
        cpu = self.target.cpu()
        self.machine_cores = (machine_busy() - self.machine) / self.wall
        self.server_cores = None if cpu is None else (cpu - self.cpu) / self.wall
        self.ingest = (job_row(self.admin, self.job)[2] - self.rows) / self.wall if self.job else None
        return False


def lookups(label, target, a, work, admin=None, job=None, pgbench=True):
    rows = []
    w = Window(target, admin, job)
    r = asyncpg_lookups(target, a.keys, a.clients, a.procs, a.seconds, w)
    r.update(label=label, server_cores=w.server_cores, machine_cores=w.machine_cores, ingest=w.ingest)
    rows.append(r)
    print_lookup(r)
    if pgbench and shutil.which("pgbench"):
        with Window(target, admin, job) as w:
            r = pgbench_lookups(target, a.keys, a.clients, a.seconds, work, label.replace(", ", "-"))
        r.update(label=label, server_cores=w.server_cores, machine_cores=w.machine_cores, ingest=w.ingest)
        rows.append(r)
        print_lookup(r)
    return rows


LOOKUP_HEAD = "%-22s %-20s %8s %7s %7s %8s %6s %8s %8s %8s %10s" % (
    "", "client", "q/s", "p50 ms", "p99 ms", "max ms", "errors", "cli cpu", "srv cpu", "oth cpu", "ingest/s")


def print_lookup(r):
    fmt = lambda v, f: "-" if v is None else f % v  # noqa: E731
    other = None if r["server_cores"] is None else max(0.0, r["machine_cores"] - r["server_cores"] - r["client_cores"])
    print("%-22s %-20s %8.0f %7.2f %7.2f %8.1f %6d %8s %8s %8s %10s" % (
        r["label"], r["client"], r["qps"], r["p50"], r["p99"], r["max"], r["errors"],
        "%.2f" % r["client_cores"], fmt(r["server_cores"], "%.2f"), fmt(other, "%.2f"), fmt(r["ingest"], "%.0f")),
        flush=True)
    if other is not None and other > 0.25:
        print("    note: %.2f cores went to other processes during this window: figures disturbed" % other,
              flush=True)
    if r["first_error"]:
        print("    note: %s" % r["first_error"][:300], flush=True)


def scans(label, target, a, work, expected, pgbench=True):
    """Full scans, each client --runs times: rows of (label, client, median s, best s, rows)."""
    out = []
    for binary in (True, False):
        times, n = [], None
        with target.psycopg() as c:
            for _ in range(a.runs):
                t = time.perf_counter()
                cur = c.cursor(binary=binary)
                cur.execute("SELECT * FROM %s" % target.table)
                n = len(cur.fetchall())
                times.append(time.perf_counter() - t)
        out.append((label, "psycopg %s" % ("binary" if binary else "text"), times, n))
        print_scan(out[-1], expected)
    if pgbench and shutil.which("pgbench"):
        script = os.path.join(work, "scan-%s.sql" % target.name)
        with open(script, "w") as f:
            f.write("SELECT * FROM %s;\n" % target.table)
        prefix = os.path.join(work, "scanlog-%s" % target.name)
        code, _, _, o, e = run_child(["pgbench", "-h", "127.0.0.1", "-p", target.port, "-U", target.user, "-n",
                                      "-M", "extended", "-c", 1, "-t", a.runs, "-f", script, "-l",
                                      "--log-prefix", prefix, target.db])
        times = []
        for path in glob.glob(prefix + ".*"):
            with open(path) as f:
                times += [int(line.split()[2]) / 1e6 for line in f if len(line.split()) >= 3]
            os.remove(path)
        if code != 0 or not times:
            print("    pgbench scan failed: %s" % (e or o).strip()[-300:], flush=True)
        else:
            out.append((label, "pgbench (libpq text)", times, None))
            print_scan(out[-1], expected)
    return out


def print_scan(r, expected):
    label, client, times, n = r
    rows = "-" if n is None else ("%d" % n if n == expected else "%d (expected %d)" % (n, expected))
    print("%-22s %-22s %9.3f %9.3f  %s" % (label, client, statistics.median(times), min(times), rows), flush=True)


# ---------------------------------------------------------------------------------------------
# Visibility

class Poller(threading.Thread):
    """Polls the probe key with the point query; records (phase, seen - emitted, round trip)."""

    def __init__(self, target, key):
        super().__init__(daemon=True)
        self.target, self.key = target, key
        self.phase = "warm-up"
        self.samples = []  # (phase, ms emitted -> answer received, ms round trip of that poll)
        self.rtts = []
        self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            with self.target.psycopg() as c:
                last = None
                while not self.done.is_set():
                    t0 = time.time()
                    row = c.execute("SELECT v, ts FROM %s WHERE k = %%s" % self.target.table, (self.key,),
                                    prepare=True).fetchone()
                    t1 = time.time()
                    self.rtts.append((t1 - t0) * 1000)
                    if row is not None and row != last:
                        if last is not None:
                            ts = row[1].replace(tzinfo=timezone.utc).timestamp()
                            self.samples.append((self.phase, (t1 - ts) * 1000, (t1 - t0) * 1000))
                        last = row
                    pause = 0.002 - (time.time() - t0)
                    if pause > 0:
                        time.sleep(pause)
        except Exception as e:  # noqa: BLE001 - reported with the figures
            self.error = repr(e)


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000, help="rows of kv")
    ap.add_argument("--seconds", type=int, default=10, help="per lookup measurement")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--procs", type=int, default=2, help="asyncpg client processes")
    ap.add_argument("--rate", type=int, default=100_000, help="updates/s of the ingest job")
    ap.add_argument("--runs", type=int, default=3, help="full scans per client")
    ap.add_argument("--eddy", help="eddy binary (default: the release build, built first)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL reference")
    ap.add_argument("--no-pgbench", action="store_true", help="no pgbench (lookups by asyncpg, scans by psycopg)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (state, logs)")
    a = ap.parse_args()
    if a.keys < 2:
        raise SystemExit("--keys must be at least 2")

    eddy = a.eddy
    if not eddy:
        if not a.no_build:
            subprocess.run(["cargo", "build", "--release", "-p", "eddy"], cwd=ROOT, check=True,
                           env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
        eddy = os.path.join(TARGET, "release", "eddy")
    if not os.path.exists(eddy):
        raise SystemExit("no eddy binary at %s" % eddy)

    work = tempfile.mkdtemp(prefix="eddy-bench-pgwire-")
    pg = None if a.no_postgres else postgres_target()
    server = None
    try:
        if pg:
            t = time.perf_counter()
            version = load_postgres(pg, a.keys)
            print("postgres %s (user %s, database %s): %s loaded with %d rows in %.1f s" % (
                version, pg.user, pg.db, PG_TABLE, a.keys, time.perf_counter() - t), flush=True)
        elif not a.no_postgres:
            print("no PostgreSQL at 127.0.0.1:5432 (users postgres, root; database test): no reference", flush=True)
        server = EddyServer(eddy, work)
        print("eddy %s serving on 127.0.0.1:%d, state in %s" % (eddy, server.port, work), flush=True)
        bench(a, server, pg, work)
    finally:
        if server:
            server.stop()
        if pg:
            drop_postgres(pg)
        if a.keep:
            print("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def bench(a, server, pg, work):
    eddy = server.target
    pgbench = not a.no_pgbench
    admin = eddy.psycopg()
    fill_s = eddy_setup(admin, a.keys, a.rate)
    print("eddy: kv filled with %d rows in %.1f s (bounded datagen job, counted with count(*))" % (
        a.keys, fill_s), flush=True)

    plan = point_plan(admin, "kv")
    scan_line = next((l.strip() for l in plan.splitlines() if "TableScan" in l), plan)
    pushed = "filters=" in scan_line
    print("point query plan: %s -> %s" % (
        scan_line, "the key reaches the table (index lookup)" if pushed else
        "NOT pushed to the table: each point query snapshots and filters all rows"), flush=True)

    print()
    print("point lookups `SELECT v FROM kv WHERE k = $1`, %d clients, %d s each, random keys of %d; "
          "cpu = cores used (of %d): client, server, other processes" % (a.clients, a.seconds, a.keys, os.cpu_count()))
    print(LOOKUP_HEAD, flush=True)
    results = lookups("eddy, idle", eddy, a, work, pgbench=False)

    # Ingest: the updater at --rate, and the probe for visibility.
    updater = admin.execute("INSERT INTO kv SELECT k, v, ts FROM updates").fetchone()[0]
    probe = admin.execute("INSERT INTO kv SELECT CAST(%d AS BIGINT), v, ts FROM probe" % (a.keys - 1)).fetchone()[0]
    poller = Poller(eddy, a.keys - 1)
    poller.start()
    time.sleep(2.0)
    for job, what in ((updater, "updater"), (probe, "probe")):
        r = job_row(admin, job)
        if not r or r[0] != "RUNNING":
            raise SystemExit("the %s job is not running: %s\n%s" % (what, r, server.tail()))

    ingest_t0, ingest_rows0, ingest_cpu0 = time.perf_counter(), job_row(admin, updater)[2], eddy.cpu()
    poller.phase = "lookups"
    results += lookups("eddy, ingesting", eddy, a, work, admin, updater, pgbench)
    poller.phase = "full scans"
    print()
    print("full scan `SELECT * FROM kv` to one client, %d runs each%s" % (a.runs, "" if not pg else
                                                                          " (eddy while ingesting)"))
    print("%-22s %-22s %9s %9s  %s" % ("", "client", "median s", "best s", "rows"), flush=True)
    with Window(eddy, admin, updater) as scan_window:
        scan_rows = scans("eddy, ingesting", eddy, a, work, a.keys, pgbench)
    print("    ingest during the scans: %.0f rows/s" % scan_window.ingest, flush=True)
    poller.phase = "ingest only"
    time.sleep(2.0)
    poller.done.set()
    poller.join(timeout=10)
    ingest_wall = time.perf_counter() - ingest_t0
    ingest_rate = (job_row(admin, updater)[2] - ingest_rows0) / ingest_wall
    ingest_cores = (eddy.cpu() - ingest_cpu0) / ingest_wall
    for job in (updater, probe):
        admin.execute("STOP JOB '%s'" % job)
    status = job_row(admin, updater)
    print("    updater over the whole ingest phase (%.0f s): %.0f rows/s of %d asked, eddy at %.2f cores; "
          "job %s, %d rows in, %d out" % (ingest_wall, ingest_rate, a.rate, ingest_cores, status[0],
                                         status[1], status[2]), flush=True)

    if pg:
        time.sleep(1.0)
        print()
        print("reference: PostgreSQL, same %d-row table with a primary key, no ingest (eddy's jobs stopped)" % a.keys)
        print(LOOKUP_HEAD, flush=True)
        results += lookups("postgres", pg, a, work, pgbench=pgbench)
        print("%-22s %-22s %9s %9s  %s" % ("", "client", "median s", "best s", "rows"), flush=True)
        scan_rows += scans("postgres", pg, a, work, a.keys, pgbench)

    # Visibility.
    print()
    print("emitted -> visible to a point query (probe key written 10x/s; ms; 'rtt' = the poll's own round trip)")
    if poller.error:
        print("    poller failed: %s" % poller.error)
    vis = {}
    for phase in ("lookups", "full scans", "ingest only", None):
        xs = sorted(s[1] for s in poller.samples if phase is None or s[0] == phase)
        rt = sorted(s[2] for s in poller.samples if phase is None or s[0] == phase)
        vis[phase] = xs
        if xs:
            print("    %-26s samples %5d  p50 %7.1f  p99 %7.1f  max %7.1f   rtt p50 %6.1f p99 %6.1f" % (
                "during " + phase if phase else "whole ingest phase", len(xs), pct(xs, 0.5), pct(xs, 0.99), xs[-1],
                pct(rt, 0.5), pct(rt, 0.99)))
    rtts = sorted(poller.rtts)
    print("    %d polls, round trip p50 %.1f ms p99 %.1f ms" % (len(rtts), pct(rtts, 0.5), pct(rtts, 0.99)))
    print("eddy serve peak RSS: %.0f MB" % (eddy.rss_mb() or 0), flush=True)

    summary(a, results, scan_rows, vis, pushed)


def summary(a, results, scan_rows, vis, pushed):
    print()
    print("summary (issue 5's targets; eddy while ingesting %d events/s into %d keys):" % (a.rate, a.keys))
    ing = [r for r in results if r["label"] == "eddy, ingesting"]
    idle = [r for r in results if r["label"] == "eddy, idle"]
    pgr = [r for r in results if r["label"] == "postgres"]
    line = "  %-15s %-28s %-26s %s"
    ok = lambda b: "MET" if b else "NOT MET"  # noqa: E731
    if ing:
        best = max(ing, key=lambda r: r["qps"])
        held = min(r["ingest"] for r in ing) / a.rate
        print(line % ("point lookups", "%.0f q/s" % best["qps"], "target >= %d q/s" % TARGET_QPS,
                      "%s  [%s]" % (ok(best["qps"] >= TARGET_QPS), best["client"])))
        print(line % ("lookup p99", "%.2f ms" % best["p99"], "target <= %.0f ms" % TARGET_P99_MS,
                      ok(best["p99"] <= TARGET_P99_MS)))
        print(line % ("ingest held", "%.0f %% of %d/s" % (100 * held, a.rate), "during the lookups, >= 95 %",
                      ok(held >= 0.95)))
        for r in ing:
            if r["busiest_proc"] >= 0.85 * r["client_limit"]:
                print("    note: %s was client-bound (%.0f %% of its %d core(s)): eddy may answer more" % (
                    r["client"], 100 * r["busiest_proc"] / r["client_limit"], r["client_limit"]))
            if r["machine_cores"] >= 0.9 * (os.cpu_count() or 2):
                print("    note: %s run: the machine was CPU-saturated (%.2f cores busy: client %.2f, eddy %.2f)" % (
                    r["client"], r["machine_cores"], r["client_cores"], r["server_cores"] or 0))
        if not pushed:
            print("    note: the point query does not reach the key index (a full snapshot per query)")
        for r in idle:
            print("    eddy idle (%s): %.0f q/s, p99 %.2f ms" % (r["client"], r["qps"], r["p99"]))
        for r in pgr:
            e = next((x for x in ing if x["client"] == r["client"]), None)
            if e:
                print("    postgres, no ingest (%s): %.0f q/s, p99 %.2f ms, %s cores; eddy ingesting reaches "
                      "%.0f %% of its q/s" % (r["client"], r["qps"], r["p99"],
                                             "?" if r["server_cores"] is None else "%.2f" % r["server_cores"],
                                             100 * e["qps"] / r["qps"] if r["qps"] else 0))
    eddy_scans = [r for r in scan_rows if r[0].startswith("eddy")]
    if eddy_scans:
        fastest = min(eddy_scans, key=lambda r: statistics.median(r[2]))
        m = statistics.median(fastest[2])
        print(line % ("full scan", "%.3f s (median)" % m, "target <= %.1f s" % TARGET_SCAN_S,
                      "%s  [%s]" % (ok(m <= TARGET_SCAN_S), fastest[1])))
        for r in scan_rows:
            if r[0] == "postgres":
                e = next((x for x in eddy_scans if x[1] == r[1]), None)
                print("    %-22s eddy %.3f s, postgres %.3f s" % (
                    r[1], statistics.median(e[2]) if e else float("nan"), statistics.median(r[2])))
    xs = vis.get(None) or []
    if xs:
        print(line % ("visible p99", "%.1f ms (p50 %.1f, n=%d)" % (pct(xs, 0.99), pct(xs, 0.5), len(xs)),
                      "target <= %.0f ms" % TARGET_VISIBLE_P99_MS, ok(pct(xs, 0.99) <= TARGET_VISIBLE_P99_MS)))
    else:
        print(line % ("visible p99", "no samples", "target <= %.0f ms" % TARGET_VISIBLE_P99_MS, "NOT MEASURED"))


if __name__ == "__main__":
    ensure_venv()
    main()
