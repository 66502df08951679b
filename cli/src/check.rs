//! `eddy check FILE.sql`: parse, plan and validate connector options; print the operator
//! graph; run nothing.

use std::path::Path;

use crate::script::{prepare, ScriptError};
use crate::EXIT_USAGE;

/// Check a file; returns the exit code.
pub fn check_file(path: &Path) -> u8 {
    let script = match prepare(path, false) {
        Ok(s) => s,
        Err(ScriptError::Io(m)) | Err(ScriptError::Sql(m)) => {
            eprint!("{m}");
            if !m.ends_with('\n') {
                eprintln!();
            }
            return EXIT_USAGE;
        }
    };
    if script.job.is_empty() {
        println!("{}: OK (no INSERT or SELECT to run)", script.name);
        return 0;
    }
    let plan = match script.session.plan_job(&script.job) {
        Ok(p) => p,
        Err(e) => {
            eprint!("{}", e.render(&script.name, &script.text));
            return EXIT_USAGE;
        }
    };
    if let Err(e) = eddy_engine::job::check(&plan) {
        eprint!("{}", script.render_job_error(&e));
        return EXIT_USAGE;
    }
    print!("{}", eddy_sql::explain::render(&plan));
    println!(
        "{}: OK ({} statement{} in one job)",
        script.name,
        script.job.len(),
        if script.job.len() == 1 { "" } else { "s" }
    );
    0
}
