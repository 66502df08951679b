//! `SET 'key' = 'value'` options of a session, with the defaults Eddy uses and checks for
//! the keys whose value it interprets.

use std::collections::BTreeMap;

/// Session options.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    map: BTreeMap<String, String>,
}

impl Settings {
    /// Set a key; errors (as a message) when a key Eddy interprets has a bad value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "parallelism.default" => {
                let n: usize =
                    value.trim().parse().map_err(|_| format!("'{key}' must be a positive integer, got '{value}'"))?;
                if n == 0 || n > 1024 {
                    return Err(format!("'{key}' must be between 1 and 1024, got {n}"));
                }
            }
            "execution.runtime-mode"
                if !matches!(value.to_ascii_lowercase().as_str(), "streaming" | "batch" | "automatic") =>
            {
                return Err(format!("'{key}' must be 'streaming', 'batch' or 'automatic', got '{value}'"));
            }
            "execution.checkpointing.num-retained" if value.trim().parse::<usize>().map_or(true, |n| n == 0) => {
                return Err(format!("'{key}' must be a positive integer, got '{value}'"));
            }
            "eddy.state.memory-limit" if parse_bytes(value).is_none() => {
                return Err(format!("'{key}' must be a size such as '512 mb' or '2 gb', got '{value}'"));
            }
            "pipeline.auto-watermark-interval"
            | "table.exec.state.ttl"
            | "execution.checkpointing.interval"
            | "table.exec.source.idle-timeout"
            | "table.exec.emit.allow-lateness"
            | "table.exec.emit.early-fire.delay"
                if parse_duration_ms(value).is_none() =>
            {
                return Err(format!("'{key}' must be a duration such as '200 ms' or '10 s', got '{value}'"));
            }
            _ => {}
        }
        self.map.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Remove one key, or all.
    pub fn reset(&mut self, key: Option<&str>) {
        match key {
            Some(k) => {
                self.map.remove(k);
            }
            None => self.map.clear(),
        }
    }

    /// A raw value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// All keys set, sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `parallelism.default` (default 1).
    pub fn parallelism(&self) -> usize {
        self.get("parallelism.default").and_then(|v| v.trim().parse().ok()).unwrap_or(1)
    }

    /// `pipeline.auto-watermark-interval` in ms (Flink's default is 200 ms).
    pub fn watermark_interval_ms(&self) -> u64 {
        self.get("pipeline.auto-watermark-interval").and_then(parse_duration_ms).unwrap_or(200)
    }

    /// `table.exec.emit.allow-lateness` in ms: how long a fired window keeps its state so
    /// late rows update it (0 = drop late rows, the default).
    pub fn allow_lateness_ms(&self) -> u64 {
        self.get("table.exec.emit.allow-lateness").and_then(parse_duration_ms).unwrap_or(0)
    }

    /// `table.exec.emit.early-fire.delay` in ms: how often open windows emit their running
    /// results (0 = only when they close, the default). `table.exec.emit.early-fire.enabled`
    /// = false turns it off, as in Flink.
    pub fn early_fire_delay_ms(&self) -> u64 {
        if self.get("table.exec.emit.early-fire.enabled").is_some_and(|v| v.trim().eq_ignore_ascii_case("false")) {
            return 0;
        }
        self.get("table.exec.emit.early-fire.delay").and_then(parse_duration_ms).unwrap_or(0)
    }

    /// `table.exec.source.idle-timeout` in ms (0 = disabled, the default).
    pub fn idle_timeout_ms(&self) -> u64 {
        self.get("table.exec.source.idle-timeout").and_then(parse_duration_ms).unwrap_or(0)
    }

    /// `execution.checkpointing.interval` in ms, if set (0 or unset: no checkpoints, as
    /// in Flink).
    pub fn checkpoint_interval_ms(&self) -> Option<u64> {
        self.get("execution.checkpointing.interval").and_then(parse_duration_ms).filter(|ms| *ms > 0)
    }

    /// `execution.checkpointing.num-retained`: complete checkpoints kept (default 2).
    pub fn checkpoints_retained(&self) -> usize {
        self.get("execution.checkpointing.num-retained").and_then(|v| v.trim().parse().ok()).unwrap_or(2)
    }

    /// `table.exec.state.ttl` in ms, if set and not 0 (Flink's default: keep state forever).
    pub fn state_ttl_ms(&self) -> Option<u64> {
        self.get("table.exec.state.ttl").and_then(parse_duration_ms).filter(|ms| *ms > 0)
    }

    /// `eddy.state.memory-limit` in bytes, if set: a job whose operators' state grows past
    /// it fails, naming the operator, rather than being killed by the system.
    pub fn state_memory_limit(&self) -> Option<u64> {
        self.get("eddy.state.memory-limit").and_then(parse_bytes)
    }

    /// Whether `execution.runtime-mode` is `batch`.
    pub fn is_batch(&self) -> bool {
        self.get("execution.runtime-mode").map(|v| v.eq_ignore_ascii_case("batch")).unwrap_or(false)
    }
}

/// A memory size (`'512 mb'`, `'2 gb'`, `'64kb'`, `'1048576'` = bytes; binary units, as
/// Flink's MemorySize).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kib" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mib" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gib" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tib" | "tebibytes" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// A Flink duration (`'200 ms'`, `'10 s'`, `'1 min'`, `'5'` = ms) in milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "m" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_values_of_known_keys() {
        let mut s = Settings::default();
        assert!(s.set("parallelism.default", "x").is_err());
        s.set("parallelism.default", "4").unwrap();
        assert_eq!(s.parallelism(), 4);
        s.set("pipeline.auto-watermark-interval", "0 ms").unwrap();
        assert_eq!(s.watermark_interval_ms(), 0);
        s.set("some.other", "anything").unwrap();
        s.reset(None);
        assert_eq!(s.parallelism(), 1);
    }
}
