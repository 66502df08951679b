//! Primary keys in `pg_catalog`, where psql (`\d`), SQLAlchemy (`get_pk_constraint`) and
//! pgjdbc (`getPrimaryKeys`) look for them: a `pg_constraint` row (`contype = 'p'`), the
//! `pg_index` row of its unique index, that index's `pg_class` row (`relkind = 'i'`,
//! named `<table>_pkey`) and `relhasindex` on the table's own row, plus
//! `pg_get_indexdef`/`pg_get_constraintdef` for them.
//!
//! datafusion-pg-catalog numbers relations as it meets them, so these tables are computed
//! at each scan from its `pg_class`: an index's oid is its table's plus
//! [`INDEX_OID_OFFSET`], a constraint's plus [`CONSTRAINT_OID_OFFSET`] (far above the oids
//! it hands out, which count up from 16384).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int16Array, Int16Builder, Int32Array, ListBuilder, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use datafusion::physical_plan::ExecutionPlan;

use crate::info_schema::TableInfo;
use crate::query::SCHEMA;

/// Added to a table's oid to number its primary-key index.
pub const INDEX_OID_OFFSET: i32 = 1_000_000_000;
/// Added to a table's oid to number its primary-key constraint.
pub const CONSTRAINT_OID_OFFSET: i32 = 1_500_000_000;
/// `pg_am.oid` of btree.
const BTREE_AM: i32 = 403;

/// A table's primary key.
#[derive(Debug, Clone)]
struct Key {
    table: String,
    columns: Vec<String>,
    /// The columns' `attnum`s (1-based positions).
    attnums: Vec<i16>,
}

impl Key {
    fn index_name(&self) -> String {
        format!("{}_pkey", self.table)
    }
}

/// The primary keys of the catalog's tables (kept by the server after each DDL).
#[derive(Debug, Default)]
pub struct PrimaryKeys {
    keys: RwLock<Vec<Key>>,
    /// Index and constraint oids seen by the last scans, for the `pg_get_*def` functions.
    by_oid: RwLock<HashMap<i32, Key>>,
}

impl PrimaryKeys {
    /// Describe `tables`' keys.
    pub fn set(&self, tables: &[TableInfo]) {
        let keys = tables
            .iter()
            .filter(|t| !t.primary_key.is_empty())
            .map(|t| Key {
                table: t.name.clone(),
                columns: t.primary_key.clone(),
                attnums: t.primary_key.iter().filter_map(|c| t.schema.index_of(c).ok().map(|i| i as i16 + 1)).collect(),
            })
            .collect();
        if let Ok(mut k) = self.keys.write() {
            *k = keys;
        }
    }

    /// The keys of the tables `pg_class` lists in schema public, with the tables' oids
    /// (and namespace oid); noted by oid for the `pg_get_*def` functions.
    fn keyed_tables(&self, class: &RecordBatch) -> DfResult<Vec<(Key, i32, i32, usize)>> {
        let keys = self.keys.read().map(|k| k.clone()).unwrap_or_default();
        let (oid, name, ns, kind) = (
            column_i32(class, "oid")?,
            column_str(class, "relname")?,
            column_i32(class, "relnamespace")?,
            column_str(class, "relkind")?,
        );
        let mut out = Vec::new();
        for row in 0..class.num_rows() {
            if kind.value(row) != "r" {
                continue;
            }
            if let Some(key) = keys.iter().find(|k| k.table == name.value(row)) {
                out.push((key.clone(), oid.value(row), ns.value(row), row));
            }
        }
        if let Ok(mut by_oid) = self.by_oid.write() {
            for (key, oid, _, _) in &out {
                by_oid.insert(oid + INDEX_OID_OFFSET, key.clone());
                by_oid.insert(oid + CONSTRAINT_OID_OFFSET, key.clone());
            }
        }
        Ok(out)
    }

    fn key_of(&self, oid: i32) -> Option<Key> {
        self.by_oid.read().ok()?.get(&oid).cloned()
    }
}

fn column_i32(batch: &RecordBatch, name: &str) -> DfResult<Int32Array> {
    let c = batch.column_by_name(name).ok_or_else(|| DataFusionError::Internal(format!("pg_class has no {name}")))?;
    Ok(arrow::compute::cast(c, &DataType::Int32)?.as_primitive::<Int32Type>().clone())
}

fn column_str(batch: &RecordBatch, name: &str) -> DfResult<StringArray> {
    let c = batch.column_by_name(name).ok_or_else(|| DataFusionError::Internal(format!("pg_class has no {name}")))?;
    Ok(arrow::compute::cast(c, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// All of `pg_class` (datafusion-pg-catalog's) in one batch.
async fn scan_all(table: &Arc<dyn TableProvider>, state: &dyn Session) -> DfResult<RecordBatch> {
    let plan = table.scan(state, None, &[], None).await?;
    let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
    Ok(arrow::compute::concat_batches(&table.schema(), &batches)?)
}

fn exec(schema: &SchemaRef, batch: RecordBatch, projection: Option<&Vec<usize>>) -> DfResult<Arc<dyn ExecutionPlan>> {
    Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], schema.clone(), projection.cloned())?)
}

