//! The markdown report: machine, load, commit, command, the table.

use std::fmt::Write as _;
use std::time::Duration;

/// One question's measurements.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Question name.
    pub name: String,
    /// Whether Loupe answered from its rollups (no span read).
    pub from_rollups: bool,
    /// Warm median, PostgreSQL.
    pub pg: Duration,
    /// Warm median, Loupe.
    pub loupe: Duration,
    /// Warm median, DuckDB (when it ran).
    pub duck: Option<Duration>,
    /// Cold (OS page cache dropped), when measured: PostgreSQL, Loupe.
    pub cold: Option<(Duration, Duration)>,
    /// DuckDB cold (a fresh database, the page cache dropped).
    pub duck_cold: Option<Duration>,
    /// Warm median, Loupe's queries on the ClickHouse backend (when it ran).
    pub clickhouse: Option<Duration>,
    /// Rows compared.
    pub rows: usize,
    /// `None`: answers match; else the mismatch.
    pub mismatch: Option<String>,
}

fn first_line(path: &str, key: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// nproc, memory, CPU model.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cpus} CPUs ({}), {} memory",
        first_line("/proc/cpuinfo", "model name"),
        first_line("/proc/meminfo", "MemTotal")
    )
}

/// `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// `git rev-parse HEAD` (plus `-dirty` when the tree has changes).
pub fn commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = run(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head} (with uncommitted changes)")
    } else {
        head
    }
}

/// Milliseconds with a sensible precision.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(pg: Duration, loupe: Duration) -> String {
    let l = loupe.as_secs_f64();
    if l <= 0.0 {
        return "∞".into();
    }
    let r = pg.as_secs_f64() / l;
    if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.1}×")
    }
}

/// The results table: PostgreSQL, DuckDB (when it ran) and Loupe, warm
/// and (when measured) cold, with the ratios to Loupe.
pub fn table(rows: &[Measured]) -> String {
    let mut out = String::new();
    let cold = rows.iter().any(|r| r.cold.is_some());
    let duck = rows.iter().any(|r| r.duck.is_some());
    let clickhouse = rows.iter().any(|r| r.clickhouse.is_some());
    let mut head = vec!["question", "PostgreSQL warm ms"];
    if duck {
        head.push("DuckDB warm ms");
    }
    head.extend(["Loupe warm ms", "PG / Loupe"]);
    if duck {
        head.push("DuckDB / Loupe");
    }
    if clickhouse {
        head.extend(["ClickHouse backend warm ms", "ClickHouse / Loupe"]);
    }
    if cold {
        head.push("PostgreSQL cold ms");
        if duck {
            head.push("DuckDB cold ms");
        }
        head.extend(["Loupe cold ms", "cold PG / Loupe"]);
        if duck {
            head.push("cold DuckDB / Loupe");
        }
    }
    head.extend(["rows", "same answer"]);
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let align: Vec<&str> = head
        .iter()
        .map(|h| match *h {
            "question" | "same answer" => "---",
            _ => "---:",
        })
        .collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    let dash = || "–".to_owned();
    for r in rows {
        let mut cells = vec![r.name.clone(), ms(r.pg)];
        if duck {
            cells.push(r.duck.map_or_else(dash, ms));
        }
        cells.extend([ms(r.loupe), ratio(r.pg, r.loupe)]);
        if duck {
            cells.push(r.duck.map_or_else(dash, |d| ratio(d, r.loupe)));
        }
        if clickhouse {
            cells.push(r.clickhouse.map_or_else(dash, ms));
            cells.push(r.clickhouse.map_or_else(dash, |c| ratio(c, r.loupe)));
        }
        if cold {
            let (p, l) = r.cold.map_or((None, None), |(p, l)| (Some(p), Some(l)));
            cells.push(p.map_or_else(dash, ms));
            if duck {
                cells.push(r.duck_cold.map_or_else(dash, ms));
            }
            cells.push(l.map_or_else(dash, ms));
            cells.push(p.zip(l).map_or_else(dash, |(p, l)| ratio(p, l)));
            if duck {
                cells.push(r.duck_cold.zip(l).map_or_else(dash, |(d, l)| ratio(d, l)));
            }
        }
        cells.push(r.rows.to_string());
        cells.push(match &r.mismatch {
            None => "yes".to_owned(),
            Some(m) => format!("**NO**: {}", m.replace('|', "\\|")),
        });
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}
