//! The fast path of the `json` format: JSON objects parsed straight into the Arrow columns of
//! the table's schema, in one pass over the text.
//!
//! arrow-json (used by [`super::json`]) first turns the text into a tape, a byte at a time
//! through a state machine, copying every string, including those of fields nobody reads; a
//! second pass then walks the tape per column. This decoder knows the schema while it
//! parses: a key is matched to its column at once, a value goes into its builder, and a
//! field that is not decoded (not in the schema, or pruned because the query does not read
//! it) is checked and skipped without being copied. Strings are scanned with `memchr`.
//!
//! It only decodes what it is sure to decode exactly as arrow-json does, and gives up on a
//! whole batch at anything else: a type it does not build, a value of another JSON type than
//! its column's (arrow-json coerces or fails), a number that is not a plain integer for an
//! integer column, an escape in a key, a key twice in one object, a non-nullable column left
//! NULL, or text that is not strict JSON (arrow-json is more lenient, so it may still accept
//! it). The caller then decodes the batch with arrow-json, which also names any error. So
//! this decoder changes how fast a batch decodes, never what it decodes to.

use std::sync::Arc;

use arrow::array::{
    make_array, Array, ArrayRef, BooleanArray, BooleanBufferBuilder, Float32Array, Float64Array, Int64Array,
    NullBufferBuilder, RecordBatch, StringArray, StructArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::kernels::cast_utils::string_to_datetime;
use arrow::datatypes::{DataType, Fields, SchemaRef, TimeUnit};

/// Objects and arrays nested deeper than this are left to arrow-json.
const MAX_DEPTH: usize = 64;

/// Why a batch is left to arrow-json; nothing more is said, arrow-json says what is wrong.
#[derive(Debug)]
pub(super) struct GiveUp;

type Parsed<T> = Result<T, GiveUp>;

/// Decodes JSON objects into batches of one schema; see the module documentation.
#[derive(Debug)]
pub(super) struct DirectDecoder {
    schema: SchemaRef,
}

impl DirectDecoder {
    /// A decoder for `schema`, or `None` when a column has a type it does not build.
    pub(super) fn new(schema: SchemaRef) -> Option<Self> {
        Builder::object(schema.fields(), false, 0)?;
        Some(Self { schema })
    }

    /// Decode each of `texts` as one JSON object (surrounding whitespace allowed) into a row.
    pub(super) fn decode<'a>(&self, texts: impl ExactSizeIterator<Item = &'a [u8]>) -> Parsed<RecordBatch> {
        self.decode_valid(texts.map(|text| simdutf8::basic::from_utf8(text).map(str::as_bytes).map_err(|_| GiveUp)))
    }

    /// Decode the lines `lines` (`start..end` offsets) of `chunk`, each one JSON object.
    pub(super) fn decode_lines(
        &self,
        chunk: &[u8],
        lines: impl ExactSizeIterator<Item = (usize, usize)>,
    ) -> Parsed<RecordBatch> {
        // Validated once; a line starts and ends at an ASCII byte, so it is valid too.
        simdutf8::basic::from_utf8(chunk).map_err(|_| GiveUp)?;
        self.decode_valid(lines.map(|(start, end)| chunk.get(start..end).ok_or(GiveUp)))
    }

    /// Decode `texts`, each valid UTF-8 (or the reason to give up).
    fn decode_valid<'a>(&self, texts: impl ExactSizeIterator<Item = Parsed<&'a [u8]>>) -> Parsed<RecordBatch> {
        let rows = texts.len();
        let Some(mut root) = Builder::object(self.schema.fields(), false, rows) else {
            return Err(GiveUp);
        };
        for text in texts {
            // Strings are copied out as they are: valid UTF-8 here makes them valid there.
            let text = text?;
            let mut p = Parser { text, at: 0 };
            p.whitespace();
            // A row is an object (`null` would make a row of NULLs here; arrow-json fails).
            if p.peek()? != b'{' {
                return Err(GiveUp);
            }
            root.value(&mut p, 0)?;
            p.whitespace();
            if p.at != text.len() {
                return Err(GiveUp);
            }
        }
        let Builder::Object { children, .. } = root else {
            return Err(GiveUp);
        };
        let columns = children.into_iter().zip(self.schema.fields()).map(|(c, f)| c.finish(f.data_type()));
        let columns = columns.collect::<Parsed<Vec<_>>>()?;
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|_| GiveUp)
    }
}

