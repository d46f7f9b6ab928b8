//! Many runs at once ([`SpanReader::traces`](loupe_backend::SpanReader::traces)):
//! the spans whose trace or run id is one of a set, read the way
//! [`Store::trace_spans`] reads one run, but in one pass per part.
//!
//! The Dify cleanup verifies a batch of a few hundred runs against the
//! store. As a DataFusion query (an OR of id equalities) that cost 96 % of
//! the cleanup's time; id by id, one file open and page read per run and
//! part. Here the memtables are scanned once for the whole set, and each
//! part's position index gives the rows of every id, read as one row
//! selection of only the columns asked for.

use std::collections::HashSet;

use loupe_backend::TracesQuery;
use loupe_model::{ProjectId, Span, column, schema};

use crate::convert::Row;
use crate::{Error, Store};

/// Ids one request may name: a cleanup batch is at most a few thousand.
pub const MAX_TRACE_IDS: usize = 10_000;

/// Spans one request may return.
pub const MAX_TRACE_SPANS: usize = 1_000_000;

impl Store {
    /// Every span whose trace id or run id is one of `query.ids` (each
    /// once, memtable versions first, unordered), with `query.columns`
    /// filled; `None` when more than `query.max_spans` may match.
    pub async fn traces_spans(
        &self,
        project: &ProjectId,
        query: &TracesQuery,
    ) -> Result<Option<Vec<Span>>, Error> {
        check(query)?;
        let store = self.clone();
        let (project, query) = (project.as_str().to_owned(), query.clone());
        tokio::task::spawn_blocking(move || store.traces_blocking(&project, &query))
            .await
            .map_err(|e| Error::Internal(format!("traces read task failed: {e}")))?
    }

    fn traces_blocking(
        &self,
        project: &str,
        query: &TracesQuery,
    ) -> Result<Option<Vec<Span>>, Error> {
        let ids: Vec<&str> = query.ids.iter().map(String::as_str).collect();
        let columns: Vec<&str> = query.columns.iter().map(String::as_str).collect();
        Ok(self
            .rows_of_ids(project, &ids, &columns, query.max_spans)?
            .map(|(rows, _)| rows.into_iter().map(|r| r.span).collect()))
    }

    /// The visible rows whose trace id or run id is one of `ids` (each
    /// once, memtable versions first, unordered), with `columns` filled
    /// (all when empty), and the parts read; `None` when more than `max`
    /// may match.
    pub(crate) fn rows_of_ids(
        &self,
        project: &str,
        ids: &[&str],
        columns: &[&str],
        max: usize,
    ) -> Result<Option<(Vec<Row>, u64)>, Error> {
        let ids: HashSet<&str> = ids.iter().copied().collect();
        let of_set = |s: &Span| {
            s.trace_id.as_deref().is_some_and(|t| ids.contains(t))
                || s.run_id.as_deref().is_some_and(|r| ids.contains(r))
        };
        let mut seen = HashSet::new();
        let mut rows = Vec::new();
        for row in self.memtable_rows(project, of_set) {
            seen.insert(row.span.span_id.clone());
            rows.push(row);
            if rows.len() > max {
                return Ok(None);
            }
        }
        let columns: Vec<&str> = if columns.is_empty() {
            Vec::new()
        } else {
            columns
                .iter()
                .copied()
                .chain([column::TRACE_ID, column::RUN_ID])
                .collect()
        };
        let (parts, deletes) = self.parts_snapshot();
        let mut read = 0;
        for part in crate::live_parts_of(&parts, project) {
            let mut positions: Vec<u32> =
                ids.iter().flat_map(|id| part.index.run_rows(id)).collect();
            if positions.is_empty() {
                continue;
            }
            positions.sort_unstable();
            positions.dedup();
            crate::deletes::of(&deletes, part.meta.id).retain_visible(&mut positions);
            // The positions are a superset (fingerprints may collide), so
            // the bound is checked before reading: never more than asked.
            if rows.len() + positions.len() > max {
                return Ok(None);
            }
            read += 1;
            let cache = Some(self.inner.parquet_metadata.as_ref());
            for row in part.read_positions(&positions, &columns, cache)? {
                if of_set(&row.span) && seen.insert(row.span.span_id.clone()) {
                    rows.push(row);
                }
            }
        }
        Ok(Some((rows, read)))
    }
}

