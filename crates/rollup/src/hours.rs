//! The hour tier: exact, additive measures of every stored span per
//! (start hour, series), kept for as long as the spans themselves.
//!
//! Unlike the per-minute tier (filed by end time, for alerts and
//! dashboards of the last hours), spans are filed here by their *start*
//! hour, the time queries filter and bucket on, and every measure is what
//! a scan of the same spans would compute: counts by status, and sums with
//! non-null counts of the duration, token and cost columns, with cost held
//! as an integer of 1e-12 units so retracting a version undoes its addition
//! exactly. That lets the store answer count / rate / sum / avg queries over
//! whole hours from here in microseconds, whatever the data volume.
//!
//! Persistence is per UTC day: [`crate::Rollups::take_dirty_days`] hands
//! out the days changed since the last call, the store writes each as a
//! file named by the WAL seq it reflects, and the snapshot records which
//! file holds each day ([`crate::Snapshot::day_files`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use crate::{Contribution, Histogram, RollupKey};

/// Nanoseconds per hour.
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// Hours per day (the tier is persisted per UTC day).
const DAY_HOURS: i64 = 24;

/// Picounits per unit of cost.
const COST_SCALE: f64 = 1e12;

/// Node dimensions kept per series of one hour; past this, the names and
/// tag values of new ones read [`crate::OTHER`] (and the tier records the
/// hour: [`HourTier::name_folded_in`], [`HourTier::tag_folded_in`]), so
/// span names or tags that carry ids cannot grow the tier without bound.
/// Room for a workflow's nodes times a few business tags' values.
pub(crate) const MAX_NODES_PER_SERIES: usize = 1024;

/// Tags the tier keeps besides the labels, at most
/// ([`crate::RollupConfig::hour_tags`]).
pub const MAX_HOUR_TAGS: usize = 16;

/// Dimensions only the hour tier keeps: what root-cause analysis groups
/// nodes by. The minute tier and `/metrics` leave them out, as they would
/// multiply the exported series; here they are nearly free, since a node's
/// name, app name, version and provider mostly follow from the series key,
/// and a business tag has a handful of values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeDims {
    /// Whether the span has a parent (`exists parent_span_id`).
    pub child: bool,
    /// The span's name, of child spans only: a root is named by its run,
    /// one series per run.
    pub name: String,
    /// App name.
    pub app_name: String,
    /// Workflow version.
    pub workflow_version: String,
    /// Model provider.
    pub model_provider: String,
    /// Values of the tier's tags ([`crate::RollupConfig::hour_tags`], in
    /// that order; "" is unset or not kept in that hour). A day file holds
    /// them in its own [`DayFile::tags`] order; empty in files written
    /// before them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl NodeDims {
    fn of(span: &loupe_model::Span, hour_tags: &[String]) -> Self {
        let text = |s: &Option<String>| s.clone().unwrap_or_default();
        let child = span.parent_span_id.is_some();
        Self {
            child,
            name: if child {
                text(&span.name)
            } else {
                String::new()
            },
            app_name: text(&span.app_name),
            workflow_version: text(&span.workflow_version),
            model_provider: text(&span.model_provider),
            tags: hour_tags
                .iter()
                .map(|t| span.tags.get(t).cloned().unwrap_or_default())
                .collect(),
        }
    }

    fn is_default(&self) -> bool {
        *self == NodeDims::default()
    }

    /// The same dimensions with the name and the tag values folded.
    fn folded(&self) -> NodeDims {
        let fold = |s: &String| {
            if s.is_empty() {
                String::new()
            } else {
                crate::OTHER.to_owned()
            }
        };
        NodeDims {
            name: fold(&self.name),
            tags: self.tags.iter().map(fold).collect(),
            ..self.clone()
        }
    }

    /// Tag value `i` of the tier's tags ("" when unset).
    pub fn tag(&self, i: usize) -> &str {
        self.tags.get(i).map_or("", String::as_str)
    }
}

