//! How long data frames wait in the driver: from `xmit` accepting a frame to the SDIO
//! write that carries it to the chip. A histogram with four buckets per octave (above
//! 4 us each bucket at most a quarter of its lower bound wide), cumulative like every
//! counter, so a stage's histogram is the difference of two snapshots; its percentiles
//! are bucket upper bounds ("at most"), so they never understate a wait.

/// Buckets: 0..3 hold 0, 1, 2 and 3 us; then four per octave up to 2^25 us (33.5 s);
/// the last one holds everything longer.
pub const BUCKETS: usize = 96;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitHist {
    counts: [u64; BUCKETS],
}

impl Default for WaitHist {
    fn default() -> Self {
        WaitHist { counts: [0; BUCKETS] }
    }
}

/// The bucket of a wait of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros() as usize;
    let quarter = ((us >> (octave - 2)) & 3) as usize;
    (4 * (octave - 1) + quarter).min(BUCKETS - 1)
}

/// The largest wait, in microseconds, bucket `i` holds (for the last bucket, its lower
/// bound: the histogram does not know more).
fn upper_us(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let (octave, quarter) = (i / 4 + 1, (i % 4) as u64);
    let low = (4 + quarter) << (octave - 2);
    if i == BUCKETS - 1 {
        low
    } else {
        low + (1 << (octave - 2)) - 1
    }
}

impl WaitHist {
    pub fn record(&mut self, wait_ns: u64) {
        self.counts[bucket(wait_ns / 1_000)] += 1;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `self - earlier`, bucket by bucket (`earlier` is a snapshot taken before).
    pub fn since(&self, earlier: &WaitHist) -> WaitHist {
        let mut d = WaitHist::default();
        for (i, c) in d.counts.iter_mut().enumerate() {
            *c = self.counts[i] - earlier.counts[i];
        }
        d
    }

    /// The wait, in microseconds, that at least `fraction` of the frames did not exceed
    /// (the upper bound of the bucket it falls in); `None` with no frame.
    pub fn quantile_us(&self, fraction: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // The rank of the frame at `fraction`, at least the first.
        let rank = ((fraction * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_us(i));
            }
        }
        unreachable!("the ranks add up to the total")
    }

    /// The longest wait's bucket bound, in microseconds.
    pub fn max_us(&self) -> Option<u64> {
        self.counts.iter().rposition(|&c| c > 0).map(upper_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_wait_in_order_and_each_bound_holds_its_bucket() {
        let mut last = 0;
        for us in (0..100_000u64).chain([1 << 24, (1 << 25) - 1, 1 << 25, u64::MAX / 1_000]) {
            let b = bucket(us);
            assert!(b >= last, "{us} us went to bucket {b} after {last}");
            last = b;
            if b < BUCKETS - 1 {
                assert!(us <= upper_us(b), "{us} us above its bucket's bound {}", upper_us(b));
                assert!(b == 0 || us > upper_us(b - 1), "{us} us belongs to an earlier bucket");
            }
        }
        // A bucket at most a quarter of its octave wide: a bound overstates by under 25%.
        for us in [5u64, 100, 1_000, 12_345, 1_000_000] {
            assert!(upper_us(bucket(us)) as f64 <= us as f64 * 1.25, "{us}");
        }
    }

    #[test]
    fn quantiles_of_a_known_set_and_of_a_stage() {
        let mut h = WaitHist::default();
        assert_eq!((h.quantile_us(0.5), h.max_us()), (None, None));
        // 98 frames of 100 us, one of 2 ms, one of 50 ms.
        for _ in 0..98 {
            h.record(100_000);
        }
        h.record(2_000_000);
        h.record(50_000_000);
        let p50 = h.quantile_us(0.5).unwrap();
        assert!((100..125).contains(&p50), "{p50}");
        let p99 = h.quantile_us(0.99).unwrap();
        assert!((2_000..2_500).contains(&p99), "{p99}");
        let max = h.max_us().unwrap();
        assert!((50_000..62_500).contains(&max), "{max}");
        // A stage: what came after a snapshot.
        let before = h;
        h.record(7_000_000);
        let stage = h.since(&before);
        assert_eq!(stage.count(), 1);
        assert!((7_000..8_750).contains(&stage.quantile_us(0.5).unwrap()));
    }
}
