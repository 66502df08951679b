//! `CASE WHEN e = v₁ THEN r₁ WHEN e = v₂ THEN r₂ … [ELSE x] END` where every WHEN compares
//! one expression `e` with a literal and every THEN is a literal: a mapping of values, as
//! in Nexmark q21's `CASE WHEN lower(channel) = 'apple' THEN '0' … ELSE REGEXP_EXTRACT(..)`.
//!
//! Why: DataFusion's CASE evaluates one branch at a time, filtering the rows still
//! unmatched (every column the CASE reads) after each WHEN: four copies of q21's url
//! column per batch. Here `e` is evaluated once, compared with each value, and the ELSE
//! is evaluated once on the rows no WHEN matched (the only filter); the result is
//! gathered from the THEN literals and the ELSE's values.
//!
//! It evaluates exactly what DataFusion's CASE does: `e` on every row (the first WHEN
//! reads every row), the ELSE only on the rows that reach it. A NULL `e` matches no
//! value, and the first WHEN that matches wins.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, Datum, RecordBatch, Scalar};
use arrow::compute::kernels::cmp::eq;
use arrow::compute::{filter_record_batch, interleave};
use arrow::datatypes::{DataType, Schema};
use datafusion::error::Result;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, CaseExpr, Literal};
use datafusion::physical_expr::PhysicalExpr;

/// A CASE of that shape, ready to evaluate.
pub(super) struct KeyedCase {
    /// `e`.
    key: Arc<dyn PhysicalExpr>,
    /// Per WHEN, its value `vᵢ` and result `rᵢ` (one row each).
    arms: Vec<(Scalar<ArrayRef>, ArrayRef)>,
    /// `x` (`None`: NULL).
    otherwise: Option<Arc<dyn PhysicalExpr>>,
    data_type: DataType,
}

impl KeyedCase {
    /// `expr` in this form, when it is such a CASE over `schema`.
    pub(super) fn of(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<Self> {
        let any: &dyn std::any::Any = expr.as_ref();
        let case = any.downcast_ref::<CaseExpr>()?;
        if case.expr().is_some() || case.when_then_expr().is_empty() {
            return None;
        }
        let data_type = expr.data_type(schema).ok()?;
        let mut key: Option<&Arc<dyn PhysicalExpr>> = None;
        let mut arms = Vec::with_capacity(case.when_then_expr().len());
        for (when, then) in case.when_then_expr() {
            let (e, value) = compared_with_literal(when)?;
            match key {
                Some(k) if k != e => return None,
                _ => key = Some(e),
            }
            // Same types on both sides, as the planner coerces them; else DataFusion decides.
            if value.value().data_type() != e.data_type(schema).ok()? || value.value().is_null() {
                return None;
            }
            let result = literal(then)?;
            if result.data_type() != data_type {
                return None;
            }
            arms.push((Scalar::new(value.value().to_array_of_size(1).ok()?), result.to_array_of_size(1).ok()?));
        }
        let otherwise = case.else_expr().cloned();
        if let Some(x) = &otherwise {
            if x.data_type(schema).ok()? != data_type {
                return None;
            }
        }
        Some(Self { key: Arc::clone(key?), arms, otherwise, data_type })
    }

    /// The CASE's value for each row of `batch`.
    pub(super) fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let rows = batch.num_rows();
        let key = self.key.evaluate(batch)?.into_array(rows)?;
        // Per row, the first arm that matched; `unmatched` for none.
        let unmatched = self.arms.len() as u32;
        let mut arm = vec![unmatched; rows];
        for (k, (value, _)) in self.arms.iter().enumerate() {
            let equal = eq(&key, value as &dyn Datum)?;
            // NULL (a NULL key) is not a match.
            let hits = match equal.nulls() {
                Some(nulls) => equal.values() & nulls.inner(),
                None => equal.values().clone(),
            };
            for i in hits.set_indices() {
                if arm[i] == unmatched {
                    arm[i] = k as u32;
                }
            }
        }
        let rest = arm.iter().filter(|a| **a == unmatched).count();
        let otherwise = match &self.otherwise {
            _ if rest == 0 => new_null_array(&self.data_type, 0),
            None => new_null_array(&self.data_type, 1),
            Some(x) if rest == rows || literal_of(x).is_some() => x.evaluate(batch)?.into_array(rest)?,
            Some(x) => {
                let mask = BooleanArray::from_iter(arm.iter().map(|a| Some(*a == unmatched)));
                let reaching = filter_record_batch(batch, &mask)?;
                x.evaluate(&reaching)?.into_array(rest)?
            }
        };
        let mut sources: Vec<&dyn Array> = self.arms.iter().map(|(_, r)| r.as_ref()).collect();
        sources.push(otherwise.as_ref());
        // The ELSE's values in row order (without an ELSE: its one NULL each time).
        let mut next = 0;
        let indices: Vec<(usize, usize)> = arm
            .iter()
            .map(|&a| match a == unmatched && self.otherwise.is_some() {
                false => (a as usize, 0),
                true => {
                    next += 1;
                    (a as usize, next - 1)
                }
            })
            .collect();
        Ok(interleave(&sources, &indices)?)
    }
}

