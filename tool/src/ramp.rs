//! The stress ramp syntax: `RATE:DURATION[,RATE:DURATION...]`, rate in MB/s (10^6 bytes
//! per second, offered over the air), duration with a unit `s`, `m` or `h`. The seed's
//! Phase 7 ramp is `1:5m,2:10m,4:30m,8:30m`.

use crate::error::{BenchError, Result};

pub const DEFAULT_RAMP: &str = "1:5m,2:10m,4:30m,8:30m";

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
        stages.push(Stage { offered_mb_per_s, duration_s: count * unit_s });
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
        for (text, needle) in [
            ("0:5m", "rate must be a positive"),
            ("-1:5m", "rate must be a positive"),
            ("4:0m", "duration must be positive"),
            ("4:5", "needs a unit"),
            ("4-5m", "missing `:`"),
            ("x:5m", "is not a number"),
            ("1:5m,,", "stage 2"),
            ("", "empty"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {}", e.message);
            assert_eq!(e.kind, crate::error::Kind::Usage);
        }
    }
}
