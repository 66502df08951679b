//! The Flink SQL statement parser.
//!
//! sqlparser tokenizes the whole file (with line/column spans) and parses queries and
//! expressions; this module drives it statement by statement and parses the statements
//! sqlparser does not know in Flink's shape: `CREATE TABLE` with WATERMARK / METADATA /
//! DISTRIBUTED ([`create_table`]), Flink types ([`types`]), statement sets, `SET 'k' = 'v'`.
//! Nothing here panics on bad input: every failure is a [`SqlError`] with a line:col.

mod create_table;
mod types;

use std::sync::OnceLock;

use regex::Regex;
use sqlparser::ast::{Ident, ObjectName};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Word};

use crate::ast::{CreateTable, CreateView, DropObject, Insert, Located, Statement};
use crate::dialect::FlinkDialect;
use crate::error::{Location, Result, SqlError};

/// The text of statement `i` of `text` (as [`parse_sql`] returned them): from its start to
/// the next statement's, so with its `;` and what follows up to the next one.
pub fn statement_text<'a>(text: &'a str, statements: &[Located<Statement>], i: usize) -> &'a str {
    let start = statements[i].location.byte_offset(text);
    let end = statements.get(i + 1).map_or(text.len(), |n| n.location.byte_offset(text));
    text.get(start..end.max(start)).unwrap_or(text)
}

/// Parse every statement of a SQL file (or of one pgwire query string).
pub fn parse_sql(text: &str) -> Result<Vec<Located<Statement>>> {
    let dialect = FlinkDialect;
    let parser = Parser::new(&dialect).try_with_sql(text).map_err(from_parser_error)?;
    let mut p = FlinkParser { p: parser, pending_gt: 0 };
    let mut out = Vec::new();
    loop {
        while p.p.consume_token(&Token::SemiColon) {}
        if p.peek_is(&Token::EOF) {
            break;
        }
        let located = p.parse_statement()?;
        // BEGIN STATEMENT SET; ... END; spans several `;`-terminated pieces, so it is
        // parsed as one statement; anything else must end here.
        if !p.p.consume_token(&Token::SemiColon) && !p.peek_is(&Token::EOF) {
            let t = p.p.peek_token();
            return Err(SqlError::syntax(
                loc(&t),
                format!("unexpected {} after the end of the statement", describe_token(&t.token)),
            )
            .with_hint("statements are separated by ';'"));
        }
        out.push(located);
    }
    Ok(out)
}

/// A sqlparser `Parser` plus the state Flink's grammar needs.
pub(crate) struct FlinkParser<'a> {
    pub(crate) p: Parser<'a>,
    /// `>>` closes two nested `ARRAY<ROW<..>>` brackets; the second `>` is pending here.
    pub(crate) pending_gt: usize,
}

impl<'a> FlinkParser<'a> {
    fn parse_statement(&mut self) -> Result<Located<Statement>> {
        let start = self.p.peek_token();
        let location = loc(&start);
        let node = match &start.token {
            Token::Word(w) => match upper(w).as_str() {
                "CREATE" => self.parse_create()?,
                "INSERT" => Statement::Insert(Box::new(self.parse_insert()?.node)),
                "SELECT" | "WITH" | "VALUES" => Statement::Query(self.query()?),
                "EXECUTE" => self.parse_execute_statement_set()?,
                "BEGIN" => self.parse_begin_statement_set()?,
                "SET" => self.parse_set()?,
                "RESET" => self.parse_reset()?,
                "SHOW" => self.parse_show()?,
                "DESCRIBE" | "DESC" => {
                    self.p.next_token();
                    Statement::Describe { name: self.object_name()? }
                }
                "EXPLAIN" => self.parse_explain()?,
                "DROP" => self.parse_drop()?,
                "USE" | "ALTER" | "LOAD" | "UNLOAD" | "ANALYZE" | "CALL" | "TRUNCATE" | "DELETE" | "UPDATE" | "ADD"
                | "REMOVE" => {
                    return Err(SqlError::unsupported(
                        location,
                        format!("'{}' statements are not supported yet", upper(w)),
                    )
                    .with_hint(
                        "Eddy runs CREATE TABLE/VIEW, INSERT, SELECT, SET/RESET, SHOW, DESCRIBE, EXPLAIN and DROP",
                    ))
                }
                _ => return Err(self.expected_statement(&start)),
            },
            Token::LParen => Statement::Query(self.query()?),
            _ => return Err(self.expected_statement(&start)),
        };
        Ok(Located { node, location })
    }

