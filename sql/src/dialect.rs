//! The Flink SQL dialect for sqlparser: what the tokenizer and expression parser accept.
//!
//! Flink (Calcite with `Lex.JAVA`) quotes identifiers with backticks, keeps identifier case
//! as written (case-sensitive names), has no backslash escapes in string literals, supports
//! `FILTER (WHERE ..)` on aggregates and `name => value` named arguments for table functions.

use sqlparser::dialect::Dialect;

/// sqlparser dialect for Flink SQL.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlinkDialect;

impl Dialect for FlinkDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }

    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('`')
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_' || ch == '$'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '$'
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_named_fn_args_with_rarrow_operator(&self) -> bool {
        true
    }

    fn supports_window_clause_named_window_reference(&self) -> bool {
        true
    }

    fn supports_group_by_expr(&self) -> bool {
        true
    }

    fn supports_unicode_string_literal(&self) -> bool {
        true
    }

    fn supports_string_literal_concatenation(&self) -> bool {
        true
    }

    fn require_interval_qualifier(&self) -> bool {
        // Flink always writes INTERVAL '5' SECOND; requiring the unit keeps
        // `INTERVAL '5' SECOND AND ...` unambiguous.
        true
    }
}
