//! The hour tier kept in ClickHouse: `span_hours`, what `loupe serve`'s
//! aggregate queries over whole hours are answered from instead of a scan
//! of `spans FINAL` (the embedded store's hour tier, `loupe_rollup::hours`,
//! in a table every Loupe process writing the database shares).
//!
//! - **Signed deltas.** Every stored change of a span adds the entry of its
//!   new version ([`HourEntry`]: start hour, series, node dimensions,
//!   measures) and subtracts the entry of the version it replaces, both
//!   from the write path's read-merge-insert, which knows the two. Rows are
//!   summed per key by `SummingMergeTree` in the background and by the
//!   reader's `GROUP BY` meanwhile; a key summed to zero disappears.
//! - **Generations.** Rows carry the generation (`tier`) of the tier they
//!   count in. A database's tier is recorded in `loupe_meta` (key
//!   `hour_tier`: generation, labels, hour tags, complete). A process whose
//!   labels or hour tags differ, or that finds the tier incomplete, starts
//!   a new generation and fills it from the spans before it serves
//!   ([`Inner::keep_hour_tier`]); every read reads the record first, then
//!   the generation it names.
//! - **Failures.** The tier's insert follows the spans' one. If it fails,
//!   the tier is recorded incomplete: aggregates are scanned until the
//!   next start rebuilds it. Never a count that drifts silently.
//!
//! A row also carries its append's version (`batch`, not summed): no two
//! appends send the same block, so a replicated table's block
//! deduplication can only drop a retried block, never another append's.

use std::collections::HashMap;

use loupe_model::{ProjectId, Span};
use loupe_rollup::hours::{HourDim, HourSlice, SumCount};
use loupe_rollup::{
    BUCKET_BOUNDS_US, Histogram, HourEntry, HourMeasures, NodeDims, RollupConfig, RollupKey,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::schema::{Layout, Profile};
use crate::sql::quote;
use crate::{Error, Inner, row};

/// The measure columns after the 13 sums: one per latency bucket.
const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;

/// The summed columns, in the order of [`signed`].
const SUMS: [&str; 13] = [
    "spans",
    "ok",
    "errors",
    "duration_sum",
    "duration_n",
    "input_tokens_sum",
    "input_tokens_n",
    "output_tokens_sum",
    "output_tokens_n",
    "total_tokens_sum",
    "total_tokens_n",
    "cost_pico_sum",
    "cost_n",
];

/// Values per entry: the sums, then the buckets.
const VALUES: usize = SUMS.len() + BUCKETS;

/// The dimension columns (the sort key after `tier, project, hour`).
const DIMS: [(&str, &str); 16] = [
    ("span_kind", "String"),
    ("app_id", "String"),
    ("workflow_id", "String"),
    ("node_type", "String"),
    ("tool_name", "String"),
    ("model_name", "String"),
    ("status", "String"),
    ("error_class", "String"),
    ("error_signature", "String"),
    ("labels", "Array(String)"),
    ("child", "UInt8"),
    ("name", "String"),
    ("app_name", "String"),
    ("workflow_version", "String"),
    ("model_provider", "String"),
    ("hour_tags", "Array(String)"),
];

/// The key in `loupe_meta` of the tier's record.
const META_KEY: &str = "hour_tier";

/// What a database's tier is: its generation and shape, and whether it
/// counts every stored span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TierRecord {
    pub generation: u32,
    pub labels: Vec<String>,
    pub tags: Vec<String>,
    pub complete: bool,
    /// When it was recorded (ns): the newest record is the tier's.
    pub at_ns: i64,
}

impl TierRecord {
    fn config(&self) -> RollupConfig {
        RollupConfig {
            labels: self.labels.clone(),
            hour_tags: self.tags.clone(),
            ..RollupConfig::default()
        }
    }
}

/// How [`crate::ClickHouseStore::keep_hour_tier`] found the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HourTierStart {
    /// Recorded complete with these labels and tags: kept as it is.
    Kept,
    /// Made anew (first use, other labels or tags, or left incomplete)
    /// from the spans stored: how many were counted.
    Rebuilt {
        /// Spans read.
        spans: u64,
        /// The new generation.
        generation: u32,
    },
}

