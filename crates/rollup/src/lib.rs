//! Rollups: per-minute and cumulative aggregates of spans, keyed by the
//! dimensions dashboards and alerts group by, and their Prometheus /
//! OpenMetrics exposition.
//!
//! A span contributes to one series ([`RollupKey`]: project, app, workflow,
//! span kind, node type, tool, model, status, error class and signature and the configured
//! business tags). A finished span adds a count, its duration (sum, min,
//! max, a [`Histogram`] with fixed log-spaced bounds), tokens and cost; a
//! running span adds only to the `running` gauge. Spans are updated after
//! they are first seen (running → finished, a second source), so the owner
//! of the merged span (the store) calls [`Rollups::apply`] with the previous
//! merged version and the new one: the old contribution is retracted and the
//! new one added, and every span counts once, in its latest state.
//!
//! A cardinality guard caps the series per (project, app); contributions
//! that would create more are folded into a series whose high-cardinality
//! dimensions read [`OTHER`], and [`Rollups::folded_series`] counts the
//! distinct series folded.
//!
//! [`expose`] renders the state in the Prometheus text format or
//! OpenMetrics. This crate is pure: no I/O, no clock; the store persists a
//! [`Snapshot`].

#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashSet};

use loupe_model::{Span, Status};
use serde::{Deserialize, Serialize};

pub mod events;
pub mod expose;
pub mod hours;
pub mod logs;
mod measures;
pub mod relay;
#[cfg(test)]
mod tests;

pub use hours::{DayFile, HourEntry, HourMeasures, HourSlice, HourTier, NodeDims};
pub use measures::{BUCKET_BOUNDS_US, Histogram, Measures};

/// The value of a folded dimension.
pub const OTHER: &str = "__other__";

/// Distinct folded series remembered (to count each once); past this, every
/// folded contribution of an unknown series counts.
const FOLDED_MEMORY: usize = 10_000;

/// Nanoseconds per minute.
const MINUTE_NS: i64 = 60_000_000_000;

/// Settings of the rollups (`[metrics]` in `loupe.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollupConfig {
    /// Business tags that become rollup dimensions and metric labels.
    /// Default `["category"]`.
    pub labels: Vec<String>,
    /// Business tags the hour rollups keep besides `labels`, not exported
    /// to `/metrics`: root-cause analysis and `by tags.…` queries read
    /// them from memory instead of scanning. The binary adds the names of
    /// the `[[tags]]` rules (at most [`hours::MAX_HOUR_TAGS`] in all).
    #[serde(default)]
    pub hour_tags: Vec<String>,
    /// Most series per (project, app) before new ones fold into `__other__`.
    /// Default 10,000.
    pub max_series_per_app: usize,
    /// Minutes of per-minute rollups kept in memory, counted back from the
    /// newest minute seen or the wall clock, whichever is earlier. Default 180.
    pub minutes_kept: usize,
}

impl Default for RollupConfig {
    fn default() -> Self {
        Self {
            labels: vec!["category".to_owned()],
            hour_tags: Vec::new(),
            max_series_per_app: 10_000,
            minutes_kept: 180,
        }
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A snapshot has a format this build does not read.
    #[error("rollup snapshot format {found} is not supported (expects {expected})")]
    Format {
        /// Format of the snapshot.
        found: u32,
        /// Format this build writes.
        expected: u32,
    },
}

/// The dimensions of one series. Empty string means "not applicable".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct RollupKey {
    /// Project.
    pub project: String,
    /// App id.
    pub app_id: String,
    /// Workflow id.
    pub workflow_id: String,
    /// Normalised span kind (`workflow`, `llm`, `tool`, …).
    pub span_kind: String,
    /// Raw node type.
    pub node_type: String,
    /// Tool name.
    pub tool_name: String,
    /// Model name.
    pub model_name: String,
    /// `ok`, `error`, `unset`, or `running` for running spans.
    pub status: String,
    /// Error class of failed spans.
    pub error_class: String,
    /// Error signature of failed spans (`attributes["loupe.error_signature"]`,
    /// set by the ingest pipeline). Empty in snapshots older than it.
    pub error_signature: String,
    /// Values of the configured label tags, in [`RollupConfig::labels`] order.
    pub tags: Vec<String>,
}

