//! The joint counts the attribution reads: one row per distinct tuple of
//! dimension values (values interned as small integers), with population
//! and target counts for the window and the baseline.
//!
//! Every single value, pair and longer conjunction is counted from these
//! rows, so the backend is asked a handful of group-bys (the hour rollups
//! answer them when they can) and everything else happens here, in memory
//! bounded by the number of distinct tuples.

use foldhash::HashMap;

/// Window or baseline.
pub const WINDOW: usize = 0;
/// The baseline side.
pub const BASELINE: usize = 1;

/// A condition: dimension index and interned value (never 0, the null).
pub type Cond = (usize, u32);

/// Interned values of every dimension; id 0 is "unset".
#[derive(Debug, Default)]
pub struct Interner {
    ids: Vec<HashMap<String, u32>>,
    names: Vec<Vec<String>>,
}

impl Interner {
    /// An interner for `dims` dimensions.
    pub fn new(dims: usize) -> Self {
        Self {
            ids: (0..dims).map(|_| HashMap::default()).collect(),
            names: (0..dims).map(|_| vec![String::new()]).collect(),
        }
    }

    /// The id of `value` in dimension `dim` (0 for none or empty).
    pub fn id(&mut self, dim: usize, value: Option<&str>) -> u32 {
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            return 0;
        };
        if let Some(id) = self.ids[dim].get(v) {
            return *id;
        }
        let id = self.names[dim].len() as u32;
        self.names[dim].push(v.to_owned());
        self.ids[dim].insert(v.to_owned(), id);
        id
    }

    /// The text of a value id.
    pub fn name(&self, dim: usize, id: u32) -> &str {
        self.names[dim].get(id as usize).map_or("", String::as_str)
    }
}

/// One tuple of values with its counts.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Value id per dimension (0: unset).
    pub vals: Vec<u32>,
    /// Population, per side.
    pub n: [u64; 2],
    /// Target, per side.
    pub k: [u64; 2],
}

impl Row {
    fn matches(&self, conds: &[Cond]) -> bool {
        conds.iter().all(|(d, v)| self.vals[*d] == *v)
    }
}

/// Counts of a conjunction of conditions, per side.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Population.
    pub n: [u64; 2],
    /// Target.
    pub k: [u64; 2],
}

/// The joint table: population rows (main dimensions) and target rows
/// that carry the error dimensions too, with an inverted index from each
/// value to the rows holding it (counting a conjunction walks only the
/// rows of its rarest value).
#[derive(Debug, Default)]
pub struct Table {
    /// Rows keyed by the main dimensions: population and target counts.
    pub cube: Vec<Row>,
    /// Failed target rows keyed by main and error dimensions (target
    /// counts only).
    pub errors: Vec<Row>,
    /// Dimensions that are error dimensions (counted from `errors`).
    pub is_error_dim: Vec<bool>,
    /// Whether `errors` holds every target span (the target implies
    /// `status = error`), so target counts come from it for any condition.
    pub targets_are_errors: bool,
    cube_index: HashMap<Cond, Vec<u32>>,
    error_index: HashMap<Cond, Vec<u32>>,
    totals: Counts,
}

fn index(rows: &[Row]) -> HashMap<Cond, Vec<u32>> {
    let mut out: HashMap<Cond, Vec<u32>> = HashMap::default();
    for (i, row) in rows.iter().enumerate() {
        for (d, v) in row.vals.iter().enumerate() {
            if *v != 0 {
                out.entry((d, *v)).or_default().push(i as u32);
            }
        }
    }
    out
}

impl Table {
    /// A table over these rows (builds the index and the totals).
    pub fn new(cube: Vec<Row>, errors: Vec<Row>, is_error_dim: Vec<bool>) -> Self {
        let sum = |rows: &[Row], f: fn(&Row) -> [u64; 2]| {
            rows.iter().fold([0u64; 2], |acc, r| {
                let v = f(r);
                [acc[0] + v[0], acc[1] + v[1]]
            })
        };
        let cube_k = sum(&cube, |r| r.k);
        let err_k = sum(&errors, |r| r.k);
        let totals = Counts {
            n: sum(&cube, |r| r.n),
            k: cube_k,
        };
        Self {
            cube_index: index(&cube),
            error_index: index(&errors),
            targets_are_errors: cube_k == err_k,
            cube,
            errors,
            is_error_dim,
            totals,
        }
    }

