//! Per-column generators of the `datagen` source, built from `fields.<path>.*` options.
//!
//! A column's generator is either a *sequence* (a bounded run of numbers, split over
//! subtasks by striding, as Flink's `SequenceGenerator`) or *random* values of its type.
//! Nested types recurse with Flink's option paths: a ROW child is `fields.<row>.<child>.*`,
//! an ARRAY element `fields.<arr>.element.*`, MAP keys/values `fields.<map>.key.*` / `.value.*`.

use std::sync::Arc;

use arrow::array::*;
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::*;
use rand::rngs::SmallRng;
use rand::Rng;

use crate::{ConnectorError, Options, Result, Split};

/// Option names a `fields.<path>.` prefix may carry.
pub(crate) const FIELD_OPTIONS: &[&str] =
    &["kind", "min", "max", "max-past", "length", "var-len", "start", "end", "null-rate"];

/// Flink's default length of random strings, bytes and collections.
const DEFAULT_LENGTH: usize = 100;
/// Longest value or collection datagen makes (guards against a typo exhausting memory).
const MAX_LENGTH: usize = 1 << 24;
/// Furthest back a random date or timestamp may go (about 27,000 years).
const MAX_PAST_DAYS: i64 = 10_000_000;

/// Generates the values of one column (or nested child), `n` rows at a time.
#[derive(Debug)]
pub(crate) struct FieldGen {
    null_rate: f64,
    kind: GenKind,
}

#[derive(Debug)]
enum GenKind {
    /// `start + index + k * count` for k = 0, 1, ... while <= `end`.
    Sequence {
        next: i128,
        end: i128,
        step: i128,
        data_type: DataType,
    },
    Bool,
    Int {
        min: i64,
        max: i64,
        data_type: DataType,
    },
    Float {
        min: f64,
        max: f64,
        data_type: DataType,
    },
    Decimal {
        min: f64,
        max: f64,
        precision: u8,
        scale: i8,
    },
    Utf8 {
        length: usize,
        var_len: bool,
    },
    Binary {
        length: usize,
        var_len: bool,
    },
    Date {
        max_past_days: i64,
    },
    Time {
        data_type: DataType,
    },
    Timestamp {
        unit: TimeUnit,
        tz: Option<Arc<str>>,
        max_past_ms: i64,
    },
    List {
        element_field: FieldRef,
        length: usize,
        element: Box<FieldGen>,
    },
    Map {
        entries: FieldRef,
        sorted: bool,
        length: usize,
        key: Box<FieldGen>,
        value: Box<FieldGen>,
    },
    Struct {
        fields: Fields,
        children: Vec<FieldGen>,
    },
}

/// Reads `fields.<path>.<opt>` options for one path.
struct FieldOpts<'a> {
    table: &'a str,
    options: &'a Options,
    path: &'a str,
}

impl FieldOpts<'_> {
    fn key(&self, opt: &str) -> String {
        format!("fields.{}.{opt}", self.path)
    }
    fn get(&self, opt: &str) -> Option<&str> {
        self.options.get(&self.key(opt))
    }
    fn parse<T: std::str::FromStr>(&self, opt: &str) -> Result<Option<T>> {
        self.options.parse(self.table, &self.key(opt))
    }
    fn err(&self, message: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::options(self.table, format!("field '{}': {message}", self.path))
    }
    fn reject(&self, opts: &[&str], why: &str) -> Result<()> {
        match opts.iter().find(|o| self.get(o).is_some()) {
            Some(o) => Err(self.err(format!("option '{}' {why}", self.key(o)))),
            None => Ok(()),
        }
    }
}

