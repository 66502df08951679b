//! Checkpoint files: one directory per epoch, one sub-directory per (plan node, subtask)
//! state, and the manifest that makes the epoch complete.
//!
//! Every file is written to a temporary name and renamed, and the manifest last: a process
//! killed while writing leaves an epoch without a manifest, which recovery ignores and the
//! next checkpoint's pruning removes.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use serde::{Deserialize, Serialize};

use super::StateSnapshot;
use crate::error::{EngineError, Result};

/// The manifest's file name inside an epoch's directory.
const MANIFEST: &str = "_manifest.json";

/// What a complete checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The checkpoint's number (1, 2, ... within a job's directory).
    pub epoch: u64,
    /// The plan that wrote it (see `fingerprint`): another plan cannot use it.
    pub fingerprint: String,
    /// Wall-clock time it completed, ms since the epoch.
    pub completed_ms: u64,
    /// State directories written, `<node>-<subtask>`.
    pub states: Vec<String>,
    /// Bytes written.
    pub bytes: u64,
    /// The final checkpoint of a job whose input ended: it holds only what its sinks
    /// pre-committed at the end, which a restart publishes instead of running the job again.
    #[serde(default)]
    pub finished: bool,
    /// Subtasks (head plan node, index) whose input had ended, without a sink: a restore
    /// does not run their sources again (what they read is in the state downstream).
    #[serde(default)]
    pub finished_tasks: Vec<(usize, usize)>,
}

/// A checkpoint read back for recovery: every state by (node, subtask).
#[derive(Debug, Default)]
pub struct Restored {
    /// The manifest.
    pub manifest: Option<Manifest>,
    /// States by (plan node id, subtask).
    pub states: BTreeMap<(usize, usize), StateSnapshot>,
}

impl Restored {
    /// The epoch restored from (0: none).
    pub fn epoch(&self) -> u64 {
        self.manifest.as_ref().map_or(0, |m| m.epoch)
    }

    /// Take the state of one node's subtask.
    pub fn take(&mut self, node: usize, subtask: usize) -> Option<StateSnapshot> {
        self.states.remove(&(node, subtask))
    }
}

fn io(context: impl std::fmt::Display, e: impl std::fmt::Display) -> EngineError {
    EngineError::Checkpoint(format!("{context}: {e}"))
}

/// The directory of epoch `epoch` under `dir`.
pub fn epoch_dir(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!("chk-{epoch}"))
}

/// The name of a state's directory.
pub fn state_name(node: usize, subtask: usize) -> String {
    format!("{node}-{subtask}")
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(|e| io(tmp.display(), e))?;
    fs::rename(&tmp, path).map_err(|e| io(path.display(), e))
}

/// Write one state of epoch `epoch`; the bytes written.
pub fn write_state(dir: &Path, epoch: u64, node: usize, subtask: usize, state: &StateSnapshot) -> Result<u64> {
    let state_dir = epoch_dir(dir, epoch).join(state_name(node, subtask));
    fs::create_dir_all(&state_dir).map_err(|e| io(state_dir.display(), e))?;
    let mut bytes = 0u64;
    for (i, batch) in state.batches.iter().enumerate() {
        let path = state_dir.join(format!("{i}.arrow"));
        let mut buf = Vec::new();
        {
            let mut w = FileWriter::try_new(&mut buf, batch.schema_ref()).map_err(|e| io(path.display(), e))?;
            w.write(batch).map_err(|e| io(path.display(), e))?;
            w.finish().map_err(|e| io(path.display(), e))?;
        }
        bytes += buf.len() as u64;
        write_atomically(&path, &buf)?;
    }
    let meta = serde_json::json!({ "meta": state.meta, "batches": state.batches.len() });
    let text = serde_json::to_vec(&meta).map_err(|e| io("state.json", e))?;
    bytes += text.len() as u64;
    write_atomically(&state_dir.join("state.json"), &text)?;
    Ok(bytes)
}

fn read_state(state_dir: &Path) -> Result<StateSnapshot> {
    let path = state_dir.join("state.json");
    let text = fs::read(&path).map_err(|e| io(path.display(), e))?;
    let doc: serde_json::Value = serde_json::from_slice(&text).map_err(|e| io(path.display(), e))?;
    let count = doc.get("batches").and_then(|b| b.as_u64()).unwrap_or(0);
    let mut batches = Vec::with_capacity(count as usize);
    for i in 0..count {
        let path = state_dir.join(format!("{i}.arrow"));
        let file = fs::File::open(&path).map_err(|e| io(path.display(), e))?;
        let reader = FileReader::try_new(file, None).map_err(|e| io(path.display(), e))?;
        let mut read = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| io(path.display(), e))?;
        match read.len() {
            1 => batches.extend(read.pop()),
            n => return Err(io(path.display(), format!("holds {n} batches, not 1"))),
        }
    }
    Ok(StateSnapshot { meta: doc.get("meta").cloned().unwrap_or(serde_json::Value::Null), batches })
}

