//! Records of one partition gathered from the consumer, and how they become table rows:
//! key and value decoded by their formats, metadata columns built from the records, bad
//! records picked out for the caller to fail on, skip, or dead-letter.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, Int32Array, Int64Array, Int8Array, MapArray, StringArray, StructArray,
    TimestampMillisecondArray, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::layout::{Layout, Metadata};
use super::Flavor;
use crate::format::record::RecordDecoder;
use crate::{ConnectorError, Result, RowKind};

/// Records of one partition, copied out of the consumer until they are decoded.
#[derive(Debug, Default)]
pub(crate) struct Records {
    keys: Vec<u8>,
    key_ranges: Vec<Option<Range<usize>>>,
    values: Vec<u8>,
    value_ranges: Vec<Option<Range<usize>>>,
    pub(crate) offsets: Vec<i64>,
    timestamps: Vec<Option<i64>>,
    timestamp_types: Vec<&'static str>,
    /// Only filled when a column reads the headers (or bad records go to a dead-letter topic).
    headers: Vec<Vec<(String, Option<Vec<u8>>)>>,
    leader_epochs: Vec<Option<i32>>,
}

/// What to copy from each message besides key and value.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Wanted {
    pub(crate) headers: bool,
    pub(crate) leader_epoch: bool,
}

impl Records {
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Copy one message in.
    pub(crate) fn push(&mut self, m: &BorrowedMessage<'_>, wanted: Wanted) {
        fn copy(buf: &mut Vec<u8>, bytes: Option<&[u8]>) -> Option<Range<usize>> {
            bytes.map(|b| {
                let start = buf.len();
                buf.extend_from_slice(b);
                start..buf.len()
            })
        }
        self.key_ranges.push(copy(&mut self.keys, m.key()));
        self.value_ranges.push(copy(&mut self.values, m.payload()));
        self.offsets.push(m.offset());
        let (ts, kind) = match m.timestamp() {
            rdkafka::Timestamp::NotAvailable => (None, "NoTimestampType"),
            rdkafka::Timestamp::CreateTime(t) => (Some(t), "CreateTime"),
            rdkafka::Timestamp::LogAppendTime(t) => (Some(t), "LogAppendTime"),
        };
        self.timestamps.push(ts);
        self.timestamp_types.push(kind);
        if wanted.headers {
            let mut hs = Vec::new();
            if let Some(headers) = m.headers() {
                for h in headers.iter() {
                    hs.push((h.key.to_string(), h.value.map(<[u8]>::to_vec)));
                }
            }
            self.headers.push(hs);
        }
        if wanted.leader_epoch {
            // SAFETY: the message pointer is valid while `m` is borrowed; the call only reads it.
            let epoch = unsafe { rdkafka::bindings::rd_kafka_message_leader_epoch(m.ptr()) };
            self.leader_epochs.push((epoch >= 0).then_some(epoch));
        }
    }

    pub(crate) fn key(&self, i: usize) -> Option<&[u8]> {
        self.key_ranges[i].clone().map(|r| &self.keys[r])
    }

    pub(crate) fn value(&self, i: usize) -> Option<&[u8]> {
        self.value_ranges[i].clone().map(|r| &self.values[r])
    }

    pub(crate) fn headers(&self, i: usize) -> &[(String, Option<Vec<u8>>)] {
        self.headers.get(i).map_or(&[], Vec::as_slice)
    }
}

/// A record that did not decode.
#[derive(Debug, Clone)]
pub(crate) struct Bad {
    /// Index into the [`Records`].
    pub(crate) record: usize,
    /// `key` or `value`.
    pub(crate) side: &'static str,
    pub(crate) message: String,
}

/// Rows made from a [`Records`]; `bad` lists the records left out because they did not decode.
pub(crate) struct Assembled {
    pub(crate) batch: RecordBatch,
    pub(crate) row_kinds: Option<Int8Array>,
    pub(crate) bad: Vec<Bad>,
}