    fn expected_statement(&self, t: &TokenWithSpan) -> SqlError {
        let mut e = SqlError::syntax(loc(t), format!("expected a statement, found {}", describe_token(&t.token)));
        if let Token::Word(w) = &t.token {
            if let Some(s) = did_you_mean(&upper(w)) {
                e = e.with_hint(format!("did you mean {s}?"));
            } else {
                e = e.with_hint("a statement starts with CREATE, INSERT, SELECT, SET, EXECUTE STATEMENT SET, ...");
            }
        }
        e
    }

    fn parse_create(&mut self) -> Result<Statement> {
        self.expect_word("CREATE")?;
        let temporary = self.parse_word("TEMPORARY");
        if self.parse_word("SYSTEM") {
            // CREATE TEMPORARY SYSTEM FUNCTION
            return Err(self.unsupported_here("CREATE SYSTEM FUNCTION (user-defined functions)"));
        }
        let t = self.p.peek_token();
        match peek_upper(&t).as_deref() {
            Some("TABLE") => Ok(Statement::CreateTable(Box::new(self.parse_create_table(temporary)?))),
            Some("VIEW") => {
                self.p.next_token();
                Ok(Statement::CreateView(Box::new(self.parse_create_view(temporary)?)))
            }
            Some("MATERIALIZED") => {
                self.p.next_token();
                Ok(Statement::CreateTable(Box::new(self.parse_materialized_view(temporary)?)))
            }
            Some("FUNCTION") => Err(self.unsupported_here("CREATE FUNCTION (user-defined functions)")),
            Some("CATALOG") | Some("DATABASE") => Err(SqlError::unsupported(
                loc(&t),
                format!(
                    "CREATE {} is not supported: Eddy has one built-in catalog and database",
                    peek_upper(&t).unwrap_or_default()
                ),
            )),
            _ => Err(SqlError::syntax(
                loc(&t),
                format!("expected TABLE or VIEW after CREATE, found {}", describe_token(&t.token)),
            )),
        }
    }

    /// `CREATE MATERIALIZED VIEW [IF NOT EXISTS] v [WITH (...)] AS query` (RisingWave's
    /// form): a result table kept by Eddy plus the job that keeps it up to date — the same
    /// as `CREATE TABLE v [WITH (...)] AS query` with no connector.
    fn parse_materialized_view(&mut self, temporary: bool) -> Result<CreateTable> {
        self.expect_word("VIEW")?;
        let if_not_exists = self.parse_words(&["IF", "NOT", "EXISTS"]);
        let name_location = loc(&self.p.peek_token());
        let name = self.object_name()?;
        let options = if self.parse_word("WITH") { self.parse_options()? } else { Vec::new() };
        if let Some((k, _)) = options.iter().find(|(k, _)| k == "connector") {
            return Err(SqlError::plan(
                name_location,
                format!("a materialized view is kept by Eddy; option '{k}' does not apply"),
            )
            .with_hint("use CREATE TABLE ... WITH ('connector' = ...) AS SELECT to write elsewhere"));
        }
        self.expect_word("AS")?;
        let query = self.query()?;
        Ok(CreateTable {
            options,
            as_query: Some(query),
            ..CreateTable::named(name, name_location, temporary, if_not_exists)
        })
    }

