//! The stress ramp syntax: `RATE:DURATION[,RATE:DURATION...]`, rate in MB/s (10^6 bytes
//! per second, offered over the air), duration with a unit `s`, `m` or `h`, fractions to
//! the millisecond (`4:404.8s`, the seed's baseline). The seed's Phase 7 ramp is
//! `1:5m,2:10m,4:30m,8:30m`.

use crate::error::{BenchError, Result};

pub const DEFAULT_RAMP: &str = "1:5m,2:10m,4:30m,8:30m";

/// Highest offered rate a stage may ask for: far above what SDIO carries (about 25 MB/s).
pub const MAX_RATE_MB_PER_S: f64 = 100.0;
/// Lowest offered rate: the simulator's TCP sender stops after 1 s without an ACK, and the
/// stack ACKs every second frame, so below about 0.003 MB/s (a full frame every 0.5 s) the
/// sender stalls by itself and a correct driver fails as a dead link. 0.01 MB/s keeps three
/// times that margin (clean on every seed tried, 0.005 too).
pub const MIN_RATE_MB_PER_S: f64 = 0.01;
/// Longest stage: one virtual day.
pub const MAX_STAGE_S: u64 = 24 * 3600;
/// Longest ramp: one virtual week (the simulator's counters and clock stay far from overflow).
pub const MAX_RAMP_S: u64 = 7 * 24 * 3600;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub offered_mb_per_s: f64,
    pub duration_ms: u64,
}

impl Stage {
    /// Whole seconds, rounded up (progress bars, totals).
    pub fn duration_s_ceil(&self) -> u64 {
        self.duration_ms.div_ceil(1000)
    }

    /// The simulator's `--stage RATE:SECONDS` argument: whole seconds when whole (what a
    /// simulator of an older tree reads), else seconds with up to three decimals.
    pub fn sim_arg(&self) -> String {
        let secs = if self.duration_ms % 1000 == 0 {
            (self.duration_ms / 1000).to_string()
        } else {
            format!("{}.{:03}", self.duration_ms / 1000, self.duration_ms % 1000).trim_end_matches('0').to_string()
        };
        format!("{}:{secs}", self.offered_mb_per_s)
    }
}

/// `digits` (a decimal like "404.8") times `unit_ms`, exactly, in milliseconds.
fn scaled_ms(digits: &str, unit_ms: u64) -> Option<u64> {
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || frac.len() > 9 || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = 10u64.pow(frac.len() as u32);
    let frac_part = if frac.is_empty() { 0 } else { frac.parse::<u64>().ok()?.checked_mul(unit_ms)? };
    if frac_part % scale != 0 {
        return None;
    }
    whole.parse::<u64>().ok()?.checked_mul(unit_ms)?.checked_add(frac_part / scale)
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
        if offered_mb_per_s < MIN_RATE_MB_PER_S {
            return Err(bad(
                n,
                item,
                &format!(
                    "rate {rate} MB/s is below the floor of {MIN_RATE_MB_PER_S} MB/s (the simulated TCP sender stalls between ACKs below it)"
                ),
            ));
        }
        if offered_mb_per_s > MAX_RATE_MB_PER_S {
            return Err(bad(n, item, &format!("rate {rate} MB/s is above the limit of {MAX_RATE_MB_PER_S} MB/s")));
        }
        let duration = duration.trim();
        let (digits, unit_ms) = match duration.chars().last() {
            Some('s') => (&duration[..duration.len() - 1], 1000),
            Some('m') => (&duration[..duration.len() - 1], 60_000),
            Some('h') => (&duration[..duration.len() - 1], 3_600_000),
            _ => return Err(bad(n, item, &format!("duration `{duration}` needs a unit: s, m or h"))),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let well_formed = !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && (digits.find('.').is_none() || (!frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit())));
        if !well_formed {
            return Err(bad(n, item, &format!("duration `{duration}` is not a number with a unit (4:404.8s, 5m)")));
        }
        let duration_ms = match scaled_ms(digits, unit_ms) {
            Some(ms) => ms,
            None if frac.len() > 9 || scaled_ms(&format!("{whole}.{frac}"), unit_ms * 1_000_000_000).is_some() => {
                return Err(bad(n, item, &format!("duration `{duration}` is finer than a millisecond")))
            }
            None => return Err(bad(n, item, &format!("duration `{duration}` is above the limit of one stage, 24h"))),
        };
        if duration_ms == 0 {
            return Err(bad(n, item, "duration must be positive"));
        }
        if duration_ms > MAX_STAGE_S * 1000 {
            return Err(bad(n, item, &format!("duration `{duration}` is above the limit of one stage, 24h")));
        }
        stages.push(Stage { offered_mb_per_s, duration_ms });
    }
    let total_s: u64 = stages.iter().map(|s| s.duration_ms).sum::<u64>() / 1000;
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
        let pairs: Vec<(f64, u64)> = s.iter().map(|s| (s.offered_mb_per_s, s.duration_ms)).collect();
        assert_eq!(pairs, [(1.0, 300_000), (2.0, 600_000), (4.0, 1_800_000), (8.0, 1_800_000)]);
    }

    #[test]
    fn fractions_are_exact_to_the_millisecond() {
        let s = parse("4:404.8s,2:1.5m,1:0.001s,8:0.25h").unwrap();
        let ms: Vec<u64> = s.iter().map(|s| s.duration_ms).collect();
        assert_eq!(ms, [404_800, 90_000, 1, 900_000]);
        assert_eq!(s[0].sim_arg(), "4:404.8");
        assert_eq!(s[1].sim_arg(), "2:90");
        assert_eq!(s[2].sim_arg(), "1:0.001");
    }

    #[test]
    fn rejects_bad_stages_naming_the_stage() {
        let cases = [
            ("0:5m", "rate must be a positive"),
            ("-1:5m", "rate must be a positive"),
            ("4:0m", "duration must be positive"),
            ("4:5", "needs a unit"),
            ("4:1.0001s", "finer than a millisecond"),
            ("4:1.2.3s", "is not a number"),
            ("4:.5s", "is not a number"),
            ("4:-5s", "is not a number"),
            ("4-5m", "missing `:`"),
            ("x:5m", "is not a number"),
            ("1:5m,,", "stage 2"),
            ("", "empty"),
            ("4:9999999999999999h", "above the limit of one stage"),
            ("4:100000000h", "above the limit of one stage"),
            ("4:5000000h", "above the limit of one stage"),
            ("1e308:1s", "above the limit of 100 MB/s"),
            ("0.001:1m", "below the floor of 0.01 MB/s"),
            ("1e-9:5m", "below the floor of 0.01 MB/s"),
            ("NaN:1s", "rate must be a positive"),
            ("inf:1s", "rate must be a positive"),
            ("4:24h,4:24h,4:24h,4:24h,4:24h,4:24h,4:24h,4:1s", "above the limit of 168 h"),
        ];
        crate::error::assert_each_fails(&cases, crate::error::Kind::Usage, parse);
    }
}
