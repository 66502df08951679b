//! The Flink SQL dialect for sqlparser: what the tokenizer and expression parser accept.
//!
//! Flink (Calcite with `Lex.JAVA`) quotes identifiers with backticks, keeps identifier case
//! as written (case-sensitive names), has no backslash escapes in string literals, supports
//! `FILTER (WHERE ..)` on aggregates and `name => value` named arguments for table functions.

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// Name of the function call that stands for a window table function's table argument
/// (`TABLE t [PARTITION BY k, ..]` → `TABLE(t, k, ..)`) in the AST.
pub const TABLE_ARGUMENT: &str = "TABLE";

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

    /// `t FOR SYSTEM_TIME AS OF o.ts` (temporal joins).
    fn supports_table_versioning(&self) -> bool {
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

    /// `TABLE t [PARTITION BY k1, k2]` is not an expression in standard SQL, but it is the
    /// first argument of Flink's window table functions (`TUMBLE(TABLE t, ..)`). It becomes
    /// the call `TABLE(t, k1, k2)` for the planner to pick up.
    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let is_table = matches!(&parser.peek_token_ref().token, Token::Word(w) if w.keyword == Keyword::TABLE);
        let then_name = matches!(&parser.peek_nth_token_ref(1).token, Token::Word(_));
        if !(is_table && then_name) {
            return None;
        }
        Some(parse_table_argument(parser))
    }

    fn require_interval_qualifier(&self) -> bool {
        // Flink always writes INTERVAL '5' SECOND; requiring the unit keeps
        // `INTERVAL '5' SECOND AND ...` unambiguous.
        true
    }
}

fn parse_table_argument(parser: &mut Parser) -> Result<Expr, ParserError> {
    parser.next_token(); // TABLE
    let name = parser.parse_object_name(false)?;
    let mut args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::CompoundIdentifier(
        name.0.iter().filter_map(|p| p.as_ident().cloned()).collect(),
    )))];
    if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        let parenthesized = parser.consume_token(&Token::LParen);
        loop {
            args.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(parser.parse_identifier()?))));
            // Without parentheses the key list ends where the next argument starts:
            // `PARTITION BY k, DESCRIPTOR(ts)` or `PARTITION BY k, TIMECOL => ..`.
            let next_is_key = matches!(parser.peek_token_ref().token, Token::Comma)
                && matches!(parser.peek_nth_token_ref(1).token, Token::Word(_))
                && (parenthesized || matches!(parser.peek_nth_token_ref(2).token, Token::Comma | Token::RParen));
            if !next_is_key {
                break;
            }
            parser.next_token();
        }
        if parenthesized {
            parser.expect_token(&Token::RParen)?;
        }
    }
    Ok(Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(TABLE_ARGUMENT)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList { duplicate_treatment: None, args, clauses: vec![] }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}
