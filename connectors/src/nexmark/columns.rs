//! Turning Nexmark events into the table's columns.
//!
//! The user writes the columns (`event_type INT, person ROW<...>, auction ROW<...>,
//! bid ROW<...>`); they are matched by name, case-insensitively, and may list a subset of
//! each ROW's fields in any order. Values are built in their natural Arrow type and cast
//! when the declared type differs (e.g. `INT` instead of `BIGINT`).

use std::sync::Arc;

use arrow::array::*;
use arrow::buffer::NullBuffer;
use arrow::compute::cast;
use arrow::datatypes::*;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use nexmark::event::{Auction, Bid, Event, Person};

use crate::{ConnectorError, Result};

/// Natural type of a Nexmark field.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Str,
    Time,
}

const PERSON: &[(&str, Kind)] = &[
    ("id", Kind::Int),
    ("name", Kind::Str),
    ("emailAddress", Kind::Str),
    ("creditCard", Kind::Str),
    ("city", Kind::Str),
    ("state", Kind::Str),
    ("dateTime", Kind::Time),
    ("extra", Kind::Str),
];

const AUCTION: &[(&str, Kind)] = &[
    ("id", Kind::Int),
    ("itemName", Kind::Str),
    ("description", Kind::Str),
    ("initialBid", Kind::Int),
    ("reserve", Kind::Int),
    ("dateTime", Kind::Time),
    ("expires", Kind::Time),
    ("seller", Kind::Int),
    ("category", Kind::Int),
    ("extra", Kind::Str),
];

const BID: &[(&str, Kind)] = &[
    ("auction", Kind::Int),
    ("bidder", Kind::Int),
    ("price", Kind::Int),
    ("channel", Kind::Str),
    ("url", Kind::Str),
    ("dateTime", Kind::Time),
    ("extra", Kind::Str),
];

/// A value of one Nexmark field.
enum Value<'a> {
    Int(i64),
    Str(&'a str),
    Time(i64),
}

fn int(v: usize) -> Value<'static> {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

fn time(v: u64) -> Value<'static> {
    Value::Time(i64::try_from(v).unwrap_or(i64::MAX))
}

fn person_value(p: &Person, field: usize) -> Value<'_> {
    match field {
        0 => int(p.id),
        1 => Value::Str(&p.name),
        2 => Value::Str(&p.email_address),
        3 => Value::Str(&p.credit_card),
        4 => Value::Str(&p.city),
        5 => Value::Str(&p.state),
        6 => time(p.date_time),
        _ => Value::Str(&p.extra),
    }
}

fn auction_value(a: &Auction, field: usize) -> Value<'_> {
    match field {
        0 => int(a.id),
        1 => Value::Str(&a.item_name),
        2 => Value::Str(&a.description),
        3 => int(a.initial_bid),
        4 => int(a.reserve),
        5 => time(a.date_time),
        6 => time(a.expires),
        7 => int(a.seller),
        8 => int(a.category),
        _ => Value::Str(&a.extra),
    }
}

fn bid_value(b: &Bid, field: usize) -> Value<'_> {
    match field {
        0 => int(b.auction),
        1 => int(b.bidder),
        2 => int(b.price),
        3 => Value::Str(&b.channel),
        4 => Value::Str(&b.url),
        5 => time(b.date_time),
        _ => Value::Str(&b.extra),
    }
}

/// Which event a ROW column holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Entity {
    Person,
    Auction,
    Bid,
}

/// How to fill one top-level column.
#[derive(Debug)]
enum Column {
    /// `event_type`: 0 person, 1 auction, 2 bid (as in Flink's nexmark).
    EventType,
    /// A ROW column: for each declared child, the index of the Nexmark field it shows.
    Row { entity: Entity, children: Vec<usize> },
}

/// The mapping from the table's columns to Nexmark fields, checked once.
#[derive(Debug)]
pub(super) struct ColumnPlan {
    columns: Vec<Column>,
}

