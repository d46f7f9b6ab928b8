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
    /// Cold (OS page cache dropped), when measured.
    pub cold: Option<(Duration, Duration)>,
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

/// The results table.
pub fn table(rows: &[Measured]) -> String {
    let mut out = String::new();
    let cold = rows.iter().any(|r| r.cold.is_some());
    out.push_str("| question | PostgreSQL warm ms | Loupe warm ms | PG / Loupe |");
    if cold {
        out.push_str(" PostgreSQL cold ms | Loupe cold ms | cold PG / Loupe |");
    }
    out.push_str(" rows | same answer |\n|---|---:|---:|---:|");
    if cold {
        out.push_str("---:|---:|---:|");
    }
    out.push_str("---:|---|\n");
    for r in rows {
        let _ = write!(
            out,
            "| {} | {} | {} | {} |",
            r.name,
            ms(r.pg),
            ms(r.loupe),
            ratio(r.pg, r.loupe)
        );
        if cold {
            match r.cold {
                Some((p, l)) => {
                    let _ = write!(out, " {} | {} | {} |", ms(p), ms(l), ratio(p, l));
                }
                None => out.push_str(" – | – | – |"),
            }
        }
        let check = match &r.mismatch {
            None => "yes".to_owned(),
            Some(m) => format!("**NO**: {}", m.replace('|', "\\|")),
        };
        let _ = writeln!(out, " {} | {check} |", r.rows);
    }
    out
}