/// One hour of the tier: series, then their node dimensions.
type Hour = HashMap<RollupKey, HashMap<NodeDims, HourMeasures>>;

/// A sum and the number of non-null values in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SumCount {
    /// Sum of the values.
    pub sum: i128,
    /// Values summed.
    pub count: u64,
}

impl SumCount {
    fn add(&mut self, v: Option<i128>, retract: bool) {
        let Some(v) = v else { return };
        if retract {
            self.sum -= v;
            self.count = self.count.saturating_sub(1);
        } else {
            self.sum += v;
            self.count += 1;
        }
    }

    fn merge(&mut self, other: &SumCount) {
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// Measures of one series in one hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HourMeasures {
    /// Spans (any status, running included).
    pub spans: u64,
    /// Spans whose status is `ok`.
    pub ok: u64,
    /// Spans whose status is `error`.
    pub errors: u64,
    /// The `duration` column (ns).
    pub duration: SumCount,
    /// The `input_tokens` column.
    pub input_tokens: SumCount,
    /// The `output_tokens` column.
    pub output_tokens: SumCount,
    /// The `total_tokens` column.
    pub total_tokens: SumCount,
    /// The `cost` column, in 1e-12 units.
    pub cost_pico: SumCount,
    /// Histogram of the `duration` column (µs, the Prometheus buckets):
    /// approximate percentiles. Day files written before it existed hold
    /// none; its total then falls short of `duration.count`, which says so.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub duration_hist: Histogram,
}

impl HourMeasures {
    fn add(&mut self, f: &HourFields, retract: bool) {
        let op = |v: &mut u64, on: bool| {
            if on {
                *v = if retract { v.saturating_sub(1) } else { *v + 1 };
            }
        };
        op(&mut self.spans, true);
        op(&mut self.ok, f.ok);
        op(&mut self.errors, f.error);
        self.duration.add(f.duration_ns.map(i128::from), retract);
        if let Some(ns) = f.duration_ns {
            self.duration_hist
                .observe(u64::try_from(ns / 1_000).unwrap_or(0), 1, retract);
        }
        self.input_tokens
            .add(f.input_tokens.map(i128::from), retract);
        self.output_tokens
            .add(f.output_tokens.map(i128::from), retract);
        self.total_tokens
            .add(f.total_tokens.map(i128::from), retract);
        self.cost_pico.add(f.cost_pico, retract);
    }

    /// Adds `other` but its histogram: what a reader that needs no
    /// percentile merges (the histogram is most of a merge's work).
    pub fn merge_sums(&mut self, other: &HourMeasures) {
        self.spans += other.spans;
        self.ok += other.ok;
        self.errors += other.errors;
        self.duration.merge(&other.duration);
        self.input_tokens.merge(&other.input_tokens);
        self.output_tokens.merge(&other.output_tokens);
        self.total_tokens.merge(&other.total_tokens);
        self.cost_pico.merge(&other.cost_pico);
    }

    /// Adds `other`.
    pub fn merge(&mut self, other: &HourMeasures) {
        self.merge_sums(other);
        self.duration_hist.merge(&other.duration_hist);
    }

    /// The measures of one span given by its stored values (`status` as
    /// the column holds it): what the tier would count for it.
    pub fn of_span_values(
        status: Option<&str>,
        duration_ns: Option<i64>,
        tokens: [Option<i64>; 3],
        cost: Option<f64>,
    ) -> HourMeasures {
        let [input_tokens, output_tokens, total_tokens] = tokens;
        let fields = HourFields {
            hour: None,
            ok: status == Some("ok"),
            error: status == Some("error"),
            duration_ns,
            input_tokens,
            output_tokens,
            total_tokens,
            cost_pico: cost_pico(cost),
            node: NodeDims::default(),
        };
        let mut m = HourMeasures::default();
        m.add(&fields, false);
        m
    }

    /// The cost sum in units.
    pub fn cost(&self) -> f64 {
        self.cost_pico.sum as f64 / COST_SCALE
    }

