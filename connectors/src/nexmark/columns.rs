//! The table's columns of Nexmark events, and the buffers the generator writes them into.
//!
//! The user writes the columns (`event_type INT, person ROW<...>, auction ROW<...>,
//! bid ROW<...>`); they are matched by name, case-insensitively, and may list a subset of
//! each ROW's fields in any order. Values are built in their natural Arrow type and cast
//! when the declared type differs (e.g. `INT` instead of `BIGINT`). A field the table does
//! not declare gets no buffer: the generator still makes its random draws (later fields
//! depend on them) but stores nothing.

use std::sync::Arc;

use arrow::array::*;
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::cast;
use arrow::datatypes::*;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use rand08::rngs::SmallRng;

use super::generator::letter;

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

/// Which event a ROW column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entity {
    Person,
    Auction,
    Bid,
}

/// How to fill one top-level column.
#[derive(Debug)]
enum Column {
    /// `event_type`: 0 person, 1 auction, 2 bid (as in Flink's nexmark).
    EventType,
    /// A ROW column: for each declared child, the index of the Nexmark field it shows, or
    /// `None` when the job never reads it (it is then NULL).
    Row { entity: Entity, children: Vec<Option<usize>> },
    /// A column the job never reads: all NULL.
    Unread,
}

/// The mapping from the table's columns to Nexmark fields, checked once.
#[derive(Debug)]
pub(super) struct ColumnPlan {
    columns: Vec<Column>,
    /// String bytes per event of each stored string field in the last batch, to size the
    /// next batch's buffers at once: growing them by doubling cost more in copies and page
    /// faults than generating the strings.
    string_bytes_per_event: Vec<((Entity, usize), usize)>,
}

impl ColumnPlan {
    /// Match the table's columns against Nexmark's; an unknown column or field is an error.
    /// `unread` (see `ConnectorTable::unread`) are left NULL.
    pub(super) fn new(table: &str, schema: &SchemaRef, unread: &[(usize, Option<String>)]) -> Result<Self> {
        let err = |m: String| ConnectorError::options(table, m);
        let mut columns = Vec::new();
        for (at, field) in schema.fields().iter().enumerate() {
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
            let DataType::Struct(declared) = field.data_type() else {
                return Err(err(format!("nexmark column '{}' must be a ROW<...>", field.name())));
            };
            let children = declared
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
            // A NOT NULL part is produced whether read or not.
            if unread.contains(&(at, None)) && field.is_nullable() {
                columns.push(Column::Unread);
                continue;
            }
            let read = |child: &Field| {
                !child.is_nullable() || !unread.iter().any(|(i, f)| *i == at && f.as_deref() == Some(child.name()))
            };
            let children = children.iter().zip(declared.iter()).map(|(i, c)| read(c).then_some(*i)).collect();
            columns.push(Column::Row { entity, children });
        }
        Ok(Self { columns, string_bytes_per_event: Vec::new() })
    }

    /// Empty buffers for one batch of about `events` events.
    pub(super) fn buffers(&self, events: usize) -> EventColumns {
        let seen = |entity: Entity, field: usize| {
            self.string_bytes_per_event.iter().find(|(key, _)| *key == (entity, field)).map(|(_, per_event)| *per_event)
        };
        let mut entities: Vec<(Entity, EntityColumns)> = Vec::new();
        for column in &self.columns {
            let Column::Row { entity, children } = column else { continue };
            let known = known_fields(*entity);
            let at = match entities.iter().position(|(e, _)| e == entity) {
                Some(at) => at,
                None => {
                    let fields = known.iter().map(|_| Buffer::Off).collect();
                    entities.push((
                        *entity,
                        EntityColumns { fields, valid: BooleanBufferBuilder::new(events), stages: None },
                    ));
                    entities.len() - 1
                }
            };
            let columns = &mut entities[at].1;
            for &i in children.iter().flatten() {
                if matches!(columns.fields[i], Buffer::Off) {
                    columns.fields[i] = match known[i].1 {
                        Kind::Int | Kind::Time => Buffer::Int(Vec::with_capacity(events)),
                        Kind::Str => {
                            let mut offsets = Vec::with_capacity(events + 1);
                            offsets.push(0);
                            // 1/8 more than last time, for the variation between batches.
                            let per_event = seen(*entity, i).map_or(16, |b| b + b / 8 + 1);
                            Buffer::Str { offsets, bytes: Vec::with_capacity(events * per_event) }
                        }
                    };
                }
            }
        }
        EventColumns { event_types: Vec::with_capacity(events), entities }
    }

