//! `FOR SYSTEM_TIME AS OF`: a table read as a versioned table in a temporal join.
//!
//! DataFusion's SQL planner ignores a table's version clause, so before planning:
//!
//! * the versioned table is renamed to `__eddy_versioned__<name>` (keeping its alias, or
//!   taking its own name as alias, so column references stay valid), which the context
//!   resolves to the same table marked versioned (`EddyTableSource::versioned`);
//! * the join's ON condition gains `__eddy_as_of(<AS OF time>, <alias>.<its rowtime>)`, a
//!   volatile function that is always true: it keeps both time columns from being pruned, and
//!   as it reads both sides it stays in the join's condition, where the join planner finds
//!   (and removes) it to learn which column the table is read as of.

use std::ops::ControlFlow;

use arrow::array::BooleanArray;
use arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use sqlparser::ast::{
    BinaryOperator, Expr, Ident, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query, SetExpr, TableAlias,
    TableFactor, TableVersion, VisitMut, VisitorMut,
};

use super::context::EddyContext;
use crate::catalog::CatalogEntry;

/// The name a versioned table is planned under.
pub(crate) const VERSIONED_PREFIX: &str = "__eddy_versioned__";

/// The marker function in a temporal join's condition.
pub(crate) const AS_OF: &str = "__eddy_as_of";

/// Rewrites every `JOIN t FOR SYSTEM_TIME AS OF x ON c` of `q` (see the module docs).
pub(crate) fn rewrite_versioned_tables(q: &mut Query, ctx: &EddyContext<'_>) {
    let _ = q.visit(&mut Rewriter { ctx });
}

struct Rewriter<'a, 'b> {
    ctx: &'a EddyContext<'b>,
}

impl VisitorMut for Rewriter<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = q.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        for from in &mut select.from {
            for join in &mut from.joins {
                let TableFactor::Table { name, alias, version, .. } = &mut join.relation else { continue };
                let Some(TableVersion::ForSystemTimeAsOf(time)) = version.take() else { continue };
                let Some(ObjectNamePart::Identifier(table)) = name.0.last().cloned() else { continue };
                let alias = alias
                    .get_or_insert_with(|| TableAlias {
                        explicit: true,
                        name: table.clone(),
                        columns: vec![],
                        at: None,
                    })
                    .name
                    .clone();
                let renamed = Ident { value: format!("{VERSIONED_PREFIX}{}", table.value), ..table.clone() };
                *name = ObjectName(vec![ObjectNamePart::Identifier(renamed)]);
                // The table's rowtime column (kept from pruning: the versions are read by
                // it), else any column.
                let first_column = match self.ctx.catalog.get(&table.value) {
                    Some(CatalogEntry::Table(t)) => t
                        .watermark
                        .as_ref()
                        .map(|w| w.column.clone())
                        .or_else(|| t.columns.first().map(|c| c.name.clone())),
                    _ => None,
                };
                let Some(first_column) = first_column else { continue };
                let marker = super::rewrite::call(
                    AS_OF,
                    vec![time, Expr::CompoundIdentifier(vec![alias, Ident::new(first_column)])],
                );
                let constraint = match &mut join.join_operator {
                    JoinOperator::Join(c)
                    | JoinOperator::Inner(c)
                    | JoinOperator::Left(c)
                    | JoinOperator::LeftOuter(c)
                    | JoinOperator::Right(c)
                    | JoinOperator::RightOuter(c)
                    | JoinOperator::FullOuter(c) => c,
                    _ => continue,
                };
                if let JoinConstraint::On(on) = constraint {
                    let on_expr = std::mem::replace(on, Expr::value(sqlparser::ast::Value::Boolean(true)));
                    *on = Expr::BinaryOp {
                        left: Box::new(Expr::Nested(Box::new(on_expr))),
                        op: BinaryOperator::And,
                        right: Box::new(marker),
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// `__eddy_as_of(time, column)`: always true (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AsOf {
    signature: Signature,
}

impl AsOf {
    /// The marker function.
    pub fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Volatile) }
    }
}

impl Default for AsOf {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for AsOf {
    fn name(&self) -> &str {
        AS_OF
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Array(std::sync::Arc::new(BooleanArray::from(vec![true; args.number_rows]))))
    }
}
