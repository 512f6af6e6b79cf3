//! Deterministic pseudo-randomness: stable hashing and noise as pure functions.
//!
//! Every "random" quantity in the simulator is a pure function of the fleet seed and a key
//! (well name, device name, metric name, simulated second, ...). Nothing keeps RNG state
//! between reads, so a value can be recomputed for any time in any order — this is what
//! makes [`crate::Simulator::expected`] exact.
//!
//! * [`hash_str`] is FNV-1a 64 (stable across Rust versions, unlike `DefaultHasher`).
//! * [`mix`] is the SplitMix64 finaliser, used to combine keys ([`key`]).
//! * [`unit`] maps a hash to `[0, 1)`, [`signed`] to `[-1, 1)`.
//! * [`smooth`] is 1-D value noise: hashed knots every `period_s` seconds joined by cosine
//!   interpolation. It is continuous in time, so pressures and temperatures wander instead of
//!   jumping, and its range is `[-1, 1]`.

/// FNV-1a 64-bit hash of a string.
pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SplitMix64 finaliser: a bijective, well-avalanching 64-bit mix.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Combines key parts into one hash (order matters).
pub(crate) fn key(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x51_7cc1_b727_220a, |acc, p| mix(acc ^ mix(*p)))
}

/// Uniform value in `[0, 1)` from a hash.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Uniform value in `[-1, 1)` from a hash.
pub(crate) fn signed(h: u64) -> f64 {
    2.0 * unit(h) - 1.0
}

/// Uniform value in `[lo, hi)` from a hash.
pub(crate) fn range(h: u64, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(h)
}

/// Smooth value noise in `[-1, 1]` at time `t_s` (seconds), knots every `period_s` seconds.
pub(crate) fn smooth(k: u64, t_s: f64, period_s: f64) -> f64 {
    let x = t_s / period_s;
    let i = x.floor();
    let frac = x - i;
    // Knot index as two's-complement bits so negative times hash fine.
    let knot = |n: f64| signed(key(&[k, (n as i64) as u64]));
    let w = (1.0 - (frac * std::f64::consts::PI).cos()) / 2.0;
    knot(i) * (1.0 - w) + knot(i + 1.0) * w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(hash_str(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash_str("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash_str("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn key_is_order_sensitive_and_stable() {
        assert_eq!(key(&[1, 2]), key(&[1, 2]));
        assert_ne!(key(&[1, 2]), key(&[2, 1]));
    }

    #[test]
    fn unit_and_signed_stay_in_range() {
        for i in 0..10_000u64 {
            let u = unit(mix(i));
            assert!((0.0..1.0).contains(&u));
            let s = signed(mix(i));
            assert!((-1.0..1.0).contains(&s));
        }
    }

    #[test]
    fn smooth_noise_is_bounded_continuous_and_hits_knots() {
        let k = 77;
        let mut prev = smooth(k, -500.0, 60.0);
        for t in -499..5000 {
            let v = smooth(k, f64::from(t), 60.0);
            assert!((-1.0..=1.0).contains(&v));
            // Max slope of cosine interpolation between knots 2 apart is pi/period per second.
            assert!((v - prev).abs() <= 2.0 * std::f64::consts::PI / 60.0 + 1e-9);
            prev = v;
        }
        assert_eq!(smooth(k, 120.0, 60.0), signed(key(&[k, 2])));
    }

    #[test]
    fn smooth_noise_has_roughly_zero_mean() {
        let n = 20_000;
        let mean: f64 = (0..n)
            .map(|t| smooth(9, f64::from(t) * 7.0, 60.0))
            .sum::<f64>()
            / f64::from(n);
        assert!(mean.abs() < 0.05, "mean {mean}");
    }
}
