//! Copies a project's spans from one backend to another through the
//! contract: what `loupe migrate --to clickhouse` does, and what the bench
//! does to put the same rows into ClickHouse as into the embedded store.
//!
//! Hour by hour (the hours that hold spans, from a `by bucket(1h) |
//! count()` plan), oldest first, then the spans without a start time:
//! `SpanReader::list` pages out of the source, `SpanWriter::append` into
//! the target, so the target merges them by the same rules as live writes.

use crate::plan::{AggKind, Aggregate, GroupKey, Output, Plan, QueryLimits, Source};
use crate::{Cursor, PageQuery, SpanFilter, SpanQuery, SpanReader, SpanWriter, StoreError};
use loupe_model::{ProjectId, Span};

/// An hour in ns: the window copied at a time.
const HOUR_NS: i64 = 3_600 * 1_000_000_000;

/// Spans per page read from the source (the list's largest page).
const PAGE: usize = 1_000;

/// Which side of a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the source failed.
    #[error("cannot read the spans to copy: {0}")]
    Read(StoreError),
    /// The target refused an append.
    #[error("the target refused an append: {0}")]
    Write(StoreError),
}

/// The number of spans of a project (an offset page's total).
///
/// # Errors
/// The reader's.
pub async fn total(reader: &dyn SpanReader, project: &ProjectId) -> Result<u64, StoreError> {
    let page = reader
        .page(PageQuery {
            project: project.clone(),
            filter: SpanFilter::default(),
            conds: Vec::new(),
            offset: 0,
            limit: 1,
            oldest_first: true,
            count: true,
        })
        .await?;
    page.total
        .ok_or_else(|| StoreError::Internal("the span count is missing".into()))
}

/// The start hours (ns) that hold spans of a project, oldest first.
async fn busy_hours(reader: &dyn SpanReader, project: &ProjectId) -> Result<Vec<i64>, StoreError> {
    let plan = Plan {
        source: Source::Spans,
        from_ns: i64::MIN,
        to_ns: i64::MAX,
        filter: None,
        group_by: vec![GroupKey::Bucket { width_ns: HOUR_NS }],
        aggregates: vec![Aggregate {
            kind: AggKind::Count,
            field: None,
            name: "spans".into(),
        }],
        sort: Vec::new(),
        limit: None,
        output: Output::Aggregates,
        approx_percentiles: false,
    };
    let limits = QueryLimits {
        max_rows: usize::MAX / 2,
        ..QueryLimits::default()
    };
    let result = reader.query(project, &plan, limits).await?;
    if result.stats.truncated {
        return Err(StoreError::Internal(format!(
            "too many hours hold spans of {project} to list at once"
        )));
    }
    Ok(result
        .rows
        .iter()
        .filter_map(|r| r.first().and_then(serde_json::Value::as_i64))
        .collect())
}

/// Copies one project, `batch` spans per append; `progress` is told the
/// spans copied so far after each append. Returns the spans copied.
///
/// # Errors
/// [`CopyError`], naming the side that failed; what was appended before
/// stays (a copy again merges onto it and changes nothing).
pub async fn copy_project(
    from: &dyn SpanReader,
    to: &dyn SpanWriter,
    project: &ProjectId,
    batch: usize,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, CopyError> {
    let batch = batch.max(1);
    let mut copied = 0u64;
    let mut pending: Vec<Span> = Vec::new();
    let flush = async |pending: &mut Vec<Span>, copied: &mut u64| -> Result<(), CopyError> {
        if pending.is_empty() {
            return Ok(());
        }
        let n = pending.len() as u64;
        to.append(std::mem::take(pending))
            .await
            .map_err(CopyError::Write)?;
        *copied += n;
        progress(*copied);
        Ok(())
    };
    let hours = busy_hours(from, project).await.map_err(CopyError::Read)?;
    for at in hours {
        let filter = SpanFilter {
            from: Some(at),
            to: Some(at.saturating_add(HOUR_NS)),
            ..SpanFilter::default()
        };
        let mut cursor = None;
        loop {
            let page = from
                .list(SpanQuery {
                    project: project.clone(),
                    filter: filter.clone(),
                    limit: PAGE,
                    cursor,
                })
                .await
                .map_err(CopyError::Read)?;
            pending.extend(page.spans);
            if pending.len() >= batch {
                flush(&mut pending, &mut copied).await?;
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    // Spans without a start time sort as the oldest (`i64::MIN`): a cursor
    // at that time and past every id lists exactly them.
    let mut cursor = Some(Cursor {
        start_time: i64::MIN,
        span_id: char::MAX.to_string(),
    });
    while let Some(c) = cursor {
        let page = from
            .list(SpanQuery {
                project: project.clone(),
                filter: SpanFilter::default(),
                limit: PAGE,
                cursor: Some(c),
            })
            .await
            .map_err(CopyError::Read)?;
        pending.extend(page.spans.into_iter().filter(|s| s.start_time.is_none()));
        cursor = page.next_cursor;
    }
    flush(&mut pending, &mut copied).await?;
    Ok(copied)
}