impl RollupKey {
    /// The same key with its high-cardinality dimensions folded.
    fn folded(&self) -> RollupKey {
        let fold = |s: &String| {
            if s.is_empty() {
                String::new()
            } else {
                OTHER.to_owned()
            }
        };
        RollupKey {
            project: self.project.clone(),
            app_id: self.app_id.clone(),
            workflow_id: fold(&self.workflow_id),
            span_kind: self.span_kind.clone(),
            node_type: fold(&self.node_type),
            tool_name: fold(&self.tool_name),
            model_name: fold(&self.model_name),
            status: self.status.clone(),
            error_class: fold(&self.error_class),
            error_signature: fold(&self.error_signature),
            tags: self.tags.iter().map(fold).collect(),
        }
    }
}

/// What one version of a span adds to its series (see
/// [`Rollups::contribution`]): small, so callers can keep it instead of a
/// copy of the span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    pub(crate) key: RollupKey,
    pub(crate) finished: bool,
    pub(crate) error: bool,
    pub(crate) minute: Option<i64>,
    pub(crate) duration_us: Option<u64>,
    pub(crate) tokens_in: u64,
    pub(crate) tokens_out: u64,
    pub(crate) tokens_total: u64,
    pub(crate) cost_micros: u64,
    pub(crate) at_ns: Option<i64>,
    pub(crate) hour_fields: hours::HourFields,
}

/// Whether a span is finished: it has a final status, or an end time and
/// no `running` status.
pub fn is_finished(span: &Span) -> bool {
    match span.status {
        Some(Status::Ok | Status::Error) => true,
        Some(Status::Running) => false,
        Some(Status::Unset) | None => span.end_time.is_some(),
    }
}

fn contribution(span: &Span, config: &RollupConfig) -> Contribution {
    let labels = &config.labels;
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    let finished = is_finished(span);
    let status = if finished {
        span.status.unwrap_or(Status::Unset).as_str()
    } else {
        Status::Running.as_str()
    };
    let error = finished && span.status == Some(Status::Error);
    let pos = |v: Option<i64>| v.map_or(0, |v| v.max(0) as u64);
    let (tin, tout) = (pos(span.input_tokens), pos(span.output_tokens));
    let total = span.total_tokens.map_or(tin + tout, |t| t.max(0) as u64);
    Contribution {
        key: RollupKey {
            project: span.project.clone(),
            app_id: text(&span.app_id),
            workflow_id: text(&span.workflow_id),
            span_kind: span
                .span_kind
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
            node_type: text(&span.node_type),
            tool_name: text(&span.tool_name),
            model_name: text(&span.model_name),
            status: status.to_owned(),
            error_class: if error {
                text(&span.error_class)
            } else {
                String::new()
            },
            // Spans stored before the pipeline signed them are signed
            // here as a scan signs them on read.
            error_signature: if error {
                match span.attributes.get(loupe_model::ERROR_SIGNATURE) {
                    Some(sig) => sig.clone(),
                    None => loupe_normalise::errors::sign(
                        span.error_message.as_deref(),
                        span.error_class.as_deref(),
                    )
                    .map(|(_, sig)| sig)
                    .unwrap_or_default(),
                }
            } else {
                String::new()
            },
            tags: labels
                .iter()
                .map(|l| span.tags.get(l).cloned().unwrap_or_default())
                .collect(),
        },
        finished,
        error,
        minute: span
            .end_time
            .or(span.start_time)
            .map(|t| t.div_euclid(MINUTE_NS)),
        duration_us: span.duration_ns().map(|ns| (ns / 1_000) as u64),
        tokens_in: tin,
        tokens_out: tout,
        tokens_total: total,
        cost_micros: span
            .cost
            .filter(|c| c.is_finite() && *c > 0.0)
            .map_or(0, |c| (c * 1e6).round() as u64),
        at_ns: span.end_time.or(span.start_time),
        hour_fields: hours::HourFields::of(span, &config.hour_tags),
    }
}