    /// The estimated `q`-quantile of the duration in ns (bucket-interpolated,
    /// as Prometheus' `histogram_quantile`); `None` without durations or when
    /// the histogram does not hold every duration summed (older day files).
    pub fn duration_quantile_ns(&self, q: f64) -> Option<f64> {
        (self.duration.count > 0 && self.duration_hist.total() == self.duration.count)
            .then(|| self.duration_hist.quantile_us(q))
            .flatten()
            .map(|us| us * 1_000.0)
    }

    /// Whether the duration histogram holds every duration summed.
    pub fn histogram_complete(&self) -> bool {
        self.duration_hist.total() == self.duration.count
    }
}

/// What one span version adds to the hour tier, exactly as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HourFields {
    pub hour: Option<i64>,
    pub ok: bool,
    pub error: bool,
    pub duration_ns: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub cost_pico: Option<i128>,
    pub node: NodeDims,
}

impl HourFields {
    pub(crate) fn of(span: &loupe_model::Span, hour_tags: &[String]) -> Self {
        use loupe_model::Status;
        Self {
            hour: span.start_time.map(|t| t.div_euclid(HOUR_NS)),
            ok: span.status == Some(Status::Ok),
            error: span.status == Some(Status::Error),
            duration_ns: span.duration_ns(),
            input_tokens: span.input_tokens,
            output_tokens: span.output_tokens,
            total_tokens: span.total_tokens,
            cost_pico: cost_pico(span.cost),
            node: NodeDims::of(span, hour_tags),
        }
    }
}

/// A cost as the tier sums it: an integer of 1e-12 units (non-finite: none).
fn cost_pico(cost: Option<f64>) -> Option<i128> {
    cost.filter(|c| c.is_finite())
        .map(|c| (c * COST_SCALE).round() as i128)
}

/// One persisted day of the tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayFile {
    /// Day number (hour / 24).
    pub day: i64,
    /// The WAL seq whose state it holds.
    pub seq: u64,
    /// Hours of the day (hour = ns / 1 h), each with its series.
    pub hours: Vec<(i64, Vec<HourSeries>)>,
    /// The tags the nodes' [`NodeDims::tags`] name, in that order (the
    /// tier's when the file was written; absent before hour tags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// One series of one hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourSeries {
    /// Dimensions.
    pub key: RollupKey,
    /// Node dimensions (absent in day files written before them).
    #[serde(default, skip_serializing_if = "NodeDims::is_default")]
    pub node: NodeDims,
    /// Measures.
    pub measures: HourMeasures,
}

/// A dimension of the tier's entries: what a reader of a tier kept
/// elsewhere (a backend's own) names to have the others summed away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HourDim {
    /// [`RollupKey::span_kind`].
    SpanKind,
    /// [`RollupKey::node_type`].
    NodeType,
    /// [`RollupKey::tool_name`].
    ToolName,
    /// [`RollupKey::model_name`].
    ModelName,
    /// [`RollupKey::app_id`].
    AppId,
    /// [`RollupKey::workflow_id`].
    WorkflowId,
    /// [`RollupKey::status`].
    Status,
    /// [`RollupKey::error_class`].
    ErrorClass,
    /// [`RollupKey::error_signature`].
    ErrorSignature,
    /// Label `i` of [`RollupKey::tags`].
    Label(usize),
    /// [`NodeDims::child`].
    Child,
    /// [`NodeDims::name`].
    Name,
    /// [`NodeDims::app_name`].
    AppName,
    /// [`NodeDims::workflow_version`].
    WorkflowVersion,
    /// [`NodeDims::model_provider`].
    ModelProvider,
    /// Tag `i` of [`NodeDims::tags`].
    HourTag(usize),
}