/// Make epoch `manifest.epoch` complete.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let text = serde_json::to_vec_pretty(manifest).map_err(|e| io(MANIFEST, e))?;
    write_atomically(&epoch_dir(dir, manifest.epoch).join(MANIFEST), &text)
}

/// The epochs under `dir`, each with whether it is complete, in increasing order.
fn epochs(dir: &Path) -> Result<Vec<(u64, bool)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir.display(), e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(epoch) = name.strip_prefix("chk-").and_then(|n| n.parse::<u64>().ok()) {
            out.push((epoch, entry.path().join(MANIFEST).exists()));
        }
    }
    out.sort();
    Ok(out)
}

/// The highest epoch number used under `dir` (complete or not): new checkpoints count on
/// from it, so a torn epoch's directory is never reused.
pub fn last_epoch(dir: &Path) -> Result<u64> {
    Ok(epochs(dir)?.last().map_or(0, |(e, _)| *e))
}

/// The newest complete checkpoint under `dir`, read back.
pub fn latest(dir: &Path) -> Result<Option<Restored>> {
    let Some((epoch, _)) = epochs(dir)?.into_iter().rev().find(|(_, complete)| *complete) else {
        return Ok(None);
    };
    let edir = epoch_dir(dir, epoch);
    let path = edir.join(MANIFEST);
    let text = fs::read(&path).map_err(|e| io(path.display(), e))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| io(path.display(), e))?;
    let mut states = BTreeMap::new();
    for name in &manifest.states {
        let parsed = name.split_once('-').and_then(|(n, s)| Some((n.parse::<usize>().ok()?, s.parse::<usize>().ok()?)));
        let Some(key) = parsed else {
            return Err(io(path.display(), format!("bad state name '{name}'")));
        };
        states.insert(key, read_state(&edir.join(name))?);
    }
    Ok(Some(Restored { manifest: Some(manifest), states }))
}

/// Remove incomplete epochs older than `keep_from` and complete ones beyond the newest
/// `retained`.
pub fn prune(dir: &Path, retained: usize, current: u64) -> Result<()> {
    let all = epochs(dir)?;
    let complete: Vec<u64> = all.iter().filter(|(_, c)| *c).map(|(e, _)| *e).collect();
    let keep: Vec<u64> = complete.iter().rev().take(retained.max(1)).copied().collect();
    for (epoch, _) in all {
        if epoch >= current || keep.contains(&epoch) {
            continue;
        }
        let path = epoch_dir(dir, epoch);
        fs::remove_dir_all(&path).map_err(|e| io(path.display(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec!["a", "b"])), Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .expect("batch")
    }

    #[test]
    fn only_complete_epochs_are_restored_and_old_ones_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateSnapshot { meta: serde_json::json!({"watermark": 7}), batches: vec![batch()] };
        for epoch in 1..=3 {
            let bytes = write_state(dir.path(), epoch, 4, 1, &state).expect("write");
            assert!(bytes > 0);
            if epoch < 3 {
                let manifest = Manifest {
                    epoch,
                    fingerprint: "f".into(),
                    completed_ms: 0,
                    states: vec![state_name(4, 1)],
                    bytes,
                    finished: false,
                    finished_tasks: Vec::new(),
                };
                write_manifest(dir.path(), &manifest).expect("manifest");
            }
        }
        // Epoch 3 has no manifest (torn): 2 is the latest.
        let mut restored = latest(dir.path()).expect("read").expect("some");
        assert_eq!(restored.epoch(), 2);
        let s = restored.take(4, 1).expect("state");
        assert_eq!(s.meta, serde_json::json!({"watermark": 7}));
        assert_eq!(s.batches, vec![batch()]);
        assert_eq!(last_epoch(dir.path()).expect("last"), 3);
        prune(dir.path(), 1, 4).expect("prune");
        assert!(!epoch_dir(dir.path(), 1).exists());
        assert!(epoch_dir(dir.path(), 2).exists());
        assert!(!epoch_dir(dir.path(), 3).exists(), "torn epochs go");
    }
}