/// A position in one JSON text.
struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.at) {
            self.at += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Parsed<u8> {
        self.text.get(self.at).copied().ok_or(GiveUp)
    }

    #[inline]
    fn next(&mut self) -> Parsed<u8> {
        let b = self.peek()?;
        self.at += 1;
        Ok(b)
    }

    #[inline]
    fn expect(&mut self, b: u8) -> Parsed<()> {
        match self.next()? == b {
            true => Ok(()),
            false => Err(GiveUp),
        }
    }

    /// `literal` (`null`, `true`, `false`), at its first byte.
    #[inline]
    fn literal(&mut self, literal: &[u8]) -> Parsed<()> {
        match self.text[self.at..].starts_with(literal) {
            true => {
                self.at += literal.len();
                Ok(())
            }
            false => Err(GiveUp),
        }
    }

    /// The text of a string without escapes, after its opening quote, up to and past its
    /// closing one; `Ok(None)` (at the same place) when it has an escape.
    #[inline]
    fn plain_string(&mut self) -> Parsed<Option<&'a [u8]>> {
        let rest = &self.text[self.at..];
        match quote_or_backslash(rest) {
            Some(end) if rest[end] == b'"' => {
                self.at += end + 1;
                Ok(Some(&rest[..end]))
            }
            Some(_) => Ok(None),
            None => Err(GiveUp),
        }
    }

    /// A string after its opening quote, its escapes decoded, appended to `out`.
    fn string_into(&mut self, out: &mut Vec<u8>) -> Parsed<()> {
        loop {
            let rest = &self.text[self.at..];
            let end = quote_or_backslash(rest).ok_or(GiveUp)?;
            out.extend_from_slice(&rest[..end]);
            self.at += end + 1;
            if rest[end] == b'"' {
                return Ok(());
            }
            let c = match self.next()? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => self.unicode_escape()?,
                _ => return Err(GiveUp),
            };
            let mut utf8 = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }

    /// The character of `\uXXXX`, after the `u`; a surrogate pair takes the `\uXXXX` after it.
    fn unicode_escape(&mut self) -> Parsed<char> {
        let high = self.hex4()?;
        if let Some(c) = char::from_u32(high) {
            return Ok(c);
        }
        if !(0xD800..0xDC00).contains(&high) {
            return Err(GiveUp);
        }
        self.expect(b'\\')?;
        self.expect(b'u')?;
        let low = self.hex4()?;
        if !(0xDC00..0xE000).contains(&low) {
            return Err(GiveUp);
        }
        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)).ok_or(GiveUp)
    }

    fn hex4(&mut self) -> Parsed<u32> {
        let mut v = 0;
        for _ in 0..4 {
            let digit = (self.next()? as char).to_digit(16).ok_or(GiveUp)?;
            v = (v << 4) | digit;
        }
        Ok(v)
    }

    /// An integer (`-?(0|[1-9][0-9]*)`, in `i64`); gives up on any other number.
    #[inline]
    fn integer(&mut self) -> Parsed<i64> {
        let negative = self.text.get(self.at) == Some(&b'-');
        let start = self.at + negative as usize;
        let mut at = start;
        // Magnitudes up to i64::MIN's; as u64, 19 digits cannot overflow.
        let mut magnitude: u64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.text.get(at) {
            if at - start == 19 {
                return Err(GiveUp);
            }
            magnitude = magnitude * 10 + (d - b'0') as u64;
            at += 1;
        }
        let digits = at - start;
        if digits == 0 || (digits > 1 && self.text[start] == b'0') {
            return Err(GiveUp);
        }
        if let Some(b'.' | b'e' | b'E') = self.text.get(at) {
            return Err(GiveUp);
        }
        self.at = at;
        match negative {
            false => i64::try_from(magnitude).map_err(|_| GiveUp),
            true if magnitude == i64::MIN.unsigned_abs() => Ok(i64::MIN),
            true => i64::try_from(magnitude).map(|m| -m).map_err(|_| GiveUp),
        }
    }

    /// A number as JSON writes it (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`), its text.
    #[inline]
    fn number(&mut self) -> Parsed<&'a str> {
        let start = self.at;
        self.pass_number()?;
        // ASCII digits and signs only.
        std::str::from_utf8(&self.text[start..self.at]).map_err(|_| GiveUp)
    }

    /// Pass over a number as [`Self::number`] reads it.
    #[inline]
    fn pass_number(&mut self) -> Parsed<()> {
        let digits = |p: &mut Self| {
            let from = p.at;
            while let Some(b'0'..=b'9') = p.text.get(p.at) {
                p.at += 1;
            }
            p.at - from
        };
        if self.text.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let first = self.text.get(self.at).copied();
        match digits(self) {
            0 => return Err(GiveUp),
            // No leading zeros.
            n if n > 1 && first == Some(b'0') => return Err(GiveUp),
            _ => {}
        }
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return Err(GiveUp);
            }
        }
        if let Some(b'e' | b'E') = self.text.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.text.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(GiveUp);
            }
        }
        Ok(())
    }

    /// Check and pass over any value (a field no column decodes).
    fn skip_value(&mut self, depth: usize) -> Parsed<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                if self.plain_string()?.is_none() {
                    self.string_into(&mut Vec::new())?;
                }
            }
            b'n' => self.literal(b"null")?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'{' => {
                self.at += 1;
                self.named_members(depth, &[], |p, _| p.skip_value(depth + 1))?;
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(GiveUp);
                }
                self.at += 1;
                self.whitespace();
                if self.peek()? == b']' {
                    self.at += 1;
                    return Ok(());
                }
                loop {
                    self.whitespace();
                    self.skip_value(depth + 1)?;
                    self.whitespace();
                    match self.next()? {
                        b',' => continue,
                        b']' => return Ok(()),
                        _ => return Err(GiveUp),
                    }
                }
            }
            _ => self.pass_number()?,
        }
        Ok(())
    }

    /// The members of an object after its `{`, up to and past its `}`, with keys looked up
    /// in `names` (none holds a quote or backslash): `member` is called with the key's
    /// index in `names` (`None`: no name) at the start of its value and must pass over it.
    ///
    /// Objects usually list their keys in the schema's order, so the name after the last
    /// one found is tried first, compared with the text in place: the key needs no scan
    /// for its closing quote.
    #[inline]
    fn named_members(
        &mut self,
        depth: usize,
        names: &[Key],
        mut member: impl FnMut(&mut Self, Option<usize>) -> Parsed<()>,
    ) -> Parsed<()> {
        if depth >= MAX_DEPTH {
            return Err(GiveUp);
        }
        self.whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
            return Ok(());
        }
        let mut next = 0;
        loop {
            self.whitespace();
            self.expect(b'"')?;
            let rest = &self.text[self.at..];
            let found = match names.get(next) {
                // The name then the closing quote: exactly the key, without escapes.
                Some(name) if name.starts(rest) => {
                    self.at += name.name.len() + 1;
                    Some(next)
                }
                _ => {
                    let key = self.plain_string()?.ok_or(GiveUp)?;
                    names.iter().position(|name| same(&name.name, key))
                }
            };
            if let Some(k) = found {
                next = k + 1;
            }
            self.whitespace();
            self.expect(b':')?;
            self.whitespace();
            member(self, found)?;
            self.whitespace();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(()),
                _ => return Err(GiveUp),
            }
        }
    }
}

