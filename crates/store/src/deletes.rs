//! Deletion vectors: which rows of a part are superseded.
//!
//! A row version in a part is *hidden* when a later version of the same span
//! supersedes it. Instead of one global list of hidden versions (which every
//! scan had to test every row against: 215k versions after a backfill made a
//! count take 18 s), each part carries the row positions it hides, as a
//! roaring bitmap. A scan turns the bitmap into a Parquet row selection, so
//! its cost follows that part's hidden rows only, and a part with none pays
//! nothing.
//!
//! Two layers exist per part: the *durable* vector (in the manifest,
//! `Manifest::deletes`), whose rows compaction may drop, and the *live*
//! vector in memory (`State::deletes`), which adds the rows hidden by
//! memtables not yet flushed. A row hidden only in memory is never dropped:
//! after a crash, WAL replay merges onto it again.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use roaring::RoaringBitmap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::parts::Part;

/// Row positions hidden in one part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeletionVector(pub RoaringBitmap);

/// Live deletion vectors by part id (parts without hidden rows are absent).
pub(crate) type LiveDeletes = Arc<HashMap<u64, Arc<DeletionVector>>>;

impl DeletionVector {
    /// Number of hidden rows.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether no row is hidden.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the row at `position` is hidden.
    pub fn contains(&self, position: u32) -> bool {
        self.0.contains(position)
    }

    /// Hides the row at `position`.
    pub fn insert(&mut self, position: u32) {
        self.0.insert(position);
    }

    /// The selection of the visible rows among `rows` rows (`None` if every
    /// row is visible). Its length is proportional to the hidden rows.
    pub fn visible_selection(&self, rows: usize) -> Option<RowSelection> {
        self.visible_selection_in(std::slice::from_ref(&(0..rows)))
    }

    /// As [`Self::visible_selection`] for a reader limited to some row
    /// groups: `ranges` are their row ranges in the file, ascending, and the
    /// selection covers their concatenation.
    pub fn visible_selection_in(&self, ranges: &[std::ops::Range<usize>]) -> Option<RowSelection> {
        if self.is_empty() {
            return None;
        }
        let mut selectors = Vec::new();
        for range in ranges {
            let mut at = range.start;
            let (Ok(lo), Ok(hi)) = (u32::try_from(range.start), u32::try_from(range.end)) else {
                // Positions are u32: a range past them hides nothing.
                selectors.push(RowSelector::select(range.len()));
                continue;
            };
            for p in self.0.range(lo..hi) {
                let p = p as usize;
                if p > at {
                    selectors.push(RowSelector::select(p - at));
                }
                selectors.push(RowSelector::skip(1));
                at = p + 1;
            }
            if at < range.end {
                selectors.push(RowSelector::select(range.end - at));
            }
        }
        Some(RowSelection::from(selectors))
    }

    /// `positions` (ascending) without the hidden ones.
    pub fn retain_visible(&self, positions: &mut Vec<u32>) {
        if !self.is_empty() {
            positions.retain(|p| !self.0.contains(*p));
        }
    }
}

/// Persisted as base64 of the roaring bitmap's portable serialization: a few
/// bytes per hidden row, where a JSON list of numbers took about seven.
impl Serialize for DeletionVector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(self.0.serialized_size());
        self.0
            .serialize_into(&mut bytes)
            .map_err(serde::ser::Error::custom)?;
        s.serialize_str(&STANDARD.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for DeletionVector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        let bitmap =
            RoaringBitmap::deserialize_from(bytes.as_slice()).map_err(serde::de::Error::custom)?;
        Ok(Self(bitmap))
    }
}

/// The live vector of `part` in a snapshot (empty if it hides nothing).
pub(crate) fn of(deletes: &HashMap<u64, Arc<DeletionVector>>, part: u64) -> &DeletionVector {
    static EMPTY: std::sync::LazyLock<DeletionVector> =
        std::sync::LazyLock::new(DeletionVector::default);
    deletes.get(&part).map_or(&EMPTY, |dv| dv.as_ref())
}

/// Finds where each version lives among `parts`: part id → positions.
/// Versions found in no part are returned apart (sorted input, any order
/// out). Cost: per part, a range search in `versions` and one position
/// lookup per version inside the part's version range.
pub(crate) fn locate(parts: &[Arc<Part>], versions: &[u64]) -> (HashMap<u64, Vec<u32>>, Vec<u64>) {
    debug_assert!(versions.is_sorted());
    let mut found: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut located = vec![false; versions.len()];
    for part in parts {
        let Some((lo, hi)) = part.index.version_range() else {
            continue;
        };
        let from = versions.partition_point(|&v| v < lo);
        let to = versions.partition_point(|&v| v <= hi);
        for (i, &v) in versions.iter().enumerate().take(to).skip(from) {
            if let Some(p) = part.index.position_of(v) {
                found.entry(part.meta.id).or_default().push(p);
                located[i] = true;
            }
        }
    }
    let missing = versions
        .iter()
        .zip(located)
        .filter(|(_, l)| !l)
        .map(|(v, _)| *v)
        .collect();
    (found, missing)
}

/// Adds `positions` to the durable vector of `part` in a manifest's
/// `deletes` (written when that manifest is stored).
pub(crate) fn add_durable(
    deletes: &mut std::collections::BTreeMap<u64, DeletionVector>,
    part: u64,
    positions: &[u32],
) {
    let dv = deletes.entry(part).or_default();
    for &p in positions {
        dv.insert(p);
    }
}

/// Adds `positions` to the live vector of `part` (copy on write: scans hold
/// snapshots).
pub(crate) fn add_live(deletes: &mut LiveDeletes, part: u64, positions: &[u32]) {
    if positions.is_empty() {
        return;
    }
    let dv = Arc::make_mut(Arc::make_mut(deletes).entry(part).or_default());
    for &p in positions {
        dv.insert(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selected(sel: &RowSelection) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = 0;
        for s in sel.iter() {
            if !s.skip {
                out.extend(at..at + s.row_count);
            }
            at += s.row_count;
        }
        out
    }

    #[test]
    fn selection_skips_exactly_the_hidden_rows() {
        let mut dv = DeletionVector::default();
        assert!(dv.visible_selection(10).is_none());
        for p in [0, 3, 4, 9] {
            dv.insert(p);
        }
        let sel = dv.visible_selection(10).expect("selection");
        assert_eq!(selected(&sel), vec![1, 2, 5, 6, 7, 8]);
        assert_eq!(sel.row_count() + sel.skipped_row_count(), 10);
        let mut positions = vec![0, 1, 4, 5];
        dv.retain_visible(&mut positions);
        assert_eq!(positions, vec![1, 5]);
    }

    #[test]
    fn vector_round_trips_through_json() {
        let mut dv = DeletionVector::default();
        for p in [1, 70_000, 70_001, 1 << 30] {
            dv.insert(p);
        }
        let text = serde_json::to_string(&dv).expect("serialize");
        let back: DeletionVector = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, dv);
        assert!(serde_json::from_str::<DeletionVector>("\"not base64!\"").is_err());
    }
}
