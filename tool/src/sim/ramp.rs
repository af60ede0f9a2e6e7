//! The stress ramp syntax: `RATE:DURATION[,RATE:DURATION...]`, rate in MB/s (10^6 bytes
//! per second, offered over the air), duration with a unit `s`, `m` or `h`. The seed's
//! Phase 7 ramp is `1:5m,2:10m,4:30m,8:30m`.

use crate::error::{BenchError, Result};

pub const DEFAULT_RAMP: &str = "1:5m,2:10m,4:30m,8:30m";

/// Highest offered rate a stage may ask for: far above what SDIO carries (about 25 MB/s).
pub const MAX_RATE_MB_PER_S: f64 = 100.0;
/// Longest stage: one virtual day.
pub const MAX_STAGE_S: u64 = 24 * 3600;
/// Longest ramp: one virtual week (the simulator's counters and clock stay far from overflow).
pub const MAX_RAMP_S: u64 = 7 * 24 * 3600;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub offered_mb_per_s: f64,
    pub duration_s: u64,
}

pub fn parse(text: &str) -> Result<Vec<Stage>> {
    let bad = |n: usize, item: &str, why: &str| {
        BenchError::usage(format!("bad --ramp stage {n} `{item}`: {why}"))
            .hint(format!("write RATE:DURATION stages separated by commas, e.g. --ramp {DEFAULT_RAMP}"))
    };
    if text.trim().is_empty() {
        return Err(bad(1, text, "the ramp is empty"));
    }
    let mut stages = Vec::new();
    for (i, item) in text.split(',').enumerate() {
        let n = i + 1;
        let item = item.trim();
        let Some((rate, duration)) = item.split_once(':') else {
            return Err(bad(n, item, "missing `:` between rate and duration"));
        };
        let offered_mb_per_s: f64 =
            rate.trim().parse().map_err(|_| bad(n, item, &format!("rate `{rate}` is not a number (MB/s)")))?;
        if !(offered_mb_per_s > 0.0 && offered_mb_per_s.is_finite()) {
            return Err(bad(n, item, &format!("rate must be a positive number of MB/s, not `{rate}`")));
        }
        if offered_mb_per_s > MAX_RATE_MB_PER_S {
            return Err(bad(n, item, &format!("rate {rate} MB/s is above the limit of {MAX_RATE_MB_PER_S} MB/s")));
        }
        let duration = duration.trim();
        let (digits, unit_s) = match duration.chars().last() {
            Some('s') => (&duration[..duration.len() - 1], 1),
            Some('m') => (&duration[..duration.len() - 1], 60),
            Some('h') => (&duration[..duration.len() - 1], 3600),
            _ => return Err(bad(n, item, &format!("duration `{duration}` needs a unit: s, m or h"))),
        };
        let count: u64 = digits
            .parse()
            .map_err(|_| bad(n, item, &format!("duration `{duration}` is not a whole number with a unit")))?;
        if count == 0 {
            return Err(bad(n, item, "duration must be positive"));
        }
        let duration_s = count
            .checked_mul(unit_s)
            .filter(|d| *d <= MAX_STAGE_S)
            .ok_or_else(|| bad(n, item, &format!("duration `{duration}` is above the limit of one stage, 24h")))?;
        stages.push(Stage { offered_mb_per_s, duration_s });
    }
    let total_s: u64 = stages.iter().map(|s| s.duration_s).sum();
    if total_s > MAX_RAMP_S {
        return Err(BenchError::usage(format!(
            "bad --ramp: {} h in all, above the limit of {} h (one virtual week)",
            total_s / 3600,
            MAX_RAMP_S / 3600
        ))
        .hint(format!("shorten the stages, e.g. --ramp {DEFAULT_RAMP}")));
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ramp_is_the_seeds_phase_7() {
        let s = parse(DEFAULT_RAMP).unwrap();
        let pairs: Vec<(f64, u64)> = s.iter().map(|s| (s.offered_mb_per_s, s.duration_s)).collect();
        assert_eq!(pairs, [(1.0, 300), (2.0, 600), (4.0, 1800), (8.0, 1800)]);
    }

    #[test]
    fn rejects_bad_stages_naming_the_stage() {
        let cases = [
            ("0:5m", "rate must be a positive"),
            ("-1:5m", "rate must be a positive"),
            ("4:0m", "duration must be positive"),
            ("4:5", "needs a unit"),
            ("4-5m", "missing `:`"),
            ("x:5m", "is not a number"),
            ("1:5m,,", "stage 2"),
            ("", "empty"),
            ("4:9999999999999999h", "above the limit of one stage"),
            ("4:100000000h", "above the limit of one stage"),
            ("4:5000000h", "above the limit of one stage"),
            ("1e308:1s", "above the limit of 100 MB/s"),
            ("NaN:1s", "rate must be a positive"),
            ("inf:1s", "rate must be a positive"),
            ("4:24h,4:24h,4:24h,4:24h,4:24h,4:24h,4:24h,4:1s", "above the limit of 168 h"),
        ];
        crate::error::assert_each_fails(&cases, crate::error::Kind::Usage, parse);
    }
}
