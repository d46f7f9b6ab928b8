//! Compaction, retention and moves to the cold tier. Each only adds,
//! removes or relocates whole parts, in one manifest replacement each;
//! replaced files are deleted after a grace period so queries that already
//! listed them can finish. Which parts compaction rewrites is decided in
//! `compaction.rs` (hot parts only); moves are in `cold/mover.rs`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deletes::{DeletionVector, add_durable, add_live, locate};
use crate::parts::{Part, read_rows, write_part};
use crate::{Error, Garbage, Store};

/// How long a replaced file stays on disk.
const GRACE: Duration = Duration::from_secs(120);

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Parts merged away by compaction.
    pub compacted_parts: usize,
    /// Parts created by compaction.
    pub new_parts: usize,
    /// Hidden row versions physically dropped.
    pub dropped_rows: usize,
    /// Parts dropped by retention, both tiers.
    pub expired_parts: usize,
    /// Of `expired_parts`, those that were in the cold tier.
    pub expired_cold_parts: usize,
    /// Parts moved to the cold tier.
    pub moved_parts: usize,
    /// Bytes moved to the cold tier.
    pub moved_bytes: u64,
    /// Full-text indexes built (`Store::index_text`).
    pub indexed_parts: usize,
    /// Log parts dropped by retention.
    pub expired_log_parts: usize,
    /// Log parts merged away by compaction.
    pub compacted_log_parts: usize,
    /// Log parts written by compaction.
    pub new_log_parts: usize,
}

impl Store {
    /// One pass of retention, compaction and garbage deletion.
    pub async fn maintain(&self) -> Result<MaintenanceReport, Error> {
        self.maintain_at(loupe_model::time::now_ns()).await
    }

    /// As [`Store::maintain`], with "now" given (ns), for tests and tools.
    #[tracing::instrument(name = "store.maintain", skip_all)]
    pub async fn maintain_at(&self, now_ns: i64) -> Result<MaintenanceReport, Error> {
        self.check_writable()?;
        let gate = self.inner.maintenance_gate.clone().lock_owned().await;
        let store = self.clone();
        // As in `flush_all`: the gate is released when the work ends, even
        // if the caller was dropped, so no two passes overlap. Flushes do
        // not wait for a pass (`compact` says how it stays right).
        tokio::task::spawn_blocking(move || {
            let _gate = gate;
            store.maintain_blocking(now_ns)
        })
        .await
        .map_err(|e| Error::Internal(format!("maintenance task failed: {e}")))?
    }

    fn maintain_blocking(&self, now_ns: i64) -> Result<MaintenanceReport, Error> {
        let (expired_parts, expired_cold_parts) = self.expire(now_ns)?;
        let mut report = MaintenanceReport {
            expired_parts,
            expired_cold_parts,
            ..Default::default()
        };
        for group in self.compaction_candidates() {
            if self.stopping() {
                return Ok(report);
            }
            let (parts_in, parts_out, dropped) = self.compact(group)?;
            report.compacted_parts += parts_in;
            report.new_parts += parts_out;
            report.dropped_rows += dropped;
        }
        // Text indexes first, so a part moves with its index built from the
        // local file (a cold part without one would be fetched to build it).
        report.indexed_parts = self.index_text()?;
        if self.stopping() {
            return Ok(report);
        }
        (report.moved_parts, report.moved_bytes) = self.move_to_cold(now_ns)?;
        if self.stopping() {
            return Ok(report);
        }
        (
            report.expired_log_parts,
            report.compacted_log_parts,
            report.new_log_parts,
        ) = self.maintain_logs(now_ns)?;
        self.collect_garbage(false);
        Ok(report)
    }

    /// Drops the hour-tier days retention has removed (or will, at the next
    /// maintenance: the rule is the parts' rule, whole days before the
    /// cutoff's day), so the tier never answers for spans no longer stored.
    pub(crate) fn expire_hour_tier(&self, now_ns: i64) {
        const DAY_NS: i64 = 86_400 * 1_000_000_000;
        self.inner
            .state
            .lock()
            .rollups
            .expire_hours(|project, day| {
                self.retention_cutoff_day_ns(project, now_ns)
                    .is_some_and(|cutoff| day < cutoff.div_euclid(DAY_NS))
            });
    }

