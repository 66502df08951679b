//! Checkpoints: consistent snapshots of a running job, from which it resumes after a crash
//! with no row lost and none counted twice.
//!
//! Flink's aligned checkpoints (Chandy-Lamport for DAGs): every `execution.checkpointing.interval`
//! the coordinator asks each source subtask for a barrier. A source records its position
//! (Kafka offsets, file position, generator sequence) and sends `Barrier(epoch)` downstream,
//! in order with its data. A subtask with several inputs aligns: once an input delivered the
//! barrier, its later messages wait until every input did. Then each operator of the chain
//! writes its state, sinks pre-commit (flush, close in-progress files or transactions), the
//! barrier goes on, and the subtask acknowledges. When every subtask has, the epoch's manifest
//! is written atomically: the checkpoint is complete, and sinks are told to commit.
//!
//! Two epochs are special. A stop (with checkpoints) is taken at an epoch: sources end after
//! its barrier, subtasks leave once it passed them, sinks publish it, and the job resumes
//! from it later, with no end-of-input flush in between. And when the input ends, the
//! sinks' pre-commits of everything written make a final checkpoint (`finished` in its
//! manifest) before they publish: a restart then only publishes, and does not run the job
//! again.
//!
//! Layout under the job's checkpoint directory:
//!
//! ```text
//! chk-<epoch>/<node>-<subtask>/state.json   the operator's or source's small state (JSON)
//! chk-<epoch>/<node>-<subtask>/<i>.arrow    its bulk state (Arrow IPC), if any
//! chk-<epoch>/_manifest.json                written last (tmp + rename): the epoch is complete
//! ```

mod coordinator;
pub mod store;

pub use coordinator::CheckpointConfig;
pub(crate) use coordinator::{start, Ack, TaskLink, FINAL_EPOCH};
pub use store::{Manifest, Restored};

use arrow::record_batch::RecordBatch;

/// FNV-1a of `text`: the same in every build and on every machine (std's hasher is not), for
/// names and identities kept on disk.
pub fn stable_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// One operator's (or source's, or sink's) state at a checkpoint: a small JSON document
/// and, for bulk state, Arrow batches (written as Arrow IPC, one file per batch, so the
/// batches need not share a schema).
#[derive(Debug, Clone, Default)]
pub struct StateSnapshot {
    /// Scalars and structure (watermarks, positions, which batch holds what).
    pub meta: serde_json::Value,
    /// Bulk state, referred to from `meta` by index.
    pub batches: Vec<RecordBatch>,
}

impl StateSnapshot {
    /// State that is only `meta`.
    pub fn meta(meta: serde_json::Value) -> Self {
        Self { meta, batches: Vec::new() }
    }
}
