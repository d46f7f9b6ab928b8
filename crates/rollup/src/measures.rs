//! Additive measures of one rollup series and the fixed log-bucket latency
//! histogram whose bounds are also the Prometheus `le` bounds.

use serde::{Deserialize, Serialize};

/// Upper bounds of the latency histogram buckets, in microseconds: a
/// 1-2.5-5 log series from 1 ms to 10 min. The last bucket (`+Inf`) is
/// implicit. These are also the `le` bounds of every exported Prometheus
/// histogram, so a rollup histogram and a scraped one are the same data.
pub const BUCKET_BOUNDS_US: [u64; 18] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    600_000_000,
];

/// A mergeable latency histogram: one count per bucket of
/// [`BUCKET_BOUNDS_US`] plus the `+Inf` bucket (not cumulative).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    /// Index of the bucket a duration falls in (`le` semantics: a value
    /// equal to a bound belongs to that bound's bucket).
    pub fn bucket_of(us: u64) -> usize {
        BUCKET_BOUNDS_US.partition_point(|&b| b < us)
    }

    /// Adds `n` observations of `us` (or removes them when `retract`).
    pub fn observe(&mut self, us: u64, n: u64, retract: bool) {
        if self.counts.len() != BUCKET_BOUNDS_US.len() + 1 {
            self.counts.resize(BUCKET_BOUNDS_US.len() + 1, 0);
        }
        let slot = &mut self.counts[Self::bucket_of(us)];
        *slot = if retract {
            slot.saturating_sub(n)
        } else {
            slot.saturating_add(n)
        };
    }

    /// A histogram of per-bucket counts (not cumulative, `+Inf` last), as
    /// [`Histogram::counts`] gives them; extra counts are ignored. All
    /// zero is the empty histogram, as [`Histogram::default`] is.
    pub fn from_counts(mut counts: Vec<u64>) -> Histogram {
        if counts.iter().all(|c| *c == 0) {
            return Histogram::default();
        }
        counts.resize(BUCKET_BOUNDS_US.len() + 1, 0);
        Histogram { counts }
    }

    /// Adds every bucket of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
    }

    /// Per-bucket counts (not cumulative), `+Inf` last; all zero when empty.
    pub fn counts(&self) -> Vec<u64> {
        let mut out = self.counts.clone();
        out.resize(BUCKET_BOUNDS_US.len() + 1, 0);
        out
    }

    /// Whether it holds no observation.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Number of observations.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Estimated `q`-quantile in microseconds, interpolating linearly inside
    /// the bucket as Prometheus' `histogram_quantile` does (the `+Inf`
    /// bucket reports the highest finite bound). `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && (seen + c) as f64 >= rank {
                let Some(&upper) = BUCKET_BOUNDS_US.get(i) else {
                    return BUCKET_BOUNDS_US.last().map(|&b| b as f64);
                };
                let lower = if i == 0 { 0 } else { BUCKET_BOUNDS_US[i - 1] };
                let frac = ((rank - seen as f64) / c as f64).clamp(0.0, 1.0);
                return Some(lower as f64 + (upper - lower) as f64 * frac);
            }
            seen += c;
        }
        BUCKET_BOUNDS_US.last().map(|&b| b as f64)
    }
}

/// Measures of one series: counts, sums, bounds and the latency histogram
/// of the finished spans it holds, and the number of its spans running now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Measures {
    /// Finished spans.
    pub count: u64,
    /// Finished spans with status `error`.
    pub errors: u64,
    /// Spans currently running (a gauge: retracted when they finish).
    pub running: u64,
    /// Finished spans whose duration is known (the histogram's count).
    pub timed: u64,
    /// Sum of durations, µs.
    pub dur_sum_us: u64,
    /// Smallest duration seen, µs. Not retracted on update: a bound that
    /// may include superseded versions.
    pub dur_min_us: Option<u64>,
    /// Largest duration seen, µs (not retracted either).
    pub dur_max_us: Option<u64>,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// Total tokens.
    pub tokens_total: u64,
    /// Cost in micro-units of the span's currency.
    pub cost_micros: u64,
    /// Latency histogram of the timed spans.
    pub hist: Histogram,
}

impl Measures {
    /// Adds `other` (sums add, bounds widen, histograms add bucketwise).
    pub fn merge(&mut self, other: &Measures) {
        self.count += other.count;
        self.errors += other.errors;
        self.running += other.running;
        self.timed += other.timed;
        self.dur_sum_us += other.dur_sum_us;
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.tokens_total += other.tokens_total;
        self.cost_micros += other.cost_micros;
        self.dur_min_us = min_opt(self.dur_min_us, other.dur_min_us);
        self.dur_max_us = self.dur_max_us.max(other.dur_max_us);
        self.hist.merge(&other.hist);
    }

    /// Whether nothing is counted here (a series that can be dropped).
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.running == 0
    }

    /// Adds (or retracts) one span's contribution.
    pub(crate) fn add(&mut self, c: &crate::Contribution, retract: bool) {
        let op = |v: &mut u64, d: u64| {
            *v = if retract {
                v.saturating_sub(d)
            } else {
                v.saturating_add(d)
            }
        };
        if !c.finished {
            op(&mut self.running, 1);
            return;
        }
        op(&mut self.count, 1);
        op(&mut self.errors, u64::from(c.error));
        op(&mut self.tokens_in, c.tokens_in);
        op(&mut self.tokens_out, c.tokens_out);
        op(&mut self.tokens_total, c.tokens_total);
        op(&mut self.cost_micros, c.cost_micros);
        if let Some(us) = c.duration_us {
            op(&mut self.timed, 1);
            op(&mut self.dur_sum_us, us);
            self.hist.observe(us, 1, retract);
            if !retract {
                self.dur_min_us = min_opt(self.dur_min_us, Some(us));
                self.dur_max_us = self.dur_max_us.max(Some(us));
            }
        }
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