/// The hours of a project [`crate::ClickHouseStore::hour_slice`] read.
#[derive(Debug, Clone)]
pub struct HourTierSlice {
    /// Entries summed over the dimensions not asked for.
    pub slice: HourSlice,
    /// The tier's labels (the tags its series keys hold), in order.
    pub labels: Vec<String>,
    /// The tier's hour tags (the tags its node dimensions hold), in order.
    pub tags: Vec<String>,
}

/// What a reader asks of the tier's hours.
#[derive(Debug, Clone, Copy)]
pub struct HourAsk<'a> {
    /// The dimensions kept; the others are summed away.
    pub dims: &'a [HourDim],
    /// Entries kept: each dimension equal to one of the values, or set
    /// (`None`).
    pub required: &'a [(HourDim, Option<Vec<String>>)],
    /// Whether the latency histograms are read (percentiles).
    pub histograms: bool,
}

/// Entries summed per (hour, series, node), signed.
#[derive(Default)]
pub(crate) struct Deltas {
    sums: HashMap<(i64, RollupKey, NodeDims), [i64; VALUES]>,
}

impl Deltas {
    /// Counts `span`'s entry under `config`, or takes it back.
    pub(crate) fn add(&mut self, config: &RollupConfig, span: &Span, retract: bool) {
        let Some(e) = HourEntry::of(span, config) else {
            return;
        };
        let values = signed(&e.measures, if retract { -1 } else { 1 });
        let into = self
            .sums
            .entry((e.hour, e.key, e.node))
            .or_insert([0; VALUES]);
        for (a, b) in into.iter_mut().zip(values) {
            *a = a.saturating_add(b);
        }
    }

    /// JSONEachRow rows of the entries that did not cancel out.
    fn encode(self, generation: u32, batch: u64) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        for ((hour, key, node), values) in self.sums {
            if values.iter().all(|v| *v == 0) {
                continue;
            }
            let mut row = serde_json::Map::new();
            row.insert("tier".into(), json!(generation));
            row.insert("batch".into(), json!(batch));
            row.insert("project".into(), json!(key.project));
            row.insert("hour".into(), json!(hour));
            for (name, v) in [
                ("span_kind", &key.span_kind),
                ("app_id", &key.app_id),
                ("workflow_id", &key.workflow_id),
                ("node_type", &key.node_type),
                ("tool_name", &key.tool_name),
                ("model_name", &key.model_name),
                ("status", &key.status),
                ("error_class", &key.error_class),
                ("error_signature", &key.error_signature),
                ("name", &node.name),
                ("app_name", &node.app_name),
                ("workflow_version", &node.workflow_version),
                ("model_provider", &node.model_provider),
            ] {
                row.insert(name.into(), json!(v));
            }
            row.insert("labels".into(), json!(key.tags));
            row.insert("hour_tags".into(), json!(node.tags));
            row.insert("child".into(), json!(u8::from(node.child)));
            for (name, v) in SUMS.iter().zip(&values) {
                row.insert((*name).into(), json!(v));
            }
            for (i, v) in values[SUMS.len()..].iter().enumerate() {
                row.insert(format!("h{i}"), json!(v));
            }
            serde_json::to_writer(&mut body, &Value::Object(row))
                .map_err(|e| Error::Decode(format!("hour tier row: {e}")))?;
            body.push(b'\n');
        }
        Ok(body)
    }
}

/// `m` as the tier's signed column values.
fn signed(m: &HourMeasures, sign: i64) -> [i64; VALUES] {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX).saturating_mul(sign);
    // Hostile values (tokens of i64::MIN) are clamped to a range that
    // negates exactly, so a retraction cancels its addition.
    let s = |v: i128| {
        let max = i128::from(i64::MAX);
        i64::try_from(v.clamp(-max, max)).unwrap_or(0) * sign
    };
    let mut out = [0; VALUES];
    let sums = [
        n(m.spans),
        n(m.ok),
        n(m.errors),
        s(m.duration.sum),
        n(m.duration.count),
        s(m.input_tokens.sum),
        n(m.input_tokens.count),
        s(m.output_tokens.sum),
        n(m.output_tokens.count),
        s(m.total_tokens.sum),
        n(m.total_tokens.count),
        s(m.cost_pico.sum),
        n(m.cost_pico.count),
    ];
    out[..SUMS.len()].copy_from_slice(&sums);
    for (o, c) in out[SUMS.len()..].iter_mut().zip(m.duration_hist.counts()) {
        *o = n(c);
    }
    out
}

