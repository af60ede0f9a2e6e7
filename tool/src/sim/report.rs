//! The simulator's report, typed: one reading of `bes2600-sim`'s JSON that `bench stress`,
//! the stress oracle of `bench bisect`, `bench bench-sim` and `bench pr` share. The JSON
//! itself is kept as it came (`raw`): `--json` passes it on unchanged, keys in order.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One run's report.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub data: ReportData,
    pub raw: serde_json::Value,
}

/// What a report must say is required; figures a simulator of an older tree may not write
/// (a bisect builds those) default to empty.
#[derive(Clone, Debug, Deserialize)]
pub struct ReportData {
    /// Written as a string (a u64 seed does not fit a JSON number exactly). Required: a
    /// report that does not say its seed cannot be replayed, so it is refused.
    #[serde(deserialize_with = "u64_in_string")]
    #[allow(dead_code)]
    pub seed: u64,
    pub clean: bool,
    pub stages: Vec<StageFigures>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub virtual_s: f64,
    #[serde(default)]
    pub warn_count: u64,
    /// The first WARNs, with their call paths.
    #[serde(default)]
    pub warns: Vec<Warn>,
    /// Rare paths and how often the run reached them.
    #[serde(default)]
    pub coverage: BTreeMap<String, u64>,
    #[serde(default)]
    pub contract_violations: u64,
    #[serde(default)]
    pub failures: Vec<Failure>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Warn {
    pub time_s: f64,
    pub context: String,
    pub call_path: Vec<String>,
    pub message: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Failure {
    pub time_s: f64,
    /// `warn`, `tx-wedge`, `link-dead`, `bug`, `contract`, `protocol`, ...
    pub kind: String,
    pub detail: String,
}

/// The figures of one stage, in the seed's units (a figure the simulator did not write
/// reads as 0).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct StageFigures {
    pub stage: u64,
    pub offered_mb_per_s: f64,
    pub duration_s: f64,
    /// When a failure ended the run inside this stage.
    pub cut_short_at_s: Option<f64>,
    pub rx_packets: u64,
    pub rx_mb: f64,
    pub observed_mib_per_s: f64,
    pub rx_work_per_s: f64,
    pub rx_work_per_1000_rx_packets: f64,
    pub tx_work_per_s: f64,
    pub rx_queue_lock_per_s: f64,
    pub rx_queue_lock_per_rx_packet: f64,
    pub bh_rx_wakeups_per_rx_batch: f64,
    /// CPU share per context, in percent of one CPU.
    pub cpu_pct_of_one_cpu: BTreeMap<String, f64>,
    pub warns: u64,
    /// Per lock: acquisitions and the CPU share spent holding it (older simulators: none).
    #[serde(default)]
    pub locks: BTreeMap<String, LockFigures>,
    /// How long data frames waited in the driver, `xmit` to the SDIO write (older
    /// simulators: none).
    #[serde(default)]
    pub tx_wait_ms: Option<TxWait>,
}

/// Data frames' waits in the driver in one stage, in ms: each a bucket's upper bound of
/// the simulator's histogram (at most 25% above the wait), `None` without a data frame.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TxWait {
    pub frames: u64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// One lock's figures in one stage.
#[derive(Clone, Debug, Deserialize)]
pub struct LockFigures {
    pub acquisitions_per_s: f64,
    pub cpu_pct_of_one_cpu: f64,
}

impl StageFigures {
    /// Seconds the stage ran (less than its duration when the run was cut short).
    pub fn ran_s(&self) -> f64 {
        self.cut_short_at_s.unwrap_or(self.duration_s)
    }
}

/// A u64 written as a JSON string ("18446744073709551615") or, by older simulators, a number.
fn u64_in_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(u64),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(t) => t.parse().map_err(|_| serde::de::Error::custom(format!("`{t}` is not a seed"))),
    }
}

impl SimReport {
    /// Reads a report; `what` names it in the error (the simulator, a file).
    pub fn parse(bytes: &[u8], what: &str) -> Result<SimReport> {
        let raw: serde_json::Value = serde_json::from_slice(bytes).or_env(format!("{what}: the report is not JSON"))?;
        let data = ReportData::deserialize(&raw).map_err(|e| {
            BenchError::env(format!("{what}: the report is not one bes2600-sim writes")).cause(e.to_string())
        })?;
        Ok(SimReport { data, raw })
    }

    /// The first failure, or else the first WARN, as one line.
    pub fn first_failure(&self) -> String {
        self.data
            .failures
            .first()
            .map(|x| format!("{}: {}", x.kind, x.detail))
            .or_else(|| self.data.warns.first().map(|w| w.message.clone()))
            .unwrap_or_default()
    }

    /// Adds fields to the JSON (the variant and ramp a run was asked for).
    pub fn annotate(&mut self, fields: &[(&str, serde_json::Value)]) {
        if let serde_json::Value::Object(map) = &mut self.raw {
            for (k, v) in fields {
                map.insert((*k).to_string(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_with_its_figures_and_a_wrong_one_names_itself() {
        let text = br#"{"seed": "7", "features": ["patch-b"], "clean": false, "virtual_s": 2.0, "warn_count": 1,
            "warns": [{"time_s": 1.5, "context": "rx_work", "call_path": ["sdio_rx_work"], "message": "WARNING: x"}],
            "failures": [], "stages": [{"stage": 1, "offered_mb_per_s": 4.0, "duration_s": 2, "cut_short_at_s": 1.5,
            "rx_packets": 10, "rx_mb": 0.1, "observed_mib_per_s": 0.5, "rx_work_per_s": 1.0,
            "rx_work_per_1000_rx_packets": 2.0, "tx_work_per_s": 3.0, "rx_queue_lock_per_s": 4.0,
            "rx_queue_lock_per_rx_packet": 5.0, "bh_rx_wakeups_per_rx_batch": 6.0,
            "cpu_pct_of_one_cpu": {"bh": 7.0}, "warns": 1, "extra": true}]}"#;
        let r = SimReport::parse(text, "test").unwrap();
        assert_eq!(r.data.seed, 7);
        assert_eq!(r.data.stages[0].ran_s(), 1.5);
        assert_eq!(r.first_failure(), "WARNING: x");
        assert_eq!(r.raw["stages"][0]["extra"], true, "fields the type does not name are kept");
        let e = SimReport::parse(br#"{"seed": "x", "clean": true, "stages": []}"#, "sim for c").unwrap_err();
        assert!(e.causes[0].contains("`x` is not a seed"), "{:?}", e.causes);
        let old = SimReport::parse(br#"{"seed": 18446744073709551615, "clean": true, "stages": []}"#, "old").unwrap();
        assert_eq!(old.data.seed, u64::MAX);
        assert!(e.message.contains("sim for c") && e.message.contains("not one bes2600-sim writes"), "{}", e.message);
        assert!(SimReport::parse(b"not json", "f").unwrap_err().message.contains("not JSON"));
    }
}
