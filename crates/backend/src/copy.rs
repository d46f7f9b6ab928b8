//! Copies a project's spans from one backend to another through the
//! contract: what `loupe migrate --to clickhouse` does, and what the bench
//! does to put the same rows into ClickHouse as into the embedded store.
//!
//! Hour by hour (the hours that hold spans, from a `by bucket(1h) |
//! count()` plan), oldest first, then the spans without a start time:
//! `SpanReader::list` pages out of the source, `SpanWriter::append` into
//! the target, so the target merges them by the same rules as live writes,
//! or `SpanWriter::append_copied` (a bulk load into a target that holds
//! none of them yet). Each append reports the hour before which every span
//! is stored, where an interrupted copy resumes.

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

/// How [`copy_project`] writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// Spans per append (at least 1).
    pub batch: usize,
    /// Bulk load: `SpanWriter::append_copied`, which may skip reading what
    /// the target holds. Otherwise `append`: merged as a live write.
    pub bulk: bool,
    /// Start at this hour (ns; a checkpoint's `done_before`): the hours
    /// before it were copied already.
    pub from_hour_ns: Option<i64>,
}

/// Where a copy stands, told after each append.
#[derive(Debug, Clone, Copy)]
pub struct CopyProgress {
    /// Spans appended so far by this call.
    pub copied: u64,
    /// Every span starting before this (ns) is stored in the target: a
    /// copy resumed here (`CopyOptions::from_hour_ns`) misses nothing.
    pub done_before: i64,
}

/// Copies one project in appends of `options.batch` spans; `progress` is
/// told where the copy stands after each append. Returns the spans copied.
///
/// # Errors
/// [`CopyError`], naming the side that failed; what was appended before
/// stays (a copy again changes nothing in it).
pub async fn copy_project(
    from: &dyn SpanReader,
    to: &dyn SpanWriter,
    project: &ProjectId,
    options: CopyOptions,
    progress: &(dyn Fn(CopyProgress) + Send + Sync),
) -> Result<u64, CopyError> {
    let batch = options.batch.max(1);
    let mut copied = 0u64;
    let mut pending: Vec<Span> = Vec::new();
    // The start of the oldest hour whose spans are not all appended yet.
    let mut open_hour = i64::MIN;
    let flush = async |pending: &mut Vec<Span>,
                       copied: &mut u64,
                       done_before: i64|
           -> Result<(), CopyError> {
        if pending.is_empty() {
            return Ok(());
        }
        let n = pending.len() as u64;
        let spans = std::mem::take(pending);
        if options.bulk {
            to.append_copied(spans).await
        } else {
            to.append(spans).await
        }
        .map_err(CopyError::Write)?;
        *copied += n;
        progress(CopyProgress {
            copied: *copied,
            done_before,
        });
        Ok(())
    };
    let mut hours = busy_hours(from, project).await.map_err(CopyError::Read)?;
    if let Some(first) = options.from_hour_ns {
        hours.retain(|h| *h >= first);
    }
    for at in hours {
        open_hour = at;
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
                flush(&mut pending, &mut copied, open_hour).await?;
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
    // Hours are all appended now; the spans without a start are copied
    // again by a resumed copy (they sort before every hour).
    flush(&mut pending, &mut copied, open_hour.saturating_add(HOUR_NS)).await?;
    Ok(copied)
}