    fn parse_create_view(&mut self, temporary: bool) -> Result<CreateView> {
        let if_not_exists = self.parse_words(&["IF", "NOT", "EXISTS"]);
        let name = self.object_name()?;
        let mut columns = Vec::new();
        if self.p.consume_token(&Token::LParen) {
            loop {
                columns.push(self.identifier()?.value);
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect_token(&Token::RParen)?;
        }
        let comment = if self.parse_word("COMMENT") { Some(self.string_literal()?) } else { None };
        self.expect_word("AS")?;
        let query = self.query()?;
        Ok(CreateView { name, temporary, if_not_exists, columns, query, comment })
    }

    fn parse_insert(&mut self) -> Result<Located<Insert>> {
        let location = loc(&self.p.peek_token());
        self.expect_word("INSERT")?;
        let overwrite = if self.parse_word("OVERWRITE") {
            true
        } else {
            self.expect_word("INTO")?;
            false
        };
        self.parse_word("TABLE");
        let table_location = loc(&self.p.peek_token());
        let table = self.object_name()?;
        if self.peek_word("PARTITION") {
            return Err(self.unsupported_here("INSERT with a static PARTITION clause"));
        }
        let mut columns = Vec::new();
        // `(` starts either a column list or a parenthesised query.
        if self.peek_is(&Token::LParen) && !self.nth_is_query_start(1) {
            self.p.next_token();
            loop {
                columns.push(self.identifier()?.value);
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect_token(&Token::RParen)?;
        }
        let query = self.query()?;
        Ok(Located { node: Insert { table, table_location, overwrite, columns, query }, location })
    }

    fn nth_is_query_start(&self, n: usize) -> bool {
        matches!(peek_upper(&self.p.peek_nth_token(n)).as_deref(), Some("SELECT" | "WITH" | "VALUES"))
    }

    /// `EXECUTE STATEMENT SET BEGIN insert; ... END`
    fn parse_execute_statement_set(&mut self) -> Result<Statement> {
        self.expect_word("EXECUTE")?;
        if self.peek_word("INSERT") {
            // Flink also accepts `EXECUTE INSERT INTO ...`.
            return Ok(Statement::Insert(Box::new(self.parse_insert()?.node)));
        }
        if self.peek_word("SELECT") {
            return Ok(Statement::Query(self.query()?));
        }
        self.expect_word("STATEMENT")?;
        self.expect_word("SET")?;
        self.expect_word("BEGIN")?;
        Ok(Statement::StatementSet(self.statement_set_body()?))
    }

    /// `BEGIN STATEMENT SET; insert; ... END`
    fn parse_begin_statement_set(&mut self) -> Result<Statement> {
        self.expect_word("BEGIN")?;
        self.expect_word("STATEMENT")?;
        self.expect_word("SET")?;
        self.expect_token(&Token::SemiColon)?;
        Ok(Statement::StatementSet(self.statement_set_body()?))
    }

    fn statement_set_body(&mut self) -> Result<Vec<Located<Insert>>> {
        let mut inserts = Vec::new();
        loop {
            while self.p.consume_token(&Token::SemiColon) {}
            if self.parse_word("END") {
                break;
            }
            let t = self.p.peek_token();
            if t.token == Token::EOF {
                return Err(SqlError::syntax(loc(&t), "statement set is not closed").with_hint("end it with END;"));
            }
            if !self.peek_word("INSERT") {
                return Err(SqlError::syntax(
                    loc(&t),
                    format!("expected INSERT INTO or END in a statement set, found {}", describe_token(&t.token)),
                )
                .with_hint("a statement set holds only INSERT statements"));
            }
            inserts.push(self.parse_insert()?);
            if !self.peek_word("END") {
                self.expect_token(&Token::SemiColon)?;
            }
        }
        if inserts.is_empty() {
            return Err(SqlError::syntax(Location::default(), "a statement set needs at least one INSERT"));
        }
        Ok(inserts)
    }

    /// `SET`, `SET 'k' = 'v'`, `SET k = v` (the unquoted form of older Flink versions).
    fn parse_set(&mut self) -> Result<Statement> {
        self.expect_word("SET")?;
        if self.at_statement_end() {
            return Ok(Statement::Set { key: None, value: None });
        }
        let key = self.setting_text(true)?;
        self.expect_token(&Token::Eq)?;
        let value = self.setting_text(false)?;
        Ok(Statement::Set { key: Some(key), value: Some(value) })
    }

    fn parse_reset(&mut self) -> Result<Statement> {
        self.expect_word("RESET")?;
        if self.at_statement_end() {
            return Ok(Statement::Reset { key: None });
        }
        Ok(Statement::Reset { key: Some(self.setting_text(true)?) })
    }

    /// A setting key or value: a quoted string, or bare tokens up to `=` (keys) / `;`.
    fn setting_text(&mut self, is_key: bool) -> Result<String> {
        let t = self.p.peek_token();
        if let Token::SingleQuotedString(s) = &t.token {
            self.p.next_token();
            return Ok(s.clone());
        }
        let mut text = String::new();
        loop {
            let t = self.p.peek_token();
            match &t.token {
                Token::EOF | Token::SemiColon => break,
                Token::Eq if is_key => break,
                tok => {
                    text.push_str(&tok.to_string());
                    self.p.next_token();
                }
            }
        }
        if text.is_empty() {
            return Err(SqlError::syntax(
                loc(&t),
                format!("expected a {} after SET", if is_key { "key" } else { "value" }),
            )
            .with_hint("write SET 'key' = 'value'"));
        }
        Ok(text)
    }

    fn parse_show(&mut self) -> Result<Statement> {
        self.expect_word("SHOW")?;
        let t = self.p.next_token();
        match peek_upper(&t).as_deref() {
            Some("TABLES") => Ok(Statement::ShowTables),
            Some("VIEWS") => Ok(Statement::ShowViews),
            Some("CREATE") => {
                let t2 = self.p.next_token();
                match peek_upper(&t2).as_deref() {
                    Some("TABLE") | Some("VIEW") => Ok(Statement::ShowCreate { name: self.object_name()? }),
                    _ => Err(SqlError::syntax(loc(&t2), "expected TABLE or VIEW after SHOW CREATE")),
                }
            }
            _ => Err(SqlError::unsupported(loc(&t), format!("SHOW {} is not supported yet", t.token))
                .with_hint("SHOW TABLES, SHOW VIEWS and SHOW CREATE TABLE are")),
        }
    }

    fn parse_explain(&mut self) -> Result<Statement> {
        self.expect_word("EXPLAIN")?;
        if self.parse_word("PLAN") {
            self.expect_word("FOR")?;
        }
        // Flink's explain details (ESTIMATED_COST, CHANGELOG_MODE, ...) are accepted; Eddy's
        // EXPLAIN always shows the operator graph with its changelog modes.
        loop {
            let t = self.p.peek_token();
            match peek_upper(&t).as_deref() {
                Some("ESTIMATED_COST" | "CHANGELOG_MODE" | "PLAN_ADVICE" | "JSON_EXECUTION_PLAN") => {
                    self.p.next_token();
                    let _ = self.p.consume_token(&Token::Comma);
                }
                _ => break,
            }
        }
        let inner = self.parse_statement()?;
        match &inner.node {
            Statement::Insert(_) | Statement::Query(_) | Statement::StatementSet(_) => {}
            _ => return Err(SqlError::syntax(inner.location, "EXPLAIN takes an INSERT, a SELECT or a statement set")),
        }
        Ok(Statement::Explain(Box::new(inner)))
    }

    fn parse_drop(&mut self) -> Result<Statement> {
        self.expect_word("DROP")?;
        self.parse_word("TEMPORARY");
        // A materialized view is a result table.
        let materialized = self.parse_word("MATERIALIZED");
        let t = self.p.next_token();
        let object = match peek_upper(&t).as_deref() {
            Some("TABLE") => DropObject::Table,
            Some("VIEW") if materialized => DropObject::Table,
            Some("VIEW") => DropObject::View,
            _ => {
                return Err(SqlError::unsupported(loc(&t), format!("DROP {} is not supported", t.token))
                    .with_hint("DROP TABLE and DROP VIEW are"))
            }
        };
        let if_exists = self.parse_words(&["IF", "EXISTS"]);
        Ok(Statement::Drop { object, name: self.object_name()?, if_exists })
    }

    // ---- small helpers over the token stream ----

    pub(crate) fn query(&mut self) -> Result<Box<sqlparser::ast::Query>> {
        self.p.parse_query().map_err(from_parser_error)
    }

    pub(crate) fn expr(&mut self) -> Result<sqlparser::ast::Expr> {
        self.p.parse_expr().map_err(from_parser_error)
    }

    pub(crate) fn object_name(&mut self) -> Result<ObjectName> {
        self.p.parse_object_name(false).map_err(from_parser_error)
    }

    pub(crate) fn identifier(&mut self) -> Result<Ident> {
        self.p.parse_identifier().map_err(from_parser_error)
    }

    pub(crate) fn string_literal(&mut self) -> Result<String> {
        self.p.parse_literal_string().map_err(from_parser_error)
    }

    pub(crate) fn uint_literal(&mut self) -> Result<u64> {
        self.p.parse_literal_uint().map_err(from_parser_error)
    }

    pub(crate) fn expect_token(&mut self, t: &Token) -> Result<()> {
        self.p.expect_token(t).map(|_| ()).map_err(from_parser_error)
    }

    pub(crate) fn peek_is(&self, t: &Token) -> bool {
        &self.p.peek_token_ref().token == t
    }

    pub(crate) fn at_statement_end(&self) -> bool {
        matches!(self.p.peek_token_ref().token, Token::EOF | Token::SemiColon)
    }

    /// Whether the next token is the (unquoted) word `w`.
    pub(crate) fn peek_word(&self, w: &str) -> bool {
        is_word(&self.p.peek_token_ref().token, w)
    }

    /// Consume the word `w` if it is next.
    pub(crate) fn parse_word(&mut self, w: &str) -> bool {
        if self.peek_word(w) {
            self.p.next_token();
            true
        } else {
            false
        }
    }

    /// Consume the words `ws` if they all come next (else consume nothing).
    pub(crate) fn parse_words(&mut self, ws: &[&str]) -> bool {
        if ws.iter().enumerate().all(|(i, w)| is_word(&self.p.peek_nth_token(i).token, w)) {
            for _ in ws {
                self.p.next_token();
            }
            true
        } else {
            false
        }
    }

    pub(crate) fn expect_word(&mut self, w: &str) -> Result<()> {
        if self.parse_word(w) {
            Ok(())
        } else {
            let t = self.p.peek_token();
            Err(SqlError::syntax(loc(&t), format!("expected {w}, found {}", describe_token(&t.token))))
        }
    }

    pub(crate) fn unsupported_here(&self, what: &str) -> SqlError {
        SqlError::unsupported(loc(&self.p.peek_token()), format!("{what} is not supported yet"))
    }
}

pub(crate) fn is_word(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w))
}

