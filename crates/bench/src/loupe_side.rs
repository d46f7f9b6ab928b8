//! The Loupe side: a fresh data directory filled with `Store::append`, then
//! flushed and compacted, queried through the query language's planner (or
//! Loupe SQL) exactly as `loupe query --data-dir` does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use loupe_backend::SpanReader;
use loupe_backend::plan::QueryLimits;
use loupe_model::{ProjectId, Span};
use loupe_query::{PlanOptions, Query};
use loupe_store::{Store, StoreConfig};

use crate::compare::{Cell, Rows};

/// A Loupe query of a question: the query language (every question of the
/// issue is expressible in it; no Loupe SQL needed), or the by-id read the
/// API's `GET /api/v1/traces/{id}` serves (`Store::trace_spans`).
#[derive(Debug, Clone)]
pub enum LoupeQuery {
    /// A query-language text.
    Lang(String),
    /// Every span of one run, by run id, sorted by start time and span id.
    Run(String),
}

impl std::fmt::Display for LoupeQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoupeQuery::Lang(text) => f.write_str(text),
            LoupeQuery::Run(id) => {
                write!(f, "Store::trace_spans(\"{id}\") (GET /api/v1/traces/{id})")
            }
        }
    }
}

/// Store settings of the benchmark: keep every day (the generated window is
/// in the past), default memtable and flush sizes.
pub fn store_config(dir: &Path) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_owned(),
        retention_days: 0,
        ..StoreConfig::default()
    }
}

/// The tag rules `loupe serve` would run with the bench's `[[tags]]`:
/// those, then the built-in workspace tag (`[dify] workspace_tag`'s
/// default).
pub fn tag_rules() -> Vec<loupe_normalise::tags::TagRuleConfig> {
    let mut rules = loupe_gen::tag_rules();
    rules.extend(loupe_normalise::tags::workspace_rules(
        loupe_normalise::tags::DEFAULT_WORKSPACE_TAG,
    ));
    rules
}

/// The rollups as `loupe serve` derives them from the bench's rules: the
/// default labels (`category`), and every other tag of [`tag_rules`] kept
/// by the hour tier (`hour_tags`).
pub fn rollup_config() -> loupe_rollup::RollupConfig {
    let mut config = loupe_rollup::RollupConfig::default();
    for rule in tag_rules() {
        if !config.labels.contains(&rule.name) && !config.hour_tags.contains(&rule.name) {
            config.hour_tags.push(rule.name);
        }
    }
    config
}

/// Opens a fresh store in `dir`.
pub async fn open(dir: &Path, read_only: bool) -> anyhow::Result<Store> {
    let config = store_config(dir);
    let shown = dir.display().to_string();
    tokio::task::spawn_blocking(move || {
        if read_only {
            Store::open_read_only(config, rollup_config())
        } else {
            Store::open(config, rollup_config())
        }
    })
    .await?
    .with_context(|| format!("cannot open the data directory {shown}"))
}

/// Appends a batch, waiting while the store is over its memory budget.
/// Returns the time spent in `append` (waits included).
pub async fn append(store: &Store, spans: Vec<Span>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        match store.append(spans.clone()).await {
            Ok(_) => return Ok(started.elapsed()),
            Err(loupe_store::Error::Full) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => return Err(e).context("append failed"),
        }
    }
}

/// Runs one query at `now_ns` on `store` (the embedded store, or the
/// ClickHouse side); returns the rows (columns `keep`, all when
/// empty; rows whose first kept cell is NULL dropped when `drop_null`), the
/// time, and whether the store answered from its rollups.
pub async fn run(
    store: &dyn SpanReader,
    project: &ProjectId,
    query: &LoupeQuery,
    now_ns: i64,
    keep: &[&str],
    drop_null: bool,
) -> anyhow::Result<(Rows, Duration, bool)> {
    let started = Instant::now();
    let text = match query {
        LoupeQuery::Lang(text) => text,
        LoupeQuery::Run(id) => {
            let (rows, took) = run_by_id(store, project, id, keep, drop_null).await?;
            return Ok((rows, took, false));
        }
    };
    let parsed = Query::parse(text).map_err(|e| anyhow!("{}", e.render(text)))?;
    let mut opts = PlanOptions::at(now_ns);
    opts.default_row_limit = None;
    let plan = loupe_query::plan(&parsed, opts).map_err(|e| anyhow!("{}", e.message))?;
    let limits = QueryLimits {
        max_rows: 1_000_000,
        ..QueryLimits::default()
    };
    let result = store.query(project, &plan, limits).await?;
    let from_rollups = result.stats.from_rollups;
    let names: Vec<String> = result.columns.into_iter().map(|c| c.name).collect();
    let values = result.rows;
    let took = started.elapsed();
    let idx = crate::compare::column_positions(&names, keep);
    let mut rows = Rows::new();
    for row in &values {
        let cells: Vec<Cell> = idx
            .iter()
            .map(|&i| row.get(i).map_or(Cell::Null, Cell::from_json))
            .collect();
        if drop_null && cells.first().is_none_or(|c| *c == Cell::Null) {
            continue;
        }
        rows.push(cells);
    }
    Ok((rows, took, from_rollups))
}

