//! Moving parts to the cold tier: a maintenance step (beside flushes).
//!
//! A part moves when its whole UTC day ended more than `hot_days` ago. Per
//! part: (1) copy the file to the tier and verify the copy by reading it
//! back; (2) write the part's local id file; (3) commit: one manifest
//! replacement marks the part cold, and the in-memory part list swaps in
//! the cold part (same id, id index, deletion vector and text index);
//! (4) the local file is deleted after the grace period, like any replaced
//! file, so queries that listed it finish.
//!
//! A crash before (3) leaves the part hot and whole; the copy (complete or
//! not) is overwritten by the next attempt, and a stale id file is removed
//! at open. A crash after (3) leaves the local file unreferenced, removed
//! at open. At no point does the manifest name a part twice or not at all,
//! so queries see every row exactly once.
//!
//! Compaction does not touch cold parts: a day past `hot_days` is closed,
//! its tiers were merged while it was hot, and rewriting it would mean a
//! download and an upload. Rows a late update supersedes stay hidden by
//! the part's deletion vector.

use std::sync::Arc;
use std::time::Instant;

use crate::deletes::DeletionVector;
use crate::parts::{ID_COLUMNS, Location, Part, day_of, read_rows, write_id_file};
use crate::{Error, Garbage, Store};

/// Bytes moved per maintenance pass at most (at least one part moves), so
/// enabling the tier on a large store spreads the first move over passes.
const MOVE_BYTES_PER_PASS: u64 = 256 << 20;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

impl Store {
    /// Moves hot parts older than `hot_days` to the cold tier, oldest first,
    /// up to [`MOVE_BYTES_PER_PASS`], stopping early when the store shuts
    /// down. Returns (parts, bytes) moved. Runs in a maintenance pass;
    /// blocking.
    pub(crate) fn move_to_cold(&self, now_ns: i64) -> Result<(usize, u64), Error> {
        let Some(tier) = self.inner.cold.clone() else {
            return Ok((0, 0));
        };
        let hot_days = i64::from(self.inner.config.cold.hot_days);
        let Some(cutoff) = now_ns.checked_sub(hot_days.saturating_mul(DAY_NS)) else {
            return Ok((0, 0));
        };
        // Whole days only: a part moves when its day is before the cutoff's.
        let cutoff_day = day_of(cutoff);
        let mut due: Vec<Arc<Part>> = {
            let st = self.inner.state.lock();
            st.parts
                .iter()
                .filter(|p| !p.is_cold() && p.meta.day < cutoff_day)
                .cloned()
                .collect()
        };
        due.sort_by(|a, b| (&a.meta.day, a.meta.id).cmp(&(&b.meta.day, b.meta.id)));
        let (mut moved, mut bytes) = (0, 0);
        for part in due {
            if self.stopping() || (moved > 0 && bytes + part.meta.bytes > MOVE_BYTES_PER_PASS) {
                break;
            }
            if self.move_part(&tier, &part)? {
                moved += 1;
                bytes += part.meta.bytes;
            }
        }
        if moved > 0 {
            tracing::info!(parts = moved, bytes, tier = %tier.describe, "moved parts to the cold tier");
        }
        Ok((moved, bytes))
    }

    /// Moves one part; false when it left the store meanwhile.
    #[tracing::instrument(name = "cold.move", skip_all, fields(part = part.meta.id, project = %part.meta.project, day = %part.meta.day, bytes = part.meta.bytes))]
    fn move_part(&self, tier: &Arc<super::Tier>, part: &Arc<Part>) -> Result<bool, Error> {
        let data_dir = &self.inner.config.data_dir;
        // (1) copy and verify.
        tier.copy_in(&part.path, &part.meta.path)?;
        // (2) the id file, from the same local file.
        let ids = read_rows(&part.path, None, &ID_COLUMNS, &DeletionVector::default())?;
        let ids_path = super::ids_path(data_dir, part.meta.id);
        write_id_file(&ids_path, &ids)?;
        if let Some(pause) = tier.test_pause {
            tracing::info!(
                part = part.meta.id,
                "cold move: copied and verified, pausing before the commit (test hook)"
            );
            std::thread::sleep(pause);
        }
        // (3) commit.
        let mut st = self.inner.state.lock();
        let Some(at) = st.parts.iter().position(|p| p.meta.id == part.meta.id) else {
            // Retention dropped it meanwhile (it cannot: both run in one
            // maintenance pass; kept for safety): nothing references the copy.
            drop(st);
            let _ = std::fs::remove_file(&ids_path);
            tier.delete(&part.meta.path)?;
            return Ok(false);
        };
        let mut manifest = st.manifest.clone();
        let mut meta = part.meta.clone();
        meta.location = Location::Cold;
        for m in manifest.parts.iter_mut().filter(|m| m.id == meta.id) {
            m.location = Location::Cold;
        }
        manifest.store(data_dir)?;
        st.manifest = manifest;
        let mut parts: Vec<Arc<Part>> = st.parts.as_ref().clone();
        parts[at] = Arc::new(part.moved_to(meta, tier));
        st.parts = Arc::new(parts);
        // (4) the local file goes after the grace period.
        st.garbage
            .push((Instant::now(), Garbage::File(part.path.clone())));
        Ok(true)
    }
}