    /// Drops expired parts of both tiers; returns (all, cold) dropped.
    fn expire(&self, now_ns: i64) -> Result<(usize, usize), Error> {
        self.expire_hour_tier(now_ns);
        let mut st = self.inner.state.lock();
        let cfg = &self.inner.config;
        let expired: HashSet<u64> = st
            .parts
            .iter()
            .filter(|p| {
                crate::retention::expired(
                    self.retention_cutoff_day_ns(&p.meta.project, now_ns),
                    &p.meta.day,
                    p.meta.max_time,
                )
            })
            .map(|p| p.meta.id)
            .collect();
        if expired.is_empty() {
            return Ok((0, 0));
        }
        let mut manifest = st.manifest.clone();
        manifest.parts.retain(|p| !expired.contains(&p.id));
        manifest.deletes.retain(|id, _| !expired.contains(id));
        manifest.store(&cfg.data_dir)?;
        st.manifest = manifest;
        Arc::make_mut(&mut st.deletes).retain(|id, _| !expired.contains(id));
        let (gone, kept): (Vec<_>, Vec<_>) = st
            .parts
            .iter()
            .cloned()
            .partition(|p| expired.contains(&p.meta.id));
        st.parts = Arc::new(kept);
        crate::warm::forget(self.inner.parquet_metadata.as_ref(), &gone);
        // The analytics' cached hours of these projects are stale.
        for p in &gone {
            st.changes.touch_project(&p.meta.project);
        }
        let now = Instant::now();
        st.garbage.extend(gone.iter().map(|p| {
            let what = if p.is_cold() {
                Garbage::Cold {
                    id: p.meta.id,
                    rel: p.meta.path.clone(),
                }
            } else {
                Garbage::File(p.path.clone())
            };
            (now, what)
        }));
        drop(st);
        let cold = gone.iter().filter(|p| p.is_cold()).count();
        // Nothing is deleted silently: each dropped part, with its tier.
        for p in &gone {
            tracing::info!(
                project = %p.meta.project,
                day = %p.meta.day,
                part = %p.meta.path,
                rows = p.meta.rows,
                tier = if p.is_cold() { "cold" } else { "hot" },
                "retention dropped a part"
            );
        }
        tracing::info!(
            parts = gone.len(),
            hot_parts = gone.len() - cold,
            cold_parts = cold,
            "retention dropped parts"
        );
        Ok((gone.len(), cold))
    }

    /// Groups of parts worth rewriting (`compaction.rs`).
    fn compaction_candidates(&self) -> Vec<Vec<Arc<Part>>> {
        let st = self.inner.state.lock();
        // Cold parts are never compacted (`cold/mover.rs` says why).
        let hot: Vec<Arc<Part>> = st.parts.iter().filter(|p| !p.is_cold()).cloned().collect();
        crate::compaction::plan(
            &hot,
            &st.manifest.deletes,
            self.inner.config.compaction_min_parts,
        )
    }

