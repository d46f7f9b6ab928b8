//! Log compaction: each flush writes one part per (project, day), so a day
//! collects a part per flush; the maintenance pass merges them by size tier
//! (`compaction::size_tiers`, the span parts' rule: a row is rewritten about
//! once per tier it climbs), so a day ends as a few large parts and a
//! search opens few files.
//!
//! A merge reads its parts whole into memory, so only tiers up to
//! [`MAX_MERGE_ROWS`] rows are merged; larger parts stay as they are. The
//! new part (with its text index) is written before the manifest names it
//! and drops the old ones, in one replacement; the old files are deleted
//! after the grace period, so searches that listed them finish.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::part::{LogPart, write_part};
use super::{LogTable, index_path};
use crate::wal::io_err;
use crate::{Error, fts};

/// Rows one merge reads at most (about 1 GB of records in memory).
pub(crate) const MAX_MERGE_ROWS: u64 = 2_000_000;

impl LogTable {
    /// Merges tiers of small parts; returns (parts merged away, parts
    /// written). Blocking.
    pub(crate) fn compact(&self, min_parts: usize) -> Result<(usize, usize), Error> {
        let _flush = self.flush_gate.lock();
        let parts = self.state.lock().parts.clone();
        let mut days: BTreeMap<(&str, &str), Vec<&Arc<LogPart>>> = BTreeMap::new();
        for p in parts.iter() {
            days.entry((p.meta.project.as_str(), p.meta.day.as_str()))
                .or_default()
                .push(p);
        }
        let (mut merged, mut written) = (0, 0);
        for mut day in days.into_values() {
            day.sort_by_key(|p| (p.meta.rows, p.meta.id));
            let rows: Vec<u64> = day.iter().map(|p| p.meta.rows).collect();
            for tier in crate::compaction::size_tiers(&rows, min_parts, MAX_MERGE_ROWS) {
                let group: Vec<Arc<LogPart>> = day[tier].iter().map(|p| Arc::clone(p)).collect();
                merged += group.len();
                self.merge(&group)?;
                written += 1;
            }
        }
        Ok((merged, written))
    }

    #[tracing::instrument(name = "store.compact_logs", skip_all, fields(parts = group.len()))]
    fn merge(&self, group: &[Arc<LogPart>]) -> Result<(), Error> {
        let Some(first) = group.first() else {
            return Ok(());
        };
        let (project, day) = (first.meta.project.clone(), first.meta.day.clone());
        let mut records = Vec::new();
        for p in group {
            records.extend(p.read(None)?);
        }
        let rows_in = records.len();
        records.sort_by_key(|r| r.time);
        let id = {
            let mut st = self.state.lock();
            let id = st.manifest.next_part_id;
            st.manifest.next_part_id += 1;
            id
        };
        let index = fts::Index::of_rows(records.iter().map(|r| [r.body.as_str()]));
        let part = Arc::new(write_part(&self.data_dir, id, &project, &day, records)?);
        let path = index_path(&self.data_dir, id);
        loupe_fsutil::write_atomic(&path, &index.encode()).map_err(io_err(&path))?;
        self.text_indexes.lock().insert(id, Arc::new(index));
        let gone: HashSet<u64> = group.iter().map(|p| p.meta.id).collect();
        {
            let mut st = self.state.lock();
            let mut manifest = st.manifest.clone();
            manifest.parts.retain(|p| !gone.contains(&p.id));
            manifest.parts.push(part.meta.clone());
            manifest.store(&self.data_dir)?;
            st.manifest = manifest;
            let mut parts: Vec<Arc<LogPart>> = st
                .parts
                .iter()
                .filter(|p| !gone.contains(&p.meta.id))
                .cloned()
                .collect();
            parts.push(Arc::clone(&part));
            st.parts = Arc::new(parts);
            let now = Instant::now();
            for p in group {
                st.garbage.push((now, p.path.clone()));
                st.garbage
                    .push((now, index_path(&self.data_dir, p.meta.id)));
            }
        }
        self.text_indexes.lock().retain(|id, _| !gone.contains(id));
        tracing::debug!(%project, %day, parts_in = group.len(), rows = rows_in, "merged log parts");
        Ok(())
    }
}
