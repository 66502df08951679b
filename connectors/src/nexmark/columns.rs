//! The table's columns of Nexmark events, and the buffers the generator writes them into.
//!
//! The user writes the columns (`event_type INT, person ROW<...>, auction ROW<...>,
//! bid ROW<...>`); they are matched by name, case-insensitively, and may list a subset of
//! each ROW's fields in any order. Values are built in their natural Arrow type and cast
//! when the declared type differs (e.g. `INT` instead of `BIGINT`). A field the table does
//! not declare gets no buffer: the generator still makes its random draws (later fields
//! depend on them) but stores nothing.
//!
//! A batch holds its events grouped by type: its bids, then its auctions, then its persons,
//! each in sequence order. Each entity's buffers hold only its own events while they are
//! written, and its ROW column is NULL outside its rows. Why: every Nexmark query reads an
//! entity through a view `WHERE event_type = ..`, and the rows it keeps are then one
//! contiguous range, which the filter passes on as a slice of the batch instead of copying
//! every kept value (for a bid query, 92 % of the batch, strings included). Event times
//! within a batch are not in order, as they already were not across entities' columns in
//! a batch: the watermark is taken after the whole batch, so no row of it is late to it.

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

    /// Empty buffers for one batch of about `events` events (each entity's sized for all of
    /// them; capacity an entity does not use is never touched).
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
                    entities.push((*entity, EntityColumns { fields, stages: None }));
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
        EventColumns { counts: [0; 3], entities }
    }

    /// The batch of the events written into `buffers`, in `schema` order: bids, auctions,
    /// persons.
    pub(super) fn build(&mut self, schema: &SchemaRef, buffers: EventColumns) -> Result<RecordBatch> {
        let rows = buffers.len();
        self.string_bytes_per_event.clear();
        for (entity, columns) in &buffers.entities {
            for (i, buffer) in columns.fields.iter().enumerate() {
                if let Buffer::Str { bytes, .. } = buffer {
                    self.string_bytes_per_event.push(((*entity, i), bytes.len() / rows.max(1)));
                }
            }
        }
        let mut event_types: Vec<i32> = Vec::with_capacity(rows);
        for entity in ROW_ORDER {
            event_types.resize(event_types.len() + buffers.count(entity), entity.event_type());
        }
        let event_types: ArrayRef = Arc::new(Int32Array::from(event_types));
        // Each entity's arrays by field index, and its validity, built once.
        let mut built: Vec<(Entity, Vec<Option<ArrayRef>>, NullBuffer)> = Vec::new();
        let counts = buffers.counts;
        for (entity, columns) in buffers.entities {
            let known = known_fields(entity);
            let (start, count) = rows_of(&counts, entity);
            let mut valid = BooleanBufferBuilder::new(rows);
            valid.append_n(start, false);
            valid.append_n(count, true);
            valid.append_n(rows - start - count, false);
            let valid = NullBuffer::new(valid.finish());
            let mut arrays = Vec::with_capacity(known.len());
            for (buffer, (name, kind)) in columns.fields.into_iter().zip(known) {
                let nulls = Some(valid.clone());
                let array: Option<ArrayRef> = match (buffer.placed(start, rows), kind) {
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

/// The order of the entities' rows in a batch: the most frequent first, whose buffers
/// then need no leading NULLs (see [`Buffer::placed`]).
const ROW_ORDER: [Entity; 3] = [Entity::Bid, Entity::Auction, Entity::Person];

impl Entity {
    /// `event_type`: 0 person, 1 auction, 2 bid (as in Flink's nexmark).
    pub(super) fn event_type(self) -> i32 {
        match self {
            Entity::Person => 0,
            Entity::Auction => 1,
            Entity::Bid => 2,
        }
    }
}

/// The rows of `entity` in a batch of `counts` events per type: (first, how many).
fn rows_of(counts: &[usize; 3], entity: Entity) -> (usize, usize) {
    let count = |e: Entity| counts[e.event_type() as usize];
    let before: usize = ROW_ORDER.iter().take_while(|e| **e != entity).map(|e| count(*e)).sum();
    (before, count(entity))
}

/// The buffers of one batch: how many events of each type, and each declared entity's
/// fields (its own events only).
pub(super) struct EventColumns {
    /// Events per `Entity::event_type`.
    counts: [usize; 3],
    entities: Vec<(Entity, EntityColumns)>,
}

impl EventColumns {
    /// Events written so far.
    pub(super) fn len(&self) -> usize {
        self.counts.iter().sum()
    }

    fn count(&self, entity: Entity) -> usize {
        self.counts[entity.event_type() as usize]
    }

    /// String bytes held so far (a batch's string offsets are 32-bit).
    pub(super) fn string_bytes(&self) -> usize {
        self.entities
            .iter()
            .flat_map(|(_, c)| &c.fields)
            .map(|f| if let Buffer::Str { bytes, .. } = f { bytes.len() } else { 0 })
            .sum()
    }

    /// An event of `entity`: counted, and its buffers (if the table declares the entity)
    /// for the generator to write the event's fields into.
    pub(super) fn push(&mut self, entity: Entity) -> Option<&mut EntityColumns> {
        self.counts[entity.event_type() as usize] += 1;
        self.entities.iter_mut().find(|(e, _)| *e == entity).map(|(_, c)| c)
    }
}

/// One field's values; `Off` when the table does not declare the field.
#[derive(Debug)]
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

impl Buffer {
    /// The values (of consecutive rows) placed at row `start` of a batch of `rows`, the
    /// rows before and after them zero or empty (they are NULL). Without rows before, the
    /// buffer is extended where it is; only the string offsets, not the bytes, are moved.
    fn placed(self, start: usize, rows: usize) -> Buffer {
        match self {
            Buffer::Off => Buffer::Off,
            Buffer::Int(mut values) if start == 0 => {
                values.resize(rows, 0);
                Buffer::Int(values)
            }
            Buffer::Int(values) => {
                let mut placed = Vec::with_capacity(rows);
                placed.resize(start, 0);
                placed.extend_from_slice(&values);
                placed.resize(rows, 0);
                Buffer::Int(placed)
            }
            Buffer::Str { mut offsets, bytes } => {
                let end = offsets.last().copied().unwrap_or(0);
                if start > 0 {
                    let mut placed = Vec::with_capacity(rows + 1);
                    placed.resize(start, 0);
                    placed.extend_from_slice(&offsets);
                    offsets = placed;
                }
                offsets.resize(rows + 1, end);
                Buffer::Str { offsets, bytes }
            }
        }
    }
}

/// The buffers of one entity's ROW column: its own events' fields, written field by field.
pub(super) struct EntityColumns {
    fields: Vec<Buffer>,
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
}

fn to_type(array: ArrayRef, data_type: &DataType) -> Result<ArrayRef> {
    if array.data_type() == data_type {
        return Ok(array);
    }
    cast(&array, data_type).map_err(|e| ConnectorError::arrow(format!("nexmark: converting to {data_type}"), e))
}