/// The wall clock's minute (ns since the epoch / 60 s).
fn wall_minute() -> i64 {
    loupe_model::time::now_ns().div_euclid(MINUTE_NS)
}

/// The rollup state: cumulative series (since the data directory was
/// created) and recent per-minute series, plus self-metric counters.
#[derive(Debug, Clone, Default)]
pub struct Rollups {
    config: RollupConfig,
    totals: HashMap<RollupKey, Measures>,
    minutes: BTreeMap<i64, HashMap<RollupKey, Measures>>,
    series_per_app: HashMap<(String, String), usize>,
    folded_seen: HashSet<RollupKey>,
    folded_series: u64,
    ingested_spans: u64,
    events: events::RecentEvents,
    hours: HourTier,
    /// Tags the restored tier kept that no longer fit beside the
    /// configured ones ([`hours::MAX_HOUR_TAGS`]): their history is gone.
    dropped_hour_tags: Vec<String>,
    /// No hour tier is kept ([`Rollups::without_hour_tier`]).
    no_hour_tier: bool,
}

impl Rollups {
    /// Empty rollups for an empty store: the hour tier counts every span.
    pub fn new(config: RollupConfig) -> Self {
        Self {
            hours: HourTier::new_complete(&config.hour_tags),
            config,
            ..Self::default()
        }
    }

    /// Empty rollups that keep no hour tier: for a backend that answers
    /// its aggregate queries itself (ClickHouse), where only the totals and
    /// minutes behind `/metrics` and alerts are wanted. Its tier stays
    /// empty and incomplete, so nothing is answered from it.
    pub fn without_hour_tier(config: RollupConfig) -> Self {
        Self {
            no_hour_tier: true,
            ..Self::new_incomplete(config)
        }
    }

    /// Empty rollups for a store that already holds spans they never saw
    /// (their snapshot is lost): counters restart, and the hour tier is
    /// incomplete, so queries are not answered from it.
    pub fn new_incomplete(config: RollupConfig) -> Self {
        let mut hours = HourTier::new_complete(&config.hour_tags);
        hours.complete = false;
        Self {
            config,
            hours,
            ..Self::default()
        }
    }

