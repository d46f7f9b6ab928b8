//! The statistics: a one-sided binomial tail (is this many target spans
//! out of `n` surprising at the baseline rate?) and the most likely changed
//! segment of a rate series (when did it start and end).

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, g = 7, nine terms;
/// relative error below 1e-13, far finer than the tests need).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// `ln P(X = k)` for `X ~ Binomial(n, p)`, `0 < p < 1`.
fn ln_binomial_pmf(n: u64, k: u64, p: f64) -> f64 {
    let (n, k) = (n as f64, k as f64);
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
        + k * p.ln()
        + (n - k) * (1.0 - p).ln()
}

/// `P(X ≥ k)` for `X ~ Binomial(n, p)`: how surprising `k` or more
/// successes are. Sums the tail from `k` until the terms stop mattering,
/// so the cost is bounded by the tail's width, not by `n`.
pub fn binomial_sf(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // Terms decrease past the mode; before it, the tail is at least ½
    // (the median is within one of the mean), which is never significant.
    let mean = n as f64 * p;
    if (k as f64) <= mean {
        return 1.0;
    }
    let first = ln_binomial_pmf(n, k, p);
    let mut sum: f64 = 0.0;
    let ratio = p / (1.0 - p);
    let mut term = 1.0;
    let mut j = k;
    // term(j+1)/term(j) = (n−j)/(j+1) · p/(1−p), relative to the first.
    while j <= n && term > 1e-17 * sum.max(1.0) {
        sum += term;
        term *= (n - j) as f64 / (j + 1) as f64 * ratio;
        j += 1;
        if j - k > 1_000_000 {
            break;
        }
    }
    (first + sum.ln()).exp().min(1.0)
}

/// The segment `[start, end)` of `series` (counts `(n, k)` per bucket)
/// whose rate differs most from the rest, by the binomial log-likelihood
/// ratio, with its rate inside and outside. `None` when there is no
/// segment with more target spans than its outside rate predicts.
pub fn changed_segment(series: &[(u64, u64)]) -> Option<Segment> {
    let b = series.len();
    if b == 0 {
        return None;
    }
    let mut pre_n = vec![0u64; b + 1];
    let mut pre_k = vec![0u64; b + 1];
    for (i, (n, k)) in series.iter().enumerate() {
        pre_n[i + 1] = pre_n[i] + n;
        pre_k[i + 1] = pre_k[i] + k.min(n);
    }
    let (tn, tk) = (pre_n[b], pre_k[b]);
    let ll = |k: u64, n: u64| -> f64 {
        // Bernoulli log-likelihood at the maximum-likelihood rate.
        if n == 0 || k == 0 || k == n {
            return 0.0;
        }
        let (k, n) = (k as f64, n as f64);
        let p = k / n;
        k * p.ln() + (n - k) * (1.0 - p).ln()
    };
    let null = ll(tk, tn);
    let mut best: Option<Segment> = None;
    for start in 0..b {
        for end in start + 1..=b {
            let (n_in, k_in) = (pre_n[end] - pre_n[start], pre_k[end] - pre_k[start]);
            let (n_out, k_out) = (tn - n_in, tk - k_in);
            if n_in == 0 {
                continue;
            }
            let rate_in = k_in as f64 / n_in as f64;
            let rate_out = if n_out == 0 {
                0.0
            } else {
                k_out as f64 / n_out as f64
            };
            if rate_in <= rate_out {
                continue;
            }
            let gain = ll(k_in, n_in) + ll(k_out, n_out) - null;
            if best.as_ref().is_none_or(|s| gain > s.llr) {
                best = Some(Segment {
                    start,
                    end,
                    llr: gain,
                    rate_in,
                    rate_out,
                });
            }
        }
    }
    best
}

/// A changed segment of a rate series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// First bucket inside.
    pub start: usize,
    /// First bucket after (exclusive).
    pub end: usize,
    /// Log-likelihood ratio of "two rates" over "one rate".
    pub llr: f64,
    /// Rate inside the segment.
    pub rate_in: f64,
    /// Rate outside it.
    pub rate_out: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials() {
        for (n, fact) in [(1u64, 1f64), (5, 120.0), (10, 3_628_800.0)] {
            assert!((ln_gamma(n as f64 + 1.0) - fact.ln()).abs() < 1e-9, "{n}!");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-9);
    }

    #[test]
    fn binomial_tail_is_exact_on_small_cases_and_bounded_on_large_ones() {
        // P(X ≥ 2), X ~ Bin(3, ½) = 4/8.
        assert!((binomial_sf(3, 2, 0.5) - 0.5).abs() < 1e-12);
        // P(X ≥ 3), X ~ Bin(3, ½) = 1/8.
        assert!((binomial_sf(3, 3, 0.5) - 0.125).abs() < 1e-12);
        // P(X ≥ 4), X ~ Bin(10, 0.1) = 1 − P(X ≤ 3) ≈ 0.012795.
        assert!((binomial_sf(10, 4, 0.1) - 0.012_795_2).abs() < 1e-6);
        assert_eq!(binomial_sf(10, 0, 0.3), 1.0);
        assert_eq!(binomial_sf(10, 11, 0.3), 0.0);
        // A small excess over a large n is not surprising; a big one is.
        assert!(binomial_sf(10_000_000, 50_300, 0.005) > 0.01);
        assert!(binomial_sf(10_000_000, 60_000, 0.005) < 1e-100);
    }

    #[test]
    fn the_changed_segment_is_found_and_flat_series_have_none_worth_reporting() {
        let mut series = vec![(100, 2); 30];
        for b in &mut series[12..18] {
            *b = (100, 40);
        }
        let seg = changed_segment(&series).expect("segment");
        assert_eq!((seg.start, seg.end), (12, 18));
        assert!(seg.rate_in > 0.35 && seg.rate_out < 0.03);
        let flat = changed_segment(&[(100, 0); 10]);
        assert!(flat.is_none_or(|s| s.llr < 1.0));
    }
}
