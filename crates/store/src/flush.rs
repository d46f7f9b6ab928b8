//! Flush: frozen memtable → Parquet parts → manifest, and the background loop.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::convert::Row;
use crate::deletes::{add_durable, add_live, locate};
use crate::manifest::Manifest;
use crate::memtable::Memtable;
use crate::parts::{day_of, write_part};
use crate::{Error, Store};

impl Store {
    /// Freezes the active memtable (if not empty) and flushes every frozen
    /// memtable. Returns when all data written before the call is in parts.
    #[tracing::instrument(name = "store.flush", skip_all)]
    pub async fn flush_all(&self) -> Result<(), Error> {
        self.check_writable()?;
        let gate = self.inner.flush_gate.clone().lock_owned().await;
        let store = self.clone();
        // The gate goes with the blocking work, not with this future: when
        // the caller is dropped mid-flush (the background loop is aborted at
        // shutdown), the flush still runs to its end before the next flush
        // may start. Releasing it early let a second flush write the same
        // frozen memtable again, duplicating its rows.
        tokio::task::spawn_blocking(move || {
            let _gate = gate;
            store.freeze()?;
            #[cfg(test)]
            if let Some(hook) = store.inner.after_freeze.lock().take() {
                hook();
            }
            store.flush_frozen()
        })
        .await
        .map_err(|e| Error::Internal(format!("flush task failed: {e}")))?
    }

    pub(crate) fn freeze(&self) -> Result<(), Error> {
        // Hold the append gate so no append sits between WAL write and apply.
        let _append = self.inner.append_gate.lock();
        let mut st = self.inner.state.lock();
        if st.active.is_empty() {
            return Ok(());
        }
        let mut mt = std::mem::take(&mut st.active);
        // Under the append gate: the rollups reflect exactly the records up
        // to this memtable's max_seq.
        mt.hour_days = st.rollups.take_dirty_days(mt.max_seq);
        mt.rollups = Some(st.rollups.snapshot(mt.max_seq));
        st.frozen.push(Arc::new(mt));
        drop(st);
        self.inner.wal.rotate()?;
        Ok(())
    }

    #[tracing::instrument(name = "store.flush_frozen", skip_all)]
    fn flush_frozen(&self) -> Result<(), Error> {
        loop {
            let Some(mt) = self.inner.state.lock().frozen.first().cloned() else {
                return Ok(());
            };
            self.flush_one(&mt)?;
        }
    }

    fn flush_one(&self, mt: &Arc<Memtable>) -> Result<(), Error> {
        let now_ns = loupe_model::time::now_ns();
        // Rows superseded while frozen are written too: until the newer
        // version is flushed, replay needs them as its merge base. They stay
        // hidden, and compaction drops them once the hiding is durable.
        let mut groups: BTreeMap<(String, String), Vec<&Row>> = BTreeMap::new();
        for row in mt.rows.values() {
            let day = day_of(row.span.event_time().unwrap_or(now_ns));
            groups
                .entry((row.span.project.clone(), day))
                .or_default()
                .push(row.as_ref());
        }
        let first_id = {
            let mut st = self.inner.state.lock();
            let id = st.manifest.next_part_id;
            st.manifest.next_part_id += groups.len() as u64;
            id
        };
        let dir = self.inner.config.data_dir.clone();
        let mut new_parts = Vec::with_capacity(groups.len());
        for (i, ((project, day), rows)) in groups.into_iter().enumerate() {
            new_parts.push(Arc::new(write_part(
                &dir,
                first_id + i as u64,
                &project,
                &day,
                0,
                rows,
            )?));
        }
        // The rollups of this seq (and the hour-tier days they name) are on
        // disk before the manifest names it.
        crate::rollups::store_days(&dir, &mt.hour_days)?;
        if let Some(snap) = &mt.rollups {
            crate::rollups::store(&dir, snap)?;
        }
        // The first query of the new parts reads no footer (`warm.rs`).
        crate::warm::warm(self.inner.parquet_metadata.as_ref(), &new_parts, None);
        let flushed_seq;
        {
            let mut st = self.inner.state.lock();
            let mut manifest = st.manifest.clone();
            manifest
                .parts
                .extend(new_parts.iter().map(|p| p.meta.clone()));
            manifest.flushed_seq = manifest.flushed_seq.max(mt.max_seq);
            manifest.next_version = st.next_version;
            let mut parts = st.parts.as_ref().clone();
            parts.extend(new_parts.iter().cloned());
            // This memtable's hiding becomes durable: every version it hid
            // is in a part now (it hides only older memtables' rows, and
            // those flushed first).
            let mut durable: Vec<u64> = mt.pending_hidden.clone();
            durable.sort_unstable();
            durable.dedup();
            let (found, missing) = locate(&parts, &durable);
            if !missing.is_empty() {
                tracing::warn!(
                    versions = missing.len(),
                    "flushed memtable hid row versions no part holds"
                );
            }
            for (part, positions) in &found {
                add_durable(&mut manifest.deletes, *part, positions);
            }
            manifest.store(&dir)?;
            st.manifest = manifest;
            st.parts = Arc::new(parts);
            let hidden = Arc::make_mut(&mut st.hidden);
            for v in &durable {
                hidden.remove(v);
            }
            // Rows of the new parts that later memtables hid while this one
            // was frozen: their positions exist only now.
            let pending: Vec<u64> = {
                let mut v: Vec<u64> = st.hidden.iter().copied().collect();
                v.sort_unstable();
                v
            };
            let (in_new, _) = locate(&new_parts, &pending);
            for (part, positions) in &found {
                add_live(&mut st.deletes, *part, positions);
            }
            for (part, positions) in &in_new {
                add_live(&mut st.deletes, *part, positions);
            }
            st.frozen.retain(|m| !Arc::ptr_eq(m, mt));
            // Contexts of traces now only in parts are dropped (bounded
            // memory); the next span of such a trace looks them up again.
            let active_traces: HashSet<_> = st.active.by_trace.keys().cloned().collect();
            let frozen_traces: HashSet<_> = st
                .frozen
                .iter()
                .flat_map(|m| m.by_trace.keys().cloned())
                .collect();
            st.contexts.retain(|k, ctx| {
                if mt.by_trace.contains_key(k) {
                    ctx.in_parts = true;
                }
                active_traces.contains(k) || frozen_traces.contains(k)
            });
            flushed_seq = st.manifest.flushed_seq;
        }
        self.inner.wal.delete_flushed(flushed_seq)?;
        if let Some(snap) = &mt.rollups {
            crate::rollups::remove_stale(&dir, flushed_seq, &snap.day_files)?;
        }
        tracing::debug!(
            parts = new_parts.len(),
            rows = mt.rows.len(),
            flushed_seq,
            "flushed memtable"
        );
        Ok(())
    }