    /// Rewrites a group (parts of one project and day) as one part. Drops
    /// only rows whose hiding is in the manifest (durable): a row hidden by
    /// an unflushed memtable is still the merge base that WAL replay would
    /// need after a crash, so it is kept, and stays hidden in the new part.
    ///
    /// Flushes go on meanwhile, and one may make more of the group's rows'
    /// hiding durable (in the old parts' vectors) after they were read:
    /// those rows are in the new part, so at the commit their versions
    /// find their positions there and join its durable vector.
    fn compact(&self, group: Vec<Arc<Part>>) -> Result<(usize, usize, usize), Error> {
        // The durable vectors as of the read.
        let durable: Vec<DeletionVector> = {
            let st = self.inner.state.lock();
            group
                .iter()
                .map(|p| {
                    st.manifest
                        .deletes
                        .get(&p.meta.id)
                        .cloned()
                        .unwrap_or_default()
                })
                .collect()
        };
        let mut rows = Vec::new();
        let mut rows_in = 0usize;
        let mut dropped = 0usize;
        // Each old part's row versions by position.
        let mut versions: Vec<Vec<u64>> = Vec::with_capacity(group.len());
        for (part, dv) in group.iter().zip(&durable) {
            let all = read_rows(&part.path, None, &[], &DeletionVector::default())?;
            rows_in += all.len();
            versions.push(all.iter().map(|r| r.version).collect());
            for (position, row) in all.into_iter().enumerate() {
                if u32::try_from(position).is_ok_and(|p| dv.contains(p)) {
                    dropped += 1;
                } else {
                    rows.push(row);
                }
            }
        }
        let (project, day) = (group[0].meta.project.clone(), group[0].meta.day.clone());
        let id = {
            let mut st = self.inner.state.lock();
            let id = st.manifest.next_part_id;
            st.manifest.next_part_id += 1;
            id
        };
        let new_part = if rows.is_empty() {
            None
        } else {
            Some(Arc::new(write_part(
                &self.inner.config.data_dir,
                id,
                &project,
                &day,
                1,
                rows.iter().collect(),
            )?))
        };
        let ids: HashSet<u64> = group.iter().map(|p| p.meta.id).collect();
        let cache = self.inner.parquet_metadata.as_ref();
        // The first query of the new part reads no footer (`warm.rs`).
        crate::warm::warm(cache, &new_part, None);
        #[cfg(test)]
        if let Some(hook) = self.inner.before_compaction_commit.lock().take() {
            hook();
        }
        let mut st = self.inner.state.lock();
        // Retention may have removed an input meanwhile: then give up this round.
        if st.parts.iter().filter(|p| ids.contains(&p.meta.id)).count() != ids.len() {
            crate::warm::forget(cache, &new_part);
            if let Some(p) = new_part {
                st.garbage
                    .push((Instant::now(), Garbage::File(p.path.clone())));
            }
            return Ok((0, 0, 0));
        }
        // Hiding made durable since the read: positions in the new part.
        let mut later: Vec<u64> = Vec::new();
        for ((part, before), versions) in group.iter().zip(&durable).zip(&versions) {
            let Some(now) = st.manifest.deletes.get(&part.meta.id) else {
                continue;
            };
            later.extend(
                now.0
                    .iter()
                    .filter(|&p| !before.contains(p))
                    .filter_map(|p| versions.get(p as usize).copied()),
            );
        }
        later.sort_unstable();
        let later = match &new_part {
            Some(p) if !later.is_empty() => locate(std::slice::from_ref(p), &later).0,
            _ => Default::default(),
        };
        let mut manifest = st.manifest.clone();
        manifest.parts.retain(|p| !ids.contains(&p.id));
        manifest
            .parts
            .extend(new_part.iter().map(|p| p.meta.clone()));
        manifest.deletes.retain(|id, _| !ids.contains(id));
        for (part, positions) in &later {
            add_durable(&mut manifest.deletes, *part, positions);
        }
        manifest.store(&self.inner.config.data_dir)?;
        st.manifest = manifest;
        let mut parts: Vec<_> = st
            .parts
            .iter()
            .filter(|p| !ids.contains(&p.meta.id))
            .cloned()
            .collect();
        parts.extend(new_part.iter().cloned());
        st.parts = Arc::new(parts);
        // Rows hidden only in memory (now, under the lock: hides made while
        // the group was read included) get their positions in the new part.
        Arc::make_mut(&mut st.deletes).retain(|id, _| !ids.contains(id));
        if let Some(p) = &new_part {
            let mut pending: Vec<u64> = st.hidden.iter().copied().collect();
            pending.sort_unstable();
            let (found, _) = locate(std::slice::from_ref(p), &pending);
            for (part, positions) in found.iter().chain(&later) {
                add_live(&mut st.deletes, *part, positions);
            }
        }
        let now = Instant::now();
        st.garbage
            .extend(group.iter().map(|p| (now, Garbage::File(p.path.clone()))));
        drop(st);
        crate::warm::forget(cache, &group);
        // Why the group was rewritten shows in the counts: hidden rows
        // dropped, several parts merged, or parts of an earlier layout.
        let earlier_layout_parts = group
            .iter()
            .filter(|p| p.meta.layout < crate::parts::LAYOUT)
            .count();
        tracing::info!(
            project = %project,
            day = %day,
            parts_in = group.len(),
            earlier_layout_parts,
            rows_in,
            rows_out = rows.len(),
            dropped_hidden_rows = dropped,
            "compacted: dropped superseded row versions"
        );
        Ok((group.len(), usize::from(new_part.is_some()), dropped))
    }

    /// Deletes replaced files past their grace period (all of them if `now`).
    pub(crate) fn collect_garbage(&self, all: bool) {
        self.collect_log_garbage(all);
        let due: Vec<_> = {
            let mut st = self.inner.state.lock();
            let (due, keep): (Vec<_>, Vec<_>) = st
                .garbage
                .drain(..)
                .partition(|(at, _)| all || at.elapsed() >= GRACE);
            st.garbage = keep;
            due
        };
        for (_, what) in due {
            match what {
                Garbage::File(path) => remove_file(&path),
                Garbage::Cold { id, rel } => {
                    if let Some(tier) = &self.inner.cold {
                        // A failed delete leaves an object no manifest
                        // names: space, never data a query sees.
                        if let Err(e) = tier.delete(&rel) {
                            tracing::warn!(part = %rel, error = %e, "could not delete a cold part from the tier");
                        }
                        tier.cache.remove(&rel);
                    }
                    remove_file(&crate::cold::ids_path(&self.inner.config.data_dir, id));
                }
            }
        }
    }
}

fn remove_file(path: &std::path::Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "could not delete replaced part");
    }
}
