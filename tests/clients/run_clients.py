#!/usr/bin/env python3
"""Real Postgres clients against `eddy serve` (issue 5).

Installs what is missing (Debian packages with apt-get, Python packages into a venv under
~/.cache/eddy-tools/clients-venv, node-pg into ~/.cache/eddy-tools/node-pg), starts
`eddy serve` ($EDDY_BIN, default ~/.cache/eddy-target/debug/eddy) on free ports with a
temporary state dir, submits the example pipeline with `psql -f`, waits for its rows, runs
every client program in this folder and prints their `PASS|FAIL <client> <check>` lines.

Exit 0 when every check listed in expected_pass.txt passed; a check that passes without
being listed is printed as NEW PASS (add it to the list). The server's log (statements as
received, EDDY_LOG=warn,datafusion_postgres=debug,eddy_server=debug) is kept at
$EDDY_CLIENTS_LOG, default ~/.cache/eddy-tools/run/pg-clients-server.log: the statement a
failing check sent is the last one received before its failure.

Usage: python3 tests/clients/run_clients.py [CLIENT...]   (default: every client)
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "eddy-tools"
VENV = CACHE / "clients-venv"
NODE_DIR = CACHE / "node-pg"
JDBC_JAR = Path("/usr/share/java/postgresql.jar")
EDDY_BIN = os.environ.get("EDDY_BIN", str(Path.home() / ".cache" / "eddy-target" / "debug" / "eddy"))
SERVER_LOG = Path(os.environ.get("EDDY_CLIENTS_LOG", str(CACHE / "run" / "pg-clients-server.log")))

# Versions the expected list was made with.
PIP_PACKAGES = ["psycopg[binary]==3.3.9", "asyncpg==0.32.0", "SQLAlchemy==2.1.9"]
PIP_CHECK = (
    "import psycopg2, psycopg, asyncpg, sqlalchemy; "
    "assert (psycopg.__version__, asyncpg.__version__, sqlalchemy.__version__) == ('3.3.9', '0.32.0', '2.1.9')"
)
NPM_PACKAGE = "pg@8.23.1"

PIPELINE = """\
CREATE TABLE bids (id BIGINT, bidder AS CAST(id % 4 AS INT), price AS CAST(id * 10 AS DOUBLE), ts AS TO_TIMESTAMP_LTZ(id * 1000, 3), WATERMARK FOR ts AS ts) WITH ('connector' = 'datagen', 'number-of-rows' = '1000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000');
CREATE TABLE all_bids (id BIGINT, bidder INT, price DOUBLE, ts TIMESTAMP(3));
INSERT INTO all_bids SELECT id, bidder, price, CAST(ts AS TIMESTAMP(3)) FROM bids;
CREATE TABLE per_bidder (bidder INT, window_start TIMESTAMP(3), bids BIGINT, PRIMARY KEY (bidder) NOT ENFORCED);
INSERT INTO per_bidder SELECT bidder, window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '100' SECOND)) GROUP BY bidder, window_start, window_end;
"""


def log(msg):
    print(f"run_clients: {msg}", flush=True)


# ---------------------------------------------------------------- installs


def run_quiet(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        log(f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return out.returncode == 0


def apt_install_missing():
    """Debian packages, each only if what it provides is missing."""
    wanted = {
        "postgresql-client": shutil.which("psql") is not None,
        "python3-psycopg2": subprocess.run(["/usr/bin/python3", "-c", "import psycopg2"], capture_output=True).returncode == 0,
        "python3-venv": subprocess.run(["/usr/bin/python3", "-c", "import ensurepip, venv"], capture_output=True).returncode == 0,
        "libpostgresql-jdbc-java": JDBC_JAR.exists(),
        "openjdk-17-jdk-headless": shutil.which("javac") is not None,
        "nodejs": shutil.which("node") is not None,
        "npm": shutil.which("npm") is not None,
    }
    missing = [p for p, present in wanted.items() if not present]
    if not missing:
        return
    log(f"apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_quiet(["apt-get", "update", "-q"], env=env)
    run_quiet(["apt-get", "install", "-y", "-q", *missing], env=env)


def venv_python():
    """A venv over Debian's python3 (so python3-psycopg2 is seen) with the PyPI clients."""
    py = VENV / "bin" / "python"
    if not py.exists():
        log(f"creating {VENV}")
        run_quiet(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(VENV)])
    if subprocess.run([str(py), "-c", PIP_CHECK], capture_output=True).returncode != 0:
        log(f"pip install {' '.join(PIP_PACKAGES)}")
        run_quiet([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PIP_PACKAGES])
    return py


def node_modules():
    pkg = NODE_DIR / "node_modules" / "pg" / "package.json"
    want = NPM_PACKAGE.split("@")[1]
    if not pkg.exists() or f'"version": "{want}"' not in pkg.read_text():
        log(f"npm install {NPM_PACKAGE} into {NODE_DIR}")
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        run_quiet(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(NODE_DIR), NPM_PACKAGE])
    return NODE_DIR / "node_modules"


# ---------------------------------------------------------------- the server


def psql(port, *args, timeout=60):
    cmd = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "eddy", "-d", "eddy", "-X", "-v", "ON_ERROR_STOP=1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, PGCONNECT_TIMEOUT="10"))


