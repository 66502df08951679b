//! Operators: what runs between a source and a sink.
//!
//! An operator is lifecycle-shaped ([`StreamOperator`]): only `process_batch` is required;
//! watermarks are forwarded and end-of-input is a no-op unless an operator needs more.
//! Contract for every hook: outputs are appended to `out` in order; an `Err` fails the job
//! (bad rows are a connector's business and never reach here as errors); watermarks
//! passed to `handle_watermark` only move forward.

mod filter;
mod project;
mod unnest;
mod watermark;

pub use filter::FilterOperator;
pub use project::ProjectOperator;
pub use unnest::UnnestOperator;
pub use watermark::WatermarkOperator;

use crate::error::Result;
use crate::message::{Batch, Message, Watermark};

/// A step of an operator chain.
pub trait StreamOperator: Send {
    /// Name for errors and EXPLAIN-like logs.
    fn name(&self) -> String;

    /// Process one batch of rows.
    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()>;

    /// Event time advanced to `wm` on all inputs. Default: forward it.
    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        out.push(Message::Watermark(wm));
        Ok(())
    }

    /// All inputs ended. Default: nothing to flush. (`End` itself is forwarded by the chain.)
    fn on_end(&mut self, _out: &mut Vec<Message>) -> Result<()> {
        Ok(())
    }
}

/// Run messages through a chain of operators, in order.
pub fn run_chain(ops: &mut [Box<dyn StreamOperator>], input: Message) -> Result<Vec<Message>> {
    let mut current = vec![input];
    for op in ops.iter_mut() {
        let mut next = Vec::with_capacity(current.len());
        for m in current {
            match m {
                Message::Data(b) => op.process_batch(b, &mut next)?,
                Message::Watermark(w) => op.handle_watermark(w, &mut next)?,
                Message::End => {
                    op.on_end(&mut next)?;
                    next.push(Message::End);
                }
            }
        }
        current = next;
    }
    Ok(current)
}