/// What one span version counts in the hour tier, for a backend that
/// keeps the tier in its own tables (ClickHouse): its start hour, series,
/// node dimensions and measures, as [`crate::Rollups::apply`] counts it but
/// never folded (such a backend has room for every series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourEntry {
    /// Start hour (ns / 1 h).
    pub hour: i64,
    /// Series.
    pub key: RollupKey,
    /// Node dimensions.
    pub node: NodeDims,
    /// The span's measures.
    pub measures: HourMeasures,
}

impl HourEntry {
    /// The entry of `span` under `config`'s labels and hour tags; `None`
    /// without a start time (the tier does not count such a span).
    pub fn of(span: &loupe_model::Span, config: &crate::RollupConfig) -> Option<HourEntry> {
        let c = crate::contribution(span, config);
        let hour = c.hour_fields.hour?;
        let mut measures = HourMeasures::default();
        measures.add(&c.hour_fields, false);
        Some(HourEntry {
            hour,
            key: c.key,
            node: c.hour_fields.node,
            measures,
        })
    }
}

/// Hours of the tier taken by [`HourTier::slice`].
#[derive(Debug, Clone, Default)]
pub struct HourSlice {
    hours: Vec<(i64, Arc<Hour>)>,
}

impl HourSlice {
    /// A slice of entries read from elsewhere (a backend's own tier);
    /// entries of one hour, series and node are merged.
    pub fn of_entries(entries: impl IntoIterator<Item = HourEntry>) -> HourSlice {
        let mut hours: BTreeMap<i64, Hour> = BTreeMap::new();
        for e in entries {
            hours
                .entry(e.hour)
                .or_default()
                .entry(e.key)
                .or_default()
                .entry(e.node)
                .or_default()
                .merge(&e.measures);
        }
        HourSlice {
            hours: hours.into_iter().map(|(h, s)| (h, Arc::new(s))).collect(),
        }
    }

    /// Every (hour, series key, its nodes' measures) of the slice: a
    /// reader that decides on the key alone skips a series' nodes whole.
    pub fn series(
        &self,
    ) -> impl Iterator<Item = (i64, &RollupKey, &HashMap<NodeDims, HourMeasures>)> {
        self.hours
            .iter()
            .flat_map(|(h, series)| series.iter().map(move |(k, nodes)| (*h, k, nodes)))
    }
}

fn flat(
    hour: i64,
    series: &Hour,
) -> impl Iterator<Item = (i64, &RollupKey, &NodeDims, &HourMeasures)> {
    series
        .iter()
        .flat_map(move |(k, nodes)| nodes.iter().map(move |(n, m)| (hour, k, n, m)))
}

/// The hours in which the tier counts spans with a dimension: from `from`
/// on, but for the hours in `without` (held when the dimension joined the
/// tier, dated after it: a span from the future).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// First hour counted with it.
    pub from: i64,
    /// Hours from `from` on counted without it.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub without: BTreeSet<i64>,
}

impl Kept {
    /// Kept from the start.
    pub(crate) fn always() -> Kept {
        Kept {
            from: i64::MIN,
            without: BTreeSet::new(),
        }
    }

    fn never() -> Kept {
        Kept {
            from: i64::MAX,
            without: BTreeSet::new(),
        }
    }

    /// Joining a tier that holds `held` hours (ascending) without it, at
    /// `now_hour`: counted from the hour after the last held, or after the
    /// current hour when some are dated later (those stay without it).
    pub(crate) fn joining(held: &[i64], now_hour: i64) -> Kept {
        let Some(last) = held.last() else {
            return Kept::always();
        };
        let from = (last + 1).min(now_hour + 1);
        Kept {
            from,
            without: held.iter().copied().filter(|h| *h >= from).collect(),
        }
    }

    /// The same hours, but never counted from later than the clock's next
    /// hour: a `from` pushed ahead by a span from the future (by a build
    /// before [`Kept::joining`] capped it) comes back, the held hours it
    /// skipped staying without.
    pub(crate) fn capped(mut self, held: &[i64], now_hour: i64) -> Kept {
        let next = now_hour.saturating_add(1);
        if self.from > next {
            self.without.extend(
                held.iter()
                    .copied()
                    .filter(|h| *h >= next && *h < self.from),
            );
            self.from = next;
        }
        self
    }

