//! Wilson score interval for a proportion.

/// z for a two-sided 95 % interval.
pub const Z_95: f64 = 1.96;

/// Lower and upper Wilson bounds of `successes` out of `trials` (both may be
/// fractional, as weighted complaint counts are). `(0, 1)` when there are no trials.
pub fn wilson_bounds(successes: f64, trials: f64, z: f64) -> (f64, f64) {
    if trials <= 0.0 {
        return (0.0, 1.0);
    }
    let x = successes.clamp(0.0, trials);
    let p = x / trials;
    let z2 = z * z;
    let denom = 1.0 + z2 / trials;
    let centre = p + z2 / (2.0 * trials);
    let spread = z * (p * (1.0 - p) / trials + z2 / (4.0 * trials * trials)).sqrt();
    (
        ((centre - spread) / denom).max(0.0),
        ((centre + spread) / denom).min(1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn known_values() {
        // Reference values computed independently from the closed form.
        let cases = [
            (
                10.0,
                100.0,
                0.055_228_541_613_136_13,
                0.174_367_304_367_665_4,
            ),
            (0.0, 100.0, 0.0, 0.036_994_807_476_001_91),
            (
                1.0,
                1000.0,
                0.000_176_541_829_057_271_16,
                0.005_642_702_960_160_470_5,
            ),
            (
                3.0,
                1000.0,
                0.001_020_765_405_444_325_1,
                0.008_783_171_789_427_854,
            ),
            (
                50.0,
                10_000.0,
                0.003_794_881_950_804_586_5,
                0.006_585_290_402_184_289,
            ),
        ];
        for (x, n, lo, hi) in cases {
            let (l, h) = wilson_bounds(x, n, Z_95);
            assert!(close(l, lo) && close(h, hi), "{x}/{n}: got ({l}, {h})");
        }
    }

    #[test]
    fn no_trials_means_no_knowledge() {
        assert_eq!(wilson_bounds(0.0, 0.0, Z_95), (0.0, 1.0));
    }

    #[test]
    fn the_interval_narrows_with_volume() {
        let (l1, h1) = wilson_bounds(1.0, 1_000.0, Z_95);
        let (l2, h2) = wilson_bounds(100.0, 100_000.0, Z_95);
        assert!(h2 - l2 < h1 - l1);
    }
}
