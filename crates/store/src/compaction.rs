//! Which parts compaction rewrites, and why.
//!
//! Two needs trigger a rewrite, both inside one (project, day):
//!
//! - **Hidden rows.** A part whose durably hidden rows (its manifest
//!   deletion vector) exceed [`HIDDEN_FRACTION`] of its rows is rewritten
//!   without them, alone unless it also joins a size tier below. This is what
//!   cleans up after a backfill or a wave of updates (running → finished),
//!   however few parts the day has. Each such rewrite removes at least that
//!   fraction of what it writes, so rows written per row dropped stay below
//!   `1 / HIDDEN_FRACTION`.
//! - **Small parts, tiered by size.** Parts are sorted by rows and cut into
//!   tiers where each part has at most [`TIER_RATIO`] times the rows of the
//!   tier's smallest (parts under [`SMALL_ROWS`] all count as that size).
//!   A tier with `compaction_min_parts` parts is merged. A row is rewritten
//!   once per tier it climbs, about log₄ of the day's size, never once per
//!   new part (no "rewrite the whole day for every flush").
//! - **Days left behind.** A day before the newest day its project holds
//!   is no longer written in order: live traffic has moved to a new day,
//!   or a backfill (which reads history oldest first) has moved past it.
//!   Its tiers merge from half of `compaction_min_parts` (two by default),
//!   so a day that ended with two or three flushed parts does not keep
//!   them for good. (A backfill's flush sizes used to decide whether each
//!   day stayed at three parts, below the default of four, and its scans
//!   ~1.5× slower.) Late rows for such a day still climb the same tiers,
//!   so the bound on rewrites holds.
//! - **Parts of an earlier layout.** A part written before the current
//!   layout (`PartMeta::layout` below [`crate::parts::LAYOUT`]: an
//!   upgrade from a build without the mirror columns, or with the texts in
//!   the rows' order) is answered at the old cost (an expression adapter
//!   that decodes its maps, a filter on the workspace that cannot be pushed
//!   into it; texts in their least compressed order). It is rewritten alone, newest
//!   day first, at most [`MAX_MERGE_ROWS`] rows of such parts per pass
//!   (always at least one part), so an upgrade's rewrite is spread over
//!   passes and never holds flushes back for long. Each old part is
//!   rewritten once; cold parts stay as they are.
//! - **Bounded memory.** A merge reads its parts whole into memory (a span
//!   row with Dify payloads is ~5 KB there), so a group holds at most
//!   [`MAX_MERGE_ROWS`] rows: a busy day ends as several parts of about
//!   that size, not one. Before this bound, compacting a day of 1.5M spans
//!   took ~10 GB, and a day of 5M spans exhausted 24 GB.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::deletes::DeletionVector;
use crate::parts::Part;

/// Share of a part's rows that, durably hidden, makes it worth rewriting.
pub(crate) const HIDDEN_FRACTION: f64 = 0.2;

/// Size ratio between the largest and the smallest part of one tier.
const TIER_RATIO: u64 = 4;

/// Parts under this many rows are all "small": one tier.
const SMALL_ROWS: u64 = 16 * 1024;

/// Rows one span merge reads at most (about 1.5 GB in memory).
pub(crate) const MAX_MERGE_ROWS: u64 = 256 * 1024;

/// The groups to rewrite: each non-empty, of one project and day.
pub(crate) fn plan(
    parts: &[Arc<Part>],
    durable: &BTreeMap<u64, DeletionVector>,
    min_parts: usize,
) -> Vec<Vec<Arc<Part>>> {
    let min_parts = min_parts.max(2);
    let mut days: BTreeMap<(&str, &str), Vec<&Arc<Part>>> = BTreeMap::new();
    let mut newest: BTreeMap<&str, &str> = BTreeMap::new();
    for p in parts {
        let (project, day) = (p.meta.project.as_str(), p.meta.day.as_str());
        days.entry((project, day)).or_default().push(p);
        let last = newest.entry(project).or_insert(day);
        *last = (*last).max(day);
    }
    let mut groups: Vec<Vec<Arc<Part>>> = Vec::new();
    for ((project, date), mut day) in days {
        // `YYYY-MM-DD` strings order as the days do.
        let behind = newest.get(project).is_some_and(|last| date < *last);
        let min_parts = if behind {
            (min_parts / 2).max(2)
        } else {
            min_parts
        };
        day.sort_by_key(|p| (p.meta.rows, p.meta.id));
        let mut chosen: HashSet<u64> = HashSet::new();
        let rows: Vec<u64> = day.iter().map(|p| p.meta.rows).collect();
        for tier in size_tiers(&rows, min_parts, MAX_MERGE_ROWS) {
            chosen.extend(day[tier.clone()].iter().map(|p| p.meta.id));
            groups.push(day[tier].iter().map(|p| Arc::clone(p)).collect());
        }
        for p in day {
            if !chosen.contains(&p.meta.id) && hidden_share(p, durable) > HIDDEN_FRACTION {
                groups.push(vec![Arc::clone(p)]);
            }
        }
    }
    let planned: HashSet<u64> = groups.iter().flatten().map(|p| p.meta.id).collect();
    let mut old: Vec<&Arc<Part>> = parts
        .iter()
        .filter(|p| p.meta.layout < crate::parts::LAYOUT && !planned.contains(&p.meta.id))
        .collect();
    old.sort_by(|a, b| b.meta.day.cmp(&a.meta.day).then(a.meta.id.cmp(&b.meta.id)));
    let mut budget = MAX_MERGE_ROWS;
    for p in old {
        if p.meta.rows > budget && budget < MAX_MERGE_ROWS {
            break;
        }
        budget = budget.saturating_sub(p.meta.rows);
        groups.push(vec![Arc::clone(p)]);
    }
    groups
}