    /// Whether spans of `hour` are counted with it.
    pub fn holds(&self, hour: i64) -> bool {
        hour >= self.from && !self.without.contains(&hour)
    }

    /// Whether every hour of `[from_hour, to_hour)` is counted with it.
    pub fn holds_over(&self, from_hour: i64, to_hour: i64) -> bool {
        from_hour >= self.from && self.without.range(from_hour..to_hour).next().is_none()
    }
}

/// The tier.
#[derive(Debug, Clone, Default)]
pub struct HourTier {
    /// Each hour's series behind an `Arc`: a reader takes the hours of its
    /// range ([`HourTier::slice`]) and answers without the store's lock; a
    /// write to an hour a reader still holds copies that hour first.
    pub(crate) hours: BTreeMap<i64, Arc<Hour>>,
    dirty: BTreeSet<i64>,
    /// Which persisted file (its seq) holds each day.
    pub(crate) day_files: BTreeMap<i64, u64>,
    /// Whether every stored span is counted (false for data directories
    /// written before the tier existed, or whose labels changed).
    pub(crate) complete: bool,
    /// The hours whose spans are counted with their [`NodeDims`]: every
    /// hour for a tier that kept them from the start; for one begun before
    /// they existed, those after the hours it held when this build first
    /// opened it ([`Kept::joining`]).
    pub(crate) node_dims: Kept,
    /// Node names folded by [`MAX_NODES_PER_SERIES`].
    pub(crate) names_folded: u64,
    /// The hours in which a name was folded: plans naming `name` over
    /// them scan.
    pub(crate) name_fold_hours: BTreeSet<i64>,
    /// The tags [`NodeDims::tags`] holds, in that order
    /// ([`crate::RollupConfig::hour_tags`]).
    pub(crate) tags: Vec<String>,
    /// Per tag of `tags`: the hours whose spans are counted with it (like
    /// `node_dims`, for a tag added to a tier begun without it).
    pub(crate) tags_kept: Vec<Kept>,
    /// Per tag of `tags`: the hours in which a value was folded by
    /// [`MAX_NODES_PER_SERIES`].
    pub(crate) tag_fold_hours: Vec<BTreeSet<i64>>,
}

impl HourTier {
    pub(crate) fn new_complete(tags: &[String]) -> Self {
        Self {
            complete: true,
            node_dims: Kept::always(),
            tags: tags.to_vec(),
            tags_kept: vec![Kept::always(); tags.len()],
            tag_fold_hours: vec![BTreeSet::new(); tags.len()],
            ..Self::default()
        }
    }

    /// Counts `c` in series `key` (`folded`: the key is the cardinality
    /// guard's folded one, so the name folds too).
    pub(crate) fn change(
        &mut self,
        key: &RollupKey,
        folded: bool,
        c: &Contribution,
        retract: bool,
    ) {
        let Some(hour) = c.hour_fields.hour else {
            return;
        };
        if retract && !self.hours.contains_key(&hour) {
            return;
        }
        // An hour counted before the tier kept some dimension holds its
        // spans without it, and so does every later write to it: additions
        // and retractions then meet in the same entries.
        let as_counted = self.as_counted(hour, &c.hour_fields.node);
        self.dirty.insert(hour.div_euclid(DAY_HOURS));
        let series = Arc::make_mut(self.hours.entry(hour).or_default());
        let nodes = match series.get_mut(key) {
            Some(n) => n,
            None if retract => return,
            None => series.entry(key.clone()).or_default(),
        };
        let node = as_counted.as_ref().unwrap_or(&c.hour_fields.node);
        if !folded && let Some(m) = nodes.get_mut(node) {
            m.add(&c.hour_fields, retract);
            return;
        }
        // A new node of the series, or one counted folded before.
        let fold = folded || nodes.len() >= MAX_NODES_PER_SERIES;
        if retract {
            if let Some(m) = nodes.get_mut(&node.folded()) {
                m.add(&c.hour_fields, retract);
            }
            return;
        }
        let node = if fold { node.folded() } else { node.clone() };
        if fold && !folded && !nodes.contains_key(&node) {
            if !node.name.is_empty() {
                self.names_folded += 1;
                self.name_fold_hours.insert(hour);
            }
            for (hours, v) in self.tag_fold_hours.iter_mut().zip(&node.tags) {
                if !v.is_empty() {
                    hours.insert(hour);
                }
            }
        }
        nodes.entry(node).or_default().add(&c.hour_fields, retract);
    }

