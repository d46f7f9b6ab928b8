//! Metric data points sent to Loupe (OTLP metrics), in a source-neutral
//! shape: what `loupe-ingest` decodes and the rollups relay to `/metrics`.

/// How a point's value relates to earlier points of the same series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonic sum (a counter).
    Counter,
    /// A current value (gauges and non-monotonic sums).
    Gauge,
    /// A distribution over explicit bucket bounds.
    Histogram,
}

/// The value of one data point.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// A counter's or gauge's number.
    Number(f64),
    /// A histogram: `counts` has one more entry than `bounds` (the last
    /// bucket is `(bounds.last(), +Inf)`); buckets are upper-inclusive.
    Histogram {
        /// Upper bounds of the buckets, increasing.
        bounds: Vec<f64>,
        /// Observations per bucket.
        counts: Vec<u64>,
        /// Sum of the observations.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
}

/// One data point of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// The sender's metric name (`gen_ai.client.token.usage`).
    pub name: String,
    /// The sender's description.
    pub description: String,
    /// The sender's unit (`s`, `{token}`), possibly empty.
    pub unit: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Cumulative since a start (replaces the series' value) rather than a
    /// delta (added to it). Gauges are always cumulative.
    pub cumulative: bool,
    /// The point's attributes, as text, in the sender's order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: MetricValue,
}
