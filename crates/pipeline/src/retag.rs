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
        let mut cursor = None;
        let mut updates: Vec<Span> = Vec::new();
        loop {
            let page = reader
                .list(SpanQuery {
                    project: project.clone(),
                    filter: SpanFilter {
                        from,
                        to,
                        span_kind: Some(SpanKind::Workflow),
                        ..SpanFilter::default()
                    },
                    limit: 1000,
                    cursor: cursor.take(),
                })
                .await?;
            for stored in page.spans {
                if done.runs_scanned >= max_runs {
                    done.truncated = true;
                    break;
                }
                done.runs_scanned += 1;
                done.oldest_start = stored.start_time.or(done.oldest_start);
                let mut copy = stored.clone();
                self.tags().apply(&mut copy);
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
            match page.next_cursor {
                Some(next) if !done.truncated => cursor = Some(next),
                _ => break,
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
