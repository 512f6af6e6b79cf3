//! Exact P10/P50/P90 of per-draw values, tracked cheaply across forecast time steps.
//!
//! A percentile is the type-7 sample quantile `x₍ₗ₎ + f·(x₍ₗ₊₁₎ − x₍ₗ₎)` with
//! `h = (n − 1)p`, `l = ⌊h⌋`, `f = h − l` (Hyndman & Fan 1996), so each needs two order
//! statistics. Sorting 1,000 values at each of the 722 series steps of a 30-year monthly
//! forecast dominated the Monte Carlo, yet from one month to the next the draws barely
//! change rank. So each percentile keeps a **bracket**: two draws that were a few ranks
//! ([`MARGIN`]) below and above its order statistics at the previous step. At the next step
//! one branch-free pass counts the values below and up to the bracket draws' new values and
//! marks those in between in a bitmask; if the needed ranks still lie between the bracket
//! draws, only the few marked values are sorted. If
//! not (ranks moved further than the margin, or the first step), the order statistics are
//! found by selection over all values and the bracket is rebuilt. Either way the result is
//! exact; the bracket only makes it cheap. Values must not be NaN.

use super::Percentiles;

/// Ranks kept on each side of a percentile's order statistics.
const MARGIN: usize = 16;

/// Where one percentile's order statistics are, and the draws bracketing them.
#[derive(Debug, Clone, Copy)]
struct Target {
    /// Rank of `x₍ₗ₎`.
    lo: usize,
    /// Rank of `x₍ₗ₊₁₎` (equal to `lo` when `l` is the last rank).
    hi: usize,
    /// Interpolation weight `f`.
    frac: f64,
    /// Draw indices below and above `lo..=hi` at the previous step.
    bracket: Option<(usize, usize)>,
}

impl Target {
    fn new(n: usize, p: f64) -> Self {
        let h = (n - 1) as f64 * p;
        let lo = h.floor() as usize;
        Target {
            lo,
            hi: (lo + 1).min(n - 1),
            frac: h - lo as f64,
            bracket: None,
        }
    }
}

/// P10/P50/P90 (exceedance) of one value per draw, over a sequence of steps.
#[derive(Debug)]
pub(crate) struct QuantileTracker {
    /// P10, P50 and P90 (the 0.9, 0.5 and 0.1 quantiles).
    targets: [Target; 3],
    /// `(value, draw)` scratch.
    scratch: Vec<(f64, usize)>,
    /// Bitmask of the draws inside a bracket, 64 per word.
    members: Vec<u64>,
}

impl QuantileTracker {
    /// A tracker for `n ≥ 1` draws.
    pub fn new(n: usize) -> Self {
        QuantileTracker {
            targets: [0.9, 0.5, 0.1].map(|p| Target::new(n, p)),
            scratch: Vec::with_capacity(n),
            members: Vec::with_capacity(n.div_ceil(64)),
        }
    }

    /// The percentiles of `values` (one per draw, the same draws at every call).
    pub fn percentiles(&mut self, values: &[f64]) -> Percentiles {
        let [p10, p50, p90] = [0, 1, 2].map(|i| self.quantile(i, values));
        Percentiles { p10, p50, p90 }
    }

    fn quantile(&mut self, which: usize, values: &[f64]) -> f64 {
        let target = self.targets[which];
        let (x_lo, x_hi, bracket) = self
            .within_bracket(target, values)
            .unwrap_or_else(|| self.by_selection(target, values));
        self.targets[which].bracket = Some(bracket);
        x_lo + target.frac * (x_hi - x_lo)
    }

    /// `(x₍ₗ₎, x₍ₗ₊₁₎, new bracket)` from the values between the bracket draws, if the
    /// needed ranks are still among them.
    fn within_bracket(
        &mut self,
        target: Target,
        values: &[f64],
    ) -> Option<(f64, f64, (usize, usize))> {
        let (below_id, above_id) = target.bracket?;
        let (low, high) = (values[below_id], values[above_id]);
        let (low, high) = if low <= high {
            (low, high)
        } else {
            (high, low)
        };
        // One branch-free pass: ranks below the bracket, ranks up to its top, and a bitmask
        // of the values inside it.
        let (mut below, mut up_to) = (0, 0);
        self.members.clear();
        for chunk in values.chunks(64) {
            let mut mask = 0u64;
            for (j, &v) in chunk.iter().enumerate() {
                let (is_below, is_up_to) = (v < low, v <= high);
                below += usize::from(is_below);
                up_to += usize::from(is_up_to);
                mask |= u64::from(!is_below & is_up_to) << j;
            }
            self.members.push(mask);
        }
        if below > target.lo || up_to <= target.hi {
            return None;
        }
        self.scratch.clear();
        for (word, &mask) in self.members.iter().enumerate() {
            let mut rest = mask;
            while rest != 0 {
                let i = word * 64 + rest.trailing_zeros() as usize;
                self.scratch.push((values[i], i));
                rest &= rest - 1;
            }
        }
        self.scratch.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        Some(pick(&self.scratch, target, below))
    }

