//! The analysis: plans → joint table → greedy attribution → when, exemplars
//! and co-occurrence.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use foldhash::HashMap;
use futures::future::try_join_all;
use loupe_backend::SpanReader;
use loupe_backend::plan::{
    AggKind, Aggregate, Cmp, FieldRef, Filter, GroupKey, Literal, Output, Plan, QueryLimits,
    QueryResult, SortColumn, SortKey, ValueType,
};
use loupe_model::{ProjectId, SpanKind, Status, column};
use loupe_query::language::Field;
use loupe_query::{PlanOptions, Query};
use serde_json::Value;

use crate::stats::{binomial_sf, changed_segment};
use crate::table::{BASELINE, Cond, Counts, Interner, Row, Table, WINDOW};
use crate::{
    CoOccurrence, Condition, DEFAULT_DIMENSIONS, DEFAULT_SCOPE, ERROR_DIMENSIONS, Exemplar,
    Finding, Period, Range, RcaError, RcaReport, RcaRequest, RcaStats, text,
};

/// Dimensions analysed at most (tags included).
const MAX_DIMENSIONS: usize = 24;
/// Tag keys discovered from the window at most.
const MAX_TAGS: usize = 12;
/// Candidates (values and pairs) kept at most, the most supported first.
const MAX_CANDIDATES: usize = 20_000;
/// Conditions of one finding at most.
const MAX_CONDITIONS: usize = 4;
/// Pseudo-observations of the scope's baseline rate added to each
/// candidate's baseline: a value seen a few times in the baseline is not
/// judged on those few alone.
const PRIOR_WEIGHT: f64 = 20.0;
/// A finding's rate must be at least this multiple of its baseline rate:
/// with millions of spans a 5 % rise is "significant" and still not a cause.
const MIN_LIFT: f64 = 1.5;
/// Rows of failed spans read for co-occurrence at most.
const MAX_COOCCUR_ROWS: u64 = 10_000;
/// Exemplar runs per finding.
const EXEMPLARS: usize = 3;
/// Nodes of an exemplar's path kept (the last ones).
const MAX_PATH: usize = 12;
/// Buckets of the change-point series at most.
const MAX_BUCKETS: i64 = 360;
/// Log-likelihood ratio a changed segment needs to be reported.
const MIN_SEGMENT_LLR: f64 = 6.0;

const MINUTE_NS: i64 = 60_000_000_000;