impl Layout {
    /// The table the tier's rows are written to and read from.
    pub(crate) fn hours_table(&self) -> String {
        format!("{}.span_hours", self.database)
    }

    fn hours_local(&self) -> String {
        self.local_of("span_hours")
    }

    /// `CREATE TABLE` of the tier's (local) table.
    pub(crate) fn create_hours_local(&self) -> String {
        let mut cols = vec![
            "    tier UInt32".to_owned(),
            "    batch UInt64".to_owned(),
            "    project String".to_owned(),
            "    hour Int64".to_owned(),
        ];
        cols.extend(DIMS.iter().map(|(n, t)| format!("    {n} {t}")));
        cols.extend(SUMS.iter().map(|n| format!("    {n} Int64")));
        cols.extend((0..BUCKETS).map(|i| format!("    h{i} Int64")));
        let summed: Vec<String> = SUMS
            .iter()
            .map(|s| (*s).to_owned())
            .chain((0..BUCKETS).map(|i| format!("h{i}")))
            .collect();
        let engine = self.engine_of(
            "span_hours",
            "SummingMergeTree",
            &format!("({})", summed.join(", ")),
        );
        // Kept a day longer than the spans: a plan reaching the spans'
        // edge scans (see `oldest_kept_ns`), so these rows are never read
        // after their spans expire, nor expire before them.
        let ttl = match (self.profile, self.retention_days) {
            (Profile::Modern, d) if d > 0 => format!(
                "\nTTL toDateTime(hour * 3600) + INTERVAL {} DAY",
                u64::from(d) + 1
            ),
            _ => String::new(),
        };
        let key: Vec<&str> = ["tier", "project", "hour"]
            .into_iter()
            .chain(DIMS.iter().map(|(n, _)| *n))
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n{}\n)\nENGINE = {engine}\n\
             PARTITION BY (tier, intDiv(hour, 720))\n\
             ORDER BY ({}){ttl}",
            self.hours_local(),
            cols.join(",\n"),
            key.join(", ")
        )
    }

    /// `CREATE TABLE` of the `Distributed` table over the tier, under a
    /// cluster (any shard may hold any delta: readers sum them all).
    pub(crate) fn create_hours_distributed(&self) -> Option<String> {
        self.distributed_over("span_hours", "cityHash64(project, hour)")
    }

    /// SQL of one of the tier's dimensions.
    fn dim_sql(dim: HourDim) -> String {
        match dim {
            HourDim::SpanKind => "span_kind".into(),
            HourDim::NodeType => "node_type".into(),
            HourDim::ToolName => "tool_name".into(),
            HourDim::ModelName => "model_name".into(),
            HourDim::AppId => "app_id".into(),
            HourDim::WorkflowId => "workflow_id".into(),
            HourDim::Status => "status".into(),
            HourDim::ErrorClass => "error_class".into(),
            HourDim::ErrorSignature => "error_signature".into(),
            // Arrays count from 1; past the end is "" (unset).
            HourDim::Label(i) => format!("labels[{}]", i + 1),
            HourDim::Child => "child".into(),
            HourDim::Name => "name".into(),
            HourDim::AppName => "app_name".into(),
            HourDim::WorkflowVersion => "workflow_version".into(),
            HourDim::ModelProvider => "model_provider".into(),
            HourDim::HourTag(i) => format!("hour_tags[{}]", i + 1),
        }
    }
}