/// The by-id read of one run, as rows of the `keep` columns (a few span
/// fields by name), in start time order.
async fn run_by_id(
    store: &dyn SpanReader,
    project: &ProjectId,
    id: &str,
    keep: &[&str],
    drop_null: bool,
) -> anyhow::Result<(Rows, Duration)> {
    let started = Instant::now();
    let mut spans = store.trace(project, id).await?;
    let took = started.elapsed();
    spans.sort_by(|a, b| (a.start_time, &a.span_id).cmp(&(b.start_time, &b.span_id)));
    let mut rows = Rows::new();
    for s in &spans {
        let cells: Vec<Cell> = keep
            .iter()
            .map(|k| match *k {
                "node_type" => s
                    .node_type
                    .as_deref()
                    .map_or(Cell::Null, |v| Cell::from_json(&serde_json::Value::from(v))),
                "status" => s.status.map_or(Cell::Null, |v| {
                    Cell::from_json(&serde_json::Value::from(v.as_str()))
                }),
                "duration" => s
                    .duration_ns()
                    .map_or(Cell::Null, |d| Cell::from_json(&serde_json::Value::from(d))),
                _ => Cell::Null,
            })
            .collect();
        if drop_null && cells.first().is_none_or(|c| *c == Cell::Null) {
            continue;
        }
        rows.push(cells);
    }
    Ok((rows, took))
}

/// The live parts' files: the manifest's `parts[].path`. Parquet files
/// not named there are parts a compaction replaced, deleted after a grace
/// period (or at the next writable open): not the store's size.
fn live_parts(dir: &Path) -> std::collections::HashSet<PathBuf> {
    let text = std::fs::read(dir.join("manifest.json")).unwrap_or_default();
    let manifest: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
    manifest
        .get("parts")
        .and_then(|p| p.as_array())
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("path")?.as_str())
                .map(|p| dir.join(p))
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes of the store under `dir` (replaced parts awaiting deletion left
/// out), and of its live Parquet parts alone.
pub fn dir_bytes(dir: &Path) -> (u64, u64) {
    let by = dir_breakdown(dir);
    let total = by
        .iter()
        .filter(|(k, _)| k != REPLACED)
        .map(|(_, b)| b)
        .sum();
    let parquet = by.iter().filter(|(k, _)| k == PARTS).map(|(_, b)| b).sum();
    (total, parquet)
}

const PARTS: &str = "Parquet parts";
const REPLACED: &str = "replaced parts awaiting deletion";

/// Bytes under `dir` by kind: the live Parquet parts, replaced parts not
/// yet deleted, then every other top-level entry by name (the full-text
/// index, the rollups, the WAL, the manifest, …), largest first.
pub fn dir_breakdown(dir: &Path) -> Vec<(String, u64)> {
    let live = live_parts(dir);
    let mut by: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let path = entry.path();
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let kind = if path.extension().is_some_and(|e| e == "parquet") {
                if live.contains(&path) {
                    PARTS
                } else {
                    REPLACED
                }
                .to_owned()
            } else {
                path.strip_prefix(dir)
                    .ok()
                    .and_then(|p| p.components().next())
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            *by.entry(kind).or_default() += meta.len();
        }
    }
    let mut out: Vec<(String, u64)> = by.into_iter().collect();
    out.sort_by_key(|b| std::cmp::Reverse(b.1));
    out
}