/// `(e, v)` of `e = v` or `v = e` with `v` a literal.
fn compared_with_literal(when: &Arc<dyn PhysicalExpr>) -> Option<(&Arc<dyn PhysicalExpr>, &Literal)> {
    let any: &dyn std::any::Any = when.as_ref();
    let binary = any.downcast_ref::<BinaryExpr>()?;
    if *binary.op() != Operator::Eq {
        return None;
    }
    match (literal_of(binary.left()), literal_of(binary.right())) {
        (None, Some(v)) => Some((binary.left(), v)),
        (Some(v), None) => Some((binary.right(), v)),
        _ => None,
    }
}

fn literal_of(e: &Arc<dyn PhysicalExpr>) -> Option<&Literal> {
    let any: &dyn std::any::Any = e.as_ref();
    any.downcast_ref::<Literal>()
}

fn literal(e: &Arc<dyn PhysicalExpr>) -> Option<&datafusion::common::ScalarValue> {
    literal_of(e).map(Literal::value)
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::Field;
    use datafusion::common::ScalarValue;
    use datafusion::physical_expr::expressions::{binary, case, col, lit};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)])
    }

    fn batch() -> RecordBatch {
        let k = StringArray::from(vec![Some("a"), Some("b"), None, Some("c"), Some("a"), Some("z"), Some("b")]);
        let v = Int64Array::from(vec![Some(1), Some(2), Some(3), None, Some(5), Some(6), Some(7)]);
        RecordBatch::try_new(Arc::new(schema()), vec![Arc::new(k), Arc::new(v)]).unwrap()
    }

    /// `CASE WHEN k = 'a' THEN 'A' WHEN 'b' = k THEN 'B' WHEN k = 'a' THEN 'never' ELSE x END`
    fn mapping(otherwise: Option<Arc<dyn PhysicalExpr>>) -> Arc<dyn PhysicalExpr> {
        let s = schema();
        let k = || col("k", &s).unwrap();
        let whens = vec![
            (binary(k(), Operator::Eq, lit("a"), &s).unwrap(), lit("A")),
            (binary(lit("b"), Operator::Eq, k(), &s).unwrap(), lit("B")),
            (binary(k(), Operator::Eq, lit("a"), &s).unwrap(), lit("never")),
        ];
        case(None, whens, otherwise).unwrap()
    }

    fn strings(a: &ArrayRef) -> Vec<Option<String>> {
        a.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
    }

    /// The same values as DataFusion's CASE: with an ELSE reading another column (also
    /// NULL in places), a literal ELSE, and none; with every row matched and none.
    #[test]
    fn agrees_with_datafusion_case() {
        let s = schema();
        let b = batch();
        let v_text =
            || datafusion::physical_expr::expressions::cast(col("v", &s).unwrap(), &s, DataType::Utf8).unwrap();
        for otherwise in [Some(v_text()), Some(lit("other")), Some(lit(ScalarValue::Utf8(None))), None] {
            let expr = mapping(otherwise);
            let keyed = KeyedCase::of(&expr, &s).expect("a keyed CASE");
            for rows in [b.clone(), b.slice(0, 2), b.slice(5, 1), b.slice(2, 1), b.slice(0, 0)] {
                let want = expr.evaluate(&rows).unwrap().into_array(rows.num_rows()).unwrap();
                let got = keyed.evaluate(&rows).unwrap();
                assert_eq!(strings(&got), strings(&want), "{expr} on {} rows", rows.num_rows());
            }
        }
        let got = KeyedCase::of(&mapping(Some(v_text())), &s).unwrap().evaluate(&b).unwrap();
        let want = ["A", "B", "3", "", "A", "6", "B"].map(|v| (!v.is_empty()).then(|| v.to_string()));
        assert_eq!(strings(&got), want.to_vec());
    }

    /// Other CASEs are left to DataFusion.
    #[test]
    fn only_literal_mappings_of_one_expression() {
        let s = schema();
        let k = || col("k", &s).unwrap();
        let v = || col("v", &s).unwrap();
        let eq = |l, r| binary(l, Operator::Eq, r, &s).unwrap();
        // Two different expressions compared.
        let two = case(None, vec![(eq(k(), lit("a")), lit(1i64)), (eq(v(), lit(2i64)), lit(2i64))], None).unwrap();
        assert!(KeyedCase::of(&two, &s).is_none());
        // A THEN that is not a literal.
        let column = case(None, vec![(eq(k(), lit("a")), v())], None).unwrap();
        assert!(KeyedCase::of(&column, &s).is_none());
        // Not an equality.
        let less = case(None, vec![(binary(v(), Operator::Lt, lit(2i64), &s).unwrap(), lit(1i64))], None).unwrap();
        assert!(KeyedCase::of(&less, &s).is_none());
        // `CASE k WHEN ..`.
        let simple = case(Some(k()), vec![(lit("a"), lit(1i64))], None).unwrap();
        assert!(KeyedCase::of(&simple, &s).is_none());
        // An integer mapping is one.
        let ints = case(None, vec![(eq(v(), lit(2i64)), lit(20i64))], Some(v())).unwrap();
        let got = KeyedCase::of(&ints, &s).unwrap().evaluate(&batch()).unwrap();
        let want = ints.evaluate(&batch()).unwrap().into_array(7).unwrap();
        assert_eq!(got.as_primitive::<arrow::datatypes::Int64Type>(), want.as_primitive());
    }
}