fn int2_lists(values: impl Iterator<Item = Option<Vec<i16>>>) -> ArrayRef {
    let mut b = ListBuilder::new(Int16Builder::new());
    for v in values {
        match v {
            Some(v) => {
                b.values().append_slice(&v);
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Arc::new(b.finish())
}

/// The value `v` as a column of type `t`, `n` rows long.
fn repeat(v: ScalarValue, t: &DataType, n: usize) -> DfResult<ArrayRef> {
    v.cast_to(t)?.to_array_of_size(n)
}

/// `pg_class` with the key indexes' rows, `relhasindex` set on keyed tables, and the
/// `reloptions`/`relacl` columns psql reads (always NULL: Eddy has neither).
#[derive(Debug)]
pub struct PgClass {
    inner: Arc<dyn TableProvider>,
    keys: Arc<PrimaryKeys>,
    schema: SchemaRef,
}

impl PgClass {
    pub fn new(inner: Arc<dyn TableProvider>, keys: Arc<PrimaryKeys>) -> Self {
        let mut fields: Vec<Field> = inner.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(
            "reloptions",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            true,
        ));
        fields.push(Field::new("relacl", DataType::Utf8, true));
        Self { schema: Arc::new(Schema::new(fields)), inner, keys }
    }

    async fn rows(&self, state: &dyn Session) -> DfResult<RecordBatch> {
        let class = scan_all(&self.inner, state).await?;
        let keyed = self.keys.keyed_tables(&class)?;
        let n = class.num_rows();
        let mut has_index = vec![false; n];
        for (_, _, _, row) in &keyed {
            has_index[*row] = true;
        }
        // One row per index: its table's row, renamed and re-kinded.
        let template = arrow::compute::take_record_batch(
            &class,
            &arrow::array::UInt32Array::from(keyed.iter().map(|(_, _, _, row)| *row as u32).collect::<Vec<_>>()),
        )?;
        let k = keyed.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, field) in class.schema().fields().iter().enumerate() {
            let t = field.data_type();
            let index_column: ArrayRef = match field.name().as_str() {
                "oid" => {
                    repeat_each(keyed.iter().map(|(_, oid, _, _)| ScalarValue::Int32(Some(oid + INDEX_OID_OFFSET))), t)?
                }
                "relname" => repeat_each(keyed.iter().map(|(key, ..)| ScalarValue::Utf8(Some(key.index_name()))), t)?,
                "relkind" => repeat(ScalarValue::Utf8(Some("i".into())), t, k)?,
                "relam" => repeat(ScalarValue::Int32(Some(BTREE_AM)), t, k)?,
                "reltype" | "reltoastrelid" => repeat(ScalarValue::Int32(Some(0)), t, k)?,
                "relnatts" => {
                    repeat_each(keyed.iter().map(|(key, ..)| ScalarValue::Int16(Some(key.columns.len() as i16))), t)?
                }
                "relhasindex" => repeat(ScalarValue::Boolean(Some(false)), t, k)?,
                _ => template.column(i).clone(),
            };
            let table_column = if field.name() == "relhasindex" {
                let old = arrow::compute::cast(class.column(i), &DataType::Boolean)?;
                let old = old.as_boolean();
                let merged: BooleanArray =
                    (0..n).map(|r| Some(has_index[r] || (old.is_valid(r) && old.value(r)))).collect();
                arrow::compute::cast(&(Arc::new(merged) as ArrayRef), t)?
            } else {
                class.column(i).clone()
            };
            columns.push(arrow::compute::concat(&[table_column.as_ref(), index_column.as_ref()])?);
        }
        columns
            .push(arrow::array::new_null_array(self.schema.field(self.schema.fields().len() - 2).data_type(), n + k));
        columns.push(repeat(ScalarValue::Utf8(None), &DataType::Utf8, n + k)?);
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

fn repeat_each(values: impl Iterator<Item = ScalarValue>, t: &DataType) -> DfResult<ArrayRef> {
    let values: Vec<ScalarValue> = values.map(|v| v.cast_to(t)).collect::<DfResult<_>>()?;
    if values.is_empty() {
        return Ok(arrow::array::new_empty_array(t));
    }
    ScalarValue::iter_to_array(values)
}

/// `pg_index`: the primary-key index of each keyed table.
#[derive(Debug)]
pub struct PgIndex {
    class: Arc<dyn TableProvider>,
    keys: Arc<PrimaryKeys>,
    schema: SchemaRef,
}

impl PgIndex {
    pub fn new(class: Arc<dyn TableProvider>, keys: Arc<PrimaryKeys>) -> Self {
        let int2s = DataType::List(Arc::new(Field::new_list_field(DataType::Int16, true)));
        let oids = DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)));
        let mut fields =
            vec![Field::new("indexrelid", DataType::Int32, false), Field::new("indrelid", DataType::Int32, false)];
        fields.push(Field::new("indnatts", DataType::Int16, false));
        fields.push(Field::new("indnkeyatts", DataType::Int16, false));
        for b in [
            "indisunique",
            "indnullsnotdistinct",
            "indisprimary",
            "indisexclusion",
            "indimmediate",
            "indisclustered",
            "indisvalid",
            "indcheckxmin",
            "indisready",
            "indislive",
            "indisreplident",
        ] {
            fields.push(Field::new(b, DataType::Boolean, false));
        }
        fields.push(Field::new("indkey", int2s.clone(), false));
        fields.push(Field::new("indcollation", oids.clone(), false));
        fields.push(Field::new("indclass", oids, false));
        fields.push(Field::new("indoption", int2s, false));
        fields.push(Field::new("indexprs", DataType::Utf8, true));
        fields.push(Field::new("indpred", DataType::Utf8, true));
        Self { class, keys, schema: Arc::new(Schema::new(fields)) }
    }

    async fn rows(&self, state: &dyn Session) -> DfResult<RecordBatch> {
        let class = scan_all(&self.class, state).await?;
        let keyed = self.keys.keyed_tables(&class)?;
        let k = keyed.len();
        let bools = |name: &str| -> ArrayRef {
            let on = matches!(
                name,
                "indisunique" | "indisprimary" | "indimmediate" | "indisvalid" | "indisready" | "indislive"
            );
            Arc::new(BooleanArray::from(vec![on; k]))
        };
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(keyed.iter().map(|(_, oid, ..)| oid + INDEX_OID_OFFSET))),
            Arc::new(Int32Array::from_iter_values(keyed.iter().map(|(_, oid, ..)| *oid))),
            Arc::new(Int16Array::from_iter_values(keyed.iter().map(|(key, ..)| key.attnums.len() as i16))),
            Arc::new(Int16Array::from_iter_values(keyed.iter().map(|(key, ..)| key.attnums.len() as i16))),
        ];
        for f in &self.schema.fields()[4..15] {
            columns.push(bools(f.name()));
        }
        columns.push(int2_lists(keyed.iter().map(|(key, ..)| Some(key.attnums.clone()))));
        let oid_lists = |v: i32| -> ArrayRef {
            let mut b = ListBuilder::new(arrow::array::Int32Builder::new());
            for (key, ..) in &keyed {
                b.values().append_slice(&vec![v; key.attnums.len()]);
                b.append(true);
            }
            Arc::new(b.finish())
        };
        columns.push(oid_lists(0));
        columns.push(oid_lists(0));
        columns.push(int2_lists(keyed.iter().map(|(key, ..)| Some(vec![0; key.attnums.len()]))));
        columns.push(Arc::new(StringArray::from(vec![None::<&str>; k])));
        columns.push(Arc::new(StringArray::from(vec![None::<&str>; k])));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `pg_constraint`: the primary-key constraint of each keyed table.