/// A field's name as a key to find in the text.
pub(super) struct Key {
    name: Box<[u8]>,
    /// The name and its closing quote as two little-endian words, zero-padded, and the
    /// masks of their bytes; `None` for a name of 16 bytes or more.
    words: Option<([u64; 2], [u64; 2])>,
}

impl Key {
    pub(super) fn new(name: &[u8]) -> Self {
        let words = (name.len() < 16).then(|| {
            let (mut text, mut mask) = ([0u8; 16], [0u8; 16]);
            text[..name.len()].copy_from_slice(name);
            text[name.len()] = b'"';
            mask[..=name.len()].fill(0xff);
            let word = |b: &[u8; 16], half: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[half * 8..half * 8 + 8]);
                u64::from_le_bytes(w)
            };
            ([word(&text, 0), word(&text, 1)], [word(&mask, 0), word(&mask, 1)])
        });
        Self { name: name.into(), words }
    }

    /// Whether `text` starts with the name and a closing quote: with 16 bytes of text,
    /// two word compares instead of one per byte (key matching was a fifth of decoding).
    #[inline]
    pub(super) fn starts(&self, text: &[u8]) -> bool {
        if let (Some((words, masks)), Some(head)) = (&self.words, text.first_chunk::<16>()) {
            let (mut low, mut high) = ([0u8; 8], [0u8; 8]);
            low.copy_from_slice(&head[..8]);
            high.copy_from_slice(&head[8..]);
            let low = (u64::from_le_bytes(low) ^ words[0]) & masks[0];
            let high = (u64::from_le_bytes(high) ^ words[1]) & masks[1];
            return low | high == 0;
        }
        let n = self.name.len();
        text.get(..n).is_some_and(|t| same(&self.name, t)) && text.get(n) == Some(&b'"')
    }
}

