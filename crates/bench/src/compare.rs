//! Normalised result sets: both sides' rows become [`Cell`]s (numbers as
//! `f64`, Dify's `succeeded`/`failed` as Loupe's `ok`/`error`) and compare
//! with a relative tolerance for floats.

use std::cmp::Ordering;
use std::fmt;

/// One normalised value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL / JSON null.
    Null,
    /// Any number (integers, floats, numerics, counts).
    Num(f64),
    /// Text.
    Text(String),
}

impl Cell {
    /// Reads a text value: a number when it parses as one, Dify's run
    /// statuses mapped to Loupe's.
    pub fn from_text(text: &str) -> Cell {
        match text {
            "succeeded" => return Cell::Text("ok".into()),
            "failed" => return Cell::Text("error".into()),
            _ => {}
        }
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Cell::Num(n),
            _ => Cell::Text(text.to_owned()),
        }
    }

    /// Reads a JSON value from a Loupe result.
    pub fn from_json(value: &serde_json::Value) -> Cell {
        match value {
            serde_json::Value::Null => Cell::Null,
            serde_json::Value::Number(n) => n.as_f64().map_or(Cell::Null, Cell::Num),
            serde_json::Value::String(s) => Cell::from_text(s),
            serde_json::Value::Bool(b) => Cell::Text(b.to_string()),
            other => Cell::Text(other.to_string()),
        }
    }

    fn close_to(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Num(a), Cell::Num(b)) => (a - b).abs() <= 1e-5 * a.abs().max(b.abs()) + 1e-9,
            (a, b) => a == b,
        }
    }

    fn order(&self, other: &Cell) -> Ordering {
        match (self, other) {
            (Cell::Num(a), Cell::Num(b)) => a.total_cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
            (Cell::Null, Cell::Null) => Ordering::Equal,
            (Cell::Null, _) => Ordering::Greater,
            (_, Cell::Null) => Ordering::Less,
            (Cell::Num(_), Cell::Text(_)) => Ordering::Less,
            (Cell::Text(_), Cell::Num(_)) => Ordering::Greater,
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Null => write!(f, "NULL"),
            Cell::Num(n) => write!(f, "{n}"),
            Cell::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// Rows of one answer.
pub type Rows = Vec<Vec<Cell>>;

/// Sorts rows (for answers whose order the question does not fix).
pub fn sort_rows(rows: &mut Rows) {
    rows.sort_by(|a, b| {
        a.iter()
            .zip(b.iter())
            .map(|(x, y)| x.order(y))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or_else(|| a.len().cmp(&b.len()))
    });
}

/// `None` when the answers agree, else a description of the first difference.
pub fn diff(pg: &Rows, loupe: &Rows) -> Option<String> {
    if pg.len() != loupe.len() {
        return Some(format!(
            "PostgreSQL returned {} rows, Loupe {} (first rows: pg {} / loupe {})",
            pg.len(),
            loupe.len(),
            show(pg.first()),
            show(loupe.first())
        ));
    }
    for (i, (a, b)) in pg.iter().zip(loupe.iter()).enumerate() {
        let same = a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.close_to(y));
        if !same {
            return Some(format!(
                "row {i} differs: pg {} / loupe {}",
                show(Some(a)),
                show(Some(b))
            ));
        }
    }
    None
}

fn show(row: Option<&Vec<Cell>>) -> String {
    match row {
        None => "none".into(),
        Some(cells) => {
            let parts: Vec<String> = cells.iter().map(ToString::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// Positions of the `keep` columns among `names` (all when `keep` is empty).
pub fn column_positions<S: AsRef<str>>(names: &[S], keep: &[&str]) -> Vec<usize> {
    if keep.is_empty() {
        return (0..names.len()).collect();
    }
    keep.iter()
        .filter_map(|k| names.iter().position(|n| n.as_ref() == *k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_compare_with_tolerance_and_statuses_map() {
        let pg = vec![vec![
            Cell::from_text("failed"),
            Cell::from_text("0.3333333"),
        ]];
        let loupe = vec![vec![
            Cell::from_json(&serde_json::json!("error")),
            Cell::from_json(&serde_json::json!(1.0 / 3.0)),
        ]];
        assert_eq!(diff(&pg, &loupe), None);
        let other = vec![vec![Cell::Text("error".into()), Cell::Num(0.5)]];
        assert!(diff(&pg, &other).is_some());
    }
}