/// The tiers worth merging among parts of one (project, day), given their
/// row counts in ascending order: ranges of at least `min_parts` parts,
/// each at most [`TIER_RATIO`] times the rows of its smallest (parts under
/// [`SMALL_ROWS`] counting as that size), cut into consecutive groups of
/// at most `max_rows` rows in all. Shared by span and log parts.
pub(crate) fn size_tiers(
    sorted_rows: &[u64],
    min_parts: usize,
    max_rows: u64,
) -> Vec<std::ops::Range<usize>> {
    let min_parts = min_parts.max(2);
    let mut out = Vec::new();
    let mut start = 0;
    while start < sorted_rows.len() {
        let floor = sorted_rows[start].max(SMALL_ROWS);
        let end = start
            + sorted_rows[start..]
                .iter()
                .take_while(|r| **r <= floor.saturating_mul(TIER_RATIO))
                .count();
        // The tier, cut where the next part would pass `max_rows`.
        let mut from = start;
        while from < end {
            let mut to = from;
            let mut total = 0u64;
            while to < end && total.saturating_add(sorted_rows[to]) <= max_rows {
                total += sorted_rows[to];
                to += 1;
            }
            if to - from >= min_parts {
                out.push(from..to);
            }
            from = to.max(from + 1);
        }
        start = end.max(start + 1);
    }
    out
}