impl FieldGen {
    /// Build the generator for the column or child at `path` of type `field`.
    pub(crate) fn new(table: &str, options: &Options, path: &str, field: &Field, split: Split) -> Result<Self> {
        let o = FieldOpts { table, options, path };
        let null_rate = o.parse::<f64>("null-rate")?.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&null_rate) {
            return Err(o.err(format!("'{}' must be between 0 and 1", o.key("null-rate"))));
        }
        if null_rate > 0.0 && !field.is_nullable() {
            return Err(o.err("is NOT NULL, so 'null-rate' must be 0"));
        }
        let kind = match o.get("kind").map(str::to_ascii_lowercase).as_deref() {
            None | Some("random") => {
                o.reject(&["start", "end"], "only applies to kind 'sequence'")?;
                random_kind(&o, field, split)?
            }
            Some("sequence") => {
                o.reject(&["min", "max", "max-past", "length", "var-len"], "only applies to kind 'random'")?;
                sequence_kind(&o, field.data_type(), split)?
            }
            Some(other) => {
                return Err(o.err(format!("'{}' = '{other}': must be 'random' or 'sequence'", o.key("kind"))));
            }
        };
        Ok(Self { null_rate, kind })
    }

    /// Values left before a sequence (here or in a ROW child) ends; `None` = endless.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match &self.kind {
            GenKind::Sequence { next, end, step, .. } => {
                Some(if next > end { 0 } else { ((end - next) / step + 1).min(u64::MAX as i128) as u64 })
            }
            GenKind::Struct { children, .. } => children.iter().filter_map(FieldGen::remaining).min(),
            _ => None,
        }
    }

    /// Pass over the values of the first `rows` rows (a split resumed from a checkpoint):
    /// sequences move on; random values need nothing. Fails when a sequence has fewer left.
    pub(crate) fn skip(&mut self, rows: u64) -> std::result::Result<(), String> {
        match &mut self.kind {
            GenKind::Sequence { next, end, step, .. } => {
                let left = if next > end { 0 } else { (*end - *next) / *step + 1 };
                if i128::from(rows) > left {
                    return Err(format!("{rows} rows emitted, but the sequence had only {left} values left"));
                }
                *next += i128::from(rows) * *step;
                Ok(())
            }
            GenKind::Struct { children, .. } => children.iter_mut().try_for_each(|c| c.skip(rows)),
            // Arrays and maps hold no sequences (see `nested`).
            _ => Ok(()),
        }
    }

    /// The next `n` values. `now_ms` is the wall clock used by random timestamps and dates.
    pub(crate) fn generate(&mut self, n: usize, rng: &mut SmallRng, now_ms: i64) -> Result<ArrayRef> {
        let array = self.generate_values(n, rng, now_ms)?;
        if self.null_rate <= 0.0 {
            return Ok(array);
        }
        let valid: Vec<bool> = (0..n).map(|_| !rng.random_bool(self.null_rate)).collect();
        let data = array
            .into_data()
            .into_builder()
            .nulls(Some(NullBuffer::from(valid)))
            .build()
            .map_err(|e| ConnectorError::arrow("datagen: applying null-rate", e))?;
        Ok(make_array(data))
    }

    fn generate_values(&mut self, n: usize, rng: &mut SmallRng, now_ms: i64) -> Result<ArrayRef> {
        Ok(match &mut self.kind {
            GenKind::Sequence { next, step, data_type, .. } => {
                let values: Vec<i128> = (0..n as i128).map(|k| *next + k * *step).collect();
                *next += n as i128 * *step;
                sequence_array(&values, data_type)?
            }
            GenKind::Bool => Arc::new((0..n).map(|_| Some(rng.random::<bool>())).collect::<BooleanArray>()),
            GenKind::Int { min, max, data_type } => {
                let values: Vec<i64> = (0..n).map(|_| rng.random_range(*min..=*max)).collect();
                int_array(values, data_type)?
            }
            GenKind::Float { min, max, data_type } => {
                let values = (0..n).map(|_| uniform(rng, *min, *max));
                match data_type {
                    DataType::Float32 => Arc::new(values.map(|v| v as f32).collect::<Float32Array>()),
                    _ => Arc::new(values.collect::<Float64Array>()),
                }
            }
            GenKind::Decimal { min, max, precision, scale } => {
                let factor = 10f64.powi(i32::from(*scale));
                let limit = 10i128.pow(u32::from(*precision)) - 1;
                let values = (0..n).map(|_| ((uniform(rng, *min, *max) * factor).trunc() as i128).clamp(-limit, limit));
                let array = values.collect::<Decimal128Array>();
                Arc::new(
                    array
                        .with_precision_and_scale(*precision, *scale)
                        .map_err(|e| ConnectorError::arrow("datagen: decimal", e))?,
                )
            }
            GenKind::Utf8 { length, var_len } => {
                let mut b = StringBuilder::with_capacity(n, n.saturating_mul(*length).min(1 << 26));
                let mut s = String::with_capacity(*length);
                for _ in 0..n {
                    s.clear();
                    let len = pick_len(rng, *length, *var_len);
                    // Flink's random strings are hex digits (commons-math `nextHexString`).
                    s.extend((0..len).map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)])));
                    b.append_value(&s);
                }
                Arc::new(b.finish())
            }
            GenKind::Binary { length, var_len } => {
                let mut b = BinaryBuilder::with_capacity(n, n.saturating_mul(*length).min(1 << 26));
                for _ in 0..n {
                    let bytes: Vec<u8> = (0..pick_len(rng, *length, *var_len)).map(|_| rng.random()).collect();
                    b.append_value(bytes);
                }
                Arc::new(b.finish())
            }
            GenKind::Date { max_past_days } => {
                let today = now_ms.div_euclid(86_400_000) as i32;
                let days = *max_past_days;
                Arc::new(Date32Array::from_iter_values((0..n).map(|_| today - rng.random_range(0..=days) as i32)))
            }
            GenKind::Time { data_type } => time_array(n, rng, data_type),
            GenKind::Timestamp { unit, tz, max_past_ms } => {
                let past = *max_past_ms;
                let millis: Vec<i64> = (0..n).map(|_| now_ms - rng.random_range(0..=past)).collect();
                timestamp_array(&millis, unit, tz.clone())
            }
            GenKind::List { element_field, length, element } => {
                let values = element.generate(n * *length, rng, now_ms)?;
                let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(*length, n));
                Arc::new(
                    ListArray::try_new(element_field.clone(), offsets, values, None)
                        .map_err(|e| ConnectorError::arrow("datagen: array", e))?,
                )
            }
            GenKind::Map { entries, sorted, length, key, value } => {
                let keys = key.generate(n * *length, rng, now_ms)?;
                let values = value.generate(n * *length, rng, now_ms)?;
                let DataType::Struct(entry_fields) = entries.data_type() else {
                    return Err(ConnectorError::options("datagen", "map entries must be a struct"));
                };
                let entries_array = StructArray::try_new(entry_fields.clone(), vec![keys, values], None)
                    .map_err(|e| ConnectorError::arrow("datagen: map", e))?;
                let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(*length, n));
                Arc::new(
                    MapArray::try_new(entries.clone(), offsets, entries_array, None, *sorted)
                        .map_err(|e| ConnectorError::arrow("datagen: map", e))?,
                )
            }
            GenKind::Struct { fields, children } => {
                let columns = children.iter_mut().map(|c| c.generate(n, rng, now_ms)).collect::<Result<Vec<_>>>()?;
                if fields.is_empty() {
                    Arc::new(StructArray::new_empty_fields(n, None))
                } else {
                    Arc::new(
                        StructArray::try_new(fields.clone(), columns, None)
                            .map_err(|e| ConnectorError::arrow("datagen: row", e))?,
                    )
                }
            }
        })
    }
}

