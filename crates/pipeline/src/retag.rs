//! Applying the tag rules to history: a rule added today tags the runs
//! stored before it (issue 13), without rewriting their payloads.
//!
//! Each run span (`span_kind = workflow`) of the range is read back, the
//! current rules are applied to a copy, and a run gaining a tag gets an
//! update that carries only its identity and the new tags. The update goes
//! through the pipeline like any write; the store's run context then gives
//! the run's other spans the same tags (business tags are run-level). Tags a
//! run already has are never changed: rules only fill what is missing.

use loupe_backend::{SpanFilter, SpanQuery, SpanReader, StoreError};
use loupe_model::{ProjectId, Span, SpanKind};

use crate::Pipeline;

/// What [`Pipeline::retag`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Retagged {
    /// Run spans read.
    pub runs_scanned: u64,
    /// Runs that gained at least one tag.
    pub runs_tagged: u64,
    /// Whether `max_runs` stopped the scan before the range's end (the
    /// oldest runs are left; run again with `to` set to the oldest seen).
    pub truncated: bool,
    /// Start of the oldest run read (ns), to continue from.
    pub oldest_start: Option<i64>,
}

/// Updates are written in batches of this many.
const BATCH: usize = 500;

/// The run spans (`span_kind = workflow`) of a project starting in `[from,
/// to)`, newest first, page by page: what [`Pipeline::retag`] and
/// [`preview`] read.
struct RunPages<'a> {
    reader: &'a dyn SpanReader,
    query: SpanQuery,
    done: bool,
}

impl<'a> RunPages<'a> {
    fn new(
        reader: &'a dyn SpanReader,
        project: &ProjectId,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Self {
        Self {
            reader,
            query: SpanQuery {
                project: project.clone(),
                filter: SpanFilter {
                    from,
                    to,
                    span_kind: Some(SpanKind::Workflow),
                    ..SpanFilter::default()
                },
                limit: 1000,
                cursor: None,
            },
            done: false,
        }
    }

    /// The next page (`None` after the last).
    async fn next(&mut self) -> Result<Option<Vec<Span>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self.reader.list(self.query.clone()).await?;
        self.query.cursor = page.next_cursor;
        self.done = self.query.cursor.is_none();
        Ok(Some(page.spans))
    }
}

impl Pipeline {
    /// Applies the current tag rules to the runs of `project` starting in
    /// `[from, to)` (either open), newest first, reading at most `max_runs`.
    ///
    /// # Errors
    /// The reader's or the writer's ([`StoreError::Overloaded`]: retry).
    #[tracing::instrument(name = "pipeline.retag", skip(self, reader))]
    pub async fn retag(
        &self,
        reader: &dyn SpanReader,
        project: &ProjectId,
        from: Option<i64>,
        to: Option<i64>,
        max_runs: u64,
    ) -> Result<Retagged, StoreError> {
        let mut done = Retagged::default();
        let mut updates: Vec<Span> = Vec::new();
        let rules = self.tags();
        let mut pages = RunPages::new(reader, project, from, to);
        'pages: while let Some(page) = pages.next().await? {
            for stored in page {
                if done.runs_scanned >= max_runs {
                    done.truncated = true;
                    break 'pages;
                }
                done.runs_scanned += 1;
                done.oldest_start = stored.start_time.or(done.oldest_start);
                let mut copy = stored.clone();
                rules.apply(&mut copy);
                let added: Vec<(String, String)> = copy
                    .tags
                    .into_iter()
                    .filter(|(k, _)| !stored.tags.contains_key(k))
                    .collect();
                if added.is_empty() {
                    continue;
                }
                done.runs_tagged += 1;
                let mut update = Span::new(stored.project.clone(), stored.span_id.clone());
                update.trace_id = stored.trace_id.clone();
                update.tags.extend(added);
                updates.push(update);
                if updates.len() >= BATCH {
                    self.write(std::mem::take(&mut updates)).await?;
                }
            }
        }
        self.write(updates).await?;
        tracing::info!(
            runs_scanned = done.runs_scanned,
            runs_tagged = done.runs_tagged,
            "tag rules applied to history"
        );
        Ok(done)
    }
}

/// What a rule would tag ([`preview`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Preview {
    /// Run spans read (newest first).
    pub runs_scanned: u64,
    /// Runs the rule gives a value.
    pub runs_tagged: u64,
    /// Runs that already carry a tag of that name (the rule leaves them).
    pub runs_already: u64,
    /// The values it gives, most runs first (at most 20).
    pub values: Vec<PreviewValue>,
    /// Runs it tags, with the value (at most 5).
    pub examples: Vec<PreviewExample>,
    /// Whether `max_runs` stopped the scan before the range's end.
    pub truncated: bool,
}

/// One value of a [`Preview`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewValue {
    /// The tag value.
    pub value: String,
    /// Runs given it.
    pub runs: u64,
}

/// One tagged run of a [`Preview`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewExample {
    /// The run's trace id.
    pub trace_id: Option<String>,
    /// The value the rule gives it.
    pub value: String,
}

/// Applies `rule` (one rule, named `name`) to the newest `max_runs` run
/// spans of `project` starting in `[from, to)`, writing nothing: what
/// adding it would tag, before it is saved.
///
/// # Errors
/// The reader's.
pub async fn preview(
    reader: &dyn SpanReader,
    project: &ProjectId,
    rule: &loupe_normalise::tags::TagRules,
    name: &str,
    from: Option<i64>,
    to: Option<i64>,
    max_runs: u64,
) -> Result<Preview, StoreError> {
    let mut out = Preview::default();
    let mut counts: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut pages = RunPages::new(reader, project, from, to);
    'pages: while let Some(page) = pages.next().await? {
        for stored in page {
            if out.runs_scanned >= max_runs {
                out.truncated = true;
                break 'pages;
            }
            out.runs_scanned += 1;
            if stored.tags.contains_key(name) {
                out.runs_already += 1;
                continue;
            }
            let mut copy = stored;
            rule.apply(&mut copy);
            let Some(value) = copy.tags.remove(name) else {
                continue;
            };
            out.runs_tagged += 1;
            if out.examples.len() < 5 {
                out.examples.push(PreviewExample {
                    trace_id: copy.trace_id.clone(),
                    value: value.clone(),
                });
            }
            // Bounded: a value per run at most, and at most max_runs runs.
            *counts.entry(value).or_default() += 1;
        }
    }
    let mut values: Vec<PreviewValue> = counts
        .into_iter()
        .map(|(value, runs)| PreviewValue { value, runs })
        .collect();
    values.sort_by(|a, b| b.runs.cmp(&a.runs).then_with(|| a.value.cmp(&b.value)));
    values.truncate(20);
    out.values = values;
    Ok(out)
}