    /// Makes every hour count its spans as [`HourTier::as_counted`] says,
    /// merging entries that then coincide: day files of hours a dimension
    /// does not hold may still name it (written before the tag left the
    /// tier, or by an older build), and a later write there would miss
    /// them. Only hours some dimension does not hold are touched.
    pub(crate) fn normalize(&mut self) {
        let hours: Vec<i64> = self.hours.keys().copied().collect();
        for hour in hours {
            if self.node_dims.holds(hour) && self.tags_kept.iter().all(|k| k.holds(hour)) {
                continue;
            }
            let Some(series) = self.hours.remove(&hour) else {
                continue;
            };
            let mut out = Hour::default();
            for (key, nodes) in Arc::unwrap_or_clone(series) {
                let merged = out.entry(key).or_default();
                for (node, m) in nodes {
                    let node = self.as_counted(hour, &node).unwrap_or(node);
                    merged.entry(node).or_default().merge(&m);
                }
            }
            self.hours.insert(hour, Arc::new(out));
        }
    }

    /// `node` as the tier counts spans of `hour` when it does so without
    /// some of its dimensions (see [`Kept`]); `None` when every dimension
    /// is kept there.
    fn as_counted(&self, hour: i64, node: &NodeDims) -> Option<NodeDims> {
        if !self.node_dims.holds(hour) {
            return Some(NodeDims {
                tags: vec![String::new(); node.tags.len()],
                ..NodeDims::default()
            });
        }
        if self.tags_kept.iter().all(|k| k.holds(hour)) {
            return None;
        }
        let mut old = node.clone();
        for (v, kept) in old.tags.iter_mut().zip(&self.tags_kept) {
            if !kept.holds(hour) {
                v.clear();
            }
        }
        Some(old)
    }

    /// Series of the hours in `[from_hour, to_hour)`.
    pub fn range(
        &self,
        from_hour: i64,
        to_hour: i64,
    ) -> impl Iterator<Item = (i64, &RollupKey, &NodeDims, &HourMeasures)> {
        self.hours
            .range(from_hour..to_hour)
            .flat_map(|(h, series)| flat(*h, series))
    }

    /// The hours in `[from_hour, to_hour)`, shared with the tier: what a
    /// reader holds while it answers, outside the store's lock.
    pub fn slice(&self, from_hour: i64, to_hour: i64) -> HourSlice {
        HourSlice {
            hours: self
                .hours
                .range(from_hour..to_hour)
                .map(|(h, s)| (*h, Arc::clone(s)))
                .collect(),
        }
    }

    /// (hour, series, node) entries held: what the tier's memory grows
    /// with.
    pub fn len(&self) -> usize {
        self.hours
            .values()
            .flat_map(|s| s.values())
            .map(HashMap::len)
            .sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }

    /// Whether every stored span is counted.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The hours counted with their [`NodeDims`]: plans naming them are
    /// answered here over those hours only.
    pub fn node_dims(&self) -> &Kept {
        &self.node_dims
    }

    /// Node names folded into [`crate::OTHER`].
    pub fn names_folded(&self) -> u64 {
        self.names_folded
    }

    /// Whether a name was folded in an hour of `[from_hour, to_hour)` (a
    /// plan naming `name` over them is then scanned).
    pub fn name_folded_in(&self, from_hour: i64, to_hour: i64) -> bool {
        self.name_fold_hours
            .range(from_hour..to_hour)
            .next()
            .is_some()
    }