fn sequence_kind(o: &FieldOpts<'_>, data_type: &DataType, split: Split) -> Result<GenKind> {
    let supported = data_type.is_integer()
        || matches!(data_type, DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) | DataType::Utf8);
    if !supported {
        return Err(o.err(format!("kind 'sequence' is not supported for type {data_type}; use 'random'")));
    }
    let start = o.parse::<i64>("start")?.ok_or_else(|| o.err(format!("kind 'sequence' needs '{}'", o.key("start"))))?;
    let end = o.parse::<i64>("end")?.ok_or_else(|| o.err(format!("kind 'sequence' needs '{}'", o.key("end"))))?;
    if start > end {
        return Err(o.err(format!("'{}' = {start} is greater than '{}' = {end}", o.key("start"), o.key("end"))));
    }
    if let Some((lo, hi)) = int_bounds(data_type) {
        if start < lo || end > hi {
            return Err(o.err(format!("sequence {start}..{end} does not fit type {data_type}")));
        }
    }
    Ok(GenKind::Sequence {
        next: i128::from(start) + split.index as i128,
        end: i128::from(end),
        step: split.count.max(1) as i128,
        data_type: data_type.clone(),
    })
}

fn random_kind(o: &FieldOpts<'_>, field: &Field, split: Split) -> Result<GenKind> {
    let data_type = field.data_type();
    let only_numbers = |o: &FieldOpts<'_>| o.reject(&["min", "max"], &format!("does not apply to type {data_type}"));
    let only_strings =
        |o: &FieldOpts<'_>| o.reject(&["length", "var-len"], &format!("does not apply to type {data_type}"));
    let only_time = |o: &FieldOpts<'_>| o.reject(&["max-past"], &format!("does not apply to type {data_type}"));
    let kind = match data_type {
        DataType::Boolean => GenKind::Bool,
        t if t.is_integer() => {
            let (lo, hi) = int_bounds(t).ok_or_else(|| o.err(format!("unsupported type {t}")))?;
            let min = o.parse::<i64>("min")?.unwrap_or(lo);
            let max = o.parse::<i64>("max")?.unwrap_or(hi);
            check_range(o, min as f64, max as f64, lo as f64, hi as f64)?;
            GenKind::Int { min, max, data_type: t.clone() }
        }
        DataType::Float32 | DataType::Float64 => {
            // Flink's defaults: the type's smallest positive value up to its largest value.
            let (lo, hi) = match data_type {
                DataType::Float32 => (f64::from(f32::MIN_POSITIVE), f64::from(f32::MAX)),
                _ => (f64::MIN_POSITIVE, f64::MAX),
            };
            let min = o.parse::<f64>("min")?.unwrap_or(lo);
            let max = o.parse::<f64>("max")?.unwrap_or(hi);
            check_range(o, min, max, f64::MIN, f64::MAX)?;
            GenKind::Float { min, max, data_type: data_type.clone() }
        }
        DataType::Decimal128(precision, scale) => {
            let bound = 10f64.powi(i32::from(*precision) - i32::from(*scale));
            let min = o.parse::<f64>("min")?.unwrap_or(-bound + 1.0);
            let max = o.parse::<f64>("max")?.unwrap_or(bound - 1.0);
            check_range(o, min, max, -bound, bound)?;
            GenKind::Decimal { min, max, precision: *precision, scale: *scale }
        }
        DataType::Utf8 | DataType::Binary => {
            only_numbers(o)?;
            let length = length(o)?;
            let var_len = o.options.bool_or(o.table, &o.key("var-len"), false)?;
            if matches!(data_type, DataType::Utf8) {
                GenKind::Utf8 { length, var_len }
            } else {
                GenKind::Binary { length, var_len }
            }
        }
        DataType::Date32 => GenKind::Date { max_past_days: max_past_ms(o)? / 86_400_000 },
        DataType::Time32(TimeUnit::Second | TimeUnit::Millisecond)
        | DataType::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond) => {
            only_time(o)?;
            GenKind::Time { data_type: data_type.clone() }
        }
        DataType::Timestamp(unit, tz) => {
            GenKind::Timestamp { unit: *unit, tz: tz.clone(), max_past_ms: max_past_ms(o)? }
        }
        DataType::List(element_field) => {
            only_numbers(o)?;
            o.reject(&["var-len"], "does not apply to arrays")?;
            let length = length(o)?;
            let path = format!("{}.element", o.path);
            let element = nested(o, &path, element_field, split)?;
            GenKind::List { element_field: element_field.clone(), length, element }
        }
        DataType::Map(entries, sorted) => {
            only_numbers(o)?;
            o.reject(&["var-len"], "does not apply to maps")?;
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(o.err("map entries are not a struct"));
            };
            if kv.len() != 2 {
                return Err(o.err("map entries must have a key and a value"));
            }
            let length = length(o)?;
            let key = nested(o, &format!("{}.key", o.path), &kv[0], split)?;
            let value = nested(o, &format!("{}.value", o.path), &kv[1], split)?;
            GenKind::Map { entries: entries.clone(), sorted: *sorted, length, key, value }
        }
        DataType::Struct(fields) => {
            only_numbers(o)?;
            only_strings(o)?;
            let children = fields
                .iter()
                .map(|f| FieldGen::new(o.table, o.options, &format!("{}.{}", o.path, f.name()), f, split))
                .collect::<Result<Vec<_>>>()?;
            GenKind::Struct { fields: fields.clone(), children }
        }
        other => return Err(o.err(format!("datagen cannot generate type {other}"))),
    };
    if !matches!(data_type, DataType::Utf8 | DataType::Binary | DataType::List(_) | DataType::Map(..)) {
        only_strings(o)?;
    }
    if !matches!(data_type, DataType::Timestamp(..) | DataType::Date32) {
        only_time(o)?;
    }
    if !(data_type.is_numeric()) {
        only_numbers(o)?;
    }
    Ok(kind)
}

