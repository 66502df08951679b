//! Parsing Flink type names: `STRING`, `DECIMAL(10, 2)`, `TIMESTAMP(3) WITH LOCAL TIME ZONE`,
//! `TIMESTAMP_LTZ(3)`, `ARRAY<ROW<a INT>>`, `INT ARRAY`, `MAP<STRING, BIGINT>`, `... NOT NULL`.

use sqlparser::tokenizer::Token;

use super::{describe_token, loc, peek_upper, FlinkParser};
use crate::error::{Result, SqlError};
use crate::types::{FlinkType, RowField, TypeKind, MAX_LENGTH};

impl<'a> FlinkParser<'a> {
    /// A type with its optional `NOT NULL` / `NULL` suffix.
    pub(crate) fn parse_flink_type(&mut self) -> Result<FlinkType> {
        let mut t = FlinkType::nullable(self.parse_type_kind()?);
        // Postfix collection syntax: `INT ARRAY`.
        loop {
            if self.parse_words(&["NOT", "NULL"]) {
                t.nullable = false;
            } else if self.parse_word("NULL") {
                t.nullable = true;
            } else if self.parse_word("ARRAY") {
                t = FlinkType::nullable(TypeKind::Array(Box::new(t)));
            } else if self.peek_word("MULTISET") {
                return Err(self.unsupported_here("the MULTISET type"));
            } else {
                return Ok(t);
            }
        }
    }

    fn parse_type_kind(&mut self) -> Result<TypeKind> {
        let t = self.p.next_token();
        let Some(name) = peek_upper(&t) else {
            return Err(SqlError::syntax(loc(&t), format!("expected a data type, found {}", describe_token(&t.token))));
        };
        let kind = match name.as_str() {
            "STRING" => TypeKind::Varchar(MAX_LENGTH),
            "VARCHAR" => TypeKind::Varchar(self.length(1)?),
            "CHAR" | "CHARACTER" => {
                if self.parse_word("VARYING") {
                    TypeKind::Varchar(self.length(1)?)
                } else {
                    TypeKind::Char(self.length(1)?)
                }
            }
            "BOOLEAN" => TypeKind::Boolean,
            "TINYINT" => TypeKind::TinyInt,
            "SMALLINT" => TypeKind::SmallInt,
            "INT" | "INTEGER" => TypeKind::Int,
            "BIGINT" => TypeKind::BigInt,
            "FLOAT" | "REAL" => TypeKind::Float,
            "DOUBLE" => {
                self.parse_word("PRECISION");
                TypeKind::Double
            }
            "DECIMAL" | "DEC" | "NUMERIC" => {
                let (p, s) = self.precision_scale()?;
                if !(1..=38).contains(&p) || s > p {
                    return Err(SqlError::plan(loc(&t), format!("DECIMAL({p}, {s}) is out of range"))
                        .with_hint("precision is 1..38 and scale 0..precision"));
                }
                TypeKind::Decimal(p as u8, s as i8)
            }
            "DATE" => TypeKind::Date,
            "TIME" => {
                let p = self.precision_of(&t, 0, 9)?;
                self.parse_words(&["WITHOUT", "TIME", "ZONE"]);
                TypeKind::Time(p)
            }
            "TIMESTAMP" => {
                let p = self.precision_of(&t, 6, 9)?;
                if self.parse_words(&["WITH", "LOCAL", "TIME", "ZONE"]) {
                    TypeKind::TimestampLtz(p)
                } else if self.peek_word("WITH") {
                    return Err(self.unsupported_here("TIMESTAMP WITH TIME ZONE")
                        .with_hint("use TIMESTAMP_LTZ or TIMESTAMP WITH LOCAL TIME ZONE"));
                } else {
                    self.parse_words(&["WITHOUT", "TIME", "ZONE"]);
                    TypeKind::Timestamp(p)
                }
            }
            "TIMESTAMP_LTZ" => TypeKind::TimestampLtz(self.precision_of(&t, 6, 9)?),
            "BYTES" => TypeKind::Varbinary(MAX_LENGTH),
            "BINARY" => TypeKind::Binary(self.length(1)?),
            "VARBINARY" => TypeKind::Varbinary(self.length(1)?),
            "ARRAY" => {
                self.open_angle()?;
                let inner = self.parse_flink_type()?;
                self.close_angle()?;
                TypeKind::Array(Box::new(inner))
            }
            "MAP" => {
                self.open_angle()?;
                let k = self.parse_flink_type()?;
                self.expect_token(&Token::Comma)?;
                let v = self.parse_flink_type()?;
                self.close_angle()?;
                TypeKind::Map(Box::new(k), Box::new(v))
            }
            "ROW" => TypeKind::Row(self.row_fields()?),
            "INTERVAL" => self.interval_type()?,
            "MULTISET" | "RAW" | "STRUCTURED" | "VARIANT" | "DESCRIPTOR" | "NULL" => {
                return Err(SqlError::unsupported(loc(&t), format!("the {name} type is not supported yet")))
            }
            _ => {
                return Err(SqlError::syntax(loc(&t), format!("unknown data type '{}'", name))
                    .with_hint("Flink types: STRING, VARCHAR(n), BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(p,s), DATE, TIMESTAMP(3), TIMESTAMP_LTZ(3), BYTES, ARRAY<T>, MAP<K,V>, ROW<..>"))
            }
        };
        Ok(kind)
    }