    /// The batch of the events written into `buffers`, in `schema` order.
    pub(super) fn build(&mut self, schema: &SchemaRef, buffers: EventColumns) -> Result<RecordBatch> {
        let rows = buffers.event_types.len();
        self.string_bytes_per_event.clear();
        for (entity, columns) in &buffers.entities {
            for (i, buffer) in columns.fields.iter().enumerate() {
                if let Buffer::Str { bytes, .. } = buffer {
                    self.string_bytes_per_event.push(((*entity, i), bytes.len() / rows.max(1)));
                }
            }
        }
        let event_types: ArrayRef = Arc::new(Int32Array::from(buffers.event_types));
        // Each entity's arrays by field index, and its validity, built once.
        let mut built: Vec<(Entity, Vec<Option<ArrayRef>>, NullBuffer)> = Vec::new();
        for (entity, mut columns) in buffers.entities {
            let known = known_fields(entity);
            let valid = NullBuffer::new(columns.valid.finish());
            let mut arrays = Vec::with_capacity(known.len());
            for (buffer, (name, kind)) in columns.fields.into_iter().zip(known) {
                let nulls = Some(valid.clone());
                let array: Option<ArrayRef> = match (buffer, kind) {
                    (Buffer::Off, _) => None,
                    (Buffer::Int(values), Kind::Time) => {
                        Some(Arc::new(TimestampMillisecondArray::new(values.into(), nulls)))
                    }
                    (Buffer::Int(values), _) => Some(Arc::new(Int64Array::new(values.into(), nulls))),
                    (Buffer::Str { offsets, bytes }, _) => {
                        let offsets = OffsetBuffer::new(offsets.into());
                        let array = StringArray::try_new(offsets, bytes.into(), nulls)
                            .map_err(|e| ConnectorError::arrow(format!("nexmark: field '{name}'"), e))?;
                        Some(Arc::new(array))
                    }
                };
                arrays.push(array);
            }
            built.push((entity, arrays, valid));
        }
        let arrays = self
            .columns
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| match column {
                Column::EventType => to_type(event_types.clone(), field.data_type()),
                Column::Unread => Ok(new_null_array(field.data_type(), rows)),
                Column::Row { entity, children } => {
                    let Some((_, arrays, valid)) = built.iter().find(|(e, _, _)| e == entity) else {
                        return Err(ConnectorError::options(
                            "nexmark",
                            format!("column '{}' has no buffers", field.name()),
                        ));
                    };
                    row_column(children, field, arrays, valid, rows)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
            .map_err(|e| ConnectorError::arrow("nexmark: building batch", e))
    }
}

fn known_fields(entity: Entity) -> &'static [(&'static str, Kind)] {
    match entity {
        Entity::Person => PERSON,
        Entity::Auction => AUCTION,
        Entity::Bid => BID,
    }
}