#[derive(Debug)]
pub struct PgConstraint {
    class: Arc<dyn TableProvider>,
    keys: Arc<PrimaryKeys>,
    schema: SchemaRef,
}

impl PgConstraint {
    pub fn new(class: Arc<dyn TableProvider>, keys: Arc<PrimaryKeys>) -> Self {
        let int2s = DataType::List(Arc::new(Field::new_list_field(DataType::Int16, true)));
        let (i32t, text, b) = (DataType::Int32, DataType::Utf8, DataType::Boolean);
        let fields = vec![
            Field::new("oid", i32t.clone(), false),
            Field::new("conname", text.clone(), false),
            Field::new("connamespace", i32t.clone(), false),
            Field::new("contype", text.clone(), false),
            Field::new("condeferrable", b.clone(), false),
            Field::new("condeferred", b.clone(), false),
            Field::new("convalidated", b.clone(), false),
            Field::new("conrelid", i32t.clone(), false),
            Field::new("contypid", i32t.clone(), false),
            Field::new("conindid", i32t.clone(), false),
            Field::new("conparentid", i32t.clone(), false),
            Field::new("confrelid", i32t.clone(), false),
            Field::new("confupdtype", text.clone(), false),
            Field::new("confdeltype", text.clone(), false),
            Field::new("confmatchtype", text.clone(), false),
            Field::new("conislocal", b.clone(), false),
            Field::new("coninhcount", DataType::Int16, false),
            Field::new("connoinherit", b, false),
            Field::new("conkey", int2s.clone(), true),
            Field::new("confkey", int2s, true),
            Field::new("conpfeqop", text.clone(), true),
            Field::new("conppeqop", text.clone(), true),
            Field::new("conffeqop", text.clone(), true),
            Field::new("confdelsetcols", text.clone(), true),
            Field::new("conexclop", text.clone(), true),
            Field::new("conbin", text, true),
        ];
        Self { class, keys, schema: Arc::new(Schema::new(fields)) }
    }