    /// A copy of everything but the hour tier (which grows with the data
    /// kept): what alert evaluation reads, cheap to take every interval.
    /// Its hour tier is empty and marked incomplete.
    pub fn clone_recent(&self) -> Rollups {
        Rollups {
            config: self.config.clone(),
            totals: self.totals.clone(),
            minutes: self.minutes.clone(),
            series_per_app: self.series_per_app.clone(),
            folded_seen: self.folded_seen.clone(),
            folded_series: self.folded_series,
            ingested_spans: self.ingested_spans,
            events: self.events.clone(),
            hours: HourTier::default(),
            dropped_hour_tags: Vec::new(),
            no_hour_tier: self.no_hour_tier,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RollupConfig {
        &self.config
    }

    /// Applies one write of a span: retracts the contribution of `old` (the
    /// previous merged version, if any) and adds that of `new`.
    pub fn apply(&mut self, old: Option<&Span>, new: &Span) {
        let old = old.map(|s| self.contribution(s));
        let new = self.contribution(new);
        self.apply_change(old.as_ref(), &new);
    }

    /// Counts a span stored before this process started into the minute
    /// windows alert rules read, and nowhere else: not into the cumulative
    /// series (a restarted process's counters start at zero, which
    /// Prometheus reads as a counter reset; counting old spans again would
    /// read as a burst of new ones), not into the event feed (its rules saw
    /// the span already) nor the hour tier. For a backend whose rollups are
    /// not kept across restarts (ClickHouse): the spans of the last
    /// `minutes_kept` minutes, read back before serving, so alert windows
    /// survive a restart. Its series is created, at zero.
    pub fn warm(&mut self, span: &Span) {
        let c = self.contribution(span);
        if !c.finished || c.minute.is_none() {
            return;
        }
        let key = self.resolve(&c.key, false);
        self.totals.entry(key.clone()).or_default();
        self.change_minute(&c, &key, false);
    }

    /// [`Rollups::apply`] for a change of a span whose `old` version was
    /// stored before this process started: counted by [`Rollups::warm`] in
    /// the minute windows, never in the cumulative series. So `old` is
    /// retracted from the minutes only, and `new` added as a new span is.
    pub fn apply_over_warmed(&mut self, old: &Span, new: &Span) {
        let old = self.contribution(old);
        let new = self.contribution(new);
        self.events.note(Some(&old), &new);
        if old == new {
            return;
        }
        if old.finished && old.minute.is_some() {
            let key = if self.totals.contains_key(&old.key) {
                old.key.clone()
            } else {
                old.key.folded()
            };
            self.change_minute(&old, &key, true);
        }
        self.change(&new, false);
    }

    /// What `span` contributes under this configuration.
    pub fn contribution(&self, span: &Span) -> Contribution {
        contribution(span, &self.config)
    }

    /// [`Rollups::apply`] on contributions computed earlier (a writer that
    /// merges in place takes the old one before it changes the span).
    pub fn apply_change(&mut self, old: Option<&Contribution>, new: &Contribution) {
        self.events.note(old, new);
        if let Some(old) = old {
            if old == new {
                return;
            }
            self.change(old, true);
        }
        self.change(new, false);
    }

    /// Counts spans received by the write path (a self-metric).
    pub fn note_ingested(&mut self, spans: u64) {
        self.ingested_spans += spans;
    }

    fn change(&mut self, c: &Contribution, retract: bool) {
        // The common case, a known series, hashes the key once per map and
        // clones nothing.
        let key = if let Some(entry) = self.totals.get_mut(&c.key) {
            entry.add(c, retract);
            None
        } else {
            let key = self.resolve(&c.key, retract);
            if retract && !self.totals.contains_key(&key) {
                return;
            }
            self.totals.entry(key.clone()).or_default().add(c, retract);
            Some(key)
        };
        if !self.no_hour_tier {
            let folded = key.as_ref().is_some_and(|k| *k != c.key);
            self.hours
                .change(key.as_ref().unwrap_or(&c.key), folded, c, retract);
        }
        if !c.finished {
            return;
        }
        let key = key.as_ref().unwrap_or(&c.key);
        self.change_minute(c, key, retract);
    }

    /// The minute tier's part of [`Self::change`], on the series `key`.
    fn change_minute(&mut self, c: &Contribution, key: &RollupKey, retract: bool) {
        let Some(minute) = c.minute else { return };
        // The window of kept minutes ends at the newest minute seen, but
        // never later than the wall clock: one span dated in the future
        // (2255, or hours ahead by a timezone bug) used to move the window
        // there, dropping every current minute, so alert windows read no
        // data and firing alerts resolved (issue 14).
        let newest = self
            .minutes
            .keys()
            .next_back()
            .copied()
            .unwrap_or(minute)
            .max(minute)
            .min(wall_minute());
        let oldest_kept = newest - self.config.minutes_kept as i64 + 1;
        if minute < oldest_kept {
            return;
        }
        if retract && !self.minutes.contains_key(&minute) {
            return;
        }
        let series = self.minutes.entry(minute).or_default();
        match series.get_mut(key) {
            Some(m) => m.add(c, retract),
            None => series.entry(key.clone()).or_default().add(c, retract),
        }
        while self
            .minutes
            .first_key_value()
            .is_some_and(|(m, _)| *m < oldest_kept)
        {
            self.minutes.pop_first();
        }
        // Minutes past the clock wait for it; at most `minutes_kept` of
        // them are held (the farthest go first), so future-dated spans
        // cannot grow the map without bound.
        while self.minutes.len() > 2 * self.config.minutes_kept
            && self
                .minutes
                .last_key_value()
                .is_some_and(|(m, _)| *m > newest)
        {
            self.minutes.pop_last();
        }
    }

    /// The series a contribution goes to: its own while the app has room,
    /// else the folded one. A retraction goes where the addition went: the
    /// series if it exists, else the folded one.
    fn resolve(&mut self, key: &RollupKey, retract: bool) -> RollupKey {
        if self.totals.contains_key(key) {
            return key.clone();
        }
        if retract {
            return key.folded();
        }
        let app = (key.project.clone(), key.app_id.clone());
        let used = self.series_per_app.get(&app).copied().unwrap_or(0);
        if used < self.config.max_series_per_app {
            *self.series_per_app.entry(app).or_default() += 1;
            return key.clone();
        }
        if !self.folded_seen.contains(key) {
            self.folded_series += 1;
            if self.folded_seen.len() < FOLDED_MEMORY {
                self.folded_seen.insert(key.clone());
            }
        }
        let folded = key.folded();
        if !self.totals.contains_key(&folded) {
            *self.series_per_app.entry(app).or_default() += 1;
        }
        folded
    }

    /// Cumulative series.
    pub fn totals(&self) -> &HashMap<RollupKey, Measures> {
        &self.totals
    }

    /// Per-minute series (minute = ns since the epoch / 60 s), oldest first.
    pub fn minutes(&self) -> &BTreeMap<i64, HashMap<RollupKey, Measures>> {
        &self.minutes
    }

    /// The hour tier (every span by start hour and series).
    pub fn hours(&self) -> &HourTier {
        &self.hours
    }

    /// Drops the hour-tier series of the whole days (day = ns / 24 h) that
    /// `expired(project, day)` says retention has removed.
    pub fn expire_hours(&mut self, expired: impl Fn(&str, i64) -> bool) {
        self.hours.expire(expired);
    }

    /// Marks the hour tier as not counting every span (a day file is lost):
    /// queries stop being answered from it.
    pub fn mark_hours_incomplete(&mut self) {
        self.hours.complete = false;
    }

    /// The hour-tier days changed since the last call, to persist with the
    /// snapshot of `seq` (take them under the same lock as the snapshot).
    pub fn take_dirty_days(&mut self, seq: u64) -> Vec<DayFile> {
        self.hours.take_dirty(seq)
    }

    /// Tags the tier kept before this process and dropped at its start
    /// (more than [`hours::MAX_HOUR_TAGS`] with the configured ones).
    pub fn dropped_hour_tags(&self) -> &[String] {
        &self.dropped_hour_tags
    }

    /// Recent finished spans, for event rules.
    pub fn recent_events(&self) -> &events::RecentEvents {
        &self.events
    }

    /// Distinct series folded into `__other__` so far.
    pub fn folded_series(&self) -> u64 {
        self.folded_series
    }

    /// Spans received by the write path so far.
    pub fn ingested_spans(&self) -> u64 {
        self.ingested_spans
    }

    /// The persistable state, tagged with the WAL seq it reflects.
    pub fn snapshot(&self, seq: u64) -> Snapshot {
        let sorted = |m: &HashMap<RollupKey, Measures>| {
            let mut v: Vec<Series> = m
                .iter()
                .map(|(k, v)| Series {
                    key: k.clone(),
                    measures: v.clone(),
                })
                .collect();
            v.sort_by(|a, b| a.key.cmp(&b.key));
            v
        };
        let mut folded: Vec<RollupKey> = self.folded_seen.iter().cloned().collect();
        folded.sort();
        Snapshot {
            format_version: SNAPSHOT_FORMAT,
            seq,
            labels: self.config.labels.clone(),
            totals: sorted(&self.totals),
            minutes: self.minutes.iter().map(|(m, s)| (*m, sorted(s))).collect(),
            folded_seen: folded,
            folded_series: self.folded_series,
            ingested_spans: self.ingested_spans,
            day_files: self.hours.day_files.clone(),
            hours_complete: self.hours.complete,
            hours_node_dims_from: Some(self.hours.node_dims.from),
            hours_node_dims_without: self.hours.node_dims.without.iter().copied().collect(),
            hours_names_folded: self.hours.names_folded,
            hours_tags: self.hours.tags.clone(),
            hours_tags_kept: self.hours.tags_kept.clone(),
            hours_name_fold_hours: Some(self.hours.name_fold_hours.iter().copied().collect()),
            hours_tags_fold_hours: self
                .hours
                .tag_fold_hours
                .iter()
                .map(|h| h.iter().copied().collect())
                .collect(),
        }
    }

    /// Rebuilds rollups from a snapshot and the hour-tier day files it names
    /// ([`Snapshot::day_files`]). Series of tags no longer configured are
    /// merged into the series without them; the hour tier is then marked
    /// incomplete, as spans counted before lack the new labels. Hour tags
    /// the tier kept and `config` does not name are kept on (after
    /// `config`'s, within [`hours::MAX_HOUR_TAGS`]): a process configured
    /// without a rule does not erase the history of its tag.
    pub fn restore(
        mut config: RollupConfig,
        snap: Snapshot,
        days: Vec<DayFile>,
    ) -> Result<Self, Error> {
        if snap.format_version != SNAPSHOT_FORMAT {
            return Err(Error::Format {
                found: snap.format_version,
                expected: SNAPSHOT_FORMAT,
            });
        }
        let remap = |mut key: RollupKey| {
            if snap.labels != config.labels {
                key.tags = realign(&config.labels, &snap.labels, &key.tags);
            }
            key
        };
        let mut dropped = Vec::new();
        for tag in &snap.hours_tags {
            if config.hour_tags.contains(tag) || config.labels.contains(tag) {
                continue;
            }
            if config.hour_tags.len() < hours::MAX_HOUR_TAGS {
                config.hour_tags.push(tag.clone());
            } else {
                dropped.push(tag.clone());
            }
        }
        let mut out = Rollups::new(config.clone());
        for s in snap.totals {
            out.totals
                .entry(remap(s.key))
                .or_default()
                .merge(&s.measures);
        }
        for (minute, series) in snap.minutes {
            let m = out.minutes.entry(minute).or_default();
            for s in series {
                m.entry(remap(s.key)).or_default().merge(&s.measures);
            }
        }
        for key in out.totals.keys() {
            *out.series_per_app
                .entry((key.project.clone(), key.app_id.clone()))
                .or_default() += 1;
        }
        // Node tags are realigned per day file, from the order the file
        // was written in; a tag it did not name is unknown ("") there.
        let remap_node = |file_tags: &[String], mut node: NodeDims| {
            if file_tags != config.hour_tags.as_slice() || node.tags.len() != file_tags.len() {
                node.tags = realign(&config.hour_tags, file_tags, &node.tags);
            }
            node
        };
        for day in days {
            out.hours.restore_day(day, remap, remap_node);
        }
        out.hours.day_files = snap.day_files;
        out.hours.complete = snap.hours_complete && snap.labels == config.labels;
        // A dimension joining the tier is counted from the next hour after
        // those held (the hours dated after the current one stay without).
        let held: Vec<i64> = out.hours.hours.keys().copied().collect();
        let now_hour = wall_minute().div_euclid(60);
        let joining = || hours::Kept::joining(&held, now_hour);
        out.hours.node_dims = match snap.hours_node_dims_from {
            Some(from) => hours::Kept {
                from,
                without: snap.hours_node_dims_without.iter().copied().collect(),
            }
            .capped(&held, now_hour),
            None => joining(),
        };
        out.hours.names_folded = snap.hours_names_folded;
        out.hours.name_fold_hours = match snap.hours_name_fold_hours {
            Some(hours) => hours.into_iter().collect(),
            // Not recorded: any hour held may hold a folded name.
            None if snap.hours_names_folded > 0 => held.iter().copied().collect(),
            None => BTreeSet::new(),
        };
        for (i, tag) in config.hour_tags.iter().enumerate() {
            let j = snap.hours_tags.iter().position(|x| x == tag);
            out.hours.tags_kept[i] = j
                .and_then(|j| snap.hours_tags_kept.get(j).cloned())
                .map_or_else(joining, |k| k.capped(&held, now_hour));
            out.hours.tag_fold_hours[i] = j
                .and_then(|j| snap.hours_tags_fold_hours.get(j))
                .map(|h| h.iter().copied().collect())
                .unwrap_or_default();
        }
        out.hours.normalize();
        out.dropped_hour_tags = dropped;
        out.folded_seen = snap.folded_seen.into_iter().map(remap).collect();
        out.folded_series = snap.folded_series;
        out.ingested_spans = snap.ingested_spans;
        Ok(out)
    }
}

/// `values`, named by `from` in that order, in the order of `to` ("" for
/// a name `from` lacks).
fn realign(to: &[String], from: &[String], values: &[String]) -> Vec<String> {
    to.iter()
        .map(|t| {
            from.iter()
                .position(|x| x == t)
                .and_then(|i| values.get(i).cloned())
                .unwrap_or_default()
        })
        .collect()
}

/// Format version of [`Snapshot`].
pub const SNAPSHOT_FORMAT: u32 = 1;

/// One series in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Dimensions.
    pub key: RollupKey,
    /// Measures.
    pub measures: Measures,
}

/// The persisted form of [`Rollups`] (the store writes it as JSON at each
/// flush, tagged with the flushed WAL seq).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_FORMAT`].
    pub format_version: u32,
    /// Every WAL record up to this seq is counted, none after it.
    pub seq: u64,
    /// The label tags the keys' `tags` are aligned with.
    pub labels: Vec<String>,
    /// Cumulative series, sorted by key.
    pub totals: Vec<Series>,
    /// Per-minute series.
    pub minutes: Vec<(i64, Vec<Series>)>,
    /// Folded series remembered.
    pub folded_seen: Vec<RollupKey>,
    /// Distinct series folded.
    pub folded_series: u64,
    /// Spans received.
    pub ingested_spans: u64,
    /// Hour-tier day (ns / 24 h) → seq of the day file holding it.
    #[serde(default)]
    pub day_files: BTreeMap<i64, u64>,
    /// Whether the hour tier counts every stored span (false in snapshots
    /// written before it existed).
    #[serde(default)]
    pub hours_complete: bool,
    /// The first hour from which the hour tier counts every span with its
    /// node dimensions (absent in snapshots written before them).
    #[serde(default)]
    pub hours_node_dims_from: Option<i64>,
    /// Hours after `hours_node_dims_from` counted without node dimensions
    /// (held, dated after the hour they joined).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours_node_dims_without: Vec<i64>,
    /// Node names the hour tier folded.
    #[serde(default)]
    pub hours_names_folded: u64,
    /// The tags the hour tier keeps besides the labels (absent in
    /// snapshots written before them: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours_tags: Vec<String>,
    /// Per tag of `hours_tags`: the hours counted with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours_tags_kept: Vec<hours::Kept>,
    /// The hours in which the hour tier folded a node name (absent in
    /// snapshots written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours_name_fold_hours: Option<Vec<i64>>,
    /// Per tag of `hours_tags`: the hours in which a value was folded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours_tags_fold_hours: Vec<Vec<i64>>,
}