/// A ROW column: the declared children, in declared order and type.
fn row_column(
    children: &[Option<usize>],
    field: &Field,
    arrays: &[Option<ArrayRef>],
    valid: &NullBuffer,
    rows: usize,
) -> Result<ArrayRef> {
    let DataType::Struct(declared) = field.data_type() else {
        return Err(ConnectorError::options("nexmark", format!("column '{}' is not a ROW", field.name())));
    };
    if declared.is_empty() {
        return Ok(Arc::new(StructArray::new_empty_fields(rows, Some(valid.clone()))));
    }
    let children = children
        .iter()
        .zip(declared.iter())
        .map(|(&i, child)| match i.and_then(|i| arrays[i].as_ref()) {
            Some(array) => to_type(array.clone(), child.data_type()),
            None => Ok(new_null_array(child.data_type(), rows)),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(
        StructArray::try_new(declared.clone(), children, Some(valid.clone()))
            .map_err(|e| ConnectorError::arrow(format!("nexmark: column '{}'", field.name()), e))?,
    ))
}

/// The buffers of one batch: every event's type, and each declared entity's fields.
pub(super) struct EventColumns {
    event_types: Vec<i32>,
    entities: Vec<(Entity, EntityColumns)>,
}

impl EventColumns {
    /// Events written so far.
    pub(super) fn len(&self) -> usize {
        self.event_types.len()
    }

    /// String bytes held so far (a batch's string offsets are 32-bit).
    pub(super) fn string_bytes(&self) -> usize {
        self.entities
            .iter()
            .flat_map(|(_, c)| &c.fields)
            .map(|f| if let Buffer::Str { bytes, .. } = f { bytes.len() } else { 0 })
            .sum()
    }

    /// `event_type`: 0 person, 1 auction, 2 bid (as in Flink's nexmark).
    pub(super) fn push_event_type(&mut self, entity: Entity) {
        self.event_types.push(match entity {
            Entity::Person => 0,
            Entity::Auction => 1,
            Entity::Bid => 2,
        });
    }

    /// The declared entities' buffers.
    pub(super) fn entities_mut(&mut self) -> impl Iterator<Item = (Entity, &mut EntityColumns)> {
        self.entities.iter_mut().map(|(e, c)| (*e, c))
    }
}

/// One field's values; `Off` when the table does not declare the field.
enum Buffer {
    Off,
    /// Integers and timestamps (epoch milliseconds).
    Int(Vec<i64>),
    /// Strings, Arrow's layout: `offsets[i]..offsets[i + 1]` of `bytes` is row `i`.
    Str {
        offsets: Vec<i32>,
        bytes: Vec<u8>,
    },
}

/// The buffers of one entity's ROW column. A row is written field by field and closed by
/// `end_row`; rows of other entities by `push_null`.
pub(super) struct EntityColumns {
    fields: Vec<Buffer>,
    valid: BooleanBufferBuilder,
    /// `stages_needed`, worked out at the first event (the stored fields do not change).
    stages: Option<usize>,
}

impl EntityColumns {
    /// Whether the table declares `field` (else its value need not be computed, unless
    /// later fields depend on its random draws).
    pub(super) fn wants(&self, field: usize) -> bool {
        !matches!(self.fields[field], Buffer::Off)
    }

    /// How many of `stages` must be drawn: each stage lists the fields that consecutive
    /// random draws fill, and draws are needed up to the last stage with a stored field.
    /// (An entity's generator always passes the same `stages`.)
    pub(super) fn stages_needed(&mut self, stages: &[&[usize]]) -> usize {
        if let Some(n) = self.stages {
            return n;
        }
        let n = stages.iter().rposition(|fields| fields.iter().any(|&f| self.wants(f))).map_or(0, |last| last + 1);
        self.stages = Some(n);
        n
    }

    pub(super) fn int(&mut self, field: usize, value: i64) {
        if let Buffer::Int(values) = &mut self.fields[field] {
            values.push(value);
        }
    }

    /// A whole string value.
    pub(super) fn str(&mut self, field: usize, value: &str) {
        self.append(field, value.as_bytes());
        self.end_str(field);
    }

    /// Append `part` to the string value being written.
    pub(super) fn append(&mut self, field: usize, part: &[u8]) {
        if let Buffer::Str { bytes, .. } = &mut self.fields[field] {
            bytes.extend_from_slice(part);
        }
    }

    /// Append `len` random lowercase letters; drawn from `rng` even if the field is not
    /// stored, since the draws that follow depend on them.
    pub(super) fn random(&mut self, field: usize, rng: &mut SmallRng, len: usize) {
        match &mut self.fields[field] {
            Buffer::Str { bytes, .. } => bytes.extend((0..len).map(|_| letter(rng))),
            _ => (0..len).for_each(|_| {
                letter(rng);
            }),
        }
    }

    /// Close the string value being written.
    pub(super) fn end_str(&mut self, field: usize) {
        if let Buffer::Str { offsets, bytes } = &mut self.fields[field] {
            offsets.push(bytes.len() as i32);
        }
    }

    /// Close the row being written.
    pub(super) fn end_row(&mut self) {
        self.valid.append(true);
    }

    /// A row of another entity: null here.
    pub(super) fn push_null(&mut self) {
        for buffer in &mut self.fields {
            match buffer {
                Buffer::Off => {}
                Buffer::Int(values) => values.push(0),
                Buffer::Str { offsets, bytes } => offsets.push(bytes.len() as i32),
            }
        }
        self.valid.append(false);
    }
}

fn to_type(array: ArrayRef, data_type: &DataType) -> Result<ArrayRef> {
    if array.data_type() == data_type {
        return Ok(array);
    }
    cast(&array, data_type).map_err(|e| ConnectorError::arrow(format!("nexmark: converting to {data_type}"), e))
}
