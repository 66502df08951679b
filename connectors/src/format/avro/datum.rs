//! Reading one Avro binary datum into an apache-avro `Value`, strictly.
//!
//! Why not apache-avro's own `from_avro_datum`: on input that ends early it returns NULL
//! for a string, a boolean or a union index instead of an error, so a truncated record
//! would be read as a row of NULLs. Here every read is bounds-checked and a datum that ends
//! early is an error. Schema resolution (writer to reader schema) is still apache-avro's.

use std::collections::HashMap;

use apache_avro::schema::{Name, Namespace, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::Schema as AvroSchema;

/// Reads datums written with one schema.
#[derive(Debug)]
pub(crate) struct DatumReader {
    schema: AvroSchema,
    /// Named types by full name, for `Ref`s.
    names: HashMap<Name, AvroSchema>,
}

impl DatumReader {
    /// A reader of datums of `schema`.
    pub(crate) fn new(schema: AvroSchema) -> Result<Self, String> {
        let names = ResolvedSchema::try_from(&schema)
            .map_err(|e| e.to_string())?
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect();
        Ok(Self { schema, names })
    }

    /// Read the datum at the start of `bytes`. Bytes after it are ignored, as Flink does.
    pub(crate) fn read(&self, bytes: &[u8]) -> Result<Value, String> {
        let mut input = Input { bytes, pos: 0 };
        let namespace = match &self.schema {
            AvroSchema::Record(r) => r.name.namespace.clone(),
            _ => None,
        };
        self.value(&self.schema, &namespace, &mut input).map_err(|e| format!("invalid Avro: {e}"))
    }

    fn value(&self, schema: &AvroSchema, namespace: &Namespace, input: &mut Input) -> Result<Value, String> {
        Ok(match schema {
            AvroSchema::Ref { name } => {
                let full = name.fully_qualified_name(namespace);
                let target = self.names.get(&full).ok_or_else(|| format!("unknown Avro type '{}'", full.name))?;
                return self.value(target, &full.namespace, input);
            }
            AvroSchema::Null => Value::Null,
            AvroSchema::Boolean => match input.take(1)?[0] {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                b => return Err(format!("boolean byte {b}")),
            },
            AvroSchema::Int => Value::Int(input.int()?),
            AvroSchema::Long => Value::Long(input.long()?),
            AvroSchema::Float => Value::Float(f32::from_le_bytes(input.take(4)?.try_into().unwrap_or_default())),
            AvroSchema::Double => Value::Double(f64::from_le_bytes(input.take(8)?.try_into().unwrap_or_default())),
            AvroSchema::Bytes => Value::Bytes(input.bytes()?.to_vec()),
            AvroSchema::String => Value::String(input.string()?),
            AvroSchema::Uuid => match std::str::from_utf8(input.bytes()?) {
                Ok(s) => Value::String(s.to_string()),
                Err(_) => return Err("uuid is not UTF-8".into()),
            },
            AvroSchema::Fixed(f) => Value::Fixed(f.size, input.take(f.size)?.to_vec()),
            AvroSchema::Enum(e) => {
                let index = input.int()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| format!("enum index {index} of {} symbols", e.symbols.len()))?;
                Value::Enum(index as u32, symbol.clone())
            }
            AvroSchema::Union(u) => {
                let index = input.long()?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| format!("union branch {index} of {}", u.variants().len()))?;
                Value::Union(index as u32, Box::new(self.value(variant, namespace, input)?))
            }
            AvroSchema::Array(a) => {
                let mut items = Vec::new();
                while let Some(count) = input.block(matches!(*a.items, AvroSchema::Null))? {
                    items.reserve(count);
                    for _ in 0..count {
                        items.push(self.value(&a.items, namespace, input)?);
                    }
                }
                Value::Array(items)
            }
            AvroSchema::Map(m) => {
                let mut entries = HashMap::new();
                while let Some(count) = input.block(false)? {
                    for _ in 0..count {
                        let key = input.string()?;
                        entries.insert(key, self.value(&m.types, namespace, input)?);
                    }
                }
                Value::Map(entries)
            }
            AvroSchema::Record(r) => {
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    fields.push((f.name.clone(), self.value(&f.schema, &r.name.namespace, input)?));
                }
                Value::Record(fields)
            }
            AvroSchema::Decimal(d) => {
                let bytes = match d.inner.as_ref() {
                    AvroSchema::Fixed(f) => input.take(f.size)?,
                    _ => input.bytes()?,
                };
                Value::Decimal(sign_extended(bytes).as_slice().into())
            }
            AvroSchema::Date => Value::Date(input.int()?),
            AvroSchema::TimeMillis => Value::TimeMillis(input.int()?),
            AvroSchema::TimeMicros => Value::TimeMicros(input.long()?),
            AvroSchema::TimestampMillis => Value::TimestampMillis(input.long()?),
            AvroSchema::TimestampMicros => Value::TimestampMicros(input.long()?),
            AvroSchema::TimestampNanos => Value::TimestampNanos(input.long()?),
            AvroSchema::LocalTimestampMillis => Value::LocalTimestampMillis(input.long()?),
            AvroSchema::LocalTimestampMicros => Value::LocalTimestampMicros(input.long()?),
            AvroSchema::LocalTimestampNanos => Value::LocalTimestampNanos(input.long()?),
            AvroSchema::Duration => {
                let b: [u8; 12] = input.take(12)?.try_into().unwrap_or_default();
                Value::Duration(apache_avro::Duration::from(b))
            }
            AvroSchema::BigDecimal => return Err("the big-decimal logical type is not supported".into()),
        })
    }
}

/// A decimal's two's complement bytes, sign-extended to at least 16 (an `i128`).
///
/// Why: apache-avro's `Value::resolve` refuses a decimal whose byte length could not hold
/// every value of the reader's precision (`ComparePrecisionAndSize`), but writers use the
/// fewest bytes (Java's `BigInteger.toByteArray`, Eddy's encoder): 999.99 is 3 bytes, and
/// would fail against `DECIMAL(10, 2)` whenever the writer schema differs from the table's.
/// 16 bytes hold precision 38, Flink's maximum; the column's precision is checked in `rows`.
fn sign_extended(bytes: &[u8]) -> Vec<u8> {
    const WIDTH: usize = 16;
    let sign = if bytes.first().is_some_and(|b| b & 0x80 != 0) { 0xFF } else { 0 };
    let mut out = vec![sign; WIDTH.saturating_sub(bytes.len())];
    out.extend_from_slice(bytes);
    out
}

/// The unread rest of a datum.
struct Input<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.bytes.len());
        match end {
            Some(end) => {
                let taken = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(taken)
            }
            None => Err(format!("the datum ends early (needs {n} more bytes at byte {})", self.pos)),
        }
    }

    fn long(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            z |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(format!("a varint longer than 10 bytes at byte {}", self.pos))
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("int {v} out of range"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "a string that is not UTF-8".to_string())
    }

    /// The item count of the next block of an array or map; `None` at the end marker.
    fn block(&mut self, zero_sized_items: bool) -> Result<Option<usize>, String> {
        let count = self.long()?;
        if count == 0 {
            return Ok(None);
        }
        if count < 0 {
            self.long()?; // the block's size in bytes
        }
        let count = count.unsigned_abs();
        // Every item takes at least a byte, so a longer count is corrupt (and would allocate).
        let limit = if zero_sized_items { 1 << 20 } else { (self.bytes.len() - self.pos) as u64 };
        if count > limit {
            return Err(format!("a block of {count} items in {} bytes", self.bytes.len() - self.pos));
        }
        Ok(Some(count as usize))
    }
}