/// Runs the analysis of `req` over `project`'s spans.
///
/// # Errors
/// [`RcaError::Invalid`] for a bad request (the caller's fault);
/// [`RcaError::Store`] when reading fails.
#[tracing::instrument(name = "rca.analyse", skip_all, fields(project = %project, target = %req.target))]
pub async fn analyse(
    reader: &dyn SpanReader,
    project: &ProjectId,
    req: &RcaRequest,
) -> Result<RcaReport, RcaError> {
    let started = Instant::now();
    let r = Resolved::new(req)?;
    let mut ctx = Ctx {
        reader,
        project,
        stats: RcaStats::default(),
    };

    // Dimensions: the requested or default fields, then tags.
    let mut dims: Vec<Dim> = Vec::new();
    for name in &r.dimensions {
        dims.push(Dim::parse(name, false)?);
    }
    let mut tag_keys: BTreeSet<String> = req.tags.iter().cloned().collect();
    if req.dimensions.is_none() {
        tag_keys.extend(ctx.discover_tags(&r).await?);
    }
    for key in tag_keys.into_iter().take(MAX_TAGS) {
        let name = format!("tags.{key}");
        if !dims.iter().any(|d| d.name == name) {
            dims.push(Dim::parse(&name, false)?);
        }
    }
    if dims.len() > MAX_DIMENSIONS {
        return Err(RcaError::Invalid(format!(
            "at most {MAX_DIMENSIONS} dimensions can be analysed, {} given",
            dims.len()
        )));
    }
    let main_dims = dims.len();
    for name in ERROR_DIMENSIONS {
        dims.push(Dim::parse(name, true)?);
    }

    let phase = Instant::now();
    let table = ctx.read_table(&r, &dims, main_dims).await?;
    ctx.stats.read_ms = phase.elapsed().as_millis() as u64;
    let phase = Instant::now();
    let (interner, table) = table;
    let totals = table.totals();
    let window_totals = Period::new(totals.n[WINDOW], totals.k[WINDOW]);
    let baseline_totals = Period::new(totals.n[BASELINE], totals.k[BASELINE]);
    let prior = if totals.n[BASELINE] == 0 {
        // No baseline at all: judge values against the window's own rate.
        window_totals.rate
    } else {
        (totals.k[BASELINE] as f64).max(0.5) / totals.n[BASELINE] as f64
    };
    let overall = score(&totals, prior, true);
    let scope_excess = overall.excess;

    // Attribution.
    let candidates = candidates(&table, req.min_support);
    ctx.stats.candidates = candidates.len() as u64;
    let tests = candidates.len().max(1) as f64;
    let picked = attribute(&table, &candidates, prior, tests, req);
    ctx.stats.attribution_ms = phase.elapsed().as_millis() as u64;
    let phase = Instant::now();

    // When, exemplars: per finding, concurrently.
    let window_target = totals.k[WINDOW];
    let mut findings = Vec::new();
    // Each finding's condition texts and plan filters; then their details
    // (when, exemplars) all at once.
    let prepared: Vec<Prepared> = picked
        .into_iter()
        .map(|(conds, s)| {
            let conditions = conds
                .iter()
                .map(|(d, v)| Condition {
                    field: dims[*d].name.clone(),
                    value: interner.name(*d, *v).to_owned(),
                })
                .collect();
            let filters = conds
                .iter()
                .map(|(d, v)| (dims[*d].error, dims[*d].eq(interner.name(*d, *v))))
                .collect();
            (conditions, filters, s)
        })
        .collect();
    // The findings' details and the co-occurrence listing, all at once.
    let (details, ((co_occurrence, co_read), co_ms)) = futures::try_join!(
        try_join_all(prepared.iter().map(|(_, filters, _)| async {
            futures::try_join!(
                timed(ctx_when(&ctx, &r, filters)),
                timed(ctx_exemplars(&ctx, &r, filters))
            )
        })),
        timed(ctx.co_occurrence(&r, req.min_support))
    )?;
    ctx.account(&[&co_read]);
    ctx.stats.co_occurrence_ms = co_ms;
    for ((conditions, _, s), ((when, when_ms), (exemplars, exemplars_ms))) in
        prepared.into_iter().zip(details)
    {
        ctx.stats.when_ms = ctx.stats.when_ms.max(when_ms);
        ctx.stats.exemplars_ms = ctx.stats.exemplars_ms.max(exemplars_ms);
        findings.push(Finding {
            filter: text::filter_text(&conditions),
            conditions,
            window: Period::new(s.counts.n[WINDOW], s.counts.k[WINDOW]),
            baseline: Period::new(s.counts.n[BASELINE], s.counts.k[BASELINE]),
            expected: s.expected,
            excess: s.excess,
            share_of_change: (scope_excess > 0.0).then(|| (s.excess / scope_excess).min(1.0)),
            share_of_target: if window_target == 0 {
                0.0
            } else {
                s.counts.k[WINDOW] as f64 / window_target as f64
            },
            lift: s.lift,
            p_value: (s.p * tests).min(1.0),
            started_ns: when.map(|w| w.0),
            ended_ns: when.and_then(|w| w.1),
            exemplars,
            sentence: String::new(),
        });
    }
    ctx.stats.queries += 3 * findings.len() as u64;
    ctx.stats.details_ms = phase.elapsed().as_millis() as u64;

    let mut report = RcaReport {
        target: r.target_text.clone(),
        scope: r.scope_text.clone(),
        window: r.window,
        baseline: r.baseline,
        window_totals,
        baseline_totals,
        excess: scope_excess,
        p_value: overall.p,
        dimensions: dims.iter().map(|d| d.name.clone()).collect(),
        findings,
        co_occurrence,
        headline: String::new(),
        stats: ctx.stats,
    };
    report.stats.tuples = (table.cube.len() + table.errors.len()) as u64;
    text::write_sentences(&mut report);
    report.stats.elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(
        findings = report.findings.len(),
        elapsed_ms = report.stats.elapsed_ms,
        "rca done"
    );
    Ok(report)
}

/// `f`'s value and its wall time in ms.
async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, RcaError>>,
) -> Result<(T, u64), RcaError> {
    let started = Instant::now();
    let v = f.await?;
    Ok((v, started.elapsed().as_millis() as u64))
}

/// A finding before its details: condition texts, plan filters (error
/// dimension or not), numbers.
type Prepared = (Vec<Condition>, Vec<(bool, Filter)>, Score);

/// The request with defaults applied and filters lowered.
struct Resolved {
    target_text: String,
    scope_text: String,
    target: Option<Filter>,
    scope: Option<Filter>,
    window: Range,
    baseline: Range,
    dimensions: Vec<String>,
}

impl Resolved {
    fn new(req: &RcaRequest) -> Result<Self, RcaError> {
        let invalid = |m: String| Err(RcaError::Invalid(m));
        if req.to_ns <= req.from_ns {
            return invalid("the window is empty: it must end after it starts".into());
        }
        let len = req.to_ns - req.from_ns;
        let baseline = Range {
            from_ns: req
                .baseline_from_ns
                .unwrap_or_else(|| req.from_ns.saturating_sub(len)),
            to_ns: req.baseline_to_ns.unwrap_or(req.from_ns),
        };
        if baseline.to_ns <= baseline.from_ns {
            return invalid("the baseline is empty: it must end after it starts".into());
        }
        if !(1..=20).contains(&req.max_findings) {
            return invalid(format!(
                "max_findings must be 1-20, not {}",
                req.max_findings
            ));
        }
        if req.min_support == 0 || req.min_support > 1_000_000 {
            return invalid("min_support must be 1-1000000".into());
        }
        if !(req.alpha > 0.0 && req.alpha < 1.0) {
            return invalid(format!("alpha must be in (0, 1), not {}", req.alpha));
        }
        let target_text = if req.target.trim().is_empty() {
            "status=error".to_owned()
        } else {
            req.target.trim().to_owned()
        };
        let scope_text = req
            .scope
            .as_deref()
            .map(str::trim)
            .unwrap_or(DEFAULT_SCOPE)
            .to_owned();
        let dimensions = match &req.dimensions {
            Some(d) => d.clone(),
            None => DEFAULT_DIMENSIONS.iter().map(|s| (*s).to_owned()).collect(),
        };
        Ok(Self {
            target: lower_filter("target", &target_text)?,
            scope: lower_filter("scope", &scope_text)?,
            target_text,
            scope_text,
            window: Range {
                from_ns: req.from_ns,
                to_ns: req.to_ns,
            },
            baseline,
            dimensions,
        })
    }