    pub(crate) async fn background_loop(&self) {
        let tick = Duration::from_secs(1);
        let mut since_maintenance = Duration::ZERO;
        // Maintenance runs beside this loop, not in it: a pass over a large
        // store takes minutes, and flushes must go on meanwhile or
        // unflushed data fills up and appends are refused (a backfill of
        // 1M runs stalled twice for two minutes). Aborting the loop aborts
        // the pass's task too (its blocking work finishes, as a flush's does).
        let mut maintenance = AbortOnDrop(None);
        loop {
            let _ = tokio::time::timeout(tick, self.inner.flush_wake.notified()).await;
            let due = {
                let st = self.inner.state.lock();
                let cfg = &self.inner.config;
                !st.frozen.is_empty()
                    || st.active.bytes >= cfg.memtable_bytes
                    || st
                        .active
                        .first_write
                        .is_some_and(|t| t.elapsed() >= cfg.flush_age)
            };
            if due && let Err(e) = self.flush_all().await {
                tracing::error!(error = %e, "flush failed; will retry");
            }
            if self.logs_flush_due()
                && let Err(e) = self.flush_logs().await
            {
                tracing::error!(error = %e, "log flush failed; will retry");
            }
            since_maintenance += tick;
            let running = maintenance.0.as_ref().is_some_and(|h| !h.is_finished());
            if since_maintenance >= self.inner.config.maintenance_interval
                && !running
                && !self.stopping()
            {
                since_maintenance = Duration::ZERO;
                let store = self.clone();
                maintenance.0 = Some(tokio::spawn(async move {
                    if let Err(e) = store.maintain().await {
                        tracing::error!(error = %e, "maintenance failed; will retry");
                    }
                }));
            }
        }
    }
}

/// A task aborted when this is dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// Deletes temp files and Parquet files the manifest does not name: what a
/// crash between writing a part and committing the manifest leaves behind.
pub(crate) fn remove_orphans(data_dir: &Path, manifest: &Manifest) -> Result<(), Error> {
    use crate::parts::Location;
    // A cold part's path names no local file: one left there is the copy a
    // move committed but had not yet deleted.
    let live: HashSet<_> = manifest
        .parts
        .iter()
        .filter(|p| p.location == Location::Hot)
        .map(|p| data_dir.join(&p.path))
        .chain(
            manifest
                .parts
                .iter()
                .filter(|p| p.location == Location::Cold)
                .map(|p| crate::cold::ids_path(data_dir, p.id)),
        )
        .collect();
    for root in [data_dir.join("parts"), data_dir.join(crate::cold::IDS_DIR)] {
        if !root.exists() {
            continue;
        }
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
                let path = entry.map_err(|e| Error::io(&dir, e))?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if !live.contains(&path) {
                    tracing::warn!(path = %path.display(), "removing file left by an interrupted flush, compaction or move");
                    std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                }
            }
        }
    }
    Ok(())
}