/// Durably hidden rows of `part` over its rows.
fn hidden_share(part: &Part, durable: &BTreeMap<u64, DeletionVector>) -> f64 {
    let hidden = durable.get(&part.meta.id).map_or(0, DeletionVector::len);
    if part.meta.rows == 0 {
        return 0.0;
    }
    hidden as f64 / part.meta.rows as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::Row;
    use crate::parts::write_part;
    use loupe_model::Span;

    fn part(dir: &std::path::Path, id: u64, day: &str, rows: usize) -> Arc<Part> {
        part_of(dir, id, "p", day, rows)
    }

    fn part_of(dir: &std::path::Path, id: u64, project: &str, day: &str, rows: usize) -> Arc<Part> {
        Arc::new(written(dir, id, project, day, rows))
    }

    fn written(dir: &std::path::Path, id: u64, project: &str, day: &str, rows: usize) -> Part {
        let rows: Vec<Row> = (0..rows)
            .map(|i| Row {
                span: Span::new(project, format!("s{id}-{i}")),
                version: id * 1_000_000 + i as u64,
            })
            .collect();
        write_part(dir, id, project, day, 0, rows.iter().collect()).expect("part")
    }

    /// A part as a build before the mirror columns recorded it.
    fn old_part(dir: &std::path::Path, id: u64, day: &str, rows: usize) -> Arc<Part> {
        let mut p = written(dir, id, "p", day, rows);
        p.meta.layout = 0;
        Arc::new(p)
    }

    fn ids(groups: &[Vec<Arc<Part>>]) -> Vec<Vec<u64>> {
        let mut out: Vec<Vec<u64>> = groups
            .iter()
            .map(|g| {
                let mut ids: Vec<u64> = g.iter().map(|p| p.meta.id).collect();
                ids.sort_unstable();
                ids
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn small_parts_of_a_day_merge_once_a_tier_is_full_and_a_big_part_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let big = part(d, 1, "2026-01-01", 70_000);
        let small: Vec<_> = (2..5).map(|i| part(d, i, "2026-01-01", 10)).collect();
        // An older day's part: 2026-01-01 is the newest day.
        let other_day = part(d, 9, "2025-12-31", 10);
        let mut all = vec![big.clone(), other_day];
        all.extend(small.iter().cloned());
        let none = BTreeMap::new();
        assert_eq!(ids(&plan(&all, &none, 4)), Vec::<Vec<u64>>::new());
        all.push(part(d, 5, "2026-01-01", 20));
        // The four small parts form a tier; the 70k-row part is above it.
        assert_eq!(ids(&plan(&all, &none, 4)), vec![vec![2, 3, 4, 5]]);
    }

    /// A day behind the newest (a backfill moved past it, or live traffic
    /// into a new day) merges a tier from half of `min_parts` (at least
    /// two); the newest day waits for `min_parts`. Parts too far apart in
    /// size still stay apart.
    #[test]
    fn days_left_behind_merge_their_small_parts_from_two() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut all = vec![
            part(d, 1, "2026-01-01", 30),
            part(d, 2, "2026-01-01", 40),
            part(d, 3, "2026-01-02", 30),
            part(d, 4, "2026-01-02", 40),
            part(d, 5, "2026-01-02", 50),
            part(d, 6, "2026-01-03", 30),
            part(d, 7, "2026-01-03", 40),
            part(d, 8, "2026-01-03", 50),
        ];
        let none = BTreeMap::new();
        assert_eq!(ids(&plan(&all, &none, 4)), vec![vec![1, 2], vec![3, 4, 5]]);
        assert_eq!(ids(&plan(&all, &none, 6)), vec![vec![3, 4, 5]]);
        // A setting that all but turns compaction off holds for them too.
        assert!(plan(&all, &none, 1000).is_empty());
        // Another project's newer day changes nothing here.
        all.push(part_of(d, 10, "q", "2026-02-01", 1));
        assert_eq!(ids(&plan(&all, &none, 4)), vec![vec![1, 2], vec![3, 4, 5]]);
        // A big part and a small one of a day left behind stay apart.
        let apart = vec![
            part(d, 11, "2026-01-01", 70_000),
            part(d, 12, "2026-01-01", 10),
            part(d, 13, "2026-01-02", 10),
        ];
        assert!(plan(&apart, &none, 4).is_empty());
    }

    /// A tier over the memory bound is cut into groups under it; a cut
    /// with fewer than `min_parts` parts waits.
    #[test]
    fn tiers_are_cut_at_the_merge_bound() {
        let rows = [100_000u64, 110_000, 120_000, 130_000, 140_000, 150_000];
        // One size tier (all within 4× of the smallest), 750k rows.
        assert_eq!(size_tiers(&rows, 2, u64::MAX), vec![0..6]);
        let cut = size_tiers(&rows, 2, 256 * 1024);
        assert_eq!(cut, vec![0..2, 2..4], "150k-row parts pair past the bound");
        for r in &cut {
            assert!(rows[r.clone()].iter().sum::<u64>() <= 256 * 1024);
        }
        assert!(size_tiers(&rows, 3, 256 * 1024).is_empty());
        // Small parts still merge in one group.
        assert_eq!(size_tiers(&[10, 20, 30, 40], 4, 256 * 1024), vec![0..4]);
    }

    #[test]
    fn a_part_with_many_durably_hidden_rows_is_rewritten_even_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = part(dir.path(), 1, "2026-01-01", 100);
        let mut durable = BTreeMap::new();
        let dv: &mut DeletionVector = durable.entry(1).or_default();
        for i in 0..20 {
            dv.insert(i);
        }
        // 20 % is not over the threshold; 21 % is.
        assert!(plan(std::slice::from_ref(&p), &durable, 4).is_empty());
        durable.entry(1).or_default().insert(50);
        assert_eq!(ids(&plan(&[p], &durable, 4)), vec![vec![1]]);
    }

    /// After an upgrade, parts of the earlier layout are rewritten alone,
    /// newest day first, a bounded number of rows per pass; one already in
    /// a tier is rewritten there, and parts of the current layout are not
    /// touched for it.
    #[test]
    fn parts_of_an_earlier_layout_are_rewritten_a_bounded_share_per_pass() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let none = BTreeMap::new();
        let current = part(d, 1, "2026-01-03", 10);
        assert!(plan(std::slice::from_ref(&current), &none, 4).is_empty());
        let mut all = vec![
            current,
            old_part(d, 2, "2026-01-01", 100_000),
            old_part(d, 3, "2026-01-02", 100_000),
            old_part(d, 4, "2026-01-03", 100_000),
        ];
        // 256Ki rows per pass: the two newest days' old parts; the third
        // would pass the bound and waits for the next pass.
        assert_eq!(ids(&plan(&all, &none, 4)), vec![vec![3], vec![4]]);
        // A part larger than the bound is still rewritten, alone.
        let huge = vec![old_part(d, 5, "2026-01-01", 300_000)];
        assert_eq!(ids(&plan(&huge, &none, 4)), vec![vec![5]]);
        // Old parts in a full tier are merged with it, once.
        all = (6..10).map(|i| old_part(d, i, "2026-01-05", 10)).collect();
        assert_eq!(ids(&plan(&all, &none, 4)), vec![vec![6, 7, 8, 9]]);
    }
}