    fn range(&self, side: usize) -> Range {
        if side == WINDOW {
            self.window
        } else {
            self.baseline
        }
    }

    /// Scope ∧ target ∧ extra.
    fn filter(&self, target: bool, extra: Vec<Filter>) -> Option<Filter> {
        let mut all: Vec<Filter> = self.scope.iter().cloned().collect();
        if target {
            all.extend(self.target.iter().cloned());
        }
        all.extend(extra);
        match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Filter::And(all)),
        }
    }
}

/// A query-language filter (no stages, no time range) as a plan filter.
fn lower_filter(what: &str, text: &str) -> Result<Option<Filter>, RcaError> {
    if text.is_empty() {
        return Ok(None);
    }
    let q = Query::parse(text).map_err(|e| {
        RcaError::Invalid(format!(
            "{what}: {}{}",
            e.message,
            e.suggestion
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ))
    })?;
    if q.time.is_some() {
        return Err(RcaError::Invalid(format!(
            "{what}: give the time range as the window, not in the filter"
        )));
    }
    if q.is_aggregating() || !q.sort.is_empty() || q.limit.is_some() {
        return Err(RcaError::Invalid(format!(
            "{what}: must be a filter only, without `|` stages"
        )));
    }
    let plan = loupe_query::plan(&q, PlanOptions::at(1))
        .map_err(|e| RcaError::Invalid(format!("{what}: {e}")))?;
    Ok(plan.filter)
}

/// A dimension: its query-language name and the field it reads.
struct Dim {
    name: String,
    field: FieldRef,
    error: bool,
}

impl Dim {
    fn parse(name: &str, error: bool) -> Result<Self, RcaError> {
        let field = Field::parse(name)
            .map_err(|e| RcaError::Invalid(format!("dimension `{name}`: {}", e.message)))?;
        let field_ref = loupe_query::planner::field_ref(&field);
        if field_ref.ty() != ValueType::Text {
            return Err(RcaError::Invalid(format!(
                "dimension `{name}` is not a text field"
            )));
        }
        Ok(Self {
            name: field.to_string(),
            field: field_ref,
            error,
        })
    }

    fn eq(&self, value: &str) -> Filter {
        Filter::Compare {
            field: self.field.clone(),
            op: Cmp::Eq,
            value: Literal::Text(value.to_owned()),
        }
    }
}

fn column(name: &str) -> FieldRef {
    FieldRef::Column {
        name: name.to_owned(),
        ty: ValueType::Text,
    }
}

fn status_error() -> Filter {
    Filter::Compare {
        field: column(column::STATUS),
        op: Cmp::Eq,
        value: Literal::Text(Status::Error.as_str().to_owned()),
    }
}

fn count_agg() -> Aggregate {
    Aggregate {
        kind: AggKind::Count,
        field: None,
        name: "n".into(),
    }
}

fn group_plan(range: Range, filter: Option<Filter>, keys: &[FieldRef]) -> Plan {
    Plan {
        source: loupe_backend::plan::Source::Spans,
        from_ns: range.from_ns,
        to_ns: range.to_ns,
        filter,
        group_by: keys.iter().cloned().map(GroupKey::Field).collect(),
        aggregates: vec![count_agg()],
        sort: Vec::new(),
        limit: None,
        output: Output::Aggregates,
        approx_percentiles: false,
    }
}

fn rows_plan(range: Range, filter: Option<Filter>, cols: &[&str], limit: u64) -> Plan {
    Plan {
        source: loupe_backend::plan::Source::Spans,
        from_ns: range.from_ns,
        to_ns: range.to_ns,
        filter,
        group_by: Vec::new(),
        aggregates: Vec::new(),
        sort: vec![SortKey {
            column: SortColumn::Field(FieldRef::Column {
                name: column::START_TIME.into(),
                ty: ValueType::Timestamp,
            }),
            descending: true,
        }],
        limit: Some(limit),
        output: Output::Rows(cols.iter().map(|c| col_ref(c)).collect()),
        approx_percentiles: false,
    }
}

fn col_ref(name: &str) -> FieldRef {
    if name == "error_signature" {
        return FieldRef::Attribute(loupe_model::ERROR_SIGNATURE.to_owned());
    }
    let ty = match name {
        column::START_TIME => ValueType::Timestamp,
        _ => ValueType::Text,
    };
    FieldRef::Column {
        name: name.to_owned(),
        ty,
    }
}

fn text_of(v: &Value) -> Option<&str> {
    v.as_str()
}

fn count_of(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
        .unwrap_or(0)
}

struct Ctx<'a> {
    reader: &'a dyn SpanReader,
    project: &'a ProjectId,
    stats: RcaStats,
}