/// Decode `records` of `topic`/`partition` into rows of the layout's schema.
pub(crate) fn assemble(
    layout: &Layout,
    flavor: Flavor,
    records: &Records,
    topic: &str,
    partition: i32,
    key_decoder: Option<&mut Box<dyn RecordDecoder>>,
    value_decoder: &mut Box<dyn RecordDecoder>,
) -> Result<Assembled> {
    let n = records.len();
    let mut bad: Vec<Bad> = Vec::new();
    let mut is_bad = vec![false; n];

    // Keys: row of the key batch per record (None: a null key, or one the key format
    // dropped under `ignore-parse-errors` — its key columns are NULL, as in Flink).
    let (key_batch, key_rows) = match (&layout.key, key_decoder) {
        (Some(_), Some(dec)) => {
            let present: Vec<usize> = (0..n).filter(|i| records.key(*i).is_some()).collect();
            let slices: Vec<&[u8]> = present.iter().filter_map(|i| records.key(*i)).collect();
            let decoded = dec.decode(&slices)?;
            for b in &decoded.bad {
                let rec = present[b.index];
                is_bad[rec] = true;
                bad.push(Bad { record: rec, side: "key", message: b.message.clone() });
            }
            let mut rows = vec![None; n];
            for (row, k) in decoded.record_of_rows(present.len()).into_iter().enumerate() {
                rows[present[k]] = Some(row as u32);
            }
            (Some(decoded.batch), rows)
        }
        _ => (None, vec![None; n]),
    };

    // Values.
    let present: Vec<usize> = (0..n).filter(|i| records.value(*i).is_some()).collect();
    let slices: Vec<&[u8]> = present.iter().filter_map(|i| records.value(*i)).collect();
    let decoded = value_decoder.decode(&slices)?;
    for b in &decoded.bad {
        let rec = present[b.index];
        if !is_bad[rec] {
            is_bad[rec] = true;
            bad.push(Bad { record: rec, side: "value", message: b.message.clone() });
        }
    }
    // The record of each value row, increasing: a changelog format may give a record two
    // rows (-U, +U) or none, and a format may drop a record itself.
    let row_records: Vec<usize> = decoded.record_of_rows(present.len()).into_iter().map(|k| present[k]).collect();
    let value_kinds = decoded.row_kinds;
    let kind_of =
        |row: usize| value_kinds.as_ref().and_then(|a| RowKind::from_code(a.value(row))).unwrap_or(RowKind::Insert);
    // Output rows in record order: (record, value row, kind).
    let mut out: Vec<(usize, Option<u32>, RowKind)> = Vec::with_capacity(n);
    let mut next_row = 0;
    #[allow(clippy::needless_range_loop)] // `rec` indexes the records and two lists alike.
    for rec in 0..n {
        if records.value(rec).is_none() {
            match flavor {
                _ if is_bad[rec] => {}
                // A tombstone deletes its key.
                Flavor::Upsert if records.key(rec).is_none() => {
                    is_bad[rec] = true;
                    bad.push(Bad {
                        record: rec,
                        side: "key",
                        message: "an upsert-kafka tombstone (null value) without a key".into(),
                    });
                }
                Flavor::Upsert => out.push((rec, None, RowKind::Delete)),
                // Flink's kafka source emits nothing for a null value.
                Flavor::Append => {}
            }
            continue;
        }
        while next_row < row_records.len() && row_records[next_row] == rec {
            if !is_bad[rec] {
                out.push((rec, Some(next_row as u32), kind_of(next_row)));
            }
            next_row += 1;
        }
    }
    let value_batch = decoded.batch;
    bad.sort_by_key(|b| b.record);

    let recs: Vec<usize> = out.iter().map(|(r, _, _)| *r).collect();
    let value_take = UInt32Array::from(out.iter().map(|(_, v, _)| *v).collect::<Vec<_>>());
    let key_take = UInt32Array::from(recs.iter().map(|r| key_rows[*r]).collect::<Vec<_>>());
    let all_have_values = out.iter().all(|(_, v, _)| v.is_some());
    let schema = layout.schema.clone();
    let arrow_err = |e| ConnectorError::arrow(format!("decoding topic '{topic}' partition {partition}"), e);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (c, field) in schema.fields().iter().enumerate() {
        let array: ArrayRef = if let Some((_, m)) = layout.metadata.iter().find(|(i, _)| *i == c) {
            metadata_column(*m, records, &recs, topic, partition, field.data_type())?
        } else {
            let in_value = layout.value.columns.iter().position(|i| *i == c);
            let in_key = layout.key.as_ref().and_then(|k| k.columns.iter().position(|i| *i == c));
            let from_key = |q: usize| -> Result<ArrayRef> {
                match &key_batch {
                    Some(kb) => take(kb.column(q).as_ref(), &key_take, None).map_err(arrow_err),
                    None => Ok(arrow::array::new_null_array(field.data_type(), recs.len())),
                }
            };
            match (in_value, in_key) {
                (Some(q), None) => take(value_batch.column(q).as_ref(), &value_take, None).map_err(arrow_err)?,
                (None, Some(q)) => from_key(q)?,
                (Some(q), Some(_)) if all_have_values => {
                    take(value_batch.column(q).as_ref(), &value_take, None).map_err(arrow_err)?
                }
                (Some(q), Some(kq)) => {
                    // Deletes carry only the key: key columns come from the key there.
                    let v = take(value_batch.column(q).as_ref(), &value_take, None).map_err(arrow_err)?;
                    let k = from_key(kq)?;
                    let has_value: arrow::array::BooleanArray = out.iter().map(|(_, v, _)| Some(v.is_some())).collect();
                    arrow::compute::kernels::zip::zip(&has_value, &v, &k).map_err(arrow_err)?
                }
                (None, None) => arrow::array::new_null_array(field.data_type(), recs.len()),
            }
        };
        let array = if array.data_type() == field.data_type() {
            array
        } else {
            cast(&array, field.data_type()).map_err(arrow_err)?
        };
        columns.push(array);
    }
    let batch =
        RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(recs.len())))
            .map_err(arrow_err)?;
    let row_kinds = (flavor == Flavor::Upsert || value_kinds.is_some())
        .then(|| Int8Array::from(out.iter().map(|(_, _, k)| k.code()).collect::<Vec<_>>()));
    Ok(Assembled { batch, row_kinds, bad })
}