/// Sets `dim` of an entry from its text in an answer.
fn set_dim(key: &mut RollupKey, node: &mut NodeDims, dim: HourDim, v: &Value) {
    let text = || match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let put = |list: &mut Vec<String>, i: usize, t: String| {
        if list.len() <= i {
            list.resize(i + 1, String::new());
        }
        list[i] = t;
    };
    match dim {
        HourDim::SpanKind => key.span_kind = text(),
        HourDim::NodeType => key.node_type = text(),
        HourDim::ToolName => key.tool_name = text(),
        HourDim::ModelName => key.model_name = text(),
        HourDim::AppId => key.app_id = text(),
        HourDim::WorkflowId => key.workflow_id = text(),
        HourDim::Status => key.status = text(),
        HourDim::ErrorClass => key.error_class = text(),
        HourDim::ErrorSignature => key.error_signature = text(),
        HourDim::Label(i) => put(&mut key.tags, i, text()),
        HourDim::Child => node.child = v.as_u64().is_some_and(|c| c != 0) || text() == "1",
        HourDim::Name => node.name = text(),
        HourDim::AppName => node.app_name = text(),
        HourDim::WorkflowVersion => node.workflow_version = text(),
        HourDim::ModelProvider => node.model_provider = text(),
        HourDim::HourTag(i) => put(&mut node.tags, i, text()),
    }
}

/// Whether column `i` of [`SUMS`] is a sum of values (which may be
/// negative) rather than a count.
fn is_sum(i: usize) -> bool {
    i < SUMS.len() && SUMS[i].ends_with("_sum")
}

