//! OTLP metric exports (`/v1/metrics`): request body →
//! [`ExportMetricsServiceRequest`] → [`MetricPoint`]s.
//!
//! Dify's Tencent provider and its OpenTelemetry provider send GenAI metrics
//! (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`, …)
//! beside their traces, and count a failed metrics export as a failed
//! trace export. Loupe derives the same numbers from the spans, so these
//! points are relayed to `/metrics` as they were sent rather than stored.
//!
//! The body is bounded by `[ingest] max_metrics_bytes` (after gzip) before
//! it is decoded: Dify sends a handful of points per trace, and the bound
//! keeps what decoding may allocate small (tens of MB at worst). Gauges,
//! sums and explicit-bucket histograms are mapped; exponential histograms
//! and summaries are rejected per point, naming the metric.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, NumberDataPoint, metric, number_data_point,
};
use prost::Message as _;

use loupe_model::{MetricKind, MetricPoint, MetricValue};
use loupe_normalise::ItemError;

use crate::IngestLimits;
use crate::otlp::{DecodeError, Encoding};

/// The points of one request: the mapped ones and the rejected ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Points {
    /// Points that mapped, in request order.
    pub points: Vec<MetricPoint>,
    /// One error per point that did not map, by path.
    pub rejected: Vec<ItemError>,
}

/// Decodes an `ExportMetricsServiceRequest` body (protobuf or OTLP/JSON,
/// optionally gzip) of at most `limits.max_metrics_bytes` after inflation.
pub fn decode_metrics(
    body: &[u8],
    encoding: Encoding,
    gzip: bool,
    limits: &IngestLimits,
) -> Result<ExportMetricsServiceRequest, DecodeError> {
    let limit = limits.max_metrics_bytes;
    let inflated;
    let bytes = if gzip {
        inflated = crate::otlp::gunzip(body, limit)?;
        inflated.as_slice()
    } else if body.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    } else {
        body
    };
    match encoding {
        Encoding::Protobuf => Ok(ExportMetricsServiceRequest::decode(bytes)?),
        Encoding::Json => serde_json::from_slice(bytes).map_err(crate::otlp::json_error),
    }
}

/// Maps every data point of `request`.
pub fn points(request: ExportMetricsServiceRequest) -> Points {
    let mut out = Points::default();
    for (r, resource) in request.resource_metrics.into_iter().enumerate() {
        for (s, scope) in resource.scope_metrics.into_iter().enumerate() {
            for (m, metric) in scope.metrics.into_iter().enumerate() {
                let path = format!("resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}]");
                let base = Base {
                    name: metric.name,
                    description: metric.description,
                    unit: metric.unit,
                };
                if base.name.is_empty() {
                    out.rejected
                        .push(ItemError::new(format!("{path}.name"), "must not be empty"));
                    continue;
                }
                match metric.data {
                    Some(metric::Data::Gauge(g)) => {
                        numbers(
                            &base,
                            MetricKind::Gauge,
                            true,
                            g.data_points,
                            &path,
                            &mut out,
                        );
                    }
                    Some(metric::Data::Sum(sum)) => {
                        let kind = if sum.is_monotonic {
                            MetricKind::Counter
                        } else {
                            MetricKind::Gauge
                        };
                        let cumulative = sum.aggregation_temporality
                            != AggregationTemporality::Delta as i32
                            || kind == MetricKind::Gauge;
                        numbers(&base, kind, cumulative, sum.data_points, &path, &mut out);
                    }
                    Some(metric::Data::Histogram(h)) => {
                        let cumulative =
                            h.aggregation_temporality != AggregationTemporality::Delta as i32;
                        for (i, point) in h.data_points.into_iter().enumerate() {
                            match histogram(&base, cumulative, point) {
                                Ok(p) => out.points.push(p),
                                Err(reason) => out.rejected.push(ItemError::new(
                                    format!("{path}.histogram.dataPoints[{i}]"),
                                    reason,
                                )),
                            }
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(_))
                    | Some(metric::Data::Summary(_)) => {
                        out.rejected.push(ItemError::new(
                            path,
                            format!(
                                "{}: exponential histograms and summaries are not supported; send explicit-bucket histograms",
                                base.name
                            ),
                        ));
                    }
                    None => out
                        .rejected
                        .push(ItemError::new(path, format!("{}: no data", base.name))),
                }
            }
        }
    }
    out
}

struct Base {
    name: String,
    description: String,
    unit: String,
}

impl Base {
    fn point(
        &self,
        kind: MetricKind,
        cumulative: bool,
        labels: Vec<(String, String)>,
        value: MetricValue,
    ) -> MetricPoint {
        MetricPoint {
            name: self.name.clone(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            kind,
            cumulative,
            labels,
            value,
        }
    }
}

fn labels(
    attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
) -> Vec<(String, String)> {
    crate::otlp::convert::attributes(attributes)
        .into_iter()
        .map(|(k, v)| (k, v.to_text()))
        .collect()
}

fn numbers(
    base: &Base,
    kind: MetricKind,
    cumulative: bool,
    points: Vec<NumberDataPoint>,
    path: &str,
    out: &mut Points,
) {
    for (i, point) in points.into_iter().enumerate() {
        let value = match point.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => f64::NAN,
        };
        if !value.is_finite() {
            out.rejected.push(ItemError::new(
                format!("{path}.dataPoints[{i}]"),
                format!("{}: the value must be a finite number", base.name),
            ));
            continue;
        }
        out.points.push(base.point(
            kind,
            cumulative,
            labels(point.attributes),
            MetricValue::Number(value),
        ));
    }
}

fn histogram(
    base: &Base,
    cumulative: bool,
    point: HistogramDataPoint,
) -> Result<MetricPoint, String> {
    let bounds = point.explicit_bounds;
    let counts = point.bucket_counts;
    if counts.len() != bounds.len() + 1 {
        return Err(format!(
            "{}: {} bucket counts for {} bounds (need one more count than bounds)",
            base.name,
            counts.len(),
            bounds.len()
        ));
    }
    if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "{}: bucket bounds must be finite and increasing",
            base.name
        ));
    }
    let sum = point.sum.unwrap_or(0.0);
    if !sum.is_finite() {
        return Err(format!("{}: the sum must be a finite number", base.name));
    }
    Ok(base.point(
        MetricKind::Histogram,
        cumulative,
        labels(point.attributes),
        MetricValue::Histogram {
            bounds,
            counts,
            sum,
            count: point.count,
        },
    ))
}