fn upper(w: &Word) -> String {
    if w.quote_style.is_some() {
        String::new()
    } else {
        w.value.to_ascii_uppercase()
    }
}

pub(crate) fn peek_upper(t: &TokenWithSpan) -> Option<String> {
    match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

pub(crate) fn loc(t: &TokenWithSpan) -> Location {
    Location::from_sqlparser(t.span.start)
}

pub(crate) fn describe_token(t: &Token) -> String {
    match t {
        Token::EOF => "end of input".to_string(),
        Token::Word(w) if w.quote_style.is_some() => format!("identifier {w}"),
        Token::Word(w) => format!("'{}'", w.value),
        Token::SingleQuotedString(s) => format!("string '{s}'"),
        other => format!("'{other}'"),
    }
}

/// Turn sqlparser's message ("... at Line: 3, Column: 5") into a located error.
pub(crate) fn from_parser_error(e: ParserError) -> SqlError {
    static AT: OnceLock<Option<Regex>> = OnceLock::new();
    let text = match &e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.clone(),
        ParserError::RecursionLimitExceeded => "the statement is nested too deeply".to_string(),
    };
    let re = AT.get_or_init(|| Regex::new(r"\s*at Line: (\d+), Column: (\d+)").ok());
    let (message, location) = match re.as_ref().and_then(|re| re.captures(&text)) {
        Some(c) => {
            let line = c[1].parse().unwrap_or(0);
            let col = c[2].parse().unwrap_or(0);
            let whole = c.get(0).map(|m| m.range()).unwrap_or(0..0);
            let mut m = text.clone();
            m.replace_range(whole, "");
            (m, Location::new(line, col))
        }
        None => (text, Location::default()),
    };
    let message = message.replace("Expected: ", "expected ").replace(", found: ", ", found ");
    SqlError::syntax(location, message)
}

/// A likely statement keyword for a misspelled one.
fn did_you_mean(word: &str) -> Option<&'static str> {
    const KEYWORDS: [&str; 12] = [
        "CREATE", "INSERT", "SELECT", "WITH", "VALUES", "EXECUTE", "BEGIN", "SET", "RESET", "SHOW", "DESCRIBE",
        "EXPLAIN",
    ];
    KEYWORDS.iter().copied().find(|k| edit_distance(k, word) <= 2 && word.len() >= 3)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