impl Ctx<'_> {
    async fn run(&self, plan: &Plan) -> Result<QueryResult, RcaError> {
        let limits = QueryLimits {
            max_rows: 200_000,
            ..QueryLimits::default()
        };
        Ok(self.reader.query(self.project, plan, limits).await?)
    }

    fn account(&mut self, results: &[&QueryResult]) {
        for r in results {
            self.stats.queries += 1;
            self.stats.from_rollups += u64::from(r.stats.from_rollups);
            self.stats.truncated |= r.stats.truncated;
        }
    }

    /// Tag keys present on spans of the window (a sample).
    async fn discover_tags(&mut self, r: &Resolved) -> Result<Vec<String>, RcaError> {
        let plan = rows_plan(r.window, r.filter(false, Vec::new()), &[column::TAGS], 500);
        let mut plan = plan;
        plan.output = Output::Rows(vec![FieldRef::Column {
            name: column::TAGS.into(),
            ty: ValueType::Map,
        }]);
        let got = self.run(&plan).await?;
        self.account(&[&got]);
        let mut keys = BTreeSet::new();
        for row in &got.rows {
            if let Some(Value::Object(map)) = row.first() {
                keys.extend(map.keys().cloned());
            }
        }
        Ok(keys.into_iter().take(MAX_TAGS).collect())
    }

    /// Reads the joint table of both periods.
    async fn read_table(
        &mut self,
        r: &Resolved,
        dims: &[Dim],
        main_dims: usize,
    ) -> Result<(Interner, Table), RcaError> {
        let main_keys: Vec<FieldRef> = dims[..main_dims].iter().map(|d| d.field.clone()).collect();
        let all_keys: Vec<FieldRef> = dims.iter().map(|d| d.field.clone()).collect();
        // With the target `status=error`, one plan per period gives both
        // the population and the target (count, error rate).
        let merged = r.target.as_ref() == Some(&status_error());
        let mut plans: Vec<Option<Plan>> = Vec::new();
        for side in [WINDOW, BASELINE] {
            let range = r.range(side);
            let mut pop = group_plan(range, r.filter(false, Vec::new()), &main_keys);
            if merged {
                pop.aggregates.push(Aggregate {
                    kind: AggKind::ErrorRate,
                    field: None,
                    name: "rate".into(),
                });
            }
            plans.push(Some(pop));
            plans
                .push((!merged).then(|| group_plan(range, r.filter(true, Vec::new()), &main_keys)));
            plans.push(Some(group_plan(
                range,
                r.filter(true, vec![status_error()]),
                &all_keys,
            )));
        }
        let this = &*self;
        let results: Vec<QueryResult> = try_join_all(plans.iter().map(|p| async move {
            match p {
                Some(p) => this.run(p).await,
                None => Ok(QueryResult::default()),
            }
        }))
        .await?;
        let ran: Vec<&QueryResult> = results
            .iter()
            .zip(&plans)
            .filter(|(_, p)| p.is_some())
            .map(|(r, _)| r)
            .collect();
        self.account(&ran);

        let mut interner = Interner::new(dims.len());
        let mut cube: HashMap<Vec<u32>, Row> = HashMap::default();
        let mut errors: HashMap<Vec<u32>, Row> = HashMap::default();
        let width = dims.len();
        for side in [WINDOW, BASELINE] {
            let base = side * 3;
            for (slot, is_target) in [(base, false), (base + 1, true)] {
                for row in &results[slot].rows {
                    let mut vals = vec![0u32; width];
                    for (d, v) in row.iter().take(main_dims).enumerate() {
                        vals[d] = interner.id(d, text_of(v));
                    }
                    let n = row.get(main_dims).map_or(0, count_of);
                    let entry = cube.entry(vals.clone()).or_insert_with(|| Row {
                        vals,
                        ..Row::default()
                    });
                    if is_target {
                        entry.k[side] += n;
                    } else {
                        entry.n[side] += n;
                        if merged {
                            // count(), error_rate(): failures = count × rate.
                            let rate = row.get(main_dims + 1).and_then(Value::as_f64);
                            entry.k[side] += (n as f64 * rate.unwrap_or(0.0)).round() as u64;
                        }
                    }
                }
            }
            for row in &results[base + 2].rows {
                let mut vals = vec![0u32; width];
                for (d, v) in row.iter().take(width).enumerate() {
                    vals[d] = interner.id(d, text_of(v));
                }
                let n = row.get(width).map_or(0, count_of);
                add_error(&mut errors, vals, side, n);
            }
        }
        let mut cube: Vec<Row> = cube.into_values().collect();
        let mut errors: Vec<Row> = errors.into_values().collect();
        // Sorted, so the greedy choice does not depend on hash order.
        cube.sort_by(|a, b| a.vals.cmp(&b.vals));
        errors.sort_by(|a, b| a.vals.cmp(&b.vals));
        let table = Table::new(cube, errors, (0..width).map(|d| d >= main_dims).collect());
        Ok((interner, table))
    }

    /// Failures that happen together in runs of the window, and the read
    /// (to account for).
    async fn co_occurrence(
        &self,
        r: &Resolved,
        min_support: u64,
    ) -> Result<(Vec<CoOccurrence>, QueryResult), RcaError> {
        let plan = rows_plan(
            r.window,
            r.filter(true, vec![status_error()]),
            &[
                column::RUN_ID,
                column::TRACE_ID,
                column::TOOL_NAME,
                column::NAME,
                column::ERROR_CLASS,
                column::START_TIME,
            ],
            MAX_COOCCUR_ROWS,
        );
        let got = self.run(&plan).await?;
        // run → failure label → earliest start.
        let mut runs: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for row in &got.rows {
            let Some(run) = row
                .first()
                .and_then(text_of)
                .or_else(|| row.get(1).and_then(text_of))
            else {
                continue;
            };
            let node = row
                .get(2)
                .and_then(text_of)
                .or_else(|| row.get(3).and_then(text_of))
                .unwrap_or("?");
            let class = row.get(4).and_then(text_of).unwrap_or("error");
            let at = row.get(5).and_then(Value::as_i64).unwrap_or(i64::MAX);
            let label = format!("{node}: {class}");
            let slot = runs
                .entry(run.to_owned())
                .or_default()
                .entry(label)
                .or_insert(at);
            *slot = (*slot).min(at);
        }
        let mut with: HashMap<&str, u64> = HashMap::default();
        let mut both: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
        for labels in runs.values() {
            for a in labels.keys() {
                *with.entry(a).or_default() += 1;
            }
            for (a, ta) in labels {
                for (b, tb) in labels
                    .range::<String, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                {
                    let e = both.entry((a.as_str(), b.as_str())).or_default();
                    e.0 += 1;
                    e.1 += u64::from(ta <= tb);
                }
            }
        }
        let mut out: Vec<CoOccurrence> = both
            .into_iter()
            .filter(|(_, (n, _))| *n >= min_support)
            .map(|((a, b), (n, a_first))| {
                // Orient by which usually comes first.
                let (first, then, first_n) = if a_first * 2 >= n {
                    (a, b, a_first)
                } else {
                    (b, a, n - a_first)
                };
                CoOccurrence {
                    first: first.to_owned(),
                    then: then.to_owned(),
                    runs: n,
                    given_first: n as f64 / with.get(first).copied().unwrap_or(n).max(1) as f64,
                    first_precedes: first_n as f64 / n as f64,
                    sentence: String::new(),
                }
            })
            .filter(|c| c.given_first >= 0.5)
            .collect();
        out.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.first.cmp(&b.first)));
        out.truncate(5);
        Ok((out, got))
    }
}