/// A nested generator (array element, map key/value), which may not be a sequence: the
/// number of values it yields per row is not one, so a sequence would end mid-row.
fn nested(o: &FieldOpts<'_>, path: &str, field: &Field, split: Split) -> Result<Box<FieldGen>> {
    let gen = FieldGen::new(o.table, o.options, path, field, split)?;
    if gen.remaining().is_some() {
        return Err(o.err(format!("'fields.{path}.kind' = 'sequence' is not supported inside arrays and maps")));
    }
    Ok(Box::new(gen))
}

fn max_past_ms(o: &FieldOpts<'_>) -> Result<i64> {
    let past = o.options.duration(o.table, &o.key("max-past"))?.unwrap_or_default();
    let ms = i64::try_from(past.as_millis()).unwrap_or(i64::MAX);
    if ms / 86_400_000 > MAX_PAST_DAYS {
        return Err(o.err(format!("'{}' reaches back more than {MAX_PAST_DAYS} days", o.key("max-past"))));
    }
    Ok(ms)
}

fn length(o: &FieldOpts<'_>) -> Result<usize> {
    let length = o.parse::<usize>("length")?.unwrap_or(DEFAULT_LENGTH);
    if length > MAX_LENGTH {
        return Err(o.err(format!("'{}' = {length} is larger than {MAX_LENGTH}", o.key("length"))));
    }
    Ok(length)
}

