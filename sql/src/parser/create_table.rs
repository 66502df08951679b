//! `CREATE TABLE` in Flink's grammar:
//!
//! ```text
//! CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name
//!   [ ( column | computed column | metadata column | WATERMARK | PRIMARY KEY , ... ) ]
//!   [COMMENT 'c']
//!   [DISTRIBUTED BY [HASH|RANGE] (cols) [INTO n BUCKETS] | DISTRIBUTED INTO n BUCKETS]
//!   [PARTITIONED BY (cols)]          -- DISTRIBUTED may also come after PARTITIONED BY
//!   [WITH ('k' = 'v', ...)]
//!   [AS query]
//! ```

use sqlparser::tokenizer::Token;

use super::{describe_token, loc, peek_upper, FlinkParser};
use crate::ast::{ColumnDef, ColumnKind, CreateTable, Distribution, DistributionKind, WatermarkDef};
use crate::error::{Result, SqlError};

const NOT_ENFORCED_HINT: &str = "Flink supports only the NOT ENFORCED mode: write PRIMARY KEY (..) NOT ENFORCED";

impl<'a> FlinkParser<'a> {
    pub(crate) fn parse_create_table(&mut self, temporary: bool) -> Result<CreateTable> {
        self.expect_word("TABLE")?;
        let if_not_exists = self.parse_words(&["IF", "NOT", "EXISTS"]);
        let name_location = loc(&self.p.peek_token());
        let name = self.object_name()?;
        let mut table = CreateTable::named(name, name_location, temporary, if_not_exists);
        if self.p.consume_token(&Token::LParen) {
            loop {
                self.parse_table_element(&mut table)?;
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect_token(&Token::RParen)?;
        }
        loop {
            if self.parse_word("COMMENT") {
                table.comment = Some(self.string_literal()?);
            } else if self.peek_word("DISTRIBUTED") {
                let t = self.p.peek_token();
                if table.distribution.is_some() {
                    return Err(SqlError::syntax(loc(&t), "DISTRIBUTED given twice"));
                }
                table.distribution = Some(self.parse_distribution()?);
            } else if self.parse_words(&["PARTITIONED", "BY"]) {
                table.partitioned_by = self.column_name_list()?;
            } else if self.parse_word("WITH") {
                table.options = self.parse_options()?;
            } else if self.peek_word("LIKE") {
                return Err(self
                    .unsupported_here("CREATE TABLE ... LIKE")
                    .with_hint("repeat the columns and options of the other table"));
            } else if self.parse_word("AS") {
                table.as_query = Some(self.query()?);
                break;
            } else {
                break;
            }
        }
        Ok(table)
    }

    fn parse_table_element(&mut self, table: &mut CreateTable) -> Result<()> {
        let t = self.p.peek_token();
        if self.parse_word("WATERMARK") {
            self.expect_word("FOR")?;
            let location = loc(&self.p.peek_token());
            let column = self.identifier()?.value;
            self.expect_word("AS")?;
            let expr = self.expr()?;
            if table.watermark.is_some() {
                return Err(SqlError::plan(loc(&t), "a table can have only one WATERMARK"));
            }
            table.watermark = Some(WatermarkDef { column, location, expr });
            return Ok(());
        }
        if self.peek_word("CONSTRAINT") || self.peek_word("PRIMARY") {
            if self.parse_word("CONSTRAINT") {
                self.identifier()?;
            }
            self.expect_word("PRIMARY")?;
            self.expect_word("KEY")?;
            let cols = self.column_name_list()?;
            self.expect_not_enforced()?;
            if table.primary_key.is_some() {
                return Err(SqlError::plan(loc(&t), "a table can have only one PRIMARY KEY"));
            }
            table.primary_key = Some(cols);
            return Ok(());
        }
        let location = loc(&t);
        let name = self.identifier()?.value;
        if self.parse_word("AS") {
            let expr = self.expr()?;
            let comment = if self.parse_word("COMMENT") { Some(self.string_literal()?) } else { None };
            table.columns.push(ColumnDef { name, location, kind: ColumnKind::Computed(Box::new(expr)), comment });
            return Ok(());
        }
        let data_type = self.parse_flink_type()?;
        let mut kind = ColumnKind::Physical(data_type.clone());
        let mut comment = None;
        loop {
            let t = self.p.peek_token();
            if self.parse_word("METADATA") {
                let key = if self.parse_word("FROM") { Some(self.string_literal()?) } else { None };
                let virtual_ = self.parse_word("VIRTUAL");
                kind = ColumnKind::Metadata { data_type: data_type.clone(), key, virtual_ };
            } else if self.peek_word("CONSTRAINT") || self.peek_word("PRIMARY") {
                if self.parse_word("CONSTRAINT") {
                    self.identifier()?;
                }
                self.expect_word("PRIMARY")?;
                self.expect_word("KEY")?;
                self.expect_not_enforced()?;
                if table.primary_key.is_some() {
                    return Err(SqlError::plan(loc(&t), "a table can have only one PRIMARY KEY"));
                }
                table.primary_key = Some(vec![name.clone()]);
            } else if self.parse_word("COMMENT") {
                comment = Some(self.string_literal()?);
            } else {
                break;
            }
        }
        table.columns.push(ColumnDef { name, location, kind, comment });
        Ok(())
    }

    fn expect_not_enforced(&mut self) -> Result<()> {
        let t = self.p.peek_token();
        if self.parse_words(&["NOT", "ENFORCED"]) {
            return Ok(());
        }
        let msg = if self.peek_word("ENFORCED") {
            "Flink doesn't support ENFORCED mode for PRIMARY KEY constraint"
        } else {
            "PRIMARY KEY must be declared NOT ENFORCED"
        };
        Err(SqlError::plan(loc(&t), msg).with_hint(NOT_ENFORCED_HINT))
    }

    fn parse_distribution(&mut self) -> Result<Distribution> {
        self.expect_word("DISTRIBUTED")?;
        let mut d = Distribution { kind: None, columns: Vec::new(), buckets: None };
        if self.parse_word("BY") {
            if self.parse_word("HASH") {
                d.kind = Some(DistributionKind::Hash);
            } else if self.parse_word("RANGE") {
                d.kind = Some(DistributionKind::Range);
            }
            d.columns = self.column_name_list()?;
            if self.parse_word("INTO") {
                d.buckets = Some(self.buckets()?);
            }
        } else if self.parse_word("INTO") {
            d.buckets = Some(self.buckets()?);
        } else {
            let t = self.p.peek_token();
            return Err(SqlError::syntax(
                loc(&t),
                format!("expected BY or INTO after DISTRIBUTED, found {}", describe_token(&t.token)),
            ));
        }
        Ok(d)
    }

    fn buckets(&mut self) -> Result<u64> {
        let t = self.p.peek_token();
        let n = self.uint_literal()?;
        if n == 0 {
            return Err(SqlError::plan(loc(&t), "the number of buckets must be at least 1"));
        }
        self.expect_word("BUCKETS")?;
        Ok(n)
    }

    fn column_name_list(&mut self) -> Result<Vec<String>> {
        self.expect_token(&Token::LParen)?;
        let mut cols = Vec::new();
        loop {
            cols.push(self.identifier()?.value);
            if !self.p.consume_token(&Token::Comma) {
                break;
            }
        }
        self.expect_token(&Token::RParen)?;
        Ok(cols)
    }

    /// `('k' = 'v', ...)`
    pub(crate) fn parse_options(&mut self) -> Result<Vec<(String, String)>> {
        self.expect_token(&Token::LParen)?;
        let mut out: Vec<(String, String)> = Vec::new();
        if self.p.consume_token(&Token::RParen) {
            return Ok(out);
        }
        loop {
            let t = self.p.peek_token();
            let key = match &t.token {
                Token::SingleQuotedString(s) => {
                    self.p.next_token();
                    s.clone()
                }
                _ => {
                    return Err(SqlError::syntax(
                        loc(&t),
                        format!("expected an option key in quotes, found {}", describe_token(&t.token)),
                    )
                    .with_hint("options are written 'key' = 'value'"))
                }
            };
            self.expect_token(&Token::Eq)?;
            let vt = self.p.peek_token();
            let value = match &vt.token {
                Token::SingleQuotedString(s) => {
                    self.p.next_token();
                    s.clone()
                }
                _ => {
                    return Err(SqlError::syntax(
                        loc(&vt),
                        format!("expected the value of option '{key}' in quotes, found {}", describe_token(&vt.token)),
                    )
                    .with_hint(format!("write '{key}' = '...'")))
                }
            };
            if out.iter().any(|(k, _)| k == &key) {
                return Err(SqlError::plan(loc(&t), format!("option '{key}' is given twice")));
            }
            out.push((key, value));
            if !self.p.consume_token(&Token::Comma) {
                break;
            }
        }
        let t = self.p.peek_token();
        if !self.p.consume_token(&Token::RParen) {
            let hint = if peek_upper(&t).is_some() || matches!(t.token, Token::SingleQuotedString(_)) {
                "is a comma missing between two options?"
            } else {
                "close the option list with ')'"
            };
            return Err(SqlError::syntax(
                loc(&t),
                format!("expected ',' or ')' in WITH options, found {}", describe_token(&t.token)),
            )
            .with_hint(hint));
        }
        Ok(out)
    }
}