fn add_error(errors: &mut HashMap<Vec<u32>, Row>, vals: Vec<u32>, side: usize, n: u64) {
    let entry = errors.entry(vals.clone()).or_insert_with(|| Row {
        vals,
        ..Row::default()
    });
    entry.k[side] += n;
}

/// What a change-point result row holds.
#[derive(Clone, Copy)]
enum Put {
    Population,
    Target,
    Both,
}

fn buckets_len(from: i64, to: i64, width: i64) -> usize {
    ((to - from.div_euclid(width) * width) / width + 1).clamp(1, 2 * MAX_BUCKETS) as usize
}

/// When the finding's rate left its baseline (and came back), to the
/// minute. Over six hours or more, the segment is found on whole-hour
/// buckets (which the hour rollups answer when the finding names rollup
/// dimensions), then each of its edges is placed to the minute by a scan
/// of the two hours around it; shorter ranges are bucketed by the minute
/// (at most [`MAX_BUCKETS`] buckets) at once.
async fn ctx_when(
    ctx: &Ctx<'_>,
    r: &Resolved,
    conds: &[(bool, Filter)],
) -> Result<Option<(i64, Option<i64>)>, RcaError> {
    let from = r.baseline.from_ns.min(r.window.from_ns);
    let to = r.window.to_ns.max(r.baseline.to_ns);
    let span = to - from;
    let fine = ((span / MAX_BUCKETS + MINUTE_NS - 1) / MINUTE_NS).max(1) * MINUTE_NS;
    let width = if span >= 6 * HOUR_NS {
        (fine + HOUR_NS - 1) / HOUR_NS * HOUR_NS
    } else {
        fine
    };
    let range = Range {
        from_ns: from,
        to_ns: to,
    };
    let (first, series) = when_series(ctx, r, conds, range, width).await?;
    let Some(seg) = changed_segment(&series) else {
        return Ok(None);
    };
    if seg.llr < MIN_SEGMENT_LLR {
        return Ok(None);
    }
    let mut start = first + seg.start as i64 * width;
    let mut end = (seg.end < series.len()).then(|| first + seg.end as i64 * width);
    if width > MINUTE_NS {
        let around = |at: i64| Range {
            from_ns: (at - width).max(from),
            to_ns: (at + width).min(to),
        };
        start = refine(ctx, r, conds, around(start), seg.rate_out, seg.rate_in)
            .await?
            .unwrap_or(start);
        if let Some(e) = end {
            end = Some(
                refine(ctx, r, conds, around(e), seg.rate_in, seg.rate_out)
                    .await?
                    .unwrap_or(e),
            );
        }
    }
    // A segment ending in the last (partial) bucket is still going on.
    let end = end.filter(|e| *e < r.window.to_ns - width);
    Ok(Some((start.max(from), end)))
}

const HOUR_NS: i64 = 60 * MINUTE_NS;

