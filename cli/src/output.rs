//! Printing result rows (SHOW, DESCRIBE, SET) as a table, the way Flink's SQL client does
//! in tableau mode.

use eddy_sql::planner::ResultRows;

/// Print rows as a boxed table on stdout.
pub fn print_rows(rows: &ResultRows) {
    print!("{}", format_rows(rows));
}

/// The boxed table text.
pub fn format_rows(rows: &ResultRows) -> String {
    let mut widths: Vec<usize> = rows.header.iter().map(|h| h.chars().count()).collect();
    for r in &rows.rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = format!("+{}+\n", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
    let fmt_row = |cells: &[String]| -> String {
        let parts: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                format!(" {}{} ", c, " ".repeat(w - c.chars().count()))
            })
            .collect();
        format!("|{}|\n", parts.join("|"))
    };
    let mut out = String::new();
    out.push_str(&line);
    out.push_str(&fmt_row(&rows.header));
    out.push_str(&line);
    for r in &rows.rows {
        out.push_str(&fmt_row(r));
    }
    out.push_str(&line);
    out.push_str(&format!("{} row{} in set\n", rows.rows.len(), if rows.rows.len() == 1 { "" } else { "s" }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_table() {
        let r = ResultRows { header: vec!["table name".into()], rows: vec![vec!["bids".into()]] };
        assert_eq!(
            format_rows(&r),
            "+------------+\n| table name |\n+------------+\n| bids       |\n+------------+\n1 row in set\n"
        );
    }
}