/// The values of one column (or ROW field) decoded so far.
enum Builder {
    /// Any integer type, range-checked as parsed, cast at the end.
    Int {
        min: i64,
        max: i64,
        values: Vec<i64>,
        nulls: NullBufferBuilder,
    },
    Float32 {
        values: Vec<f32>,
        nulls: NullBufferBuilder,
    },
    Float64 {
        values: Vec<f64>,
        nulls: NullBufferBuilder,
    },
    Boolean {
        values: BooleanBufferBuilder,
        nulls: NullBufferBuilder,
    },
    Utf8 {
        offsets: Vec<i32>,
        bytes: Vec<u8>,
        nulls: NullBufferBuilder,
    },
    /// A TIMESTAMP without time zone, in `unit`; `last` is the last text parsed and its
    /// value (a stream has many events per millisecond).
    Timestamp {
        unit: TimeUnit,
        values: Vec<i64>,
        nulls: NullBufferBuilder,
        last: Option<(Vec<u8>, i64)>,
    },
    /// A ROW (or the row itself: `nullable` false).
    Object {
        fields: Fields,
        names: Vec<Key>,
        children: Vec<Builder>,
        nulls: Option<NullBufferBuilder>,
    },
}

impl Builder {
    /// A builder for `data_type` with room for `rows`, or `None` when it is not one built here.
    fn new(data_type: &DataType, rows: usize) -> Option<Self> {
        let nulls = NullBufferBuilder::new(rows);
        let int = |min: i64, max: i64| {
            let nulls = NullBufferBuilder::new(rows);
            Builder::Int { min, max, values: Vec::with_capacity(rows), nulls }
        };
        Some(match data_type {
            DataType::Int8 => int(i8::MIN.into(), i8::MAX.into()),
            DataType::Int16 => int(i16::MIN.into(), i16::MAX.into()),
            DataType::Int32 => int(i32::MIN.into(), i32::MAX.into()),
            DataType::Int64 => int(i64::MIN, i64::MAX),
            DataType::UInt8 => int(0, u8::MAX.into()),
            DataType::UInt16 => int(0, u16::MAX.into()),
            DataType::UInt32 => int(0, u32::MAX.into()),
            DataType::UInt64 => int(0, i64::MAX),
            DataType::Float32 => Builder::Float32 { values: Vec::with_capacity(rows), nulls },
            DataType::Float64 => Builder::Float64 { values: Vec::with_capacity(rows), nulls },
            DataType::Boolean => Builder::Boolean { values: BooleanBufferBuilder::new(rows), nulls },
            DataType::Utf8 => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                Builder::Utf8 { offsets, bytes: Vec::with_capacity(rows * 16), nulls }
            }
            DataType::Timestamp(unit, None) => {
                Builder::Timestamp { unit: *unit, values: Vec::with_capacity(rows), nulls, last: None }
            }
            DataType::Struct(fields) => Builder::object(fields, true, rows)?,
            _ => return None,
        })
    }

    fn object(fields: &Fields, nullable: bool, rows: usize) -> Option<Self> {
        // Keys seen in one object are bits of a u64.
        if fields.len() > 64 {
            return None;
        }
        // A key with a quote or backslash is written with escapes, which the parser gives
        // up on; and `named_members` compares names with the text in place.
        if fields.iter().any(|f| f.name().contains(['"', '\\'])) {
            return None;
        }
        let children = fields.iter().map(|f| Builder::new(f.data_type(), rows)).collect::<Option<Vec<_>>>()?;
        let names = fields.iter().map(|f| Key::new(f.name().as_bytes())).collect();
        let nulls = nullable.then(|| NullBufferBuilder::new(rows));
        Some(Builder::Object { fields: fields.clone(), names, children, nulls })
    }

    /// Append a NULL (and one to each field of a ROW, as arrow-json does).
    fn null(&mut self) {
        match self {
            Builder::Int { values, nulls, .. } | Builder::Timestamp { values, nulls, .. } => {
                values.push(0);
                nulls.append_null();
            }
            Builder::Float32 { values, nulls } => {
                values.push(0.0);
                nulls.append_null();
            }
            Builder::Float64 { values, nulls } => {
                values.push(0.0);
                nulls.append_null();
            }
            Builder::Boolean { values, nulls } => {
                values.append(false);
                nulls.append_null();
            }
            Builder::Utf8 { offsets, bytes, nulls } => {
                offsets.push(bytes.len() as i32);
                nulls.append_null();
            }
            Builder::Object { children, nulls, .. } => {
                children.iter_mut().for_each(Builder::null);
                // The row itself is never NULL: the batch's check fails and arrow-json decides.
                if let Some(nulls) = nulls {
                    nulls.append_null();
                }
            }
        }
    }

    /// Append the value at `p` (after whitespace), passing over it.
    fn value(&mut self, p: &mut Parser<'_>, depth: usize) -> Parsed<()> {
        if p.peek()? == b'n' {
            p.literal(b"null")?;
            self.null();
            return Ok(());
        }
        match self {
            Builder::Int { min, max, values, nulls } => {
                let v = p.integer()?;
                if v < *min || v > *max {
                    return Err(GiveUp);
                }
                values.push(v);
                nulls.append_non_null();
            }
            // Parsed straight to its type: a FLOAT through a double would round twice.
            Builder::Float32 { values, nulls } => {
                values.push(finite(p.number()?.parse::<f32>().map_err(|_| GiveUp)?, f32::is_finite)?);
                nulls.append_non_null();
            }
            Builder::Float64 { values, nulls } => {
                values.push(finite(p.number()?.parse::<f64>().map_err(|_| GiveUp)?, f64::is_finite)?);
                nulls.append_non_null();
            }
            Builder::Boolean { values, nulls } => {
                match p.peek()? {
                    b't' => {
                        p.literal(b"true")?;
                        values.append(true);
                    }
                    b'f' => {
                        p.literal(b"false")?;
                        values.append(false);
                    }
                    _ => return Err(GiveUp),
                }
                nulls.append_non_null();
            }
            Builder::Utf8 { offsets, bytes, nulls } => {
                p.expect(b'"')?;
                match p.plain_string()? {
                    Some(text) => bytes.extend_from_slice(text),
                    None => p.string_into(bytes)?,
                }
                offsets.push(i32::try_from(bytes.len()).map_err(|_| GiveUp)?);
                nulls.append_non_null();
            }
            Builder::Timestamp { unit, values, nulls, last } => {
                let v = match p.peek()? {
                    b'"' => {
                        p.at += 1;
                        let text = p.plain_string()?.ok_or(GiveUp)?;
                        match last {
                            Some((t, v)) if t.as_slice() == text => *v,
                            _ => {
                                let v = timestamp(text, *unit)?;
                                let last = last.get_or_insert_with(|| (Vec::new(), 0));
                                last.0.clear();
                                last.0.extend_from_slice(text);
                                last.1 = v;
                                v
                            }
                        }
                    }
                    // arrow-json reads a number as the value in the column's unit.
                    _ => p.integer()?,
                };
                values.push(v);
                nulls.append_non_null();
            }
            Builder::Object { names, children, nulls, .. } => {
                p.expect(b'{')?;
                if let Some(nulls) = nulls {
                    nulls.append_non_null();
                }
                let mut seen = 0u64;
                p.named_members(depth, names, |p, found| {
                    let Some(k) = found else {
                        return p.skip_value(depth + 1);
                    };
                    if seen & (1 << k) != 0 {
                        return Err(GiveUp);
                    }
                    seen |= 1 << k;
                    children[k].value(p, depth + 1)
                })?;
                for (k, child) in children.iter_mut().enumerate() {
                    if seen & (1 << k) == 0 {
                        child.null();
                    }
                }
            }
        }
        Ok(())
    }

    /// The column of `data_type` (the type this builder was made for).
    fn finish(self, data_type: &DataType) -> Parsed<ArrayRef> {
        let array: ArrayRef = match self {
            Builder::Int { values, mut nulls, .. } => {
                let array = Int64Array::new(values.into(), nulls.finish());
                // In range: checked as parsed.
                arrow::compute::cast(&array, data_type).map_err(|_| GiveUp)?
            }
            Builder::Float32 { values, mut nulls } => Arc::new(Float32Array::new(values.into(), nulls.finish())),
            Builder::Float64 { values, mut nulls } => Arc::new(Float64Array::new(values.into(), nulls.finish())),
            Builder::Boolean { mut values, mut nulls } => Arc::new(BooleanArray::new(values.finish(), nulls.finish())),
            Builder::Utf8 { offsets, bytes, mut nulls } => {
                // Checked when pushed: ascending, in `i32`, the last at `bytes.len()`.
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                debug_assert!(std::str::from_utf8(&bytes).is_ok());
                // SAFETY: `bytes` are valid UTF-8 and every offset is at a character boundary:
                // a string's bytes are cut out of text checked to be UTF-8 (`decode_valid`)
                // between ASCII bytes (quotes, backslashes), and an escape adds a whole
                // character's encoding. Validating them again took a tenth of the decoding.
                let array = unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(bytes), nulls.finish()) };
                Arc::new(array)
            }
            Builder::Timestamp { values, mut nulls, .. } => {
                let array = Int64Array::new(values.into(), nulls.finish());
                let data = array.into_data().into_builder().data_type(data_type.clone());
                make_array(data.build().map_err(|_| GiveUp)?)
            }
            Builder::Object { fields, children, nulls, .. } => {
                let DataType::Struct(_) = data_type else {
                    return Err(GiveUp);
                };
                let columns = children.into_iter().zip(fields.iter()).map(|(c, f)| c.finish(f.data_type()));
                let columns = columns.collect::<Parsed<Vec<_>>>()?;
                let nulls = nulls.and_then(|mut n| n.finish());
                Arc::new(StructArray::try_new(fields, columns, nulls).map_err(|_| GiveUp)?)
            }
        };
        Ok(array)
    }
}