/// Population and target counts of the finding per `width` bucket of
/// `range`, from the first bucket's start.
async fn when_series(
    ctx: &Ctx<'_>,
    r: &Resolved,
    conds: &[(bool, Filter)],
    range: Range,
    width: i64,
) -> Result<(i64, Vec<(u64, u64)>), RcaError> {
    let (from, to) = (range.from_ns, range.to_ns);
    let main: Vec<Filter> = conds
        .iter()
        .filter(|(e, _)| !e)
        .map(|(_, f)| f.clone())
        .collect();
    let all: Vec<Filter> = conds.iter().map(|(_, f)| f.clone()).collect();
    let bucket = vec![GroupKey::Bucket { width_ns: width }];
    let mut series = vec![(0u64, 0u64); buckets_len(from, to, width)];
    let first = from.div_euclid(width) * width;
    let mut put = |res: &QueryResult, what: Put| {
        for row in &res.rows {
            let Some(b) = row.first().and_then(Value::as_i64) else {
                continue;
            };
            let slot = usize::try_from((b - first) / width)
                .ok()
                .and_then(|i| series.get_mut(i));
            let Some(slot) = slot else { continue };
            let n = row.get(1).map_or(0, count_of);
            match what {
                Put::Population => slot.0 += n,
                Put::Target => slot.1 += n,
                Put::Both => {
                    // count(), error_rate(): failures = count × rate.
                    let rate = row.get(2).and_then(Value::as_f64).unwrap_or(0.0);
                    slot.0 += n;
                    slot.1 += (n as f64 * rate).round() as u64;
                }
            }
        }
    };
    if r.target.as_ref() == Some(&status_error()) && !main.is_empty() {
        // One plan: the failure count is the error rate of the population
        // of the finding's population conditions (an error condition only
        // names what failed; the timing is that of the failures).
        let mut plan = group_plan(range, r.filter(false, main), &[]);
        plan.group_by = bucket;
        plan.aggregates.push(Aggregate {
            kind: AggKind::ErrorRate,
            field: None,
            name: "rate".into(),
        });
        put(&ctx.run(&plan).await?, Put::Both);
    } else {
        let mut pop = group_plan(range, r.filter(false, main), &[]);
        pop.group_by = bucket.clone();
        let mut tgt = group_plan(range, r.filter(true, all), &[]);
        tgt.group_by = bucket;
        let (pop, tgt) = futures::try_join!(ctx.run(&pop), ctx.run(&tgt))?;
        put(&pop, Put::Population);
        put(&tgt, Put::Target);
    }
    // Error-only conditions have the whole scope as population, which the
    // pop series already is; targets never exceed it.
    for s in &mut series {
        s.0 = s.0.max(s.1);
    }
    Ok((first, series))
}

/// The minute in `range` where the rate moves from `before` to `after`:
/// the split of the per-minute counts most likely under those two rates
/// (`None` when the range holds nothing of the finding).
async fn refine(
    ctx: &Ctx<'_>,
    r: &Resolved,
    conds: &[(bool, Filter)],
    range: Range,
    before: f64,
    after: f64,
) -> Result<Option<i64>, RcaError> {
    if range.to_ns <= range.from_ns {
        return Ok(None);
    }
    let (first, series) = when_series(ctx, r, conds, range, MINUTE_NS).await?;
    Ok(best_split(&series, before, after)
        .map(|i| (first + i as i64 * MINUTE_NS).max(range.from_ns)))
}

/// The index `t` maximising the log-likelihood of `series[..t]` at rate
/// `before` and `series[t..]` at `after` (`None` for an empty series).
fn best_split(series: &[(u64, u64)], before: f64, after: f64) -> Option<usize> {
    if series.iter().all(|(n, _)| *n == 0) {
        return None;
    }
    let clamp = |p: f64| p.clamp(1e-9, 1.0 - 1e-9);
    let (b, a) = (clamp(before), clamp(after));
    let ll = |p: f64, (n, k): (u64, u64)| {
        let k = k.min(n) as f64;
        k * p.ln() + (n as f64 - k) * (1.0 - p).ln()
    };
    // Everything at `after`, then move minutes to `before` one by one.
    let mut score: f64 = series.iter().map(|c| ll(a, *c)).sum();
    let mut best = (score, 0);
    for (i, c) in series.iter().enumerate() {
        score += ll(b, *c) - ll(a, *c);
        if score > best.0 {
            best = (score, i + 1);
        }
    }
    Some(best.1)
}