    async fn rows(&self, state: &dyn Session) -> DfResult<RecordBatch> {
        let class = scan_all(&self.class, state).await?;
        let keyed = self.keys.keyed_tables(&class)?;
        let k = keyed.len();
        let ints = |f: &dyn Fn(&(Key, i32, i32, usize)) -> i32| -> ArrayRef {
            Arc::new(Int32Array::from_iter_values(keyed.iter().map(f)))
        };
        let texts = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; k])) };
        let bools = |v: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![v; k])) };
        let nulls = || -> ArrayRef { Arc::new(StringArray::from(vec![None::<&str>; k])) };
        let columns: Vec<ArrayRef> = vec![
            ints(&|(_, oid, ..)| oid + CONSTRAINT_OID_OFFSET),
            Arc::new(StringArray::from_iter_values(keyed.iter().map(|(key, ..)| key.index_name()))),
            ints(&|(_, _, ns, _)| *ns),
            texts("p"),
            bools(false),
            bools(false),
            bools(true),
            ints(&|(_, oid, ..)| *oid),
            ints(&|_| 0),
            ints(&|(_, oid, ..)| oid + INDEX_OID_OFFSET),
            ints(&|_| 0),
            ints(&|_| 0),
            texts(" "),
            texts(" "),
            texts(" "),
            bools(true),
            Arc::new(Int16Array::from(vec![0i16; k])),
            bools(true),
            int2_lists(keyed.iter().map(|(key, ..)| Some(key.attnums.clone()))),
            int2_lists(keyed.iter().map(|_| None)),
            nulls(),
            nulls(),
            nulls(),
            nulls(),
            nulls(),
            nulls(),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

macro_rules! dynamic_table {
    ($t:ty) => {
        #[async_trait]
        impl TableProvider for $t {
            fn schema(&self) -> SchemaRef {
                self.schema.clone()
            }

            fn table_type(&self) -> TableType {
                TableType::View
            }

            async fn scan(
                &self,
                state: &dyn Session,
                projection: Option<&Vec<usize>>,
                _filters: &[Expr],
                _limit: Option<usize>,
            ) -> DfResult<Arc<dyn ExecutionPlan>> {
                let rows = self.rows(state).await?;
                exec(&self.schema, rows, projection)
            }
        }
    };
}

dynamic_table!(PgClass);
dynamic_table!(PgIndex);
dynamic_table!(PgConstraint);

/// `pg_get_indexdef(oid [, column, pretty])` and `pg_get_constraintdef(oid [, pretty])` for
/// the primary-key indexes and constraints.
#[derive(Debug)]
pub struct KeyDefinition {
    name: &'static str,
    signature: Signature,
    keys: Arc<PrimaryKeys>,
}

impl PartialEq for KeyDefinition {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for KeyDefinition {}
impl std::hash::Hash for KeyDefinition {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl KeyDefinition {
    pub fn index(keys: Arc<PrimaryKeys>) -> Self {
        Self { name: "pg_get_indexdef", signature: Signature::variadic_any(Volatility::Stable), keys }
    }

    pub fn constraint(keys: Arc<PrimaryKeys>) -> Self {
        Self { name: "pg_get_constraintdef", signature: Signature::variadic_any(Volatility::Stable), keys }
    }

    fn definition(&self, oid: i32) -> Option<String> {
        let key = self.keys.key_of(oid)?;
        let columns = key.columns.join(", ");
        Some(if self.name == "pg_get_indexdef" {
            format!("CREATE UNIQUE INDEX {} ON {SCHEMA}.{} USING btree ({columns})", key.index_name(), key.table)
        } else {
            format!("PRIMARY KEY ({columns})")
        })
    }
}

impl ScalarUDFImpl for KeyDefinition {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(first) = args.args.first() else {
            return Err(DataFusionError::Plan(format!("{}() needs an oid", self.name)));
        };
        let oids = arrow::compute::cast(&first.to_array(args.number_rows)?, &DataType::Int32)?;
        let oids = oids.as_primitive::<Int32Type>();
        let defs: StringArray =
            (0..oids.len()).map(|i| oids.is_valid(i).then(|| self.definition(oids.value(i))).flatten()).collect();
        Ok(ColumnarValue::Array(Arc::new(defs)))
    }
}