/// The first `"` or `\\` in `text`. Most strings of an event are short (keys, names,
/// timestamps): eight bytes at a time first, where `memchr`'s setup would cost more than
/// its scan saves, then `memchr` for long ones.
#[inline]
pub(super) fn quote_or_backslash(text: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte of `word` that is `b` (exact up to the first such byte).
    let bytes_equal = |word: u64, b: u8| {
        let x = word ^ (ONES * b as u64);
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut at = 0;
    while at + 8 <= text.len().min(32) {
        let mut word = [0; 8];
        word.copy_from_slice(&text[at..at + 8]);
        let word = u64::from_le_bytes(word);
        let found = bytes_equal(word, b'"') | bytes_equal(word, b'\\');
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr::memchr2(b'"', b'\\', &text[at..]).map(|k| at + k)
}

/// `v` when it is finite (an overflowing number is left to arrow-json).
fn finite<T: Copy>(v: T, is_finite: fn(T) -> bool) -> Parsed<T> {
    match is_finite(v) {
        true => Ok(v),
        false => Err(GiveUp),
    }
}

/// Whether a key is a field's name: short keys compared without a call.
#[inline]
fn same(name: &[u8], key: &[u8]) -> bool {
    name.len() == key.len() && name.iter().zip(key).all(|(a, b)| a == b)
}

/// A TIMESTAMP's text as arrow-json reads it (`string_to_datetime` in UTC), in `unit`.
fn timestamp(text: &[u8], unit: TimeUnit) -> Parsed<i64> {
    let text = std::str::from_utf8(text).map_err(|_| GiveUp)?;
    let t = string_to_datetime(&chrono::Utc, text).map_err(|_| GiveUp)?;
    match unit {
        TimeUnit::Second => Ok(t.timestamp()),
        TimeUnit::Millisecond => Ok(t.timestamp_millis()),
        TimeUnit::Microsecond => Ok(t.timestamp_micros()),
        TimeUnit::Nanosecond => t.timestamp_nanos_opt().ok_or(GiveUp),
    }
}