/// Runs in the window showing the finding, with their paths.
async fn ctx_exemplars(
    ctx: &Ctx<'_>,
    r: &Resolved,
    conds: &[(bool, Filter)],
) -> Result<Vec<Exemplar>, RcaError> {
    let all: Vec<Filter> = conds.iter().map(|(_, f)| f.clone()).collect();
    let plan = rows_plan(
        r.window,
        r.filter(true, all),
        &[
            column::RUN_ID,
            column::TRACE_ID,
            column::SPAN_ID,
            column::START_TIME,
            column::NAME,
            column::ERROR_MESSAGE,
        ],
        50,
    );
    let got = ctx.run(&plan).await?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for row in &got.rows {
        let trace_id = row.get(1).and_then(text_of).map(str::to_owned);
        let Some(run_id) = row
            .first()
            .and_then(text_of)
            .map(str::to_owned)
            .or_else(|| trace_id.clone())
        else {
            continue;
        };
        if !seen.insert(run_id.clone()) {
            continue;
        }
        out.push(Exemplar {
            run_id,
            trace_id,
            span_id: row.get(2).and_then(text_of).unwrap_or_default().to_owned(),
            start_ns: row.get(3).and_then(Value::as_i64),
            name: row.get(4).and_then(text_of).map(str::to_owned),
            error_message: row.get(5).and_then(text_of).map(str::to_owned),
            path: Vec::new(),
        });
        if out.len() == EXEMPLARS {
            break;
        }
    }
    let traces = try_join_all(
        out.iter()
            .map(|e| ctx.reader.trace(ctx.project, e.run_id.as_str())),
    )
    .await?;
    for (ex, mut spans) in out.iter_mut().zip(traces) {
        spans.retain(|s| s.span_kind != Some(SpanKind::Workflow) && s.parent_span_id.is_some());
        spans.sort_by_key(|s| (s.start_time.unwrap_or(i64::MAX), s.span_id.clone()));
        let upto = spans
            .iter()
            .position(|s| s.span_id == ex.span_id)
            .map_or(spans.len(), |i| i + 1);
        let mut path: Vec<String> = spans[..upto]
            .iter()
            .map(|s| {
                let name = s
                    .tool_name
                    .clone()
                    .or_else(|| s.name.clone())
                    .unwrap_or_else(|| "?".into());
                if s.status == Some(Status::Error) {
                    format!("{name} ✗")
                } else {
                    name
                }
            })
            .collect();
        if path.len() > MAX_PATH {
            path.drain(..path.len() - MAX_PATH);
        }
        ex.path = path;
    }
    Ok(out)
}

/// A candidate's numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Score {
    pub counts: Counts,
    pub expected: f64,
    pub excess: f64,
    pub lift: f64,
    /// Uncorrected one-sided p-value.
    pub p: f64,
}

/// The window's target rate of a candidate.
fn rate(s: &Score) -> f64 {
    let (n, k) = (s.counts.n[WINDOW], s.counts.k[WINDOW]);
    if n == 0 { 0.0 } else { k as f64 / n as f64 }
}

fn score(c: &Counts, prior: f64, plain: bool) -> Score {
    let (n_w, k_w) = (c.n[WINDOW], c.k[WINDOW].min(c.n[WINDOW]));
    let (n_b, k_b) = (c.n[BASELINE], c.k[BASELINE].min(c.n[BASELINE]));
    let p0 = if plain {
        prior
    } else {
        (k_b as f64 + PRIOR_WEIGHT * prior) / (n_b as f64 + PRIOR_WEIGHT)
    }
    .clamp(1e-9, 1.0 - 1e-9);
    let expected = n_w as f64 * p0;
    let rate = if n_w == 0 {
        0.0
    } else {
        k_w as f64 / n_w as f64
    };
    Score {
        counts: *c,
        expected,
        excess: k_w as f64 - expected,
        lift: rate / p0,
        p: binomial_sf(n_w, k_w, p0),
    }
}

/// Single values and pairs seen together in window target rows, with at
/// least `min_support` window target spans.
fn candidates(table: &Table, min_support: u64) -> Vec<Vec<Cond>> {
    let mut support: HashMap<Vec<Cond>, u64> = HashMap::default();
    let mut add = |rows: &[Row], only_error: bool| {
        for row in rows {
            let k = row.k[WINDOW];
            if k == 0 {
                continue;
            }
            let set: Vec<Cond> = row
                .vals
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != 0)
                .map(|(d, v)| (d, *v))
                .collect();
            let keep = |c: &[Cond]| !only_error || c.iter().any(|(d, _)| table.is_error_dim[*d]);
            for (i, a) in set.iter().enumerate() {
                if keep(&[*a]) {
                    *support.entry(vec![*a]).or_default() += k;
                }
                for b in &set[i + 1..] {
                    if keep(&[*a, *b]) {
                        *support.entry(vec![*a, *b]).or_default() += k;
                    }
                }
            }
        }
    };
    if table.targets_are_errors {
        add(&table.errors, false);
    } else {
        // Main values from the target rows, error values (and their pairs)
        // from the failed ones.
        add(&table.cube, false);
        add(&table.errors, true);
    }
    let mut out: Vec<(Vec<Cond>, u64)> = support
        .into_iter()
        .filter(|(_, k)| *k >= min_support)
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(MAX_CANDIDATES);
    out.into_iter().map(|(c, _)| c).collect()
}

