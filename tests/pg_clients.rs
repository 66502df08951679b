//! Real Postgres clients against `eddy serve` (issue 5): psycopg2, psycopg 3, asyncpg,
//! SQLAlchemy, pgjdbc and node-pg, the statements Grafana and Npgsql (Power BI) send
//! replayed, psql's meta-commands. tests/clients/run_clients.py installs what is missing,
//! starts the server with the example pipeline, runs every client program and fails when a
//! check listed in tests/clients/expected_pass.txt does not pass.

use std::path::Path;
use std::process::Command;

#[test]
fn real_clients_pass_their_expected_checks() {
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/run_clients.py");
    let out = Command::new("python3")
        .arg(&runner)
        .env("EDDY_BIN", env!("CARGO_BIN_EXE_eddy"))
        .output()
        .expect("run python3 tests/clients/run_clients.py");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "run_clients.py: {} (REGRESSION lines above name the checks)", out.status);
}