fn check_range(o: &FieldOpts<'_>, min: f64, max: f64, lo: f64, hi: f64) -> Result<()> {
    if min > max {
        return Err(o.err(format!("'{}' is greater than '{}'", o.key("min"), o.key("max"))));
    }
    if min < lo || max > hi {
        return Err(o.err(format!("min/max {min}..{max} is out of the type's range")));
    }
    Ok(())
}

fn pick_len(rng: &mut SmallRng, length: usize, var_len: bool) -> usize {
    if var_len && length > 0 {
        rng.random_range(1..=length)
    } else {
        length
    }
}

/// Uniform in `[min, max]`, also for ranges wider than `f64::MAX` (Flink's defaults).
fn uniform(rng: &mut SmallRng, min: f64, max: f64) -> f64 {
    if min >= max {
        return min;
    }
    let u: f64 = rng.random();
    (min + u * (max / 2.0 - min / 2.0) * 2.0).clamp(min, max)
}

fn int_bounds(t: &DataType) -> Option<(i64, i64)> {
    Some(match t {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => (i64::MIN, i64::MAX),
        DataType::UInt8 => (0, u8::MAX.into()),
        DataType::UInt16 => (0, u16::MAX.into()),
        DataType::UInt32 => (0, u32::MAX.into()),
        DataType::UInt64 => (0, i64::MAX),
        _ => return None,
    })
}