/// One metadata column for the records `recs`.
fn metadata_column(
    m: Metadata,
    records: &Records,
    recs: &[usize],
    topic: &str,
    partition: i32,
    target: &DataType,
) -> Result<ArrayRef> {
    Ok(match m {
        Metadata::Topic => Arc::new(StringArray::from(vec![topic; recs.len()])),
        Metadata::Partition => Arc::new(Int32Array::from(vec![partition; recs.len()])),
        Metadata::Offset => Arc::new(Int64Array::from(recs.iter().map(|r| records.offsets[*r]).collect::<Vec<_>>())),
        Metadata::Timestamp => {
            let values: Vec<Option<i64>> = recs.iter().map(|r| records.timestamps[*r]).collect();
            let tz = match target {
                DataType::Timestamp(TimeUnit::Millisecond, tz) => tz.clone(),
                _ => None,
            };
            Arc::new(TimestampMillisecondArray::from(values).with_timezone_opt(tz))
        }
        Metadata::TimestampType => {
            Arc::new(StringArray::from(recs.iter().map(|r| records.timestamp_types[*r]).collect::<Vec<_>>()))
        }
        Metadata::LeaderEpoch => Arc::new(Int32Array::from(
            recs.iter().map(|r| records.leader_epochs.get(*r).copied().flatten()).collect::<Vec<_>>(),
        )),
        Metadata::Headers => headers_column(records, recs, target)?,
    })
}

/// `MAP<STRING, BYTES>` of each record's headers, in the declared type's field names.
fn headers_column(records: &Records, recs: &[usize], target: &DataType) -> Result<ArrayRef> {
    let DataType::Map(entries_field, ordered) = target else {
        return Err(ConnectorError::bad_record("headers", format!("headers column must be a MAP, not {target}")));
    };
    let DataType::Struct(kv) = entries_field.data_type() else {
        return Err(ConnectorError::bad_record("headers", "malformed MAP type"));
    };
    let mut keys = arrow::array::StringBuilder::new();
    let mut values = BinaryBuilder::new();
    let mut offsets = vec![0i32];
    let mut count = 0i32;
    for r in recs {
        for (k, v) in records.headers(*r) {
            count = count.saturating_add(1);
            keys.append_value(k);
            match v {
                Some(v) => values.append_value(v),
                None => values.append_null(),
            }
        }
        offsets.push(count);
    }
    let key_array: ArrayRef = Arc::new(keys.finish());
    let value_array: ArrayRef = Arc::new(values.finish());
    let value_array = cast(&value_array, kv[1].data_type()).map_err(|e| ConnectorError::arrow("headers", e))?;
    let entries = StructArray::try_new(kv.clone(), vec![key_array, value_array], None)
        .map_err(|e| ConnectorError::arrow("headers", e))?;
    let map = MapArray::try_new(entries_field.clone(), OffsetBuffer::new(offsets.into()), entries, None, *ordered)
        .map_err(|e| ConnectorError::arrow("headers", e))?;
    Ok(Arc::new(map))
}