    /// `(n)` or the default.
    fn length(&mut self, default: u32) -> Result<u32> {
        if !self.p.consume_token(&Token::LParen) {
            return Ok(default);
        }
        let t = self.p.peek_token();
        let n = self.uint_literal()?;
        self.expect_token(&Token::RParen)?;
        u32::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| SqlError::plan(loc(&t), format!("length {n} is out of range (1..{MAX_LENGTH})")))
    }

    fn precision_of(&mut self, t: &sqlparser::tokenizer::TokenWithSpan, default: u8, max: u8) -> Result<u8> {
        if !self.p.consume_token(&Token::LParen) {
            return Ok(default);
        }
        let n = self.uint_literal()?;
        self.expect_token(&Token::RParen)?;
        if n > u64::from(max) {
            return Err(SqlError::plan(loc(t), format!("precision {n} is out of range (0..{max})")));
        }
        Ok(n as u8)
    }

    fn precision_scale(&mut self) -> Result<(u64, u64)> {
        if !self.p.consume_token(&Token::LParen) {
            return Ok((10, 0));
        }
        let p = self.uint_literal()?;
        let s = if self.p.consume_token(&Token::Comma) { self.uint_literal()? } else { 0 };
        self.expect_token(&Token::RParen)?;
        Ok((p, s))
    }

    /// `ROW<a INT, b STRING>` or `ROW(a INT, b STRING)`; fields may have a COMMENT.
    fn row_fields(&mut self) -> Result<Vec<RowField>> {
        let angle = if self.p.consume_token(&Token::Lt) {
            true
        } else {
            self.expect_token(&Token::LParen)?;
            false
        };
        let mut fields = Vec::new();
        let empty = if angle { self.peek_is(&Token::Gt) } else { self.peek_is(&Token::RParen) };
        if !empty {
            loop {
                let name = self.identifier()?.value;
                let data_type = self.parse_flink_type()?;
                if self.parse_word("COMMENT") {
                    self.string_literal()?;
                }
                fields.push(RowField { name, data_type });
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
        }
        if angle {
            self.close_angle()?;
        } else {
            self.expect_token(&Token::RParen)?;
        }
        Ok(fields)
    }

    fn interval_type(&mut self) -> Result<TypeKind> {
        let t = self.p.next_token();
        let kind = match peek_upper(&t).as_deref() {
            Some("YEAR") | Some("MONTH") => TypeKind::IntervalYearMonth,
            Some("DAY") | Some("HOUR") | Some("MINUTE") | Some("SECOND") => TypeKind::IntervalDayTime,
            _ => {
                return Err(SqlError::syntax(
                    loc(&t),
                    "expected an interval unit (YEAR, MONTH, DAY, HOUR, MINUTE, SECOND)",
                ))
            }
        };
        // Optional precision and `TO unit(p)`.
        let _ = self.length(1);
        if self.parse_word("TO") {
            self.p.next_token();
            let _ = self.length(1);
        }
        Ok(kind)
    }

    fn open_angle(&mut self) -> Result<()> {
        self.expect_token(&Token::Lt)
    }

    /// `>`; a `>>` token closes two brackets, the second is remembered in `pending_gt`.
    fn close_angle(&mut self) -> Result<()> {
        if self.pending_gt > 0 {
            self.pending_gt -= 1;
            return Ok(());
        }
        if self.p.consume_token(&Token::ShiftRight) {
            self.pending_gt += 1;
            return Ok(());
        }
        self.expect_token(&Token::Gt)
    }
}
