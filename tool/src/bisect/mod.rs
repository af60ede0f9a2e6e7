//! Bisection algorithms, independent of what is tested: binary search with skips over an
//! ordered list whose first element is known good and last known bad, and delta debugging
//! (ddmin) for a minimal failing set of changes.

pub mod oracle;
pub mod run;

use crate::bisect::oracle::Outcome;
use crate::error::Result;

/// Where a linear bisection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// The first bad element.
    First(usize),
    /// The first bad element is one of these; the others between could not be tested.
    Range(usize, usize),
}

/// Finds the first bad element of `0..n`, where everything before the first bad one is good.
/// `good_before` means the element before 0 is known good; element `n-1` is assumed bad
/// (tested only if everything else turns out good). `test(i)` runs the oracle.
pub fn linear(n: usize, mut test: impl FnMut(usize) -> Result<Outcome>) -> Result<Option<Found>> {
    if n == 0 {
        return Ok(None);
    }
    // lo: last known good index (or none), hi: first known bad index.
    let mut lo: Option<usize> = None;
    let mut hi = n - 1;
    let mut hi_tested = false;
    let mut skipped = vec![false; n];
    loop {
        let start = lo.map_or(0, |l| l + 1);
        if start >= hi {
            break;
        }
        // Untested, non-skipped candidates strictly below hi.
        let candidates: Vec<usize> = (start..hi).filter(|&i| !skipped[i]).collect();
        if candidates.is_empty() {
            break;
        }
        // Midpoint of the whole open range, moved to the nearest testable index.
        let mid = start + (hi - start - 1) / 2;
        let pick = *candidates.iter().min_by_key(|&&i| (i.abs_diff(mid), i)).expect("not empty");
        match test(pick)? {
            Outcome::Good => lo = Some(pick),
            Outcome::Bad => {
                hi = pick;
                hi_tested = true;
            }
            Outcome::Skip => skipped[pick] = true,
        }
    }
    let start = lo.map_or(0, |l| l + 1);
    if start == hi {
        if !hi_tested && hi == n - 1 {
            // Everything before the bad end was good: confirm the bad end itself.
            match test(hi)? {
                Outcome::Good => return Ok(None),
                Outcome::Skip => return Ok(Some(Found::Range(hi, hi))),
                Outcome::Bad => {}
            }
        }
        return Ok(Some(Found::First(hi)));
    }
    Ok(Some(Found::Range(start, hi)))
}

/// Zeller's ddmin: a 1-minimal subset of `changes` for which `test` is Bad (`changes`
/// itself must be bad). Skips count as not bad.
pub fn ddmin<T: Clone>(mut changes: Vec<T>, mut test: impl FnMut(&[T]) -> Result<Outcome>) -> Result<Vec<T>> {
    let mut n = 2usize;
    // Bound: each round shrinks the set or raises n towards len; len is at most the
    // number of driver features.
    while changes.len() >= 2 {
        let chunk = changes.len().div_ceil(n);
        let parts: Vec<Vec<T>> = changes.chunks(chunk).map(|c| c.to_vec()).collect();
        let mut reduced = false;
        for p in &parts {
            if test(p)? == Outcome::Bad {
                changes = p.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && parts.len() > 2 {
            for i in 0..parts.len() {
                let complement: Vec<T> =
                    parts.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, p)| p.clone()).collect();
                if test(&complement)? == Outcome::Bad {
                    changes = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= changes.len() {
                break;
            }
            n = (2 * n).min(changes.len());
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(bad: bool) -> Outcome {
        if bad {
            Outcome::Bad
        } else {
            Outcome::Good
        }
    }

    #[test]
    fn linear_finds_every_k_within_log2_runs() {
        for n in [1usize, 2, 3, 16, 17, 33] {
            for k in 0..n {
                let mut runs = 0;
                let found = linear(n, |i| {
                    runs += 1;
                    Ok(outcome(i >= k))
                })
                .unwrap();
                assert_eq!(found, Some(Found::First(k)), "n={n} k={k}");
                let bound = (n as f64).log2().ceil() as usize + 1;
                assert!(runs <= bound, "n={n} k={k}: {runs} runs > {bound}");
            }
        }
    }

    #[test]
    fn linear_reports_nothing_bad_and_unsplittable_ranges() {
        assert_eq!(linear(8, |_| Ok(Outcome::Good)).unwrap(), None);
        // k = 5, but 3, 4 cannot be tested: the first bad is 5 if 4 is skipped... and with
        // 4 and 5 skipped it is somewhere in 4..=6.
        let found = linear(10, |i| Ok(if i == 4 || i == 5 { Outcome::Skip } else { outcome(i >= 5) })).unwrap();
        assert_eq!(found, Some(Found::Range(4, 6)));
        let found = linear(10, |i| Ok(if i == 3 { Outcome::Skip } else { outcome(i >= 5) })).unwrap();
        assert_eq!(found, Some(Found::First(5)));
    }

    #[test]
    fn ddmin_finds_the_minimal_pair() {
        let changes: Vec<u32> = (0..8).collect();
        let min = ddmin(changes, |s| Ok(outcome(s.contains(&2) && s.contains(&6)))).unwrap();
        assert_eq!(min, [2, 6]);
        let single = ddmin(vec![1, 2, 3], |s| Ok(outcome(s.contains(&3)))).unwrap();
        assert_eq!(single, [3]);
    }
}