    /// `(x₍ₗ₎, x₍ₗ₊₁₎, new bracket)` by selection over all values.
    fn by_selection(&mut self, target: Target, values: &[f64]) -> (f64, f64, (usize, usize)) {
        let cmp = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0);
        let first = target.lo.saturating_sub(MARGIN);
        let last = (target.hi + MARGIN).min(values.len() - 1);
        self.scratch.clear();
        self.scratch
            .extend(values.iter().enumerate().map(|(i, &v)| (v, i)));
        self.scratch.select_nth_unstable_by(first, cmp);
        let rest = &mut self.scratch[first + 1..];
        if last > first {
            rest.select_nth_unstable_by(last - first - 1, cmp);
            rest[..last - first - 1].sort_unstable_by(cmp);
        }
        pick(&self.scratch[first..=last], target, first)
    }
}

/// Read the order statistics from `band`, which holds ranks `offset..` in order, and choose
/// the next bracket up to [`MARGIN`] ranks outside them.
fn pick(band: &[(f64, usize)], target: Target, offset: usize) -> (f64, f64, (usize, usize)) {
    let (lo, hi) = (target.lo - offset, target.hi - offset);
    let below = band[lo.saturating_sub(MARGIN)].1;
    let above = band[(hi + MARGIN).min(band.len() - 1)].1;
    (band[lo].0, band[hi].0, (below, above))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Type-7 quantile by a full sort, the reference.
    fn reference(values: &[f64], p: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let h = (sorted.len() - 1) as f64 * p;
        let lo = h.floor() as usize;
        let hi = (lo + 1).min(sorted.len() - 1);
        sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
    }

    fn check(tracker: &mut QuantileTracker, values: &[f64]) {
        let p = tracker.percentiles(values);
        assert_eq!(p.p10, reference(values, 0.9));
        assert_eq!(p.p50, reference(values, 0.5));
        assert_eq!(p.p90, reference(values, 0.1));
    }

    #[test]
    fn small_samples() {
        for n in 1..=5 {
            let values: Vec<f64> = (0..n).map(|i| ((i * 3) % n) as f64).collect();
            let mut tracker = QuantileTracker::new(n);
            check(&mut tracker, &values);
            check(&mut tracker, &values);
        }
        let four = [4.0, 1.0, 3.0, 2.0];
        let p = QuantileTracker::new(4).percentiles(&four);
        assert!((p.p10 - 3.7).abs() < 1e-12 && (p.p90 - 1.3).abs() < 1e-12 && p.p50 == 2.5);
    }

    #[test]
    fn small_moves_reuse_the_bracket_and_jumps_do_not() {
        let n = 1000;
        let mut values: Vec<f64> = (0..n).map(|i| ((i * 7919) % n) as f64).collect();
        let mut tracker = QuantileTracker::new(n);
        check(&mut tracker, &values);
        // Neighbours swap places: ranks move by one.
        for pair in values.chunks_mut(2) {
            pair.swap(0, 1);
        }
        values
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v += (i % 2) as f64 * 0.5);
        for target in tracker.targets {
            assert!(tracker.within_bracket(target, &values).is_some());
        }
        check(&mut tracker, &values);
        // Reversed ranks: the P10 and P90 brackets no longer hold their order statistics
        // (the median's bracket does, by symmetry).
        values.iter_mut().for_each(|v| *v = -*v);
        for target in [tracker.targets[0], tracker.targets[2]] {
            assert!(tracker.within_bracket(target, &values).is_none());
        }
        check(&mut tracker, &values);
    }

    /// Slow drift (bracket reused), jumps (bracket fails, selection takes over), a full
    /// reversal and heavy ties (many draws at 0, as after abandonment): always exact.
    #[test]
    fn tracks_drifting_jumping_and_tied_values() {
        let n = 1000;
        let mut values: Vec<f64> = (0..n).map(|i| ((i * 7919) % n) as f64).collect();
        let mut tracker = QuantileTracker::new(n);
        let mut state = 12345u64;
        for step in 0..200 {
            for (i, v) in values.iter_mut().enumerate() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let jitter = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                *v += jitter * if step % 50 == 25 { 500.0 } else { 2.0 } + (i % 3) as f64 * 0.1;
            }
            if step == 100 {
                values.iter_mut().for_each(|v| *v = -*v);
            }
            if step >= 150 {
                let zeros = (step - 149) * 15;
                values.iter_mut().take(zeros).for_each(|v| *v = 0.0);
            }
            check(&mut tracker, &values);
        }
    }
}