/// Greedy attribution. Each round:
///
/// 1. the candidate over population dimensions (values and pairs) that
///    explains the most excess target spans not explained by earlier
///    findings (within 5 %, the one with the higher lift); error-only
///    candidates only when no population candidate is significant;
/// 2. *drill down*: when a narrower candidate inside it explains at least a
///    quarter of its excess at a window rate 1.5× as high (a coarse value
///    such as an app that holds two separate causes), take that instead.
///    Rates, not lifts: a part with a tiny baseline always has a huge lift;
/// 3. *refine*: add values that keep ≥ 90 % of the excess and raise the
///    window rate by 10 %, then the error class or signature that keeps
///    ≥ 90 % of it;
/// 4. *prune* population conditions the others imply (same counts without
///    them).
fn attribute(
    table: &Table,
    candidates: &[Vec<Cond>],
    prior: f64,
    tests: f64,
    req: &RcaRequest,
) -> Vec<(Vec<Cond>, Score)> {
    let significant = |s: &Score| {
        s.counts.k[WINDOW] >= req.min_support
            && s.excess >= (req.min_support as f64 / 2.0).max(1.0)
            && s.lift >= MIN_LIFT
            && s.p * tests < req.alpha
    };
    let better = |a: &Score, b: &Score| {
        // More excess wins; within 5 %, the sharper (higher lift) one.
        if (a.excess - b.excess).abs() <= 0.05 * a.excess.max(b.excess) {
            a.lift > b.lift
        } else {
            a.excess > b.excess
        }
    };
    let is_err = |c: &[Cond]| c.iter().any(|(d, _)| table.is_error_dim[*d]);
    let count = |c: &[Cond], ex: &[Vec<Cond>]| score(&table.count(c, ex), prior, false);
    // Upper bounds without exclusions, to visit the best first.
    let mut bounded: Vec<(f64, &Vec<Cond>)> = candidates
        .iter()
        .map(|c| (count(c, &[]).excess, c))
        .filter(|(e, _)| *e > 0.0)
        .collect();
    bounded.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let singles: Vec<Cond> = candidates
        .iter()
        .filter(|c| c.len() == 1)
        .map(|c| c[0])
        .collect();

    let mut picked: Vec<(Vec<Cond>, Score)> = Vec::new();
    let mut excluded: Vec<Vec<Cond>> = Vec::new();
    while picked.len() < req.max_findings {
        let mut best: Option<(Vec<Cond>, Score)> = None;
        for errors in [false, true] {
            for (bound, conds) in &bounded {
                if is_err(conds) != errors {
                    continue;
                }
                if let Some((_, b)) = &best
                    && *bound < b.excess * 0.95
                {
                    break;
                }
                if excluded.iter().any(|e| e == *conds) {
                    continue;
                }
                let s = count(conds, &excluded);
                if significant(&s) && best.as_ref().is_none_or(|(_, b)| better(&s, b)) {
                    best = Some(((*conds).clone(), s));
                }
            }
            if best.is_some() {
                break;
            }
        }
        let Some((mut conds, mut s)) = best else {
            break;
        };
        // Drill down into a much sharper part holding a good share of it.
        if !is_err(&conds) {
            loop {
                let mut inner: Option<(Vec<Cond>, Score)> = None;
                for (_, d) in &bounded {
                    if is_err(d) || *d == &conds || excluded.iter().any(|e| e == *d) {
                        continue;
                    }
                    let t = count(d, &excluded);
                    if !(significant(&t)
                        && t.excess >= 0.25 * s.excess
                        && rate(&t) >= 1.5 * rate(&s)
                        && inner.as_ref().is_none_or(|(_, i)| better(&t, i)))
                    {
                        continue;
                    }
                    let mut both = conds.clone();
                    both.extend(d.iter().filter(|c| !conds.contains(c)));
                    let within = table.count(&both, &excluded).k[WINDOW] as f64;
                    if within >= 0.9 * t.counts.k[WINDOW] as f64 {
                        inner = Some(((*d).clone(), t));
                    }
                }
                match inner {
                    Some((d, t)) => {
                        conds = d;
                        s = t;
                    }
                    None => break,
                }
            }
        }
        // Refine: population values that sharpen it, then the error.
        for errors in [false, true] {
            while conds.len() < MAX_CONDITIONS {
                let mut next: Option<(Vec<Cond>, Score)> = None;
                for single in &singles {
                    if table.is_error_dim[single.0] != errors
                        || conds.iter().any(|(d, _)| *d == single.0)
                    {
                        continue;
                    }
                    let mut more = conds.clone();
                    more.push(*single);
                    let t = count(&more, &excluded);
                    let sharper = errors || rate(&t) >= 1.1 * rate(&s);
                    // Among error values, the later dimension (the
                    // signature) wins a tie: it says more than the class.
                    let pick = if errors {
                        next.as_ref().is_none_or(|(_, n)| t.excess >= n.excess)
                    } else {
                        next.as_ref().is_none_or(|(_, n)| rate(&t) > rate(n))
                    };
                    if significant(&t) && t.excess >= 0.9 * s.excess && sharper && pick {
                        next = Some((more, t));
                    }
                }
                match next {
                    Some((c, t)) => {
                        conds = c;
                        s = t;
                    }
                    None => break,
                }
                if errors {
                    // One error value says what failed; the other is
                    // implied or splits it.
                    break;
                }
            }
        }
        // Prune a population condition the other population conditions
        // imply (`node_type=tool` beside `tool_name=inventory`). Error
        // conditions stay: implied or not, they say what failed.
        let mut i = 0;
        while conds.len() > 1 && i < conds.len() {
            let mut fewer = conds.clone();
            fewer.remove(i);
            let implied = !table.is_error_dim[conds[i].0] && {
                let main: Vec<Cond> = conds
                    .iter()
                    .copied()
                    .filter(|(d, _)| !table.is_error_dim[*d])
                    .collect();
                let main_fewer: Vec<Cond> =
                    main.iter().copied().filter(|c| *c != conds[i]).collect();
                !main_fewer.is_empty()
                    && table.count(&main_fewer, &excluded) == table.count(&main, &excluded)
            };
            if implied {
                conds = fewer;
            } else {
                i += 1;
            }
        }
        conds.sort();
        excluded.push(conds.clone());
        picked.push((conds, s));
    }
    picked
}

#[cfg(test)]
mod tests;