    /// Totals of the whole scope.
    pub fn totals(&self) -> Counts {
        self.totals
    }

    /// Sums `f` over the rows matching every condition and no exclusion.
    fn sum(
        rows: &[Row],
        index: &HashMap<Cond, Vec<u32>>,
        conds: &[Cond],
        excluded: &[&Vec<Cond>],
        f: impl Fn(&Row) -> [u64; 2],
    ) -> [u64; 2] {
        let mut out = [0u64; 2];
        let mut add = |row: &Row| {
            if row.matches(conds) && !excluded.iter().any(|e| row.matches(e)) {
                let v = f(row);
                out[0] += v[0];
                out[1] += v[1];
            }
        };
        if conds.is_empty() {
            rows.iter().for_each(&mut add);
            return out;
        }
        let rarest = conds
            .iter()
            .map(|c| index.get(c).map_or(&[][..], Vec::as_slice))
            .min_by_key(|p| p.len())
            .unwrap_or(&[]);
        for &i in rarest {
            add(&rows[i as usize]);
        }
        out
    }

    /// Counts of `conds`, leaving out target rows that match any of
    /// `excluded` (what earlier findings explain).
    pub fn count(&self, conds: &[Cond], excluded: &[Vec<Cond>]) -> Counts {
        let uses_err = |cs: &[Cond]| cs.iter().any(|(d, _)| self.is_error_dim[*d]);
        let main: Vec<Cond> = conds
            .iter()
            .copied()
            .filter(|(d, _)| !self.is_error_dim[*d])
            .collect();
        // Population: only main dimensions have one; exclusions that name
        // error dimensions cannot be applied to it and are left out.
        let pop_excl: Vec<&Vec<Cond>> = excluded.iter().filter(|e| !uses_err(e)).collect();
        let n = if main.is_empty() && pop_excl.is_empty() {
            // Error-only conditions have the whole scope as population.
            self.totals.n
        } else {
            Self::sum(&self.cube, &self.cube_index, &main, &pop_excl, |r| r.n)
        };
        let from_errors =
            self.targets_are_errors || uses_err(conds) || excluded.iter().any(|e| uses_err(e));
        let all_excl: Vec<&Vec<Cond>> = excluded.iter().collect();
        let k = if from_errors {
            Self::sum(&self.errors, &self.error_index, conds, &all_excl, |r| r.k)
        } else {
            Self::sum(&self.cube, &self.cube_index, conds, &all_excl, |r| r.k)
        };
        Counts { n, k }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_matching_rows_and_leave_out_explained_targets() {
        let row = |vals: Vec<u32>, n: [u64; 2], k: [u64; 2]| Row { vals, n, k };
        let table = Table::new(
            vec![
                row(vec![1, 1, 0], [100, 100], [50, 2]),
                row(vec![1, 2, 0], [100, 100], [3, 2]),
                row(vec![2, 1, 0], [50, 50], [1, 1]),
            ],
            vec![
                row(vec![1, 1, 1], [0, 0], [50, 2]),
                row(vec![1, 2, 2], [0, 0], [3, 2]),
                row(vec![2, 1, 2], [0, 0], [1, 1]),
            ],
            vec![false, false, true],
        );
        assert!(table.targets_are_errors);
        let c = table.count(&[(0, 1)], &[]);
        assert_eq!((c.n, c.k), ([200, 200], [53, 4]));
        let c = table.count(&[(0, 1), (1, 1)], &[]);
        assert_eq!((c.n, c.k), ([100, 100], [50, 2]));
        // An error dimension alone: the population is the whole scope.
        let c = table.count(&[(2, 2)], &[]);
        assert_eq!((c.n, c.k), ([250, 250], [4, 3]));
        let c = table.count(&[(0, 1)], &[vec![(1, 1)]]);
        assert_eq!((c.n, c.k), ([100, 100], [3, 2]));
        assert_eq!(table.totals().k, [54, 5]);
    }
}
