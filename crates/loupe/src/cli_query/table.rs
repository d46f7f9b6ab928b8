//! The aligned table `loupe query` and `loupe sql` print.
//!
//! One line per row, columns padded to their widest cell (in characters),
//! numbers right-aligned. Cells are for reading, not parsing (use `--json`
//! or `--output` for that): timestamps as RFC 3339 UTC, durations with a
//! unit (`1.234s`), maps as compact JSON, unset as an empty cell, and text
//! with control characters escaped and cut at [`MAX_CELL`] characters.

use loupe_backend::QueryResult;
use loupe_backend::plan::ValueType;
use serde_json::Value;

/// Longest cell shown, in characters; longer ones end in `…`.
pub const MAX_CELL: usize = 60;

/// The table: header, a rule, then the rows, each line ending in `\n`.
pub fn render(result: &QueryResult) -> String {
    let types: Vec<ValueType> = result.columns.iter().map(|c| c.ty).collect();
    let header: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            types
                .iter()
                .enumerate()
                .map(|(i, ty)| cell(row.get(i).unwrap_or(&Value::Null), *ty))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(h.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let right: Vec<bool> = types
        .iter()
        .map(|t| matches!(t, ValueType::Int | ValueType::Float | ValueType::Duration))
        .collect();
    let mut out = String::new();
    let mut line = |values: &[String]| {
        let parts: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| pad(v, widths[i], right[i]))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&header);
    line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for row in &cells {
        line(row);
    }
    out
}

/// One line about the answer: rows, what was scanned, time, truncation.
pub fn summary(result: &QueryResult) -> String {
    let n = result.rows.len();
    let mut text = format!("{n} row{}", if n == 1 { "" } else { "s" });
    let s = &result.stats;
    if s.from_rollups {
        text.push_str(" · from the hour rollups (no span read)");
    } else if let Some(rows) = s.rows_scanned {
        text.push_str(&format!(
            " · scanned {rows} rows in {} parts",
            s.parts_scanned
        ));
    }
    text.push_str(&format!(" · {} ms", s.elapsed_ms));
    if s.truncated {
        text.push_str(
            " · truncated at the row cap: narrow the query, add `limit`, or use --output",
        );
    }
    text
}

fn pad(v: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(v.chars().count()));
    if right {
        format!("{fill}{v}")
    } else {
        format!("{v}{fill}")
    }
}

/// A value as shown in the table.
pub fn cell(v: &Value, ty: ValueType) -> String {
    let text = match (v, ty) {
        (Value::Null, _) => return String::new(),
        // Aggregates of durations (avg, percentiles) may be fractional ns.
        (Value::Number(n), ValueType::Timestamp) => match n.as_f64() {
            Some(ns) => timestamp(ns.round() as i64),
            None => n.to_string(),
        },
        (Value::Number(n), ValueType::Duration) => match n.as_f64() {
            Some(ns) => duration(ns.round() as i64),
            None => n.to_string(),
        },
        (Value::Number(n), _) => match n.as_f64() {
            Some(f) if n.is_f64() => float(f),
            _ => n.to_string(),
        },
        (Value::String(s), _) => s.clone(),
        (other, _) => other.to_string(),
    };
    shorten(&escape(&text))
}

fn timestamp(ns: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ns);
    if ns % 1_000_000_000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

fn duration(ns: i64) -> String {
    let abs = ns.unsigned_abs();
    let (div, unit) = match abs {
        a if a >= 1_000_000_000 => (1e9, "s"),
        a if a >= 1_000_000 => (1e6, "ms"),
        a if a >= 1_000 => (1e3, "µs"),
        _ => return format!("{ns}ns"),
    };
    format!("{}{unit}", trim_zeros(format!("{:.3}", ns as f64 / div)))
}

fn float(f: f64) -> String {
    if f != 0.0 && f.abs() < 1e-4 {
        return format!("{f:.3e}");
    }
    trim_zeros(format!("{f:.4}"))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_CELL {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(MAX_CELL - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use loupe_backend::plan::Column;

    use super::*;

    #[test]
    fn cells_are_readable() {
        assert_eq!(
            cell(&Value::from(1_500_000_000i64), ValueType::Duration),
            "1.5s"
        );
        assert_eq!(
            cell(&Value::from(250_000_000i64), ValueType::Duration),
            "250ms"
        );
        assert_eq!(cell(&Value::from(999i64), ValueType::Duration), "999ns");
        assert_eq!(
            cell(&Value::from(2374953.0985), ValueType::Duration),
            "2.375ms"
        );
        assert_eq!(
            cell(
                &Value::from(1_767_225_600_000_000_000i64),
                ValueType::Timestamp
            ),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(cell(&Value::from(0.25), ValueType::Float), "0.25");
        assert_eq!(cell(&Value::from(2.0), ValueType::Float), "2");
        assert_eq!(cell(&Value::Null, ValueType::Text), "");
        assert_eq!(cell(&Value::from("a\nb"), ValueType::Text), "a\\nb");
        let long = "x".repeat(100);
        assert_eq!(
            cell(&Value::from(long), ValueType::Text).chars().count(),
            MAX_CELL
        );
    }

    #[test]
    fn columns_align_and_numbers_go_right() {
        let result = QueryResult {
            columns: vec![
                Column {
                    name: "tool_name".into(),
                    ty: ValueType::Text,
                },
                Column {
                    name: "n".into(),
                    ty: ValueType::Int,
                },
            ],
            rows: vec![
                vec![Value::from("inventory"), Value::from(12)],
                vec![Value::from("payment"), Value::from(3)],
            ],
            ..QueryResult::default()
        };
        assert_eq!(
            render(&result),
            "tool_name   n\n---------  --\ninventory  12\npayment     3\n"
        );
    }
}