/// A summed value of an answer; `None` when it is not a whole number.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Inner {
    /// The tier writes go to, if the database keeps one.
    pub(crate) fn tier(&self) -> Option<TierRecord> {
        self.tier
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_tier(&self, record: Option<TierRecord>) {
        *self
            .tier
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = record;
    }

    /// The newest record of the database's tier.
    pub(crate) async fn recorded_tier(&self) -> Result<Option<TierRecord>, Error> {
        let rows = self
            .client
            .select(&format!(
                "SELECT value FROM {}.loupe_meta WHERE key = {}",
                self.layout.database,
                quote(META_KEY)
            ))
            .await?
            .rows;
        let mut newest: Option<TierRecord> = None;
        for r in rows {
            let Some(text) = r.first().and_then(Value::as_str) else {
                continue;
            };
            let record: TierRecord = serde_json::from_str(text)
                .map_err(|e| Error::Decode(format!("loupe_meta {META_KEY}: {e}")))?;
            if newest.as_ref().is_none_or(|n| record.at_ns >= n.at_ns) {
                newest = Some(record);
            }
        }
        Ok(newest)
    }

    async fn record_tier(&self, record: &TierRecord) -> Result<(), Error> {
        let value = serde_json::to_string(record)
            .map_err(|e| Error::Decode(format!("hour tier record: {e}")))?;
        let row = json!({ "key": META_KEY, "value": value });
        self.client
            .insert(
                &format!("{}.loupe_meta", self.layout.database),
                format!("{row}\n").into_bytes(),
                false,
            )
            .await
    }

    /// Writes the deltas of stored changes (`(old, new)`) into the tier;
    /// on failure records the tier incomplete (see the module docs).
    pub(crate) async fn write_hour_deltas<'a>(
        &self,
        changes: impl Iterator<Item = (Option<&'a Span>, &'a Span)>,
        batch: u64,
    ) {
        let Some(tier) = self.tier().filter(|t| t.complete) else {
            return;
        };
        let config = tier.config();
        let mut deltas = Deltas::default();
        for (old, new) in changes {
            if let Some(old) = old {
                deltas.add(&config, old, true);
            }
            deltas.add(&config, new, false);
        }
        if let Err(e) = self.insert_deltas(deltas, tier.generation, batch).await {
            tracing::error!(
                error = %e,
                "the hour tier missed a write: it is recorded incomplete, aggregates \
                 scan the spans until the next start rebuilds it"
            );
            self.mark_tier_incomplete(&tier).await;
        }
    }

    /// Records `tier` incomplete, here and (if the server answers) in the
    /// database, so no process answers from it again.
    pub(crate) async fn mark_tier_incomplete(&self, tier: &TierRecord) {
        let record = TierRecord {
            complete: false,
            at_ns: loupe_model::time::now_ns(),
            ..tier.clone()
        };
        self.set_tier(Some(record.clone()));
        if let Err(e) = self.record_tier(&record).await {
            tracing::error!(error = %e, "could not record the hour tier incomplete");
        }
    }

    async fn insert_deltas(
        &self,
        deltas: Deltas,
        generation: u32,
        batch: u64,
    ) -> Result<(), Error> {
        let body = deltas.encode(generation, batch)?;
        if body.is_empty() {
            return Ok(());
        }
        self.client
            .insert(
                &self.layout.hours_table(),
                body,
                self.layout.cluster.is_some(),
            )
            .await
    }

    /// Makes sure the tier counts every span with `config`'s labels and
    /// hour tags, rebuilding it (a new generation filled from the spans)
    /// when it does not. Run before this process writes: a write by
    /// another process during a rebuild may be counted twice or missed
    /// (one writer per database, docs/CLICKHOUSE.md).
    pub(crate) async fn keep_hour_tier(
        &self,
        config: &RollupConfig,
    ) -> Result<HourTierStart, Error> {
        let recorded = self.recorded_tier().await?;
        if let Some(r) = &recorded
            && r.complete
            && r.labels == config.labels
            && r.tags == config.hour_tags
        {
            self.set_tier(Some(r.clone()));
            return Ok(HourTierStart::Kept);
        }
        let generation = recorded
            .as_ref()
            .map_or(1, |r| r.generation.saturating_add(1));
        let mut record = TierRecord {
            generation,
            labels: config.labels.clone(),
            tags: config.hour_tags.clone(),
            complete: false,
            at_ns: loupe_model::time::now_ns(),
        };
        self.record_tier(&record).await?;
        self.set_tier(Some(record.clone()));
        let spans = self.fill_tier(&record).await?;
        record.complete = true;
        record.at_ns = loupe_model::time::now_ns();
        self.record_tier(&record).await?;
        self.set_tier(Some(record));
        // Older generations are never read again.
        let drop_old = format!(
            "ALTER TABLE {} DELETE WHERE tier < {generation}",
            self.layout.hours_local()
        );
        if generation > 1
            && let Err(e) = self.client.execute(&drop_old, false).await
        {
            tracing::warn!(error = %e, "older hour tier generations were not deleted");
        }
        Ok(HourTierStart::Rebuilt { spans, generation })
    }

    /// Counts every stored span into `record`'s generation, one project
    /// and filing hour at a time (an hour's entries are what memory holds,
    /// and no insert runs while a read is open); the spans read.
    async fn fill_tier(&self, record: &TierRecord) -> Result<u64, Error> {
        let config = record.config();
        let hours = self
            .client
            .select(&format!(
                "SELECT project, intDiv(toUInt32(filed_at), 3600) AS h FROM {} \
                 GROUP BY project, h ORDER BY project, h",
                self.layout.table()
            ))
            .await?
            .rows;
        let items = row::named_items_without_payloads(&self.layout).join(", ");
        let mut count = 0u64;
        for cells in hours {
            let (Some(project), Some(hour)) = (
                cells.first().and_then(Value::as_str),
                cells.get(1).and_then(int),
            ) else {
                continue;
            };
            let Ok(project) = ProjectId::new(project) else {
                continue;
            };
            let sql = format!(
                "SELECT {items} {} AND filed_at >= toDateTime({}) AND filed_at < toDateTime({})",
                self.compiler().scoped_from(&project),
                hour * 3_600,
                (hour + 1) * 3_600
            );
            let mut deltas = Deltas::default();
            count += self
                .each_span(&sql, &mut |span| deltas.add(&config, span, false))
                .await?;
            self.insert_deltas(deltas, record.generation, count).await?;
        }
        Ok(count)
    }

    /// The tier's hours `[first_hour, end_hour)` of `project` (see
    /// [`crate::ClickHouseStore::hour_slice`]).
    pub(crate) async fn hour_slice(
        &self,
        project: &ProjectId,
        first_hour: i64,
        end_hour: i64,
        ask: &HourAsk<'_>,
    ) -> Result<Option<HourTierSlice>, Error> {
        // Another process may have rebuilt the tier or left it incomplete
        // (`loupe migrate`): the record says which generation to read.
        let recorded = self.recorded_tier().await?;
        self.set_tier(recorded.clone());
        let Some(tier) = recorded.filter(|t| t.complete) else {
            return Ok(None);
        };
        let dims = ask.dims;
        let mut select = vec!["hour".to_owned()];
        select.extend(
            dims.iter()
                .enumerate()
                .map(|(i, d)| format!("{} AS d{i}", Layout::dim_sql(*d))),
        );
        select.extend(SUMS.iter().map(|s| format!("sum({s})")));
        let buckets = if ask.histograms { BUCKETS } else { 0 };
        select.extend((0..buckets).map(|i| format!("sum(h{i})")));
        let mut group = vec!["hour".to_owned()];
        group.extend((0..dims.len()).map(|i| format!("d{i}")));
        let mut conds = vec![
            format!("tier = {}", tier.generation),
            format!("project = {}", quote(project.as_str())),
            format!("hour >= {first_hour}"),
            format!("hour < {end_hour}"),
        ];
        for (dim, values) in ask.required {
            let col = Layout::dim_sql(*dim);
            conds.push(match (dim, values) {
                (HourDim::Child, _) => "child = 1".to_owned(),
                (_, None) => format!("{col} != ''"),
                (_, Some(vs)) => format!(
                    "{col} IN ({})",
                    vs.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE {} GROUP BY {} HAVING sum(spans) != 0",
            select.join(", "),
            self.layout.hours_table(),
            conds.join(" AND "),
            group.join(", "),
        );
        let rows = self.client.select(&sql).await?.rows;
        let mut entries = Vec::with_capacity(rows.len());
        for r in &rows {
            let (Some(hour), true) = (
                r.first().and_then(int),
                r.len() == 1 + dims.len() + SUMS.len() + buckets,
            ) else {
                return Err(Error::Decode(format!("span_hours answered {r:?}")));
            };
            let mut key = RollupKey {
                project: project.as_str().to_owned(),
                ..RollupKey::default()
            };
            let mut node = NodeDims::default();
            for (d, v) in dims.iter().zip(&r[1..]) {
                set_dim(&mut key, &mut node, *d, v);
            }
            let v: Option<Vec<i64>> = r[1 + dims.len()..].iter().map(int).collect();
            // Counts are never negative; sums may be (hostile tokens).
            let counts: Option<Vec<u64>> = v.as_ref().and_then(|v| {
                v.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if is_sum(i) {
                            Some(0)
                        } else {
                            u64::try_from(*c).ok()
                        }
                    })
                    .collect()
            });
            let (Some(v), Some(c)) = (v, counts) else {
                tracing::error!(
                    project = %project,
                    hour,
                    "the hour tier holds a negative sum: recorded incomplete"
                );
                self.mark_tier_incomplete(&tier).await;
                return Ok(None);
            };
            let sc = |i: usize| SumCount {
                sum: i128::from(v[i]),
                count: c[i + 1],
            };
            entries.push(HourEntry {
                hour,
                key,
                node,
                measures: HourMeasures {
                    spans: c[0],
                    ok: c[1],
                    errors: c[2],
                    duration: sc(3),
                    input_tokens: sc(5),
                    output_tokens: sc(7),
                    total_tokens: sc(9),
                    cost_pico: sc(11),
                    duration_hist: Histogram::from_counts(c[SUMS.len()..].to_vec()),
                },
            });
        }
        Ok(Some(HourTierSlice {
            slice: HourSlice::of_entries(entries),
            labels: tier.labels,
            tags: tier.tags,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_sums_saturate_and_a_retraction_cancels_its_addition() {
        let span = Span {
            project: "p".into(),
            span_id: "s".into(),
            start_time: Some(0),
            end_time: Some(1_000),
            input_tokens: Some(i64::MIN),
            output_tokens: Some(i64::MAX),
            cost: Some(1e300),
            ..Span::default()
        };
        let config = RollupConfig::default();
        let Some(e) = HourEntry::of(&span, &config) else {
            panic!("a span with a start has an entry");
        };
        let taken_back = signed(&e.measures, -1);
        // input_tokens_sum, output_tokens_sum, cost_pico_sum
        assert_eq!(
            [taken_back[5], taken_back[7], taken_back[11]],
            [i64::MAX, -i64::MAX, -i64::MAX]
        );
        let mut deltas = Deltas::default();
        deltas.add(&config, &span, false);
        deltas.add(&config, &span, true);
        assert!(
            deltas.sums.values().all(|v| v.iter().all(|x| *x == 0)),
            "{:?}",
            deltas.sums
        );
        assert!(deltas.encode(1, 1).map(|b| b.is_empty()).unwrap_or(false));
    }
}
