//! A small seeded generator (SplitMix64): the simulator's only source of randomness, so a
//! seed replays a run exactly.

#[derive(Clone, Copy, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// One independent stream per `stream` number from one seed.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng { state: seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F) };
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// How many Bernoulli trials of chance `p` up to and including the first success
    /// (geometric, at least 1): one draw stands for a whole run of trials, so a caller
    /// can count down instead of drawing at each. `u64::MAX` when `p` is 0.
    pub fn trials_to_success(&mut self, p: f64) -> u64 {
        if p <= 0.0 {
            return u64::MAX;
        }
        if p >= 1.0 {
            return 1;
        }
        // 1 - unit() is in (0, 1], so its logarithm is finite and at most 0.
        let u = 1.0 - self.unit();
        let n = (u.ln() / (-p).ln_1p()).floor();
        if n >= (u64::MAX - 1) as f64 {
            u64::MAX
        } else {
            n as u64 + 1
        }
    }

    /// Uniform in [lo, hi].
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(7, 1);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(7, 1);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(7, 2);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    /// The countdown the scheduler uses stands for a draw per trial: the same mean
    /// (1/p), the same chance of success at the first trial (p), and the edges.
    #[test]
    fn trials_to_success_is_geometric() {
        for p in [0.01, 0.00005, 0.3] {
            let mut r = Rng::new(3, 5);
            let n = 200_000;
            let draws: Vec<u64> = (0..n).map(|_| r.trials_to_success(p)).collect();
            let mean = draws.iter().map(|&d| d as f64).sum::<f64>() / n as f64;
            assert!((mean * p - 1.0).abs() < 0.02, "p {p}: mean {mean}, expected {}", 1.0 / p);
            assert!(draws.iter().all(|&d| d >= 1));
            let first = draws.iter().filter(|&&d| d == 1).count() as f64 / n as f64;
            // Binomial noise: about 3 standard deviations.
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!((first - p).abs() < 3.0 * sd + 1e-9, "p {p}: P(1) {first}");
        }
        let mut r = Rng::new(1, 1);
        assert_eq!(r.trials_to_success(0.0), u64::MAX);
        assert_eq!(r.trials_to_success(1.0), 1);
    }
}