    /// The tags kept besides the labels ([`NodeDims::tags`] order).
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Position of `tag` among [`HourTier::tags`].
    pub fn tag_index(&self, tag: &str) -> Option<usize> {
        self.tags.iter().position(|t| t == tag)
    }

    /// The hours counted with tag `i` (none for an unknown `i`).
    pub fn tag_kept(&self, i: usize) -> Kept {
        self.tags_kept.get(i).cloned().unwrap_or_else(Kept::never)
    }

    /// Whether a value of tag `i` was folded into [`crate::OTHER`] in an
    /// hour of `[from_hour, to_hour)` (a plan naming it over them is then
    /// scanned).
    pub fn tag_folded_in(&self, i: usize, from_hour: i64, to_hour: i64) -> bool {
        self.tag_fold_hours
            .get(i)
            .is_some_and(|h| h.range(from_hour..to_hour).next().is_some())
    }

    /// Drops the series of whole days that `expired(project, day)` says
    /// retention has removed (day = ns / 24 h).
    pub(crate) fn expire(&mut self, expired: impl Fn(&str, i64) -> bool) {
        let hours: Vec<i64> = self.hours.keys().copied().collect();
        for h in hours {
            let day = h.div_euclid(DAY_HOURS);
            if let Some(series) = self.hours.get_mut(&h) {
                if !series.keys().any(|k| expired(&k.project, day)) {
                    continue;
                }
                let series = Arc::make_mut(series);
                let before = series.len();
                series.retain(|k, _| !expired(&k.project, day));
                if series.len() != before {
                    self.dirty.insert(day);
                }
                if series.is_empty() {
                    self.hours.remove(&h);
                }
            }
        }
        let held = |h: &i64| self.hours.contains_key(h);
        self.name_fold_hours.retain(held);
        for hours in &mut self.tag_fold_hours {
            hours.retain(held);
        }
        for kept in std::iter::once(&mut self.node_dims).chain(&mut self.tags_kept) {
            kept.without.retain(held);
        }
    }

    /// The days changed since the last call, as files for `seq`; records
    /// them as held by those files.
    pub(crate) fn take_dirty(&mut self, seq: u64) -> Vec<DayFile> {
        let days = std::mem::take(&mut self.dirty);
        days.into_iter()
            .filter_map(|day| {
                let hours: Vec<_> = self
                    .hours
                    .range(day * DAY_HOURS..(day + 1) * DAY_HOURS)
                    .map(|(h, series)| {
                        let mut v: Vec<HourSeries> = flat(*h, series)
                            .filter(|(_, _, _, m)| m.spans > 0)
                            .map(|(_, k, n, m)| HourSeries {
                                key: k.clone(),
                                node: n.clone(),
                                measures: m.clone(),
                            })
                            .collect();
                        v.sort_by(|a, b| (&a.key, &a.node).cmp(&(&b.key, &b.node)));
                        (*h, v)
                    })
                    .collect();
                if hours.is_empty() {
                    // Nothing left (retention): no file, and the old one goes.
                    self.day_files.remove(&day);
                    return None;
                }
                self.day_files.insert(day, seq);
                Some(DayFile {
                    day,
                    seq,
                    hours,
                    tags: self.tags.clone(),
                })
            })
            .collect()
    }

    pub(crate) fn restore_day(
        &mut self,
        file: DayFile,
        remap: impl Fn(RollupKey) -> RollupKey,
        remap_node: impl Fn(&[String], NodeDims) -> NodeDims,
    ) {
        let tags = file.tags;
        for (hour, series) in file.hours {
            let m = Arc::make_mut(self.hours.entry(hour).or_default());
            for s in series {
                m.entry(remap(s.key))
                    .or_default()
                    .entry(remap_node(&tags, s.node))
                    .or_default()
                    .merge(&s.measures);
            }
        }
    }
}