impl ColumnPlan {
    /// Match the table's columns against Nexmark's; an unknown column or field is an error.
    pub(super) fn new(table: &str, schema: &SchemaRef) -> Result<Self> {
        let err = |m: String| ConnectorError::options(table, m);
        let mut columns = Vec::new();
        for field in schema.fields() {
            let name = field.name().to_ascii_lowercase();
            let (entity, known) = match name.as_str() {
                "event_type" => {
                    if !field.data_type().is_integer() {
                        return Err(err(format!(
                            "nexmark column 'event_type' must be an integer, not {}",
                            field.data_type()
                        )));
                    }
                    columns.push(Column::EventType);
                    continue;
                }
                "person" => (Entity::Person, PERSON),
                "auction" => (Entity::Auction, AUCTION),
                "bid" => (Entity::Bid, BID),
                _ => {
                    return Err(err(format!(
                        "nexmark has no column '{}'; its columns are event_type, person, auction, bid",
                        field.name()
                    )))
                }
            };
            let DataType::Struct(children) = field.data_type() else {
                return Err(err(format!("nexmark column '{}' must be a ROW<...>", field.name())));
            };
            let children = children
                .iter()
                .map(|c| {
                    known.iter().position(|(n, _)| n.eq_ignore_ascii_case(c.name())).ok_or_else(|| {
                        let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                        err(format!(
                            "nexmark ROW '{}' has no field '{}'; its fields are {}",
                            field.name(),
                            c.name(),
                            names.join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            columns.push(Column::Row { entity, children });
        }
        Ok(Self { columns })
    }

    /// One batch of `events`, in `schema` order.
    pub(super) fn build(&self, schema: &SchemaRef, events: &[Event]) -> Result<RecordBatch> {
        let arrays = self
            .columns
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| match column {
                Column::EventType => {
                    let codes = events.iter().map(|e| match e {
                        Event::Person(_) => 0,
                        Event::Auction(_) => 1,
                        Event::Bid(_) => 2,
                    });
                    let array: ArrayRef = Arc::new(Int32Array::from_iter_values(codes));
                    to_type(array, field.data_type())
                }
                Column::Row { entity, children } => row_column(*entity, children, field, events),
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(events.len()));
        RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
            .map_err(|e| ConnectorError::arrow("nexmark: building batch", e))
    }
}

fn row_column(entity: Entity, children: &[usize], field: &Field, events: &[Event]) -> Result<ArrayRef> {
    let DataType::Struct(declared) = field.data_type() else {
        return Err(ConnectorError::options("nexmark", format!("column '{}' is not a ROW", field.name())));
    };
    let known = match entity {
        Entity::Person => PERSON,
        Entity::Auction => AUCTION,
        Entity::Bid => BID,
    };
    let value = |e, i| entity_value(entity, e, i);
    let arrays = children
        .iter()
        .zip(declared.iter())
        .map(|(&i, child)| {
            let natural: ArrayRef = match known[i].1 {
                Kind::Int => {
                    Arc::new(events.iter().map(|e| value(e, i).and_then(|v| as_int(&v))).collect::<Int64Array>())
                }
                Kind::Time => Arc::new(
                    events.iter().map(|e| value(e, i).and_then(|v| as_int(&v))).collect::<TimestampMillisecondArray>(),
                ),
                Kind::Str => {
                    let mut b = StringBuilder::with_capacity(events.len(), events.len() * 16);
                    for e in events {
                        match value(e, i) {
                            Some(Value::Str(s)) => b.append_value(s),
                            _ => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
            };
            to_type(natural, child.data_type())
        })
        .collect::<Result<Vec<_>>>()?;
    let valid = NullBuffer::from_iter(events.iter().map(|e| value(e, 0).is_some()));
    if declared.is_empty() {
        return Ok(Arc::new(StructArray::new_empty_fields(events.len(), Some(valid))));
    }
    Ok(Arc::new(
        StructArray::try_new(declared.clone(), arrays, Some(valid))
            .map_err(|e| ConnectorError::arrow(format!("nexmark: column '{}'", field.name()), e))?,
    ))
}

/// Field `i` of the event when it is of `entity`'s kind.
fn entity_value(entity: Entity, e: &Event, i: usize) -> Option<Value<'_>> {
    match (entity, e) {
        (Entity::Person, Event::Person(p)) => Some(person_value(p, i)),
        (Entity::Auction, Event::Auction(a)) => Some(auction_value(a, i)),
        (Entity::Bid, Event::Bid(b)) => Some(bid_value(b, i)),
        _ => None,
    }
}

fn as_int(v: &Value<'_>) -> Option<i64> {
    match v {
        Value::Int(i) | Value::Time(i) => Some(*i),
        Value::Str(_) => None,
    }
}

fn to_type(array: ArrayRef, data_type: &DataType) -> Result<ArrayRef> {
    if array.data_type() == data_type {
        return Ok(array);
    }
    cast(&array, data_type).map_err(|e| ConnectorError::arrow(format!("nexmark: converting to {data_type}"), e))
}
