//! SQL errors that name their place: `file.sql:LINE:COL`, the offending line, a caret, and
//! a hint when the construct is known but not supported yet.

use std::fmt;

use thiserror::Error;

/// A 1-based line/column position in the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    /// 1-based line.
    pub line: u64,
    /// 1-based column (in characters).
    pub column: u64,
}

impl Location {
    /// A location; 0 means unknown.
    pub fn new(line: u64, column: u64) -> Self {
        Self { line, column }
    }

    /// From a sqlparser location (both are 1-based; 0 = empty span).
    pub fn from_sqlparser(l: sqlparser::tokenizer::Location) -> Self {
        Self { line: l.line, column: l.column }
    }

    /// Whether this location points somewhere.
    /// Where this 1-based line:column (columns count characters) is in `text`, in bytes;
    /// past the end for a line the text does not have, 0 for an unknown location.
    pub fn byte_offset(&self, text: &str) -> usize {
        if self.line == 0 {
            return 0;
        }
        let mut offset = 0;
        for (n, l) in text.split_inclusive('\n').enumerate() {
            if n as u64 + 1 == self.line {
                let col = self.column.saturating_sub(1) as usize;
                return offset + l.char_indices().nth(col).map_or(l.len(), |(b, _)| b);
            }
            offset += l.len();
        }
        text.len()
    }

    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Who is at fault, in DataFusion's sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlErrorKind {
    /// The text does not parse.
    Syntax,
    /// The statement parses but is wrong (unknown table, type mismatch...).
    Plan,
    /// A construct Flink accepts that Eddy does not support yet.
    Unsupported,
    /// A bug in Eddy.
    Internal,
}

/// An error in a SQL statement, with its place.
#[derive(Debug, Clone, Error)]
pub struct SqlError {
    /// Who is at fault.
    pub kind: SqlErrorKind,
    /// What is wrong.
    pub message: String,
    /// Where (unknown = 0:0).
    pub location: Location,
    /// What to write instead, when we know.
    pub hint: Option<String>,
}

impl SqlError {
    /// A syntax error at `location`.
    pub fn syntax(location: Location, message: impl Into<String>) -> Self {
        Self { kind: SqlErrorKind::Syntax, message: message.into(), location, hint: None }
    }

    /// A planning error at `location`.
    pub fn plan(location: Location, message: impl Into<String>) -> Self {
        Self { kind: SqlErrorKind::Plan, message: message.into(), location, hint: None }
    }

    /// A known-but-unsupported construct at `location`.
    pub fn unsupported(location: Location, message: impl Into<String>) -> Self {
        Self { kind: SqlErrorKind::Unsupported, message: message.into(), location, hint: None }
    }

    /// An internal error (a bug).
    pub fn internal(message: impl Into<String>) -> Self {
        Self { kind: SqlErrorKind::Internal, message: message.into(), location: Location::default(), hint: None }
    }

    /// Attach a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Set the location if none is known yet (errors raised deep inside planning get the
    /// statement's start as a fallback).
    pub fn or_at(mut self, location: Location) -> Self {
        if !self.location.is_known() {
            self.location = location;
        }
        self
    }

    /// Render for a terminal: `file:LINE:COL: error: message`, the line, a caret, the hint.
    pub fn render(&self, file_name: &str, source: &str) -> String {
        let mut out = String::new();
        let what = match self.kind {
            SqlErrorKind::Syntax => "syntax error",
            SqlErrorKind::Plan => "error",
            SqlErrorKind::Unsupported => "not supported",
            SqlErrorKind::Internal => "internal error",
        };
        if self.location.is_known() {
            out.push_str(&format!("{file_name}:{}: {what}: {}\n", self.location, self.message));
            if let Some(text) = source.lines().nth((self.location.line - 1) as usize) {
                let gutter = format!("{} | ", self.location.line);
                out.push_str(&gutter);
                out.push_str(text);
                out.push('\n');
                // The caret goes under the column; tabs are kept so it lines up.
                let pad: String = text
                    .chars()
                    .take(self.location.column.saturating_sub(1) as usize)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                out.push_str(&" ".repeat(gutter.len()));
                out.push_str(&pad);
                out.push_str("^\n");
            }
        } else {
            out.push_str(&format!("{file_name}: {what}: {}\n", self.message));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_known() {
            write!(f, "{}: {}", self.location, self.message)?;
        } else {
            write!(f, "{}", self.message)?;
        }
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// Result of the SQL front end.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_line_and_caret() {
        let src = "SELECT a\nFROM tbl WHERE x\n";
        let e = SqlError::plan(Location::new(2, 6), "table 'tbl' not found").with_hint("CREATE TABLE it first");
        let r = e.render("q.sql", src);
        assert_eq!(
            r,
            "q.sql:2:6: error: table 'tbl' not found\n2 | FROM tbl WHERE x\n         ^\nhint: CREATE TABLE it first\n"
        );
    }
}