class Server:
    def __init__(self, workdir):
        SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(SERVER_LOG, "w")
        env = dict(os.environ, EDDY_LOG="warn,datafusion_postgres=debug,eddy_server=debug", NO_COLOR="1")
        # Port 0: the server binds a free port and prints which, so no port is picked here
        # and bound there later (another process could take it in between).
        self.proc = subprocess.Popen(
            [EDDY_BIN, "serve", "--state-dir", str(workdir / "state"), "--pg-listen", "127.0.0.1:0", "--http-listen", "off"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.time() + 60
        announced = re.compile(r"Postgres protocol on 127\.0\.0\.1:(\d+)")
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"eddy serve exited with {self.proc.returncode}; log: {SERVER_LOG}")
            found = announced.search(SERVER_LOG.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
                break
            if time.time() > deadline:
                raise SystemExit(f"eddy serve did not say where it listens; log: {SERVER_LOG}")
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def load_pipeline(port, workdir):
    sql = workdir / "pipeline.sql"
    sql.write_text(PIPELINE)
    out = psql(port, "-f", str(sql))
    if out.returncode != 0:
        raise SystemExit(f"psql -f pipeline.sql failed:\n{out.stdout}\n{out.stderr}")
    want = {"SELECT count(*), sum(id) FROM all_bids": "1000|500500", "SELECT count(*) FROM per_bidder": "4"}
    deadline = time.time() + 60
    for q, expected in want.items():
        while True:
            out = psql(port, "-A", "-t", "-c", q)
            got = out.stdout.strip()
            if got == expected:
                break
            if time.time() > deadline:
                raise SystemExit(f"{q}: still {got!r} {out.stderr.strip()}, waiting for {expected!r}")
            time.sleep(0.2)


# ---------------------------------------------------------------- the clients


def programs(py, node_path, workdir):
    """(client, command, env) for each client program, the Java one compiled now."""
    progs = [
        ("psycopg2", [str(py), "psycopg2_client.py"], {}),
        ("psycopg3", [str(py), "psycopg3_client.py"], {}),
        ("asyncpg", [str(py), "asyncpg_client.py"], {}),
        ("sqlalchemy", [str(py), "sqlalchemy_client.py"], {}),
        ("grafana", [str(py), "grafana_client.py"], {}),
        ("npgsql", [str(py), "npgsql_client.py"], {}),
        ("psql", [str(py), "psql_client.py"], {}),
    ]
    classes = workdir / "java"
    classes.mkdir()
    javac = subprocess.run(
        ["javac", "-cp", str(JDBC_JAR), "-d", str(classes), str(HERE / "JdbcClient.java")], capture_output=True, text=True
    )
    if javac.returncode == 0:
        progs.append(("pgjdbc", ["java", "-cp", f"{JDBC_JAR}:{classes}", "JdbcClient"], {}))
    else:
        progs.append(("pgjdbc", None, "javac failed: " + " ".join(javac.stderr.split())[:500]))
    progs.append(("node-pg", ["node", "node_pg.js"], {"NODE_PATH": str(node_path)}))
    return progs


def run_program(client, cmd, extra_env, port):
    if cmd is None:
        return [f"FAIL {client} program: {extra_env}"]
    env = dict(os.environ, EDDY_PG_HOST="127.0.0.1", EDDY_PG_PORT=str(port), TZ="UTC", PYTHONDONTWRITEBYTECODE="1", **extra_env)
    try:
        out = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired as e:
        lines = (e.stdout or b"").decode(errors="replace").splitlines() if isinstance(e.stdout, bytes) else (e.stdout or "").splitlines()
        return [l for l in lines if l.startswith(("PASS ", "FAIL "))] + [f"FAIL {client} program: timed out after 120 s"]
    except OSError as e:
        return [f"FAIL {client} program: {e}"]
    lines = [l for l in out.stdout.splitlines() if l.startswith(("PASS ", "FAIL "))]
    if out.returncode != 0 or not lines:
        err = " ".join((out.stderr or out.stdout).split())[-500:]
        lines.append(f"FAIL {client} program: exit {out.returncode}: {err}")
    return lines


def expected_passes():
    path = HERE / "expected_pass.txt"
    want = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            want.append(" ".join(line.split()))
    return want


def main():
    only = set(sys.argv[1:])
    started = time.time()
    if not Path(EDDY_BIN).exists():
        raise SystemExit(f"no eddy binary at {EDDY_BIN} (set EDDY_BIN)")
    apt_install_missing()
    py = venv_python()
    node_path = node_modules()
    log(f"installs checked in {time.time() - started:.1f} s")

    results = {}  # "client check" -> "PASS" | "FAIL: ..."
    with tempfile.TemporaryDirectory(prefix="eddy-clients-") as tmp:
        workdir = Path(tmp)
        server = Server(workdir)
        try:
            load_pipeline(server.port, workdir)
            log(f"server on 127.0.0.1:{server.port}, pipeline loaded after {time.time() - started:.1f} s")
            for client, cmd, extra in programs(py, node_path, workdir):
                if only and client not in only:
                    continue
                t0 = time.time()
                for line in run_program(client, cmd, extra, server.port):
                    verdict, rest = line.split(" ", 1)
                    key, _, err = rest.partition(": ")
                    results[key.strip()] = "PASS" if verdict == "PASS" else f"FAIL: {err}"
                    print(line, flush=True)
                log(f"{client} took {time.time() - t0:.1f} s")
        finally:
            server.stop()

    want = [w for w in expected_passes() if not only or w.split(" ")[0] in only]
    passed = [k for k, v in results.items() if v == "PASS"]
    failed = [k for k, v in results.items() if v != "PASS"]
    new = [k for k in passed if k not in want]
    regressed = [w for w in want if results.get(w) != "PASS"]
    for k in new:
        print(f"NEW PASS {k}  (add it to tests/clients/expected_pass.txt)")
    for w in regressed:
        print(f"REGRESSION {w}: {results.get(w, 'not run')}")
    log(f"server log: {SERVER_LOG}; {time.time() - started:.1f} s in all")
    print(f"clients: {len(passed)} passed, {len(failed)} failed", flush=True)
    sys.exit(1 if regressed else 0)


if __name__ == "__main__":
    main()
