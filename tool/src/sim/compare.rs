//! A variant against another (its parent, usually) on the same seeds: every figure of
//! every stage with its spread over the seeds, and the variant's `[[predictions]]` checked
//! against what the simulator measured.

use super::report::{SimReport, StageFigures};
use crate::workspace::variant::Prediction;
use serde::Serialize;

/// The figures compared, by the names predictions use.
pub use crate::workspace::variant::FIGURES;

/// One figure of one stage.
pub fn figure(s: &StageFigures, name: &str) -> Option<f64> {
    Some(match name {
        "observed_mib_per_s" => s.observed_mib_per_s,
        "rx_work_per_s" => s.rx_work_per_s,
        "rx_work_per_1000_rx_packets" => s.rx_work_per_1000_rx_packets,
        "tx_work_per_s" => s.tx_work_per_s,
        "rx_queue_lock_per_s" => s.rx_queue_lock_per_s,
        "rx_queue_lock_per_rx_packet" => s.rx_queue_lock_per_rx_packet,
        "bh_rx_wakeups_per_rx_batch" => s.bh_rx_wakeups_per_rx_batch,
        "bh_cpu_pct" => *s.cpu_pct_of_one_cpu.get("bh")?,
        // Time inside spin_lock_irqsave .. spin_unlock_irqrestore pairs over all locks, in
        // percent of one CPU: the model's `_raw_spin_unlock_irqrestore` share (perf charges
        // the interrupts held off to the unlock).
        "spinlock_cpu_pct" if !s.locks.is_empty() => s.locks.values().map(|l| l.cpu_pct_of_one_cpu).sum(),
        "spinlock_cpu_pct" => return None,
        // Waits of data frames in the driver (`xmit` to the SDIO write).
        "tx_wait_p50_ms" => s.tx_wait_ms.as_ref()?.p50?,
        "tx_wait_p99_ms" => s.tx_wait_ms.as_ref()?.p99?,
        _ => return None,
    })
}

/// A figure over the seeds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread { mean, min, max })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub stage: usize,
    pub figure: &'static str,
    pub against: Spread,
    pub variant: Spread,
}

/// What became of one prediction.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The variant's mean is within a tenth of the predicted change of `to`.
    Met {
        got: f64,
    },
    Missed {
        got: f64,
    },
    NotMeasurable {
        why: String,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct PredictionCheck {
    pub metric: String,
    pub from: String,
    pub to: String,
    pub check: Check,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub rows: Vec<Row>,
    pub predictions: Vec<PredictionCheck>,
}

/// Compares the runs of the variant with the runs of the other one, stage by stage (a
/// stage a run did not reach is left out of that run's figures).
pub fn compare(against: &[SimReport], variant: &[SimReport], predictions: &[Prediction]) -> Comparison {
    let stages = against.iter().chain(variant).map(|r| r.data.stages.len()).max().unwrap_or(0);
    let values = |runs: &[SimReport], stage: usize, name: &str| -> Vec<f64> {
        runs.iter().filter_map(|r| r.data.stages.get(stage)).filter_map(|s| figure(s, name)).collect()
    };
    let mut rows = Vec::new();
    for stage in 0..stages {
        for name in FIGURES {
            if let (Some(a), Some(v)) =
                (Spread::of(&values(against, stage, name)), Spread::of(&values(variant, stage, name)))
            {
                rows.push(Row { stage: stage + 1, figure: name, against: a, variant: v });
            }
        }
    }
    let predictions = predictions.iter().map(|p| check(p, &rows)).collect();
    Comparison { rows, predictions }
}

fn target(v: &toml::Value) -> Option<(f64, f64)> {
    crate::workspace::variant::prediction_range(v)
}

/// Checks a prediction against the last stage that has the figure (the ramp's heaviest).
fn check(p: &Prediction, rows: &[Row]) -> PredictionCheck {
    let shown = |v: &toml::Value| v.as_str().map_or_else(|| v.to_string(), String::from);
    let out = |check| PredictionCheck { metric: p.metric.clone(), from: shown(&p.from), to: shown(&p.to), check };
    let (Some(from), Some((lo, hi))) = (target(&p.from), target(&p.to)) else {
        return out(Check::NotMeasurable {
            why: "`from` and `to` must be numbers or ranges (`12-15%`) to be checked".into(),
        });
    };
    let from = (from.0 + from.1) / 2.0;
    let Some(row) = rows.iter().rev().find(|r| r.figure == p.metric) else {
        return out(Check::NotMeasurable {
            why: format!("the simulator has no figure `{}` (it has: {})", p.metric, FIGURES.join(", ")),
        });
    };
    let got = row.variant.mean;
    // A point is met within a tenth of the predicted change; a range is met inside it.
    let met = if lo < hi {
        (lo..=hi).contains(&got)
    } else {
        (got - lo).abs() <= 0.1 * (from - lo).abs().max(lo.abs()).max(1e-9)
    };
    out(if met { Check::Met { got } } else { Check::Missed { got } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rx_queue_lock_per_s: f64, rx_work_per_s: f64) -> SimReport {
        let text = format!(
            r#"{{"seed": "1", "clean": true, "stages": [{{"stage": 1, "rx_queue_lock_per_s": {rx_queue_lock_per_s},
            "rx_work_per_s": {rx_work_per_s}, "cpu_pct_of_one_cpu": {{"bh": 5.0}}}}]}}"#
        );
        SimReport::parse(text.as_bytes(), "test").unwrap()
    }

    fn prediction(metric: &str, from: toml::Value, to: toml::Value) -> Prediction {
        Prediction { metric: metric.into(), from, to, unit: None, confidence: "high".into() }
    }

    #[test]
    fn figures_carry_their_spread_and_predictions_are_met_missed_or_not_measurable() {
        let parent = [report(1900.0, 86.0), report(2000.0, 90.0)];
        let child = [report(0.0, 140.0), report(0.0, 150.0)];
        let c = compare(
            &parent,
            &child,
            &[
                prediction("rx_queue_lock_per_s", 1914.into(), 0.into()),
                prediction("rx_work_per_s", 86.into(), 60.into()),
                prediction("rx_work_per_s", "86".into(), "140-150/s".into()),
                prediction("_raw_spin_unlock_irqrestore", 20.into(), 13.into()),
                prediction("rx_work_per_s", "86".into(), "floor lifts".into()),
                prediction("rx_work_per_s", "86".into(), "12-15%".into()),
            ],
        );
        let row = c.rows.iter().find(|r| r.figure == "rx_work_per_s").unwrap();
        assert_eq!(row.against, Spread { mean: 88.0, min: 86.0, max: 90.0 });
        assert_eq!(row.variant.mean, 145.0);
        assert_eq!(c.predictions[0].check, Check::Met { got: 0.0 });
        assert_eq!(c.predictions[1].check, Check::Missed { got: 145.0 });
        assert_eq!(c.predictions[2].check, Check::Met { got: 145.0 });
        assert!(matches!(&c.predictions[3].check, Check::NotMeasurable { why } if why.contains("no figure")));
        assert!(matches!(&c.predictions[4].check, Check::NotMeasurable { why } if why.contains("numbers")));
        assert_eq!(c.predictions[5].check, Check::Missed { got: 145.0 });
    }
}