/// Bounds and column names of a request: the caller's mistakes are
/// [`Error::Invalid`].
fn check(query: &TracesQuery) -> Result<(), Error> {
    if query.ids.len() > MAX_TRACE_IDS {
        return Err(Error::Invalid(format!(
            "{} ids in one request; at most {MAX_TRACE_IDS}",
            query.ids.len()
        )));
    }
    if query.max_spans > MAX_TRACE_SPANS {
        return Err(Error::Invalid(format!(
            "max_spans {} is over {MAX_TRACE_SPANS}",
            query.max_spans
        )));
    }
    let schema = schema();
    if let Some(c) = query
        .columns
        .iter()
        .find(|c| schema.index_of(c.as_str()).is_err())
    {
        return Err(Error::Invalid(format!("unknown column {c:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use loupe_backend::{SpanReader, traces_one_by_one};
    use loupe_model::{ProjectId, Span, SpanKind, Status, column};

    use super::*;
    use crate::StoreConfig;

    const T0: i64 = 1_795_000_000_000_000_000;
    const DAY_NS: i64 = 86_400 * 1_000_000_000;

    fn open(dir: &std::path::Path) -> Store {
        let config = StoreConfig {
            data_dir: dir.to_owned(),
            compaction_min_parts: 2,
            ..StoreConfig::default()
        };
        Store::open(config, loupe_rollup::RollupConfig::default()).expect("open store")
    }

    /// Node `i` of run `r`: trace id `t{r}`; every third run's nodes also
    /// carry a run id that differs from the trace id (`run{r}`), so both
    /// ids find them.
    fn node(project: &str, r: usize, i: usize, day: i64) -> Span {
        let mut s = Span::new(project, format!("{project}-n{r}-{i}"));
        s.trace_id = Some(format!("t{r}"));
        if r.is_multiple_of(3) {
            s.run_id = Some(format!("run{r}"));
        }
        s.start_time = Some(T0 + day * DAY_NS + (r * 10 + i) as i64);
        s.end_time = s.start_time.map(|t| t + 5);
        s.span_kind = Some(if i.is_multiple_of(2) {
            SpanKind::Tool
        } else {
            SpanKind::Llm
        });
        s.raw_status = Some("succeeded".into());
        s.status = Some(Status::Ok);
        s.output = Some(format!("answer {r}-{i}"));
        s.input = Some("x".repeat(300));
        s.attributes
            .insert("dify.elapsed_time".into(), format!("{r}.{i}"));
        s
    }

    fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
        spans.sort_by(|a, b| a.span_id.cmp(&b.span_id));
        spans
    }

    async fn both(store: &Store, project: &ProjectId, query: &TracesQuery) -> Vec<Span> {
        let batch = store
            .traces(project, query)
            .await
            .expect("batch")
            .expect("within the bound");
        let reference = traces_one_by_one(
            store,
            project,
            &TracesQuery {
                columns: Vec::new(),
                ..query.clone()
            },
        )
        .await
        .expect("one by one")
        .expect("within the bound");
        let reference: Vec<Span> = reference
            .into_iter()
            .map(|s| project_to(&s, &query.columns))
            .collect();
        // Fields beyond the columns may be filled (memtable rows are
        // whole): compare what was asked for.
        let asked: Vec<Span> = batch
            .iter()
            .map(|s| project_to(s, &query.columns))
            .collect();
        assert_eq!(sorted(asked), sorted(reference), "ids {:?}", query.ids);
        sorted(batch)
    }

    /// `s` with only the columns a query asked for (and the ids).
    fn project_to(s: &Span, columns: &[String]) -> Span {
        if columns.is_empty() {
            return s.clone();
        }
        let want = |c: &str| columns.iter().any(|x| x == c);
        let mut out = Span::new("", s.span_id.clone());
        out.trace_id = s.trace_id.clone();
        out.run_id = s.run_id.clone();
        if want(column::RAW_STATUS) {
            out.raw_status = s.raw_status.clone();
        }
        if want(column::START_TIME) {
            out.start_time = s.start_time;
        }
        if want(column::END_TIME) {
            out.end_time = s.end_time;
        }
        if want(column::OUTPUT) {
            out.output = s.output.clone();
        }
        if want(column::ATTRIBUTES) {
            out.attributes = s.attributes.clone();
        }
        out
    }

    /// The batch read answers exactly what `trace` answers id by id, on
    /// every path a span can be on: memtable, frozen-then-flushed parts of
    /// several days, versions hidden by a later part or by the memtable,
    /// compacted parts; and only the project asked for.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_equal_trace_id_by_id_on_memtable_parts_and_hidden_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let p = ProjectId::new("p").expect("project");
        // Runs 0..40 over two days, flushed in two parts per day.
        for half in 0..2 {
            let spans: Vec<Span> = (half * 20..half * 20 + 20)
                .flat_map(|r| (0..4).map(move |i| node("p", r, i, (r % 2) as i64)))
                .collect();
            store.append(spans).await.expect("append");
            store.flush_all().await.expect("flush");
        }
        // Same ids in another project: never in p's answer.
        store
            .append((0..5).map(|r| node("q", r, 0, 0)).collect())
            .await
            .expect("append q");
        // Later versions: some flushed (hiding part rows), some still in
        // the memtable (hiding part rows in memory only), one new node.
        let mut later = node("p", 3, 1, 1);
        later.raw_status = Some("failed".into());
        store.append(vec![later]).await.expect("append");
        store.flush_all().await.expect("flush");
        let mut unflushed = Span::new("p", "p-n4-2");
        unflushed.raw_status = Some("stopped".into());
        unflushed.output = Some("changed".into());
        let fresh = node("p", 41, 0, 0);
        store
            .append(vec![unflushed, fresh, node("p", 5, 9, 0)])
            .await
            .expect("append");

        let all: Vec<String> = ["t3", "t4", "t5", "t41", "run6", "t6", "t9", "nope"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let light = [column::RAW_STATUS, column::END_TIME, column::ATTRIBUTES]
            .map(str::to_owned)
            .to_vec();
        for columns in [Vec::new(), light.clone()] {
            let q = TracesQuery {
                ids: all.clone(),
                columns: columns.clone(),
                max_spans: 1000,
            };
            let got = both(&store, &p, &q).await;
            // t3..t6 and t9 hold 4 nodes each, t5 one more, t41 one;
            // run6 names t6's nodes again (each once).
            assert_eq!(got.len(), 5 * 4 + 1 + 1, "{columns:?}");
            let status = |id: &str| {
                got.iter()
                    .find(|s| s.span_id == id)
                    .and_then(|s| s.raw_status.clone())
            };
            assert_eq!(status("p-n3-1").as_deref(), Some("failed"));
            assert_eq!(status("p-n4-2").as_deref(), Some("stopped"));
            assert!(got.iter().all(|s| s.project.is_empty() || s.project == "p"));
            if columns.is_empty() {
                assert!(got.iter().all(|s| s.input.is_some()));
            } else {
                // Only the columns asked for are read from parts.
                let from_parts = got.iter().filter(|s| s.span_id.starts_with("p-n9-"));
                assert!(from_parts.clone().count() == 4);
                assert!(
                    from_parts
                        .clone()
                        .all(|s| s.input.is_none() && s.output.is_none())
                );
            }
        }
        // By run id alone.
        let by_run = TracesQuery {
            ids: vec!["run9".into(), "run12".into()],
            columns: light.clone(),
            max_spans: 1000,
        };
        assert_eq!(both(&store, &p, &by_run).await.len(), 8);

        // After compaction (rows hidden durably are dropped).
        store.maintain_at(T0).await.expect("maintain");
        let q = TracesQuery {
            ids: all.clone(),
            columns: light,
            max_spans: 1000,
        };
        assert_eq!(both(&store, &p, &q).await.len(), 22);
        let q = TracesQuery {
            ids: (0..42).map(|r| format!("t{r}")).collect(),
            columns: Vec::new(),
            max_spans: 1000,
        };
        assert_eq!(both(&store, &p, &q).await.len(), 40 * 4 + 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_the_bound_is_none_and_bad_requests_are_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let p = ProjectId::new("p").expect("project");
        store
            .append(
                (0..10)
                    .flat_map(|r| (0..4).map(move |i| node("p", r, i, 0)))
                    .collect(),
            )
            .await
            .expect("append");
        let ids: Vec<String> = (0..10).map(|r| format!("t{r}")).collect();
        let q = |max_spans, from_parts: bool| TracesQuery {
            ids: if from_parts {
                ids.clone()
            } else {
                ids[..5].to_vec()
            },
            columns: Vec::new(),
            max_spans,
        };
        // In the memtable, then in a part.
        for flushed in [false, true] {
            let exact = store.traces_spans(&p, &q(40, true)).await.expect("read");
            assert_eq!(exact.map(|s| s.len()), Some(40), "flushed {flushed}");
            let over = store.traces_spans(&p, &q(39, true)).await.expect("read");
            assert!(over.is_none(), "flushed {flushed}");
            let some = store.traces_spans(&p, &q(20, false)).await.expect("read");
            assert_eq!(some.map(|s| s.len()), Some(20), "flushed {flushed}");
            store.flush_all().await.expect("flush");
        }
        let unknown = TracesQuery {
            ids: ids.clone(),
            columns: vec!["nope".into()],
            max_spans: 10,
        };
        let too_many = TracesQuery {
            ids: vec!["t".into(); MAX_TRACE_IDS + 1],
            columns: Vec::new(),
            max_spans: 10,
        };
        let too_big = TracesQuery {
            ids,
            columns: Vec::new(),
            max_spans: MAX_TRACE_SPANS + 1,
        };
        for bad in [unknown, too_many, too_big] {
            let e = store.traces_spans(&p, &bad).await.expect_err("invalid");
            assert!(matches!(e, Error::Invalid(_)), "{e}");
        }
    }
}