/// Integers (already within the type's range) as an array of `data_type`.
fn int_array(values: Vec<i64>, data_type: &DataType) -> Result<ArrayRef> {
    let array: ArrayRef = Arc::new(Int64Array::from(values));
    if data_type == &DataType::Int64 {
        return Ok(array);
    }
    arrow::compute::cast(&array, data_type).map_err(|e| ConnectorError::arrow("datagen: integers", e))
}

fn sequence_array(values: &[i128], data_type: &DataType) -> Result<ArrayRef> {
    Ok(match data_type {
        DataType::Utf8 => Arc::new(values.iter().map(|v| Some(v.to_string())).collect::<StringArray>()),
        DataType::Float32 => Arc::new(values.iter().map(|v| *v as f32).collect::<Float32Array>()),
        DataType::Float64 => Arc::new(values.iter().map(|v| *v as f64).collect::<Float64Array>()),
        DataType::Decimal128(p, s) => {
            let factor = 10i128.pow(u32::try_from(*s).unwrap_or(0));
            let array = values.iter().map(|v| v.saturating_mul(factor)).collect::<Decimal128Array>();
            Arc::new(array.with_precision_and_scale(*p, *s).map_err(|e| ConnectorError::arrow("datagen: decimal", e))?)
        }
        // Integers: the range was checked against the type when the generator was built.
        t => int_array(values.iter().map(|v| *v as i64).collect(), t)?,
    })
}

fn time_array(n: usize, rng: &mut SmallRng, data_type: &DataType) -> ArrayRef {
    let ms = (0..n).map(|_| rng.random_range(0..86_400_000i64));
    match data_type {
        DataType::Time32(TimeUnit::Second) => {
            Arc::new(Time32SecondArray::from_iter_values(ms.map(|v| (v / 1000) as i32)))
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            Arc::new(Time64MicrosecondArray::from_iter_values(ms.map(|v| v * 1000)))
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            Arc::new(Time64NanosecondArray::from_iter_values(ms.map(|v| v * 1_000_000)))
        }
        _ => Arc::new(Time32MillisecondArray::from_iter_values(ms.map(|v| v as i32))),
    }
}

/// Epoch milliseconds as a timestamp array of `unit` / `tz`.
pub(crate) fn timestamp_array(millis: &[i64], unit: &TimeUnit, tz: Option<Arc<str>>) -> ArrayRef {
    let it = millis.iter().copied();
    match unit {
        TimeUnit::Second => {
            Arc::new(TimestampSecondArray::from_iter_values(it.map(|v| v.div_euclid(1000))).with_timezone_opt(tz))
        }
        TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from_iter_values(it).with_timezone_opt(tz)),
        TimeUnit::Microsecond => Arc::new(
            TimestampMicrosecondArray::from_iter_values(it.map(|v| v.saturating_mul(1000))).with_timezone_opt(tz),
        ),
        TimeUnit::Nanosecond => Arc::new(
            TimestampNanosecondArray::from_iter_values(it.map(|v| v.saturating_mul(1_000_000))).with_timezone_opt(tz),
        ),
    }
}

/// All option paths the schema allows (`col`, `row.child`, `arr.element`, `map.key`, ...).
pub(crate) fn field_paths(fields: &Fields) -> Vec<String> {
    fn walk(path: String, data_type: &DataType, out: &mut Vec<String>) {
        match data_type {
            DataType::Struct(children) => {
                for c in children {
                    walk(format!("{path}.{}", c.name()), c.data_type(), out);
                }
            }
            DataType::List(element) => walk(format!("{path}.element"), element.data_type(), out),
            DataType::Map(entries, _) => {
                if let DataType::Struct(kv) = entries.data_type() {
                    if kv.len() == 2 {
                        walk(format!("{path}.key"), kv[0].data_type(), out);
                        walk(format!("{path}.value"), kv[1].data_type(), out);
                    }
                }
            }
            _ => {}
        }
        out.push(path);
    }
    let mut out = Vec::new();
    for f in fields {
        walk(f.name().clone(), f.data_type(), &mut out);
    }
    out
}
